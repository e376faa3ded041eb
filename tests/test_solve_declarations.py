"""The structure losses declare for ``tb.solve`` (``convex``, ``solver_case``, ``margin_coefficients``,
``falls_forever``, ``effective_table``, ``kink``/``relaxed``), checked against the independent
NumPy formulas of ``independent_losses`` rather than against solve's behaviour."""
import numpy as np
import pytest
import torch
from independent_losses import FORMULAS, Objective, sp
from stress_cases import CASES as STRESS_CASES
from stress_cases import TOKEN

import toybench as tb
from toybench.losses.base import MarginLoss

MIDPOINT_TOL = 1e-12
"""Rounding allowed in F(mid) ≤ (F(a) + F(b))/2: float64 sums of ≤ 40 terms of size ≤ 1e3."""
VIOLATION = 1e-9
"""A midpoint excess above this, a thousand times the rounding bound, is a counterexample."""


PLAIN_INPUTS = {"chosen_len", "rejected_len", "score_gap"}
CASES = [(n, h) for n, h in STRESS_CASES if n not in TOKEN and not tb.losses.make(n, **h).stateful
         and set(tb.losses.make(n, **h).needs) <= PLAIN_INPUTS]
"""The stress cases of flat, stateless losses whose records need nothing beyond lengths and score gaps."""


def problem(seed):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 5, size=4).astype(float)
    prob = tb.Problem.random(tb.FlatSpace(4, lengths=lengths.tolist()), prompts=2, seed=seed, reward_scale=1.5,
                             prompt_weights=torch.tensor([0.3, 0.7]), pair_dist="uniform")
    return prob, lengths


def objective(name, hyper, seed):
    prob, lengths = problem(seed)
    return Objective(name, hyper, prob.ref_logp.numpy(), prob.reward.numpy(), prob.prompt_weights.numpy(),
                     "uniform", lengths), lengths


def midpoint_excess(evaluate, size, seed, segments=60, scale=3.0):
    """Largest F(mid) − (F(a) + F(b))/2 over random segments (points N(0, scale²))."""
    rng = np.random.default_rng(seed)
    worst = -np.inf
    for _ in range(segments):
        a, b = scale * rng.standard_normal(size), scale * rng.standard_normal(size)
        fa, fb, fm = evaluate(a), evaluate(b), evaluate((a + b) / 2)
        if np.isfinite([fa, fb, fm]).all():
            worst = max(worst, (fm - (fa + fb) / 2) / (1 + abs(fa) + abs(fb)))
    return worst


CONVEX = [(n, h) for n, h in CASES if tb.losses.make(n, **h).convex]
NOT_CONVEX = [(n, h) for n, h in CASES if not tb.losses.make(n, **h).convex]
SCORE_CONVEX = [(n, h) for n, h in NOT_CONVEX if tb.losses.make(n, **h).solver_case == "convex"]


@pytest.mark.parametrize("name, hyper", CONVEX, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONVEX)])
def test_declared_convex_is_convex_in_the_logits(name, hyper):
    for seed in range(2):
        F, _ = objective(name, hyper, seed)
        assert midpoint_excess(F, 8, seed, segments=40) <= MIDPOINT_TOL


@pytest.mark.parametrize("name, hyper", SCORE_CONVEX, ids=[f"{n}-{i}" for i, (n, _) in enumerate(SCORE_CONVEX)])
def test_declared_convex_in_the_margin_scores(name, hyper):
    """solver_case "convex" without logit convexity: convex in v, ℓ_y = k_y·… with v_y = ℓ_y/|y|."""
    for seed in range(2):
        F, lengths = objective(name, hyper, seed)
        assert midpoint_excess(lambda v: F.at(v.reshape(2, 4) * lengths), 8, seed, segments=40) <= MIDPOINT_TOL


CONSERVATIVE = {"cal_dpo", "minor_dpo", "sppo", "tan_principled", "bco", "lipo", "rank_dpo"}
"""Declared not convex without a counterexample found here (12 problems × 240 segments): a safe
declaration (solve then multi-starts), not a proof of non-convexity. lipo and rank_dpo are
non-convex through rank-dependent weights on longer lists; a pair (k = 2) is a constant times DPO."""


def counterexample(name, hyper, seeds=12):
    """Largest midpoint excess over small problems (Y = 3, lengths 1, 4, 2, uniform pairs) at
    several scales; stops at the first counterexample."""
    best = -np.inf
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        ref, reward = np.log(rng.dirichlet(np.ones(3)))[None], 2 * rng.normal(size=(1, 3))
        F = Objective(name, hyper, ref, reward, np.ones(1), "uniform", np.array([1.0, 4.0, 2.0]))
        best = max([best] + [midpoint_excess(F, 3, seed, segments=60, scale=scale) for scale in (0.3, 1, 5, 20)])
        if best > VIOLATION:
            break
    return best


@pytest.mark.parametrize("name, hyper", [c for c in NOT_CONVEX if c[0] not in CONSERVATIVE],
                         ids=[f"{n}-{i}" for i, (n, _) in enumerate(NOT_CONVEX) if n not in CONSERVATIVE])
def test_declared_not_convex_has_a_counterexample(name, hyper):
    assert counterexample(name, hyper) > VIOLATION


def test_simpo_with_margin_and_unequal_lengths_is_not_convex_in_the_logits():
    loss = tb.losses.make("simpo", beta=2.0, gamma=0.5)
    assert loss.convex is False and loss.solver_case == "convex"
    assert counterexample("simpo", {"beta": 2.0, "gamma": 0.5}) > VIOLATION


MARGIN = [(n, h) for n, h in CASES if isinstance(tb.losses.make(n, **h), MarginLoss)]


def record_inputs(seed, size=7):
    rng = np.random.default_rng(seed)
    t = lambda x: torch.tensor(x[None])  # noqa: E731
    return {"chosen_logp": t(-3 * rng.random(size)), "rejected_logp": t(-3 * rng.random(size)),
            "ref_chosen_logp": t(-3 * rng.random(size)), "ref_rejected_logp": t(-3 * rng.random(size)),
            "chosen_len": t(rng.integers(1, 5, size).astype(float)),
            "rejected_len": t(rng.integers(1, 5, size).astype(float)), "score_gap": t(rng.normal(size=size))}


@pytest.mark.parametrize("name, hyper", MARGIN, ids=[f"{n}-{i}" for i, (n, _) in enumerate(MARGIN)])
def test_declared_margin_is_the_only_dependence(name, hyper):
    """Moving ℓ_w by t/k_w and ℓ_l by t/k_l keeps Δ = k_w·ℓ_w − k_l·ℓ_l + o, hence the loss; the
    loss itself equals the independent formula."""
    loss = tb.losses.make(name, **hyper)
    inputs = record_inputs(1)
    coefficients = loss.margin_coefficients(inputs)
    if coefficients is None:
        pytest.skip("no affine margin declared")
    k_w, k_l, _ = (c.expand_as(inputs["chosen_logp"]) for c in coefficients)
    call = {k: v for k, v in inputs.items() if k in ("chosen_logp", "rejected_logp", "ref_chosen_logp",
                                                    "ref_rejected_logp") or k in loss.needs}
    moved = dict(call, chosen_logp=call["chosen_logp"] - 0.7 / k_w, rejected_logp=call["rejected_logp"] - 0.7 / k_l)
    torch.testing.assert_close(loss(**moved), loss(**call), rtol=1e-12, atol=1e-12)
    r = {"lw": inputs["chosen_logp"][0].numpy(), "ll": inputs["rejected_logp"][0].numpy(),
         "nw": inputs["chosen_len"][0].numpy(), "nl": inputs["rejected_len"][0].numpy(),
         "gap": inputs["score_gap"][0].numpy()}
    r["gw"], r["gl"] = r["lw"] - inputs["ref_chosen_logp"][0].numpy(), r["ll"] - inputs["ref_rejected_logp"][0].numpy()
    np.testing.assert_allclose(loss(**call)[0].numpy(), FORMULAS[name](hyper, r), rtol=1e-12, atol=1e-12)


FALLS = [(n, h) for n, h in CASES if tb.losses.make(n, **h).falls_forever]


@pytest.mark.parametrize("name, hyper", FALLS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(FALLS)])
def test_falls_forever_means_strictly_decreasing_in_the_margin(name, hyper):
    t = np.linspace(-30, 30, 601)
    r = {"gw": t, "gl": 0 * t, "lw": t - 1, "ll": 0 * t - 1, "nw": np.ones_like(t), "nl": np.ones_like(t),
         "gap": np.full_like(t, 0.5)}
    values = FORMULAS[name](hyper, r)
    assert (np.diff(values) < 0).all()


def test_rdpo_effective_table_is_its_population_loss():
    """Σ D(a,b)·L_rdpo(z_ab) = Σ D_eff(a,b)·sp(−z_ab) for any margins z_ab = −z_ba (random D, z)."""
    rng = np.random.default_rng(0)
    eps = 0.2
    D = rng.random((1, 5, 5)) * (1 - np.eye(5))
    z = rng.normal(size=(5, 5))
    z = z - z.T
    rdpo = ((1 - eps) * sp(-z) - eps * sp(z)) / (1 - 2 * eps)
    effective = tb.losses.make("rdpo", eps=eps).effective_table(torch.tensor(D)).numpy()
    assert (D[0] * rdpo).sum() == pytest.approx((effective[0] * sp(-z)).sum(), rel=1e-13)
    np.testing.assert_allclose(effective[0], ((1 - eps) * D[0] - eps * D[0].T) / (1 - 2 * eps), rtol=1e-15)


KINKED = [(n, h) for n, h in CASES if tb.losses.make(n, **h).kink is not None]


@pytest.mark.parametrize("name, hyper", KINKED, ids=[f"{n}-{i}" for i, (n, _) in enumerate(KINKED)])
def test_relaxed_form_matches_at_the_max_and_grows_with_the_slack(name, hyper):
    loss = tb.losses.make(name, **hyper)
    inputs = record_inputs(2)
    call = {k: v for k, v in inputs.items() if k in ("chosen_logp", "rejected_logp", "ref_chosen_logp",
                                                    "ref_rejected_logp") or k in loss.needs}
    role, sign = loss.kink
    g = call[f"{role}_logp"] - call[f"ref_{role}_logp"]
    tight = torch.relu(sign * g)
    torch.testing.assert_close(loss.relaxed(**call, slack=tight), loss(**call), rtol=1e-13, atol=1e-13)
    assert bool((loss.relaxed(**call, slack=tight + 0.5) >= loss(**call)).all())
