"""beta_dpo, madpo, da_dpo, sppo, ddo, disco and their helpers (score gaps, win probabilities,
Hedge, the regularised equilibrium, DDO records), plus the DID record law.

Every expected number is computed here independently: NumPy formulas written from the sources
(the papers cited in each test), hand arithmetic, SciPy minimisers with NumPy loss
code, exact sampling laws enumerated in NumPy, or independently derived E1 values (E1: docs/conventions.md).
"""
import itertools
import math

import numpy as np
import pytest
import scipy.optimize as so
import torch
from conftest import E1_PISTAR, E1_REF, E1_REWARD, assert_exact_minimiser, e1_problem, newton_minimiser

import toybench as tb
from toybench.losses import (
    ddo_formula,
    ddo_matching_alpha,
    ddo_pairs,
    hedge_step,
    win_probability,
    with_score_gap,
    with_win_probs,
)
from toybench.objective import record_inputs
from toybench.solve import NoFiniteMinimum, solve

RNG = np.random.default_rng(7)
B, N = 3, 6
POLICY = -RNG.uniform(0.2, 5.0, size=(2, B, N))          # chosen, rejected log-probs
REF = -RNG.uniform(0.2, 5.0, size=(2, B, N))
GAP = RNG.uniform(-4.0, 4.0, size=(B, N))                 # score gaps, some below −τ = −2
WIN = RNG.uniform(0.0, 1.0, size=(3, B, N))               # P̂_w, P̂_l, P(y_w ≻ y_l)
LENGTHS = RNG.integers(1, 6, size=(2, B, N)).astype(float)
RTOL = 1e-12  # float64 evaluation of the same formula in a different order


def softplus(t):
    return np.logaddexp(0.0, t)


def sigmoid(t):
    return 0.5 * (1 + np.tanh(t / 2))


def tv(p, q):
    return 0.5 * np.abs(np.asarray(p) - np.asarray(q)).sum()


def t64(array):
    return torch.tensor(array, dtype=torch.float64)


def tsp(t):
    """log(1 + e^t) in plain torch ops (the references' softplus)."""
    return torch.logaddexp(torch.zeros_like(t), t)


def log_ratios():
    return POLICY[0] - REF[0], POLICY[1] - REF[1]


def call(loss, **extra):
    return loss(t64(POLICY[0]), t64(POLICY[1]), t64(REF[0]), t64(REF[1]), **extra).numpy()


def madpo_numpy(gap, beta=0.1, c_max=2.0, c_min=0.5, lam=1.0, tau=2.0):
    """MADPOLoss (sirano1004 utils/loss_functions.py) in chosen/rejected terms."""
    c = c_min + (c_max - c_min) / (1 + (c_max - 1) / (1 - c_min) * np.exp(lam * (np.abs(gap) - tau)))
    weight = np.where(gap > -tau, sigmoid(c * gap) / sigmoid(gap), 1.0)
    gw, gl = log_ratios()
    return weight * softplus(-beta * (gw - gl))


# ------------------------------------------------------------------------------ per-record values
def test_madpo_against_numpy():
    assert (GAP < -2).any() and (GAP > 2).any()
    loss = tb.losses.make("madpo", beta=0.3, c_max=3.0, c_min=0.2, lam=0.7, tau=2.0)
    np.testing.assert_allclose(call(loss, score_gap=t64(GAP)),
                               madpo_numpy(GAP, 0.3, 3.0, 0.2, 0.7, 2.0), rtol=RTOL)


def test_da_dpo_against_numpy():
    gw, gl = log_ratios()
    loss = tb.losses.make("da_dpo", beta=0.2, alpha_db=1.7)
    np.testing.assert_allclose(call(loss, score_gap=t64(GAP)),
                               softplus(-0.2 * 1.7 * (1 + np.abs(GAP)) * (gw - gl)), rtol=RTOL)


@pytest.mark.parametrize("mode", ["soft", "single", "hard"])
def test_sppo_against_numpy(mode):
    gw, gl = log_ratios()
    eta = 1 / 0.4
    fields = {"soft": dict(chosen_win_prob=t64(WIN[0]), rejected_win_prob=t64(WIN[1])),
              "single": dict(pair_win_prob=t64(WIN[2])), "hard": {}}[mode]
    expected = {"soft": 0.5 * ((gw - eta * (WIN[0] - 0.5)) ** 2 + (gl - eta * (WIN[1] - 0.5)) ** 2),
                "single": 0.5 * ((gw - eta * (WIN[2] - 0.5)) ** 2 + (gl + eta * (WIN[2] - 0.5)) ** 2),
                "hard": (gw - eta / 2) ** 2 + (gl + eta / 2) ** 2}[mode]
    np.testing.assert_allclose(call(tb.losses.make("sppo", beta=0.4, mode=mode), **fields), expected, rtol=RTOL)


def test_ddo_against_numpy():
    gw, gl = log_ratios()
    loss = tb.losses.make("ddo", beta=0.3, alpha=2.5)
    np.testing.assert_allclose(call(loss), softplus(-0.3 * gw) + 2.5 * softplus(0.3 * gl), rtol=RTOL)


def test_disco_against_numpy():
    lengths = dict(chosen_len=t64(LENGTHS[0]), rejected_len=t64(LENGTHS[1]))
    np.testing.assert_allclose(call(tb.losses.make("disco"), **lengths),
                               -(POLICY[0] / LENGTHS[0] - POLICY[1] / LENGTHS[1]), rtol=RTOL)
    np.testing.assert_allclose(call(tb.losses.make("disco", length_normalized=False)), POLICY[1] - POLICY[0], rtol=RTOL)


def test_beta_dpo_per_record_against_numpy():
    beta_batch = np.array([0.05, 0.2, 0.7])
    scale = RNG.uniform(0.0, 2.0, size=(B, N))
    gw, gl = log_ratios()
    loss = tb.losses.make("beta_dpo")
    state = {"beta_batch": t64(beta_batch), "record_scale": t64(scale)}
    np.testing.assert_allclose(call(loss, state=state), scale * softplus(-beta_batch[:, None] * (gw - gl)), rtol=RTOL)
    unfiltered = call(loss, state={"beta_batch": t64(beta_batch)})
    np.testing.assert_allclose(unfiltered, softplus(-beta_batch[:, None] * (gw - gl)), rtol=RTOL)


def test_hand_computed_values():
    one = lambda *values: torch.tensor([[float(v)] for v in values], dtype=torch.float64).T  # noqa: E731
    zero = one(0.0)
    # MADPO: c(0) = 0.5 + 1.5/(1 + 2e^{−2}) = 1.680498 (reference 1.6805), c(τ) = 1; w(0) = 1, and w = 1 below −τ.
    madpo = tb.losses.make("madpo")
    assert float(madpo.coefficient(one(0.0))) == pytest.approx(1.6805, abs=5e-5)
    assert float(madpo.coefficient(one(2.0))) == pytest.approx(1.0, abs=1e-15)
    assert madpo.weight(one(0.0, -2.5)).tolist() == [[1.0, 1.0]]
    # ĥ = 0.5: c = 0.5 + 1.5/(1 + 2e^{−1.5}) = 1.537158, w = σ(0.768579)/σ(0.5) = 0.683213/0.622459 = 1.097603.
    assert float(madpo.weight(one(0.5))) == pytest.approx(1.097603, abs=2e-6)
    # Δ = 2, β = 0.1, ĥ = 0: L = log(1 + e^{−0.2}).
    value = float(madpo(one(2.0), zero, zero, zero, score_gap=zero))
    assert value == pytest.approx(math.log1p(math.exp(-0.2)), abs=1e-15)
    # DA-DPO: gap 0.5, α_db 1, β 0.1, Δ = 2: z = 0.1·1.5·2 = 0.3.
    da = tb.losses.make("da_dpo")
    value = float(da(one(2.0), zero, zero, zero, score_gap=one(-0.5)))
    assert value == pytest.approx(math.log1p(math.exp(-0.3)), abs=1e-15)
    # SPPO (η = 2): soft with P̂ = (0.75, 0.25) and g = 0: ½(0.5² + 0.5²) = 0.25; hard at g = (1, −1): 0.
    soft = tb.losses.make("sppo", beta=0.5)
    assert float(soft(zero, zero, zero, zero, chosen_win_prob=one(0.75), rejected_win_prob=one(0.25))) == 0.25
    assert float(tb.losses.make("sppo", beta=0.5, mode="hard")(one(1.0), one(-1.0), zero, zero)) == 0.0
    # DDO: g = 0, β = 1, α = 2: log 2 + 2·log 2.
    ddo = tb.losses.make("ddo", alpha=2.0)
    assert float(ddo(zero, zero, zero, zero)) == pytest.approx(3 * math.log(2), abs=1e-15)
    # DisCO: ℓ_w = −1 over 2 tokens, ℓ_l = −3 over 3 tokens: −(−0.5 − (−1)) = −0.5.
    disco = tb.losses.make("disco")
    assert float(disco(one(-1.0), one(-3.0), zero, zero, chosen_len=one(2.0), rejected_len=one(3.0))) == -0.5


def test_beta_dpo_first_step_by_hand():
    """Δ = (1, 3), equal weights, zero EMAs, ρ = 0: mean 2, torch.std √2; M₀ = 0.2, σ_M = 0.1√2;
    every record kept, mean 2: β_batch = 0.1·(1 + 0.6·(2 − 0.2)) = 0.208."""
    loss = tb.losses.make("beta_dpo", rho=0.0)
    chosen = torch.tensor([[1.0, 3.0]], dtype=torch.float64)
    zero = torch.zeros_like(chosen)
    inputs = dict(chosen_logp=chosen, rejected_logp=zero, ref_chosen_logp=zero, ref_rejected_logp=zero)
    state = loss.update_state(loss.init_state(1, chosen), inputs, torch.full((1, 2), 0.5, dtype=torch.float64))
    assert float(state["mean"]) == pytest.approx(0.2, abs=1e-15)
    assert float(state["std"]) == pytest.approx(0.1 * math.sqrt(2), abs=1e-15)
    assert float(state["beta_batch"]) == pytest.approx(0.208, abs=1e-15)
    values = loss(**inputs, state=state)
    expected = [math.log1p(math.exp(-0.208)), math.log1p(math.exp(-0.624))]
    np.testing.assert_allclose(values[0].numpy(), expected, rtol=RTOL)


# ------------------------------------------------------------------------------ TRL
def test_trl_sppo_hard():
    """TRL DPOTrainer ``sppo_hard``: v1.9.0 (S_w − 0.5/β)² + (S_l + 0.5/β)² with S = chosen/rejected
    log-ratios under f_divergence_type="reverse_kl"; v0.28.0 the same on raw log-ratios."""
    beta = 0.25
    chosen_logps, rejected_logps = np.array([-3.2, -1.1]), np.array([-2.0, -4.5])
    ref_chosen, ref_rejected = np.array([-2.9, -1.6]), np.array([-2.2, -3.0])
    chosen_logratios, rejected_logratios = chosen_logps - ref_chosen, rejected_logps - ref_rejected
    trl = (chosen_logratios - 0.5 / beta) ** 2 + (rejected_logratios + 0.5 / beta) ** 2
    ours = tb.losses.make("sppo", beta=beta, mode="hard")(*(t64(x[None]) for x in (chosen_logps, rejected_logps,
                                                                                   ref_chosen, ref_rejected)))
    np.testing.assert_allclose(ours[0].numpy(), trl, rtol=RTOL)


# ------------------------------------------------------------------------------ gradients
GRADIENT_CASES = [
    ("madpo", dict(beta=0.3), dict(score_gap=GAP)),
    ("da_dpo", dict(beta=0.3, alpha_db=0.8), dict(score_gap=GAP)),
    ("sppo", dict(beta=0.4), dict(chosen_win_prob=WIN[0], rejected_win_prob=WIN[1])),
    ("sppo", dict(beta=0.4, mode="single"), dict(pair_win_prob=WIN[2])),
    ("sppo", dict(beta=0.4, mode="hard"), {}),
    ("ddo", dict(beta=0.7, alpha=1.5), {}),
    ("disco", {}, dict(chosen_len=LENGTHS[0], rejected_len=LENGTHS[1])),
    ("beta_dpo", {}, dict(state={"beta_batch": np.array([0.1, 0.4, 0.9]), "record_scale": RNG.uniform(0, 2, (B, N))})),
]


@pytest.mark.parametrize("name, kwargs, extra", GRADIENT_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(GRADIENT_CASES)])
def test_input_grads_match_autograd(name, kwargs, extra):
    loss = tb.losses.make(name, **kwargs)
    extra = {k: ({s: t64(x) for s, x in v.items()} if isinstance(v, dict) else t64(v)) for k, v in extra.items()}
    chosen, rejected = t64(POLICY[0]).requires_grad_(True), t64(POLICY[1]).requires_grad_(True)
    value = loss(chosen, rejected, t64(REF[0]), t64(REF[1]), **extra).sum()
    auto = torch.autograd.grad(value, (chosen, rejected))
    closed = loss.input_grads(t64(POLICY[0]), t64(POLICY[1]), t64(REF[0]), t64(REF[1]), **extra)
    for a, c in zip(auto, closed, strict=False):
        np.testing.assert_allclose(c.expand_as(a).numpy(), a.numpy(), rtol=1e-12, atol=1e-15)


# ------------------------------------------------------------------------------ β-DPO state protocol
def beta_dpo_inputs(delta: np.ndarray) -> dict:
    chosen = t64(delta)
    zero = torch.zeros_like(chosen)
    return dict(chosen_logp=chosen, rejected_logp=zero, ref_chosen_logp=zero, ref_rejected_logp=zero)


def test_beta_dpo_update_against_numpy():
    delta = RNG.normal(0.5, 1.0, size=(B, 10))
    weight = RNG.uniform(0.2, 1.0, size=(1, 10))
    loss = tb.losses.make("beta_dpo", beta=0.3, a=0.8, rho=0.3, ema_decay=0.8, seed=5)
    previous = {"mean": t64([0.1, -0.2, 0.3]), "std": t64([0.5, 1.0, 2.0]), "beta_batch": t64([0.3] * 3),
                "generator": torch.Generator().manual_seed(5)}
    state = loss.update_state(previous, beta_dpo_inputs(delta), t64(weight))
    w = weight / weight.sum()
    mean = (w * delta).sum(-1)
    std = np.sqrt((w * (delta - mean[:, None]) ** 2).sum(-1) / (1 - (w ** 2).sum()))
    ema_mean = 0.8 * np.array([0.1, -0.2, 0.3]) + 0.2 * mean
    ema_std = 0.8 * np.array([0.5, 1.0, 2.0]) + 0.2 * std
    np.testing.assert_allclose(state["mean"].numpy(), ema_mean, rtol=RTOL)
    np.testing.assert_allclose(state["std"].numpy(), ema_std, rtol=RTOL)
    keep = state["record_scale"].numpy() > 0
    assert (keep.sum(-1) == 7).all()                                      # ⌊10·0.7⌋
    kept_w = (w * keep).sum(-1)
    kept_mean = (w * keep * delta).sum(-1) / kept_w
    np.testing.assert_allclose(state["beta_batch"].numpy(), np.maximum(1e-3, 0.3 * (1 + 0.8 * (kept_mean - ema_mean))),
                               rtol=RTOL)
    np.testing.assert_allclose(state["record_scale"].numpy(), keep / kept_w[:, None], rtol=RTOL)
    again = loss.update_state(dict(previous, generator=torch.Generator().manual_seed(5)), beta_dpo_inputs(delta),
                              t64(weight))
    assert torch.equal(again["record_scale"], state["record_scale"])      # same seed, same draw


def inclusion_probabilities(p: np.ndarray, k: int) -> np.ndarray:
    """P(i kept) when k items are drawn without replacement ∝ p, by enumerating ordered draws."""
    p = p / p.sum()
    total = np.zeros_like(p)
    for order in itertools.permutations(range(len(p)), k):
        prob, left = 1.0, 1.0
        for i in order:
            prob *= p[i] / left
            left -= p[i]
        total[list(order)] += prob
    return total


@pytest.mark.parametrize("rho, k", [(0.75, 1), (0.5, 2)])
def test_beta_dpo_filter_law(rho, k):
    """Keep frequencies over 40000 runs (one draw each) match sampling without replacement ∝ w·filter."""
    runs = 40000
    delta = np.array([-1.0, 0.0, 0.5, 2.0])
    weight = np.array([0.1, 0.2, 0.3, 0.4])
    loss = tb.losses.make("beta_dpo", rho=rho, ema_decay=0.0)
    state = loss.update_state(loss.init_state(runs, t64([0.0])), beta_dpo_inputs(np.tile(delta, (runs, 1))),
                              t64(weight[None]))
    freq = (state["record_scale"].numpy() > 0).mean(0)
    mean = (weight * delta).sum()
    std = np.sqrt((weight * (delta - mean) ** 2).sum() / (1 - (weight ** 2).sum()))
    propensity = weight * np.exp(-0.5 * ((delta - mean) / std) ** 2)
    expected = inclusion_probabilities(propensity, k)
    se = np.sqrt(expected * (1 - expected) / runs)
    assert (np.abs(freq - expected) <= 6 * se + 1e-12).all(), (freq, expected)   # 6 standard errors


def test_beta_dpo_population_state_and_target():
    prob = e1_problem("uniform")
    loss = tb.losses.make("beta_dpo", beta=1.0)
    pairs = tb.population(prob)
    logp = prob.ref_logp + 0.3 * t64([[0.0, 1.0, -1.0, 2.0]])
    state = loss.population_state(record_inputs(loss, logp[None], pairs), pairs.weight)
    assert float(state["beta_batch"]) == 1.0 and "record_scale" not in state
    np.testing.assert_allclose(loss.target(prob)[0].exp().numpy(), E1_PISTAR, atol=5e-7)   # derived here
    assert loss.target(prob, noise=0.1) is None


def test_beta_dpo_needs_state():
    loss = tb.losses.make("beta_dpo")
    with pytest.raises(ValueError, match="state"):
        call(loss)


# ------------------------------------------------------------------------------ score gaps, win probabilities
def test_with_score_gap():
    prob = tb.Problem.random(tb.FlatSpace(5), prompts=2, seed=3)
    pairs = tb.sample_pairs(prob, n=50, seed=[1, 2])
    reward = prob.reward.numpy()
    x, c, r = (t.numpy() for t in (pairs.prompt, pairs.chosen, pairs.rejected))
    np.testing.assert_allclose(with_score_gap(pairs).fields["score_gap"].numpy(), reward[x, c] - reward[x, r], rtol=0)
    score = RNG.normal(size=(2, 5))
    given = with_score_gap(pairs, score=score).fields["score_gap"].numpy()
    np.testing.assert_allclose(given, score[x, c] - score[x, r], rtol=0)
    noisy = with_score_gap(tb.population(prob), noise=0.5, seed=4)
    same = with_score_gap(tb.population(prob), noise=0.5, seed=4)
    other = with_score_gap(tb.population(prob), noise=0.5, seed=5)
    gap = noisy.fields["score_gap"][0].numpy()
    assert torch.equal(noisy.fields["score_gap"], same.fields["score_gap"])
    assert not torch.equal(noisy.fields["score_gap"], other.fields["score_gap"])
    # One noisy score table: gaps of a population are antisymmetric and add along paths.
    table = {(int(p), int(a), int(b)): g for p, a, b, g in zip(*(t[0].numpy() for t in
                                                                 (noisy.prompt, noisy.chosen, noisy.rejected)), gap, strict=False)}
    for (p, a, b), g in table.items():
        assert g == pytest.approx(-table[(p, b, a)], abs=1e-14)
        third = next(y for y in range(5) if y not in (a, b))
        assert g == pytest.approx(table[(p, a, third)] + table[(p, third, b)], abs=1e-13)
    x, c, r = (t[0].numpy() for t in (noisy.prompt, noisy.chosen, noisy.rejected))
    assert np.abs(gap - (reward[x, c] - reward[x, r])).max() > 0.05


def test_win_probabilities_against_numpy():
    prob = tb.Problem.random(tb.FlatSpace(4), prompts=2, seed=8, preference="general")
    policy = RNG.dirichlet(np.ones(4), size=2)
    pref = prob.preference_matrix().numpy()
    expected = np.einsum("pab,pb->pa", pref, policy)
    np.testing.assert_allclose(win_probability(prob, t64(np.log(policy))).numpy(), expected, rtol=RTOL)
    pairs = with_win_probs(tb.population(prob), t64(np.log(policy)))
    x, c, r = (t[0].numpy() for t in (pairs.prompt, pairs.chosen, pairs.rejected))
    np.testing.assert_allclose(pairs.fields["chosen_win_prob"][0].numpy(), expected[x, c], rtol=RTOL)
    np.testing.assert_allclose(pairs.fields["rejected_win_prob"][0].numpy(), expected[x, r], rtol=RTOL)
    np.testing.assert_allclose(pairs.fields["pair_win_prob"][0].numpy(), pref[x, c, r], rtol=0)
    per_run = with_win_probs(tb.population(prob), t64(np.log(np.stack([policy, policy[::-1]]))))
    assert per_run.fields["chosen_win_prob"].shape == (2, pairs.size)


def test_hedge_step_against_numpy():
    prob = e1_problem()
    pref = prob.preference_matrix().numpy()[0]
    win = pref @ E1_REF
    expected = E1_REF * np.exp(2.0 * win) / (E1_REF * np.exp(2.0 * win)).sum()
    np.testing.assert_allclose(hedge_step(prob, prob.ref_logp, 2.0)[0].exp().numpy(), expected, rtol=1e-13)
    # derived here: log Z_t = log Σ π_ref e^{2P(y ≻ π_ref)} = 1.0625 on E1.
    assert math.log((E1_REF * np.exp(2.0 * win)).sum()) == pytest.approx(1.0625, abs=5e-5)


def test_nash_against_numpy():
    prob = tb.Problem.random(tb.FlatSpace(5), prompts=2, seed=9, preference="general", reward_scale=2.0)
    pref, ref = prob.preference_matrix().numpy(), prob.ref_logp.exp().numpy()
    policy = ref.copy()
    for _ in range(2000):                                   # plain NumPy damped iteration
        logits = np.log(ref) + np.einsum("pab,pb->pa", pref, policy) / 0.7
        response = np.exp(logits - logits.max(-1, keepdims=True))
        policy = 0.5 * policy + 0.5 * response / response.sum(-1, keepdims=True)
    np.testing.assert_allclose(tb.optima.nash(prob, 0.7).exp().numpy(), policy, atol=1e-14)


def test_sppo_ls_step_against_numpy():
    """Exact SPPO soft step on E1 (W_s, π_t = π_ref, η = 2): a NumPy least squares over logits with
    weights n(y) = Σ_{y′≠y} w_{yy′} (each record regresses both of its responses)."""
    prob = e1_problem("ref")
    pref = prob.preference_matrix().numpy()[0]
    target = 2.0 * (pref @ E1_REF - 0.5)
    mu = np.outer(E1_REF, E1_REF)
    np.fill_diagonal(mu, 0)
    count = (mu + mu.T).sum(1) / mu.sum()

    def objective(s):
        g = torch.log_softmax(s, -1) - torch.tensor(np.log(E1_REF))
        return 0.5 * (torch.tensor(count) * (g - torch.tensor(target)) ** 2).sum()

    best, grad_norm, curvature = newton_minimiser(objective, np.log(E1_REF))   # exact to |∇|/λ ≤ 1e-10
    assert_exact_minimiser(grad_norm, curvature)
    expected = torch.softmax(best, -1).numpy()
    found = solve(tb.losses.make("sppo", beta=0.5), with_win_probs(tb.population(prob))).logp[0].exp().numpy()
    np.testing.assert_allclose(found, expected, atol=1e-8)     # solve's accuracy; the reference is exact
    hedge = E1_REF * np.exp(target) / (E1_REF * np.exp(target)).sum()
    assert tv(found, hedge) == pytest.approx(0.00645, abs=5e-5)


# ------------------------------------------------------------------------------ solve-based targets
def chain_problem(reward):
    table = torch.zeros(1, 4, 4, dtype=torch.float64)
    for a in range(3):
        table[0, a, a + 1] = 1.0
    return tb.Problem(tb.FlatSpace(4), torch.log(t64(E1_REF[None])), reward=t64(np.asarray(reward)[None]),
                      pair_dist=table)


def chain_solution(edge_margins):
    """log π with log π/π_ref increasing by ``edge_margins`` along the chain 0-1-2-3."""
    log_ratio = np.concatenate([[0.0], np.cumsum(-np.asarray(edge_margins))])
    weights = E1_REF * np.exp(log_ratio - log_ratio.max())
    return weights / weights.sum()


def test_madpo_chain_target():
    """On a tree every per-pair optimum is attainable: βΔ*(a, a+1) = z*(r_a − r_{a+1}) (docs/losses.md)."""
    beta, tau = 0.5, 2.0
    prob = chain_problem(E1_REWARD)

    def z_star(h):   # h = r_a − r_b; MADPO per-pair optimum from the weighted logistic FOC
        w_fwd, w_bwd = (madpo_weight(h, tau), madpo_weight(-h, tau))
        return math.log(sigmoid(h) * w_fwd / (sigmoid(-h) * w_bwd))

    margins = [z_star(E1_REWARD[a] - E1_REWARD[a + 1]) / beta for a in range(3)]
    found = solve(tb.losses.make("madpo", beta=beta, tau=tau), with_score_gap(tb.population(prob))).logp
    np.testing.assert_allclose(found[0].exp().numpy(), chain_solution(margins), atol=1e-10)


def madpo_weight(h, tau, c_max=2.0, c_min=0.5, lam=1.0):
    c = c_min + (c_max - c_min) / (1 + (c_max - 1) / (1 - c_min) * math.exp(lam * (abs(h) - tau)))
    return sigmoid(c * h) / sigmoid(h) if h > -tau else 1.0


def test_madpo_effective_margin_formula():
    """z* = c(|ĥ|)ĥ for |ĥ| < τ, log σ(cĥ) − log σ(−ĥ) for ĥ ≥ τ: derived here's 0.7686, 1.7667,
    2.9434."""
    for h, expected in zip((0.5, 1.5, 3.0), (0.7686, 1.7667, 2.9434), strict=False):
        z = math.log(sigmoid(h) * madpo_weight(h, 2.0) / (sigmoid(-h) * madpo_weight(-h, 2.0)))
        assert z == pytest.approx(expected, abs=5e-5)


def test_da_dpo_chain_target():
    """Per-pair temperature on a tree: Δ*(a, a+1) = (r_a − r_{a+1})/(β·α_db·(1 + |r_a − r_{a+1}|))."""
    beta, alpha = 0.8, 1.3
    prob = chain_problem(E1_REWARD)
    margins = [(E1_REWARD[a] - E1_REWARD[a + 1]) / (beta * alpha * (1 + abs(E1_REWARD[a] - E1_REWARD[a + 1])))
               for a in range(3)]
    found = solve(tb.losses.make("da_dpo", beta=beta, alpha_db=alpha), with_score_gap(tb.population(prob))).logp
    np.testing.assert_allclose(found[0].exp().numpy(), chain_solution(margins), atol=1e-10)


def test_beta_dpo_solve_matches_dpo():
    prob = tb.Problem.random(tb.FlatSpace(5), prompts=2, seed=1)
    found = solve(tb.losses.make("beta_dpo", beta=0.7), tb.population(prob))
    assert found.case == "fixed_point"
    ref, reward = prob.ref_logp.numpy(), prob.reward.numpy()
    pistar = np.exp(ref + reward / 0.7) / np.exp(ref + reward / 0.7).sum(-1, keepdims=True)
    np.testing.assert_allclose(found.logp.exp().numpy(), pistar, atol=1e-10)


def test_ddo_pairs_law():
    prob = tb.Problem.random(tb.FlatSpace(3), prompts=2, seed=4, prompt_weights=[0.3, 0.7])
    data = RNG.dirichlet(np.ones(3), size=2)
    pairs = ddo_pairs(prob, t64(np.log(data)))
    expected = np.array([0.3, 0.7])[:, None, None] * data[:, :, None] * prob.ref_logp.exp().numpy()[:, None, :]
    np.testing.assert_allclose(pairs.record_table()[0].numpy(), expected, rtol=1e-14)
    sampled = ddo_pairs(prob, t64(np.log(data)), n=60000, seed=2)
    freq = sampled.record_table()[0].numpy()
    assert np.abs(freq - expected).max() <= 6 * np.sqrt(expected * (1 - expected) / 60000).max()   # 6 SE
    assert torch.equal(sampled.chosen, ddo_pairs(prob, t64(np.log(data)), n=60000, seed=2).chosen)


@pytest.mark.parametrize("alpha, beta", [(1.0, 1.0), (2.0, 0.7), (0.5, 2.0)])
def test_ddo_minimiser_against_scipy(alpha, beta):
    """DDO's exact tabular minimiser vs SciPy on the NumPy population objective
    Σ p_data(y)·sp(−βd(y)) + α·Σ p_ref(y)·sp(βd(y)); the closed form where α matches."""
    prob = e1_problem()
    data = np.exp(E1_REWARD) / np.exp(E1_REWARD).sum()

    def objective(s):
        d = torch.log_softmax(s, -1) - torch.tensor(np.log(E1_REF))
        return (t64(data) * tsp(-beta * d) + alpha * t64(E1_REF) * tsp(beta * d)).sum()

    starts = [np.log(E1_REF), np.zeros(4), np.log(data)]
    best = min((so.minimize(lambda s: float(objective(t64(s))), x0, method="BFGS") for x0 in starts),
               key=lambda r: r.fun).x                     # the best basin, then Newton to float64 rounding
    best, grad_norm, curvature = newton_minimiser(objective, best)
    assert_exact_minimiser(grad_norm, curvature)
    expected = torch.softmax(best, -1).numpy()
    found = solve(tb.losses.make("ddo", alpha=alpha, beta=beta), ddo_pairs(prob, t64(np.log(data)[None]))).logp
    np.testing.assert_allclose(found[0].exp().numpy(), expected, atol=1e-7)   # solve's accuracy; the reference is exact
    pointwise = E1_REF ** (1 - 1 / beta) * data ** (1 / beta)
    matching = pointwise.sum() ** beta
    found_alpha = float(ddo_matching_alpha(prob.ref_logp, t64(np.log(data)[None]), beta)[0])
    assert found_alpha == pytest.approx(matching, rel=1e-13)
    np.testing.assert_allclose(ddo_formula(prob.ref_logp, t64(np.log(data)[None]), beta)[0].exp().numpy(),
                               pointwise / pointwise.sum(), rtol=1e-13)


def test_disco_has_no_finite_minimiser():
    prob = tb.Problem(tb.FlatSpace(4, lengths=[1, 2, 3, 4]), torch.log(t64(E1_REF[None])), reward=t64(E1_REWARD[None]))
    with pytest.raises(NoFiniteMinimum):
        solve(tb.losses.make("disco"), tb.population(prob), restarts=2)


def test_targets_none_where_no_closed_form():
    prob = e1_problem()
    for name in ("madpo", "da_dpo", "sppo", "ddo", "disco"):
        assert tb.losses.make(name).target(prob) is None


# ------------------------------------------------------------------------------ DID record law
def did_law(noise=0.0):
    pi_l = E1_REF * np.exp(-E1_REWARD)
    pi_l /= pi_l.sum()
    mu = np.outer(E1_REF, pi_l)
    np.fill_diagonal(mu, 0)
    mu /= mu.sum()
    return (1 - noise) * mu + noise * mu.T


@pytest.mark.parametrize("noise", [0.0, 0.2])
def test_did_population_law(noise):
    pairs = tb.population(e1_problem("did"), noise=noise)
    np.testing.assert_allclose(pairs.record_table()[0, 0].numpy(), did_law(noise), rtol=1e-13, atol=1e-17)


def test_did_sample_pairs_law():
    n = 200000
    pairs = tb.sample_pairs(e1_problem("did"), n=n, seed=3)
    freq = pairs.record_table()[0, 0].numpy()
    law = did_law()
    assert (np.abs(freq - law) <= 6 * np.sqrt(law * (1 - law) / n) + 1e-12).all()   # 6 standard errors


def test_did_dpo_formula_for_any_rejected_sampler():
    """DPO on records ∝ π_ref(a)·π_l(b): π ∝ π_ref·(π_ref/π_l)^{1/β} (docs/losses.md)."""
    pi_l = np.array([0.1, 0.5, 0.15, 0.25])
    prob = e1_problem()
    triples = [(0, a, b) for a in range(4) for b in range(4) if a != b]
    pairs = tb.Pairs.from_records(prob, triples, [E1_REF[a] * pi_l[b] for _, a, b in triples])
    for beta in (0.5, 2.0):
        expected = E1_REF * (E1_REF / pi_l) ** (1 / beta)
        found = solve(tb.losses.make("dpo", beta=beta), pairs).logp[0].exp().numpy()
        np.testing.assert_allclose(found, expected / expected.sum(), atol=1e-10)


# ------------------------------------------------------------------------------ per-run hyperparameters
BROADCAST = [
    ("madpo", "c_max", [1.5, 2.0, 4.0], dict(score_gap=GAP)),
    ("madpo", "tau", [0.0, 2.0, 6.9], dict(score_gap=GAP)),
    ("da_dpo", "alpha_db", [0.5, 1.0, 2.0], dict(score_gap=GAP)),
    ("sppo", "beta", [0.1, 0.5, 2.0], dict(chosen_win_prob=WIN[0], rejected_win_prob=WIN[1])),
    ("ddo", "alpha", [0.5, 1.0, 3.0], {}),
    ("ddo", "beta", [0.3, 1.0, 2.0], {}),
]


@pytest.mark.parametrize("name, field, values, extra", BROADCAST, ids=[f"{c[0]}-{c[1]}" for c in BROADCAST])
def test_per_run_hyperparameters_broadcast(name, field, values, extra):
    extra = {k: t64(v) for k, v in extra.items()}
    batched = call(tb.losses.make(name, **{field: t64(values)}), **extra)
    for b, value in enumerate(values):
        single = call(tb.losses.make(name, **{field: value}), **extra)
        np.testing.assert_allclose(batched[b], single[b], rtol=0)


def test_beta_dpo_per_run_hyperparameters():
    delta = RNG.normal(size=(3, 8))
    weight = t64(np.full((1, 8), 1 / 8))
    betas, rates, decays = [0.1, 0.5, 1.0], [0.0, 0.6, 1.2], [0.0, 0.5, 0.9]
    batched = tb.losses.make("beta_dpo", beta=t64(betas), a=t64(rates), ema_decay=t64(decays), rho=0.0)
    state = batched.update_state(batched.init_state(3, t64([0.0])), beta_dpo_inputs(delta), weight)
    for b in range(3):
        single = tb.losses.make("beta_dpo", beta=betas[b], a=rates[b], ema_decay=decays[b], rho=0.0)
        one = single.update_state(single.init_state(1, t64([0.0])), beta_dpo_inputs(delta[b:b + 1]), weight)
        for key in ("mean", "std", "beta_batch", "record_scale"):
            np.testing.assert_allclose(state[key][b].numpy(), one[key][0].numpy(), rtol=1e-15)
    counts = tb.losses.make("beta_dpo", rho=t64([0.0, 0.5, 0.75]))
    kept = counts.update_state(counts.init_state(3, t64([0.0])), beta_dpo_inputs(delta), weight)["record_scale"] > 0
    assert kept.sum(-1).tolist() == [8, 4, 2]


# ------------------------------------------------------------------------------ validation
VALIDATION = [
    ("beta_dpo", dict(beta=0.0), "beta"), ("beta_dpo", dict(a=-0.1), "a >= 0"),
    ("beta_dpo", dict(rho=1.0), "rho"), ("beta_dpo", dict(rho=-0.1), "rho"),
    ("beta_dpo", dict(ema_decay=1.0), "ema_decay"), ("beta_dpo", dict(seed=-1), "seed"),
    ("beta_dpo", dict(seed=1.5), "seed"), ("beta_dpo", dict(seed=True), "seed"),
    ("madpo", dict(beta=-1.0), "beta"), ("madpo", dict(c_max=1.0), "c_max > 1"),
    ("madpo", dict(c_min=1.0), "c_min"), ("madpo", dict(c_min=-0.1), "c_min"),
    ("madpo", dict(lam=-1.0), "lam"), ("madpo", dict(tau=-0.5), "tau"),
    ("da_dpo", dict(beta=0.0), "beta"), ("da_dpo", dict(alpha_db=0.0), "alpha_db"),
    ("sppo", dict(beta=0.0), "beta"), ("sppo", dict(mode="soft_hard"), "mode"),
    ("ddo", dict(beta=0.0), "beta"), ("ddo", dict(alpha=-1.0), "alpha"),
    ("disco", dict(length_normalized=1), "length_normalized"),
    ("disco", dict(tau=10.0), "accepted fields"), ("madpo", dict(lmbda=1.0), "accepted fields"),
]


@pytest.mark.parametrize("name, kwargs, message", VALIDATION,
                         ids=[f"{v[0]}-{list(v[1])[0]}-{i}" for i, v in enumerate(VALIDATION)])
def test_validation(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        tb.losses.make(name, **kwargs)


def test_helper_validation():
    prob = e1_problem()
    pairs = tb.population(prob)
    general = tb.Problem(tb.FlatSpace(2), torch.log(t64([[0.5, 0.5]])), preference=t64([[[0.5, 0.9], [0.1, 0.5]]]))
    with pytest.raises(ValueError, match="score="):
        with_score_gap(tb.population(general))
    with pytest.raises(ValueError, match="score must be"):
        with_score_gap(pairs, score=torch.zeros(2, 4))
    with pytest.raises(ValueError, match="noise"):
        with_score_gap(pairs, noise=-1.0)
    with pytest.raises(ValueError, match="seed"):
        with_score_gap(pairs, noise=0.1, seed=0.5)
    with pytest.raises(ValueError, match="policy_logp"):
        with_win_probs(pairs, torch.zeros(1, 3))
    with pytest.raises(ValueError, match="normalise"):
        with_win_probs(pairs, torch.zeros(1, 4))
    with pytest.raises(ValueError, match="eta"):
        hedge_step(prob, prob.ref_logp, 0.0)
    with pytest.raises(ValueError, match="max_iter"):
        tb.optima.nash(prob, 1.0, max_iter=0)
    with pytest.raises(ValueError, match="beta"):
        tb.optima.nash(prob, -1.0)
    with pytest.raises(ValueError, match="n must be"):
        ddo_pairs(prob, prob.ref_logp, n=0)
    with pytest.raises(ValueError, match="one \\[P, Y\\] table"):
        ddo_pairs(prob, prob.ref_logp[None].expand(2, -1, -1))
    with pytest.raises(ValueError, match="data_logp"):
        ddo_pairs(prob, t64([[0.0, 0.0, float("nan"), 0.0]]))


def test_fields_required():
    loss = tb.losses.make("madpo")
    assert loss.needs == ("score_gap",) and tb.losses.make("da_dpo").needs == ("score_gap",)
    assert tb.losses.make("sppo").needs == ("chosen_win_prob", "rejected_win_prob")
    assert tb.losses.make("sppo", mode="single").needs == ("pair_win_prob",)
    assert tb.losses.make("sppo", mode="hard").needs == ()
    with pytest.raises(ValueError, match="score_gap"):
        call(loss)
    with pytest.raises(ValueError, match="score_gap"):
        solve(loss, tb.population(e1_problem()))
    with pytest.raises(ValueError, match="lengths"):
        tb.losses.make("disco").required_inputs(tb.FlatSpace(4))


def test_training_runs_with_fields_and_state():
    """tb.train accepts the Pairs fields and β-DPO's state, on the fast path and with minibatches."""
    from toybench.policies import Tabular
    from toybench.train import train
    prob = e1_problem()
    pairs = with_win_probs(with_score_gap(tb.population(prob)))
    for name, kwargs, batch in (("madpo", {}, None), ("da_dpo", {}, 8), ("sppo", dict(beta=1.0), None),
                                ("beta_dpo", dict(beta=1.0), 8), ("beta_dpo", dict(beta=1.0), None)):
        history = train(Tabular(prob, runs=2), tb.losses.make(name, **kwargs), pairs, steps=20, batch_size=batch)
        assert torch.isfinite(history.final["loss"]).all(), name


def test_registry_metadata():
    expected = {"beta_dpo": ("closed", "logit_link"), "madpo": ("numeric", "non_proper"),
                "da_dpo": ("numeric", "non_proper"), "sppo": ("numeric", "single_response"),
                "ddo": ("numeric", "single_response"), "disco": ("none", "non_proper")}
    for name, (kind, family) in expected.items():
        cls = tb.losses.REGISTRY[name]
        assert (cls.target_kind, cls.family) == (kind, family)
        assert cls.citation and cls.evidence
    assert tb.losses.REGISTRY["beta_dpo"].stateful
    assert tb.losses.fields("beta_dpo") == dict(beta=0.1, a=0.6, rho=0.2, ema_decay=0.9, seed=0)
    assert tb.losses.fields("madpo") == dict(beta=0.1, c_max=2.0, c_min=0.5, lam=1.0, tau=2.0)
    assert tb.losses.fields("da_dpo") == dict(beta=0.1, alpha_db=1.0)
    assert tb.losses.fields("sppo") == dict(beta=0.001, mode="soft")
