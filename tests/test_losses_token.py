"""Token-level losses against hand formulas in NumPy: token log-ratios from brute-force prefix sums
over the enumerated strings, then each loss's printed formula; plus bad input and the depth-2
instance of Oi et al. (numbers from an independent multi-start float64 solve)."""
import math

import numpy as np
import pytest
import torch

import toybench as tb
from toybench.objective import call_loss, objective, record_inputs

SP = lambda t: np.log1p(np.exp(t))  # noqa: E731


def brute_deltas(space, table, ref, y):
    """δ_t for string y: log of (mass of strings extending s·a)/(mass extending s), policy minus reference."""
    labels = [space.label(k) for k in range(space.size)]
    text = labels[y] + "$"
    deltas = []
    for t in range(len(text)):
        context, token = text[:t], text[t]

        def cond(probs, context=context, token=token):
            under = sum(probs[k] for k, s in enumerate(labels) if s.startswith(context))
            if token == "$":
                return probs[labels.index(context)] / under
            return sum(probs[k] for k, s in enumerate(labels) if s.startswith(context + token)) / under

        deltas.append(math.log(cond(table)) - math.log(cond(ref)))
    return np.array(deltas)


@pytest.fixture
def setup():
    prob = tb.Problem.random(tb.SequenceSpace(2, 3), prompts=1, seed=1, pair_dist="uniform")
    gen = torch.Generator().manual_seed(2)
    table = torch.log_softmax(torch.randn(1, 1, prob.Y, generator=gen, dtype=torch.float64), -1)
    pairs = tb.Pairs.from_records(prob, [(0, 0, 5), (0, 3, 4), (0, 13, 1), (0, 2, 9)])
    return prob, table, pairs


def hand_values(prob, table, pairs, formula):
    space, probs, ref = prob.space, table[0, 0].exp().numpy(), prob.ref_logp[0].exp().numpy()
    out = []
    for w, rej in zip(pairs.chosen[0].tolist(), pairs.rejected[0].tolist(), strict=True):
        out.append(formula(brute_deltas(space, probs, ref, w), brute_deltas(space, probs, ref, rej)))
    return np.array(out)


def loss_values(loss, table, pairs):
    return call_loss(loss, record_inputs(loss, table, pairs))[0].numpy()


def padded(a, b):
    n = max(len(a), len(b))
    return np.pad(a, (0, n - len(a))), np.pad(b, (0, n - len(b)))


def test_token_dpo_is_dpo_on_summed_deltas(setup):
    prob, table, pairs = setup
    expected = hand_values(prob, table, pairs, lambda w, rej: SP(-0.5 * (w.sum() - rej.sum())))
    np.testing.assert_allclose(loss_values(tb.losses.make("token_dpo", beta=0.5), table, pairs), expected, atol=1e-12)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_ld_dpo_formula(setup, alpha):
    prob, table, pairs = setup

    def formula(w, rej):
        shared = min(len(w), len(rej))
        score = lambda d: d[:shared].sum() + alpha * d[shared:].sum()  # noqa: E731
        return SP(-0.5 * (score(w) - score(rej)))

    np.testing.assert_allclose(loss_values(tb.losses.make("ld_dpo", beta=0.5, alpha=alpha), table, pairs),
                               hand_values(prob, table, pairs, formula), atol=1e-12)


def test_autoregressive_dpo_token_granularity(setup):
    prob, table, pairs = setup

    def formula(w, rej):
        w, rej = padded(w, rej)
        return SP(-0.5 * (w - rej)).sum()

    np.testing.assert_allclose(loss_values(tb.losses.make("autoregressive_dpo", beta=0.5), table, pairs),
                               hand_values(prob, table, pairs, formula), atol=1e-12)


@pytest.mark.parametrize("m", [1, 2, 3])
def test_autoregressive_dpo_segments(setup, m):
    """Segment i of a T-step string holds steps t with floor(t·m/T) = i."""
    prob, table, pairs = setup

    def sums(d):
        return np.array([sum(d[t] for t in range(len(d)) if (t * m) // len(d) == i) for i in range(m)])

    formula = lambda w, rej: SP(-0.5 * (sums(w) - sums(rej))).sum()  # noqa: E731
    np.testing.assert_allclose(loss_values(tb.losses.make("autoregressive_dpo", beta=0.5, segments=m), table, pairs),
                               hand_values(prob, table, pairs, formula), atol=1e-12)


def test_d3po_is_the_mean_over_the_longer_string(setup):
    prob, table, pairs = setup

    def formula(w, rej):
        w, rej = padded(w, rej)
        return SP(-0.5 * (w - rej)).mean()

    np.testing.assert_allclose(loss_values(tb.losses.make("d3po", beta=0.5), table, pairs),
                               hand_values(prob, table, pairs, formula), atol=1e-12)


@pytest.mark.parametrize("name", ["ld_dpo", "autoregressive_dpo", "token_dpo", "d3po"])
def test_per_run_beta_and_per_run_tables(setup, name):
    prob, _, pairs = setup
    gen = torch.Generator().manual_seed(8)
    tables = torch.log_softmax(torch.randn(2, 1, prob.Y, generator=gen, dtype=torch.float64), -1)
    batched = objective(tb.losses.make(name, beta=torch.tensor([0.5, 2.0])), tables, pairs)
    for b, beta in enumerate((0.5, 2.0)):
        single = objective(tb.losses.make(name, beta=beta), tables[b : b + 1], pairs)
        assert batched[b].item() == pytest.approx(single.item(), abs=1e-12)


@pytest.mark.parametrize("name", ["ld_dpo", "autoregressive_dpo", "token_dpo", "d3po"])
def test_token_losses_need_a_sequence_space(name, e1):
    loss = tb.losses.make(name)
    with pytest.raises(ValueError, match="needs a SequenceSpace"):
        objective(loss, e1.ref_logp[None], tb.population(e1))
    with pytest.raises(ValueError, match="token-level"):
        loss.input_grads(torch.zeros(1, 1), torch.zeros(1, 1), torch.zeros(1, 1), torch.zeros(1, 1))


def test_bad_hyperparameters():
    with pytest.raises(ValueError, match="0 <= alpha <= 1"):
        tb.losses.make("ld_dpo", alpha=1.5)
    with pytest.raises(ValueError, match="segments must be an integer >= 0"):
        tb.losses.make("autoregressive_dpo", segments=-1)
    with pytest.raises(ValueError, match="no field"):
        tb.losses.make("d3po", alpha=0.5)


def test_depth2_tree_token_adpo_optimum():
    """Oi et al.'s token-level ADPO under response-level BT on aa, ab, ba, bb (uniform π_ref,
    r = (1, 0, 0.5, −1), β = 1, soft labels): (0.45153, 0.20144, 0.29801, 0.04902), KL to π* 0.00467,
    from an independent 20-start float64 minimisation (5-digit table, so abs 1e-5)."""
    space = tb.SequenceSpace(2, 2, min_len=2)
    prob = tb.Problem(space, torch.full((1, 4), -math.log(4), dtype=torch.float64),
                      reward=torch.tensor([[1.0, 0.0, 0.5, -1.0]], dtype=torch.float64), pair_dist="uniform")
    fit = tb.fit_best(tb.AutoregressiveTabular(prob, init_scale=1.0), tb.losses.make("autoregressive_dpo", beta=1.0),
                      tb.population(prob), starts=3)
    assert fit.certified and max(fit.values) - min(fit.values) < 1e-10
    np.testing.assert_allclose(fit.logp[0].exp(), [0.45153, 0.20144, 0.29801, 0.04902], atol=1e-5)
    assert tb.metrics.kl(fit.logp, tb.optima.reverse_kl(prob, 1.0)).item() == pytest.approx(0.00467, abs=1e-5)


def test_token_loss_trains_a_transformer_population_by_autograd():
    """All B runs at once, plain autograd + Adam on the exact token-level objective: every run descends."""
    prob = tb.Problem.random(tb.SequenceSpace(2, 2), seed=0, pair_dist="uniform")
    pairs = tb.population(prob)
    loss = tb.losses.make("autoregressive_dpo", beta=1.0)
    policy = tb.TinyTransformer(prob, runs=3, width=8, seed=0)
    optimiser = torch.optim.Adam(policy.parameters(), lr=0.05)
    start = objective(loss, policy.logp(), pairs).detach()
    for _ in range(20):
        optimiser.zero_grad()
        objective(loss, policy.logp(), pairs).sum().backward()
        optimiser.step()
    assert (objective(loss, policy.logp(), pairs).detach() < start).all()


@pytest.mark.parametrize("name", ["ld_dpo", "autoregressive_dpo", "token_dpo", "d3po"])
def test_token_losses_train_through_tb_train_full_batch_and_minibatch(name):
    prob = tb.Problem.random(tb.SequenceSpace(2, 3), prompts=2, seed=3)
    loss = tb.losses.make(name)
    pairs = tb.population(prob)
    for batch_size in (None, 4):
        policy = tb.AutoregressiveTabular(prob, runs=2)
        history = tb.train(policy, loss, pairs, steps=3, batch_size=batch_size)
        assert torch.isfinite(history.records[0]["loss"]).all()
        assert not torch.equal(policy.logp(), tb.AutoregressiveTabular(prob, runs=2).logp())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", ["ld_dpo", "autoregressive_dpo", "token_dpo", "d3po"])
def test_token_losses_are_finite_at_extreme_token_log_ratios(name, dtype):
    """δ_t ∈ {−1e30, −700, −1e-30, 0, 700} on every step of chosen and rejected strings: values and
    gradients stay finite and NaN-free (softplus of a finite argument is finite)."""
    import itertools
    levels = [-1e30, -700.0, -1e-30, 0.0, 700.0]
    grid = torch.tensor(list(itertools.product(levels, repeat=2)), dtype=dtype)     # [25, 2]
    chosen = grid[:, :1].expand(-1, 4).clone()[None].requires_grad_(True)         # [1, 25, T = 4]
    rejected = grid[:, 1:].expand(-1, 4).clone()[None].requires_grad_(True)
    steps = torch.tensor([[2.0, 4.0, 3.0, 1.0, 4.0] * 5], dtype=dtype)
    loss = tb.losses.make(name)
    zeros = torch.zeros(1, 25, dtype=dtype)
    value = loss(zeros, zeros, zeros, zeros, chosen_token_logratio=chosen, rejected_token_logratio=rejected,
                 chosen_steps=steps, rejected_steps=steps.flip(-1))
    grads = torch.autograd.grad(value.sum(), (chosen, rejected))
    assert torch.isfinite(value).all() and all(torch.isfinite(g).all() for g in grads)
