"""Training history: the quick in-dtype records against toybench.metrics (float64), the ``metrics=``
choice, exact first and last records, the frame with gaps, repr and plot."""
import importlib

import matplotlib
import numpy as np
import pytest
import torch

import toybench as tb
from toybench.metrics import summary
from toybench.objective import record_inputs
from toybench.policies import Tabular
from toybench.train import DEFAULT_METRICS, METRICS, train

matplotlib.use("Agg")
train_module = importlib.import_module("toybench.train")   # tb.train is the function


def random_problem(preference="bt"):
    return tb.Problem.random(tb.FlatSpace(5), prompts=3, seed=2, preference=preference,
                             prompt_weights=[0.5, 0.3, 0.2])


def exact_record(loss, pairs, logp, target):
    """Every history metric from toybench.metrics and the record-list objective, in float64."""
    logp = logp.double() - logp.double().logsumexp(-1, keepdim=True)
    inputs = record_inputs(loss, logp, pairs)
    state = {"state": loss.population_state(inputs, pairs.weight)} if loss.stateful else {}
    return {"loss": (pairs.weight * loss(**inputs, **state)).sum(-1), **summary(logp, pairs.problem, target)}


def trained(prob, dtype, loss, pairs, steps):
    """A fresh policy after ``steps`` full-batch Adam steps (deterministic)."""
    policy = Tabular(prob, runs=2, init=torch.tensor(np.random.default_rng(0).normal(size=(2, 3, 5))), dtype=dtype)
    if steps:
        train(policy, loss, pairs, steps=steps, lr=0.1)
    return policy


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
@pytest.mark.parametrize("name", ["dpo", "simpo", "kto"])
def test_quick_records_equal_the_float64_metrics(dtype, tol, name):
    """Intermediate records (computed in the policy's dtype) match toybench.metrics on the same
    table in float64: to float64 rounding for a float64 policy, to float32 rounding (~1e-7 per
    entry, sums of ≤ 75 terms of size ≤ 3) for a float32 one."""
    prob = tb.Problem.random(tb.FlatSpace(5, lengths=[1.0, 2.0, 3.0, 4.0, 6.0]), prompts=3, seed=2,
                             prompt_weights=[0.5, 0.3, 0.2])
    loss, pairs = tb.losses.make(name), tb.population(prob)
    target = torch.tensor(np.random.default_rng(1).dirichlet(np.ones(5), size=3)).log()
    target[1, 2] = -torch.inf                          # a response the target drops: KL(π‖π_tgt) = inf
    target = target - target.logsumexp(-1, keepdim=True)
    history = train(trained(prob, dtype, loss, pairs, 0), loss, pairs, steps=3, lr=0.1, log_every=1,
                    metrics="all", target=target)
    assert history.steps == [0, 1, 2, 3]
    for step in (1, 2):
        record = history.records[step]
        expected = exact_record(loss, pairs, trained(prob, dtype, loss, pairs, step).logp().detach(), target)
        assert set(record) == {"step", *METRICS}
        for key, value in expected.items():
            assert record[key].dtype == torch.float64 and record[key].shape == (2,)
            np.testing.assert_allclose(record[key].numpy(), value.numpy(), rtol=tol, atol=tol, err_msg=key)
    assert torch.isinf(history.final["kl_to_target"]).all()


def test_default_and_chosen_metrics_first_and_last_records_hold_everything():
    prob = random_problem()
    loss, pairs = tb.losses.make("dpo", beta=0.5), tb.population(prob)
    default = train(Tabular(prob, runs=2), loss, pairs, steps=4, log_every=1)
    assert [set(r) - {"step"} for r in default.records[1:-1]] == [set(DEFAULT_METRICS)] * 3
    assert set(default.records[0]) == set(default.records[-1]) == {"step", *METRICS}
    chosen = train(Tabular(prob, runs=2), loss, pairs, steps=4, log_every=2, metrics=["entropy", "loss"])
    assert chosen.steps == [0, 2, 4] and set(chosen.records[1]) == {"step", "loss", "entropy"}
    only = train(Tabular(prob, runs=2), loss, pairs, steps=4, log_every=2, metrics="kl_to_ref")
    assert set(only.records[1]) == {"step", "kl_to_ref"}
    frame = chosen.to_frame()
    assert list(frame.columns) == ["step", "run", *METRICS]
    middle = frame[frame["step"] == 2]
    assert middle["win_rate"].isna().all() and middle["entropy"].notna().all()
    assert frame[frame["step"] == 4]["win_rate"].notna().all()
    steps, values = chosen.column("entropy")
    assert steps == [0, 2, 4] and values.shape == (3, 2)
    steps, values = chosen.column("win_rate")
    assert steps == [0, 4] and values.shape == (2, 2)


def test_quick_records_without_reward_or_target():
    """A general preference (no reward): no expected_reward or mass_on_best anywhere; no target:
    NaN target columns at every step."""
    prob = random_problem(preference="general")
    history = train(Tabular(prob, runs=3), tb.losses.make("hinge"), tb.population(prob), steps=2, log_every=1,
                    metrics="all")
    for record in history.records:
        assert "expected_reward" not in record and "mass_on_best" not in record
        assert all(torch.isnan(record[key]).all() for key in ("kl_to_target", "kl_from_target", "tv_to_target"))
        assert torch.isfinite(record["win_rate"]).all()


@pytest.mark.parametrize("metrics, message", [
    (["loss", "accuracy"], r"unknown metrics \['accuracy'\]"),
    ("everything", r"unknown metrics \['everything'\]"),
    (3, r"unknown metrics \[3\]"),
])
def test_metrics_validation(metrics, message):
    prob = random_problem()
    with pytest.raises(ValueError, match=message):
        train(Tabular(prob), tb.losses.make("dpo"), tb.population(prob), steps=1, metrics=metrics)


def test_column_of_an_unknown_metric():
    prob = random_problem()
    history = train(Tabular(prob), tb.losses.make("dpo"), tb.population(prob), steps=1)
    with pytest.raises(ValueError, match="no metric 'kl' in this history"):
        history.column("kl")


def test_repr_is_short():
    prob = random_problem()
    history = train(Tabular(prob, runs=64), tb.losses.make("dpo"), tb.population(prob), steps=300)
    text = repr(history)
    assert len(text) < 400 and text.startswith("History(runs=64, steps=0..300, 101 records")


@pytest.mark.parametrize("runs, lines", [(3, 3), (20, 1)])
def test_plot_has_title_labels_and_legend(runs, lines):
    prob = random_problem()
    history = train(Tabular(prob, runs=runs), tb.losses.make("dpo", beta=torch.linspace(0.1, 1.0, runs)),
                    tb.population(prob), steps=10, log_every=2)
    ax = history.plot("kl_to_target", logy=True)
    assert ax.get_title() == f"kl_to_target during training ({runs} runs)"
    assert ax.get_xlabel() == "step" and ax.get_ylabel() == "kl_to_target" and ax.get_yscale() == "log"
    assert len(ax.get_lines()) == lines and ax.get_legend() is not None
    np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), history.steps)
    matplotlib.pyplot.close(ax.figure)
    with pytest.raises(ValueError, match="max_lines must be an integer >= 1"):
        history.plot(max_lines=0)


def test_loss_only_and_buffered_flushes(monkeypatch):
    """``metrics=["loss"]`` records the loss alone between the exact ends; with a small buffer the
    quick records are computed in several flushes and still come in step order with the same values."""
    prob = random_problem()
    loss, pairs = tb.losses.make("ipo", beta=0.5), tb.population(prob)
    history = train(Tabular(prob, runs=2, dtype=torch.float64), loss, pairs, steps=5, log_every=1, metrics=["loss"])
    assert [set(r) for r in history.records[1:-1]] == [{"step", "loss"}] * 4
    one_go = train(Tabular(prob, runs=2), loss, pairs, steps=7, log_every=1, metrics="all")
    monkeypatch.setattr(train_module, "PENDING_ELEMENTS", 2 * 2 * 3 * 5)   # two kept steps per flush
    flushed = train(Tabular(prob, runs=2), loss, pairs, steps=7, log_every=1, metrics="all")
    assert flushed.steps == one_go.steps == list(range(8))
    for first, second in zip(one_go.records, flushed.records, strict=True):
        assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first if k != "step")


def test_plot_of_a_metric_kept_only_at_the_ends_marks_its_two_points():
    prob = random_problem()
    history = train(Tabular(prob, runs=2), tb.losses.make("dpo"), tb.population(prob), steps=10, log_every=2)
    ax = history.plot("loss")
    assert [list(line.get_xdata()) for line in ax.get_lines()] == [[0, 10], [0, 10]]
    assert ax.get_lines()[0].get_marker() == "o"
    matplotlib.pyplot.close(ax.figure)


class DroppingPolicy:
    """The policy protocol (``runs``, ``logp``, ``parameters``; autograd for the gradient) with one
    response per prompt held at zero mass: log π = log_softmax(s + m), m = −∞ there, 0 elsewhere."""

    def __init__(self, logits: torch.Tensor, dropped: int):
        self.runs = logits.shape[0]
        self.logits = logits.clone().requires_grad_(True)
        self.mask = torch.zeros(logits.shape[-1], dtype=logits.dtype)
        self.mask[dropped] = -torch.inf

    def logp(self):
        return torch.log_softmax(self.logits + self.mask, -1)

    def parameters(self):
        return [self.logits]


def test_quick_records_of_a_policy_that_drops_a_response():
    """π(y) = 0 for one response: 0·log 0 = 0 in the entropy and KL(π‖·), and KL(π_tgt‖π) = +∞
    where the target keeps it; the intermediate records agree with toybench.metrics on the same
    tables (float64 policy, so to float64 rounding)."""
    prob = tb.Problem.random(tb.FlatSpace(4), prompts=2, seed=3)
    loss, pairs = tb.losses.make("dpo"), tb.population(prob)
    init = torch.tensor(np.random.default_rng(4).normal(size=(2, 2, 4)))
    history = train(DroppingPolicy(init, dropped=1), loss, pairs, steps=2, lr=0.1, log_every=1, metrics="all",
                    target=prob.ref_logp)
    step_one = DroppingPolicy(init, dropped=1)
    train(step_one, loss, pairs, steps=1, lr=0.1)
    expected = summary(step_one.logp().detach(), prob, prob.ref_logp)
    record = history.records[1]
    assert history.steps == [0, 1, 2]
    assert torch.isinf(record["kl_from_target"]).all() and (record["kl_from_target"] > 0).all()
    for key in ("entropy", "kl_to_ref", "kl_to_target", "tv_to_target", "win_rate", "expected_reward"):
        assert torch.isfinite(record[key]).all(), key
        np.testing.assert_allclose(record[key].numpy(), expected[key].numpy(), rtol=1e-12, atol=1e-12, err_msg=key)
