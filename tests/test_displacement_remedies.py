"""Displacement remedies and predictors (toybench.claims.displace): the probability-space gradients
against NumPy finite differences, the regularised trajectories of the Razin construction against a
NumPy re-implementation with hand-written gradients, the start rates against the closed form
σ(0)·⟨u, ·⟩, and the batched CHES experiment against separate one-run computations."""
import numpy as np
import pytest
import torch
from conftest import assert_expected_verdicts
from scipy.stats import spearmanr

import toybench as tb
from toybench import displacement as D
from toybench.experiments import displacement as E

EXPECTED = {
    "dpo.probability_gradient_ratio": "holds",
    "displacement.flex_dpo_probability_gradient_ratio": "holds",
    "displacement.flex_dpo_threshold": "holds",
    "repro.three_d.chosen_degrades": "fails",
    "repro.three_d.some_chosen_displaced": "holds",
    "displacement.dpop_keeps_chosen": "holds",
    "displacement.rpo_keeps_chosen": "holds",
    "displacement.flex_dpo_keeps_chosen": "fails",
    "displacement.ches_predicts_chosen_drop": "holds",
}
PHI = np.array([[1.0, 0.1], [1.0, -0.1], [0.0, 1.0]])
BASE = np.log([0.6, 0.3, 0.1])


def test_expected_verdicts_are_pinned():
    assert_expected_verdicts(EXPECTED)


def softplus(t):
    return np.logaddexp(0.0, t)


@pytest.mark.parametrize("name, hp, value", [
    ("dpo", dict(beta=0.7), lambda pw, pl, rw, rl: softplus(-0.7 * (np.log(pw) - rw - np.log(pl) + rl))),
    ("flex_dpo", dict(beta_plus=1.0, beta_minus=0.6),
     lambda pw, pl, rw, rl: softplus(-(1.0 * (np.log(pw) - rw) - 0.6 * (np.log(pl) - rl)))),
])
def test_probability_gradients_match_finite_differences(name, hp, value):
    """Central differences in π_w and π_l of the NumPy formula (h = 1e-6: error ≈ 1e-9 relative)."""
    pw, pl = np.array([[0.3, 0.02, 0.9]]), np.array([[0.6, 0.5, 0.05]])
    rw, rl = np.array([[-1.0, -2.0, -0.5]]), np.array([[-0.3, -1.5, -3.0]])
    gw, gl = D.probability_gradients(tb.losses.make(name, **hp), torch.tensor(pw), torch.tensor(pl),
                                     torch.tensor(rw), torch.tensor(rl))
    h = 1e-6
    np.testing.assert_allclose(gw, (value(pw + h, pl, rw, rl) - value(pw - h, pl, rw, rl)) / (2 * h), rtol=1e-6)
    np.testing.assert_allclose(gl, (value(pw, pl + h, rw, rl) - value(pw, pl - h, rw, rl)) / (2 * h), rtol=1e-6)
    with pytest.raises(ValueError, match="probabilities"):
        D.probability_gradients(tb.losses.make(name, **hp), torch.tensor(pw), torch.tensor(-pl))


def numpy_sgd(grad, steps=500, lr=0.1):
    """SGD on the hidden vector h of the construction; returns log π(y+) along the way [steps + 1]."""
    h, chosen = np.zeros(2), []
    for step in range(steps + 1):
        logits = BASE + PHI @ h
        logp = logits - np.logaddexp.reduce(logits)
        chosen.append(logp[0])
        if step < steps:
            mean = np.exp(logp) @ PHI
            h = h - lr * grad(logp - np.log([0.6, 0.3, 0.1]), PHI - mean)
    return np.array(chosen)


def sigmoid(t):
    return 1 / (1 + np.exp(-t))


# ∇_h L from g (log-ratios) and centred features c_y = φ_y − φ̄ (∇_h log π_y = c_y)
HAND_GRADIENTS = {
    "dpop": (dict(beta=1.0, lam=50.0),
             lambda g, c: -sigmoid(-(g[0] - g[1] - 50 * max(0.0, -g[0])))
             * (c[0] - c[1] + (50 * c[0] if g[0] < 0 else 0.0))),
    "rpo": (dict(beta=1.0, alpha=1.0), lambda g, c: -sigmoid(-(g[0] - g[1])) * (c[0] - c[1]) - c[0]),
    "flex_dpo": (dict(beta_plus=1.0, beta_minus=0.8),
                 lambda g, c: -sigmoid(-(g[0] - 0.8 * g[1])) * (c[0] - 0.8 * c[1])),
}


@pytest.mark.parametrize("name", sorted(HAND_GRADIENTS))
def test_regularised_trajectory_against_numpy(name):
    hp, grad = HAND_GRADIENTS[name]
    change, probs = E.regularised(tb.losses.make(name, **hp))
    chosen = numpy_sgd(grad)
    np.testing.assert_allclose(change, chosen - chosen[0], atol=1e-10)
    assert probs.sum().item() == pytest.approx(1.0, abs=1e-12)


def test_start_rates_by_hand():
    """At h = 0, d/dt log π(y+) = σ(0)·(a‖u‖² − b⟨u, v⟩) (+ α‖u‖² for RPO's NLL), u = φ+ − φ̄, v = φ− − φ̄."""
    mean = np.array([0.6, 0.3, 0.1]) @ PHI
    u, v = PHI[0] - mean, PHI[1] - mean
    assert u @ u == pytest.approx(0.0109, abs=1e-15) and u @ v == pytest.approx(0.0169, abs=1e-15)
    cases = [("dpo", dict(beta=1.0), 0.5 * (u @ u - u @ v)),
             ("dpop", dict(beta=1.0, lam=50.0), 0.5 * (u @ u - u @ v)),     # the penalty is inactive at g_w = 0
             ("rpo", dict(beta=1.0, alpha=1.0), 0.5 * (u @ u - u @ v) + u @ u),
             ("flex_dpo", dict(beta_plus=1.0, beta_minus=0.6), 0.5 * (u @ u - 0.6 * u @ v))]
    for name, hp, rate in cases:
        assert E.chosen_rate(tb.losses.make(name, **hp)) == pytest.approx(rate, abs=1e-15), name


def test_ches_correlation_equals_separate_runs():
    """Each run of the batched experiment equals a one-run model trained on that pair alone; the
    reported number is SciPy's Spearman correlation of those separate computations."""
    found = E.ches_correlation(models=2, pairs_per_model=5, width=4, steps=2)
    prob = tb.Problem.random(tb.SequenceSpace(3, 2), prompts=1, seed=0)
    gen = torch.Generator().manual_seed(0)
    chosen = torch.randint(prob.Y, (10, 1), generator=gen)
    rejected = (chosen + torch.randint(1, prob.Y, (10, 1), generator=gen)) % prob.Y
    for model in range(2):
        scores, changes = [], []
        for k in range(5):
            run = model * 5 + k
            policy = tb.TinyTransformer(prob, width=4, seed=model, dtype=torch.float64)
            pairs = tb.Pairs.from_records(prob, [(0, int(chosen[run]), int(rejected[run]))])
            assert chosen[run] != rejected[run]
            scores.append(D.ches(policy, pairs).item())
            snapshots, _ = D.trajectory(policy, tb.losses.make("dpo", beta=1.0), pairs, 2, lr=0.1)
            changes.append((snapshots[-1, 0, 0, chosen[run]] - snapshots[0, 0, 0, chosen[run]]).item())
        assert found[model] == pytest.approx(spearmanr(scores, changes).statistic, abs=1e-12)
