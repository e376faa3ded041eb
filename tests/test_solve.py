"""tb.solve against closed forms and separate NumPy/SciPy minimisers written here.

Every expected number is computed in this file from the problem's definition (record weights
D(a,b) = ρ·w_ab·p̃_ab rebuilt in NumPy), never read back from toybench's own targets.
"""
import dataclasses
import re

import numpy as np
import pytest
import torch
from conftest import E1_REF, E1_REWARD, e1_problem
from scipy.optimize import minimize
from scipy.special import expit, logsumexp

import toybench as tb
from toybench.losses.base import Loss
from toybench.solve import NoFiniteMinimum, solve

NEWTON_TOL = 1e-9
"""Log-prob agreement for Newton/LP answers: they stop at gradient ≤ 1e-10 (in practice ~1e-16),
and the smallest Hessian eigenvalue here is ~1e-2, so log-probs are exact to well below 1e-9."""


# ------------------------------------------------------------------------------ NumPy oracles
def records_np(prob, noise=0.0):
    """D[p, a, b] = ρ_p·w_ab·p̃_ab from the problem's definition (docs/conventions.md, pair law)."""
    ref = np.exp(prob.ref_logp.numpy())
    P, Y = ref.shape
    if isinstance(prob.pair_dist, str):
        mu = ref[:, :, None] * ref[:, None, :] if prob.pair_dist == "ref" else np.ones((P, Y, Y))
    else:
        mu = prob.pair_dist.numpy().copy()
    mu = mu * (1 - np.eye(Y))
    mu = mu / mu.sum((1, 2), keepdims=True)
    w = mu + mu.transpose(0, 2, 1)
    if prob.reward is not None:
        r = prob.reward.numpy()
        pref = expit(r[:, :, None] - r[:, None, :])
    else:
        pref = prob.preference.numpy()
    noisy = (1 - noise) * pref + noise * (1 - pref)
    return prob.prompt_weights.numpy()[:, None, None] * w * noisy


def pistar_np(prob, beta):
    logits = prob.ref_logp.numpy() + prob.reward.numpy() / beta
    return logits - logsumexp(logits, axis=-1, keepdims=True)


def margins_np(logp, ref):
    g = logp - ref
    return g[:, :, None] - g[:, None, :]


def dpo_value_np(logp, prob, beta):
    delta = margins_np(logp, prob.ref_logp.numpy())
    return float((records_np(prob) * np.logaddexp(0.0, -beta * delta)).sum())


def ipo_wls_np(D, ref_logp, tau):
    """argmin Σ D_ab (G_a − G_b − 1/(2τ))², G_0 = 0, as log-probs (one prompt)."""
    Y = D.shape[-1]
    rows, rhs = [], []
    for a in range(Y):
        for b in range(Y):
            if D[a, b] > 0:
                row = np.zeros(Y)
                row[a], row[b] = 1.0, -1.0
                rows.append(np.sqrt(D[a, b]) * row)
                rhs.append(np.sqrt(D[a, b]) / (2 * tau))
    pin = np.zeros(Y)
    pin[0] = 1.0
    G = np.linalg.lstsq(np.array(rows + [pin]), np.array(rhs + [0.0]), rcond=None)[0]
    logits = ref_logp + G
    return logits - logsumexp(logits)


def tv(p_logp, q_logp):
    return 0.5 * np.abs(np.exp(np.asarray(p_logp)) - np.exp(np.asarray(q_logp))).sum(-1).max()


def random_table(P, Y, seed):
    return torch.tensor(np.random.default_rng(seed).uniform(0.1, 1.0, size=(P, Y, Y)))


# ------------------------------------------------------------------------------ convex: DPO
@pytest.mark.parametrize("beta", [0.1, 1.0, 3.0])
@pytest.mark.parametrize("law", ["ref", "uniform", "table"])
@pytest.mark.parametrize("prompts", [1, 3])
def test_dpo_minimiser_is_pistar(beta, law, prompts):
    pair_dist = random_table(prompts, 5, seed=prompts) if law == "table" else law
    prob = tb.Problem.random(tb.FlatSpace(5), prompts=prompts, seed=7, pair_dist=pair_dist)
    sol = solve(tb.losses.make("dpo", beta=beta), tb.population(prob))
    expected = pistar_np(prob, beta)
    assert sol.case == "convex" and sol.identified
    assert sol.logp.shape == (prompts, 5) and sol.logp.dtype == torch.float64
    np.testing.assert_allclose(sol.logp.numpy(), expected, rtol=0, atol=NEWTON_TOL)
    assert sol.certificate <= 1e-10
    assert sol.hessian_min_eigenvalue >= -1e-10
    # float64 sums of ~60 terms of size ≤ 1: agreement to rounding
    assert sol.value == pytest.approx(dpo_value_np(sol.logp.numpy(), prob, beta), rel=1e-12)


# ------------------------------------------------------------------------------ convex: IPO
@pytest.mark.parametrize("law", ["uniform", "ref", "chain"])
def test_ipo_is_weighted_least_squares_on_e1(law):
    prob = e1_problem(law)
    sol = solve(tb.losses.make("ipo", beta=1.0), tb.population(prob))
    expected = ipo_wls_np(records_np(prob)[0], np.log(E1_REF), tau=1.0)
    np.testing.assert_allclose(sol.logp.numpy()[0], expected, rtol=0, atol=NEWTON_TOL)
    assert sol.certificate <= 1e-10


@pytest.mark.parametrize("law", ["uniform", "ref"])
@pytest.mark.parametrize("tau", [0.5, 1.0])
def test_ipo_product_mu_closed_form(law, tau):
    """π* ∝ π_ref·exp(p(y ≻ μ)/τ) (Azar et al. Prop. 3), μ the pair law's marginal."""
    prob = e1_problem(law)
    marginal = np.full(4, 0.25) if law == "uniform" else E1_REF
    pref = expit(E1_REWARD[:, None] - E1_REWARD[None, :])
    logits = np.log(E1_REF) + pref @ marginal / tau
    sol = solve(tb.losses.make("ipo", beta=tau), tb.population(prob))
    assert tv(sol.logp.numpy()[0], logits - logsumexp(logits)) <= 1e-10   # reference: ≤ 2e-9


# ------------------------------------------------------------------------------ label noise
@pytest.mark.parametrize("beta, eps, reward_gap", [(1.0, 0.1, 0.7), (0.3, 0.25, -1.2), (2.0, 0.05, 2.5)])
def test_cdpo_two_responses_closed_form(beta, eps, reward_gap):
    prob = tb.Problem(tb.FlatSpace(2), torch.log(torch.tensor([[0.6, 0.4]], dtype=torch.float64)), reward=torch.tensor([[reward_gap, 0.0]], dtype=torch.float64))
    sol = solve(tb.losses.make("cdpo", beta=beta, eps=eps), tb.population(prob))
    margin = (sol.logp[0, 0] - sol.logp[0, 1]).item() - np.log(0.6 / 0.4)
    p = expit(reward_gap)
    assert expit(beta * margin) == pytest.approx((1 - eps) * p + eps * (1 - p), abs=1e-12)


def test_cdpo_hard_labels_stop_at_finite_margin():
    """One orientation only: cDPO stops where σ(βΔ) = 1 − ε (bounded loss, no exception)."""
    prob = e1_problem()
    pairs = tb.Pairs.from_records(prob, [(0, 3, 1)])
    sol = solve(tb.losses.make("cdpo", beta=0.5, eps=0.1), pairs)
    margin = (sol.logp[0, 3] - sol.logp[0, 1]).item() - np.log(E1_REF[3] / E1_REF[1])
    assert margin == pytest.approx(np.log(0.9 / 0.1) / 0.5, abs=1e-9)
    assert not sol.identified            # responses 0 and 2 are in no record


@pytest.mark.parametrize("law", ["uniform", "ref"])
@pytest.mark.parametrize("eps", [0.1, 0.3])
def test_rdpo_on_flipped_population_recovers_clean_pistar(law, eps):
    prob = e1_problem(law)
    sol = solve(tb.losses.make("rdpo", beta=1.0, eps=eps), tb.population(prob, noise=eps))
    np.testing.assert_allclose(sol.logp.numpy(), pistar_np(prob, 1.0), rtol=0, atol=NEWTON_TOL)


def test_rdpo_with_too_few_flips_is_unbounded():
    """Two responses, clean labels, p(0 ≻ 1) = σ(−3) < ε/(1 − ε): the pair's effective weight
    [(1 − ε)p − ε(1 − p)]/(1 − 2ε) is negative and the loss falls forever as π(1) grows."""
    prob = tb.Problem(tb.FlatSpace(2), torch.log(torch.tensor([[0.5, 0.5]], dtype=torch.float64)),
                      reward=torch.tensor([[0.0, 3.0]], dtype=torch.float64))
    with pytest.raises(NoFiniteMinimum, match=r"effective weight -0.0\d+ is negative") as info:
        solve(tb.losses.make("rdpo", beta=1.0, eps=0.1), tb.population(prob))
    assert parse_record(str(info.value)) == (0, 0, 1)


def test_rdpo_bounded_despite_a_negative_effective_weight():
    """Clean E1 under eps = 0.1: p(0 ≻ 3) < ε/(1 − ε), yet along every direction the positive
    effective weights win (e.g. raising y3 alone: Σ_a (p_a3 − ε) > 0), so a minimiser exists;
    it is stationary for the effective-weight DPO objective Σ D_eff·sp(−βΔ) (checked in NumPy)."""
    prob = e1_problem()
    sol = solve(tb.losses.make("rdpo", beta=1.0, eps=0.1), tb.population(prob))
    D = records_np(prob)[0]
    effective = (0.9 * D - 0.1 * D.T) / 0.8
    g = sol.logp.numpy()[0] - np.log(E1_REF)
    slope = effective * expit(-(g[:, None] - g[None, :]))       # −∂/∂Δ of D_eff·sp(−Δ), β = 1
    gradient = -slope.sum(1) + slope.sum(0)
    assert np.abs(gradient).max() <= 1e-10


# ------------------------------------------------------------------------------ lp: hinge
@pytest.mark.parametrize("law", ["uniform", "ref", "chain"])
@pytest.mark.parametrize("beta", [1.0, 0.5])
def test_hinge_e1_gives_rank_scores(law, beta):
    """Derived independently: G = (0, 1, 2, 3)/β under W_u, W_s and W_c."""
    sol = solve(tb.losses.make("hinge", beta=beta), tb.population(e1_problem(law)))
    log_ratio = sol.logp.numpy()[0] - np.log(E1_REF)
    np.testing.assert_allclose(log_ratio - log_ratio[0], np.arange(4) / beta, rtol=0, atol=NEWTON_TOL)
    assert sol.case == "lp" and sol.identified
    assert sol.certificate <= 1e-9
    D = records_np(e1_problem(law))[0]
    hinge_np = (D * np.maximum(0.0, 1 - beta * margins_np(sol.logp.numpy(), np.log(E1_REF)[None])[0])).sum()
    assert sol.value == pytest.approx(hinge_np, rel=1e-12)


def test_hinge_non_unique_lp_is_not_identified():
    """p = ½ on the only pair: every margin in [−1/β, 1/β] is optimal."""
    prob = tb.Problem(tb.FlatSpace(2), torch.log(torch.tensor([[0.5, 0.5]], dtype=torch.float64)), preference=torch.full((1, 2, 2), 0.5))
    sol = solve(tb.losses.make("hinge", beta=1.0), tb.population(prob))
    assert not sol.identified
    assert "NOT unique" in sol.message
    assert sol.value == pytest.approx(1.0, abs=1e-12)     # ½·relu(1 − z) + ½·relu(1 + z) = 1 on [−1, 1]


# ------------------------------------------------------------------------------ no finite minimum
def parse_record(message):
    prompt, chosen, rejected = re.search(r"prompt (\d+), record \(chosen (\d+), rejected (\d+)\)", message).groups()
    return int(prompt), int(chosen), int(rejected)


def test_deterministic_chain_has_no_finite_minimum():
    table = torch.zeros(2, 3, 3, dtype=torch.float64)
    table[:, 0, 1] = table[:, 1, 2] = 1.0
    pref = torch.full((2, 3, 3), 0.5, dtype=torch.float64)
    pref[1, 0, 1], pref[1, 1, 0] = 1.0, 0.0          # prompt 1: 0 always beats 1
    prob = tb.Problem(tb.FlatSpace(3), torch.log(torch.full((2, 3), 1 / 3, dtype=torch.float64)), preference=pref, pair_dist=table)
    with pytest.raises(NoFiniteMinimum) as info:
        solve(tb.losses.make("dpo", beta=1.0), tb.population(prob))
    assert parse_record(str(info.value)) == (1, 0, 1)


def reaches(edges, start, goal):
    seen, todo = {start}, [start]
    while todo:
        node = todo.pop()
        for a, b in edges:
            if a == node and b not in seen:
                seen.add(b)
                todo.append(b)
    return goal in seen


def test_finite_sample_with_one_sided_pair_raises_and_names_it():
    prob = e1_problem()
    pairs = tb.sample_pairs(prob, n=6, seed=3)
    records = list(zip(pairs.prompt[0].tolist(), pairs.chosen[0].tolist(), pairs.rejected[0].tolist(), strict=False))
    with pytest.raises(NoFiniteMinimum) as info:
        solve(tb.losses.make("dpo", beta=1.0), pairs)
    prompt, chosen, rejected = parse_record(str(info.value))
    assert (prompt, chosen, rejected) in records
    assert not reaches([(a, b) for _, a, b in records], rejected, chosen)     # on no directed cycle


def test_simpo_with_margin_also_needs_cycles():
    """SimPO (γ > 0) is not a logit link, but its loss still falls forever along a lone record."""
    prob = e1_problem(lengths=[1.0, 2.0, 3.0, 4.0])
    with pytest.raises(NoFiniteMinimum, match="prompt 0, record"):
        solve(tb.losses.make("simpo", beta=2.0, gamma=0.5), tb.Pairs.from_records(prob, [(0, 2, 1)]))


def test_cycle_of_hard_labels_is_finite():
    """a ≻ b, b ≻ c, c ≻ a with certainty: every record is on a cycle, the margins sum to zero
    around it, so by convexity (Jensen) all margins are 0 and the minimiser is π_ref."""
    pref = torch.full((1, 3, 3), 0.5, dtype=torch.float64)
    for a, b in [(0, 1), (1, 2), (2, 0)]:
        pref[0, a, b], pref[0, b, a] = 1.0, 0.0
    ref = torch.log(torch.tensor([[0.5, 0.3, 0.2]], dtype=torch.float64))
    prob = tb.Problem(tb.FlatSpace(3), ref, preference=pref, pair_dist="uniform")
    sol = solve(tb.losses.make("dpo", beta=1.0), tb.population(prob))
    np.testing.assert_allclose(sol.logp.numpy(), ref.numpy(), rtol=0, atol=NEWTON_TOL)


# ------------------------------------------------------------------------------ identification
def test_disconnected_table_keeps_component_mass():
    table = torch.zeros(1, 4, 4, dtype=torch.float64)
    table[0, 0, 1] = table[0, 2, 3] = 1.0
    prob = e1_problem(table)
    sol = solve(tb.losses.make("dpo", beta=1.0), tb.population(prob))
    pi = np.exp(sol.logp.numpy()[0])
    assert not sol.identified
    assert pi[0] + pi[1] == pytest.approx(E1_REF[0] + E1_REF[1], abs=1e-12)
    assert pi[2] + pi[3] == pytest.approx(E1_REF[2] + E1_REF[3], abs=1e-12)
    for a, b in [(0, 1), (2, 3)]:     # inside a component the DPO ratio π_ref·e^{r/β}
        assert np.log(pi[a] / pi[b]) == pytest.approx(np.log(E1_REF[a] / E1_REF[b]) + E1_REWARD[a] - E1_REWARD[b],
                                                      abs=NEWTON_TOL)


def test_unseen_response_keeps_its_reference_mass():
    prob = e1_problem("chain")
    pairs = tb.Pairs.from_records(prob, [(0, 0, 1), (0, 1, 0), (0, 2, 1), (0, 1, 2)])
    sol = solve(tb.losses.make("ipo", beta=1.0), pairs)
    assert not sol.identified
    assert np.exp(sol.logp[0, 3].item()) == pytest.approx(E1_REF[3], abs=1e-12)


# ------------------------------------------------------------------------------ length-normalised margins
def test_simpo_gamma0_closed_form():
    """γ = 0: log π(y) = |y|(r(y)/β + c), c the root of Σπ = 1 (docs/losses.md)."""
    lengths = np.array([1.0, 2.0, 3.0, 4.0])
    prob = e1_problem(lengths=lengths.tolist())
    sol = solve(tb.losses.make("simpo", beta=2.0, gamma=0.0), tb.population(prob))
    low, high = -50.0, 50.0
    for _ in range(200):
        mid = (low + high) / 2
        low, high = (mid, high) if logsumexp(lengths * (E1_REWARD / 2.0 + mid)) < 0 else (low, mid)
    np.testing.assert_allclose(sol.logp.numpy()[0], lengths * (E1_REWARD / 2.0 + low), rtol=0, atol=NEWTON_TOL)
    assert sol.certificate <= 1e-10


def test_simpo_with_margin_matches_direct_minimisation():
    """γ > 0, unequal lengths: SciPy BFGS over the logits of a NumPy objective."""
    lengths = np.array([1.0, 2.0, 3.0, 4.0])
    prob = e1_problem("ref", lengths=lengths.tolist())
    D = records_np(prob)[0]
    beta, gamma = 2.0, 0.5

    def objective(s):
        norm = (s - logsumexp(s)) / lengths
        return (D * np.logaddexp(0.0, -(beta * (norm[:, None] - norm[None, :]) - gamma))).sum()

    found = minimize(objective, np.zeros(4), method="BFGS", options={"gtol": 1e-12})
    sol = solve(tb.losses.make("simpo", beta=beta, gamma=gamma), tb.population(prob))
    assert tv(sol.logp.numpy()[0], found.x - logsumexp(found.x)) <= 1e-6    # BFGS stops near 1e-8 in s
    assert sol.value <= found.fun + 1e-12


def test_length_normalised_ipo_equal_lengths_is_ipo_at_scaled_tau():
    """All lengths L: normalised IPO at τ equals paper IPO at τ/L (docs/losses.md)."""
    prob = e1_problem("uniform", lengths=[3.0] * 4)
    sol = solve(tb.losses.make("ipo", beta=0.5, length_normalized=True), tb.population(prob))
    expected = ipo_wls_np(records_np(prob)[0], np.log(E1_REF), tau=0.5 / 3)
    np.testing.assert_allclose(sol.logp.numpy()[0], expected, rtol=0, atol=NEWTON_TOL)


# ------------------------------------------------------------------------------ nonconvex
@dataclasses.dataclass(frozen=True)
class ChosenNLL(Loss):
    """Test-only: per-record loss −ℓ(y_w); minimiser π_y ∝ n_w(y) (the chosen rates)."""

    name = "test_chosen_nll"
    family = "single_response"
    convex = False

    def per_record(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp):
        return -chosen_logp


def test_nonconvex_route_finds_chosen_rates():
    prob = e1_problem("ref")
    sol = solve(ChosenNLL(), tb.population(prob))
    chosen_rate = records_np(prob)[0].sum(-1)
    assert sol.case == "nonconvex" and sol.identified
    assert tv(sol.logp.numpy()[0], np.log(chosen_rate / chosen_rate.sum())) <= 1e-10
    assert sol.certificate <= 1e-10
    assert "best of 8 starts" in sol.message


def test_nonconvex_boundary_answer():
    prob = e1_problem()
    pairs = tb.Pairs.from_records(prob, [(0, 0, 1), (0, 1, 2), (0, 0, 3)])
    sol = solve(ChosenNLL(), pairs, restarts=3)
    assert sol.boundary.tolist() == [[False, False, True, True]]
    assert torch.isneginf(sol.logp[0, 2:]).all()
    np.testing.assert_allclose(sol.logp.numpy()[0, :2], np.log([2 / 3, 1 / 3]), rtol=0, atol=1e-9)
    assert sol.certificate <= 1e-9 and "KKT" in sol.message
    assert sol.restarts == 3


@dataclasses.dataclass(frozen=True)
class LogRatio(Loss):
    """Test-only: per-record loss ℓ(y_l) − ℓ(y_w), unbounded below as π(y_l) → 0."""

    name = "test_log_ratio"
    family = "single_response"
    convex = False

    def per_record(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp):
        return rejected_logp - chosen_logp


def test_nonconvex_unbounded_objective_raises():
    with pytest.raises(NoFiniteMinimum, match="prompt 0: no finite minimiser"):
        solve(LogRatio(), tb.Pairs.from_records(e1_problem(), [(0, 0, 1)]), restarts=2)


# ------------------------------------------------------------------------------ fixed point
@dataclasses.dataclass(frozen=True)
class CentredIPO(Loss):
    """Test-only stateful loss: L = (Δ − c − τ)², c the record-weighted mean margin (the state)."""

    tau: float = 0.5

    name = "test_centred_ipo"
    family = "non_proper"
    convex = True
    stateful = True

    def population_state(self, inputs, weight):
        delta = (inputs["chosen_logp"] - inputs["ref_chosen_logp"]) - (inputs["rejected_logp"] - inputs["ref_rejected_logp"])
        return {"c": (weight * delta).sum(-1) / weight.sum(-1)}

    def per_record(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, state):
        delta = (chosen_logp - ref_chosen_logp) - (rejected_logp - ref_rejected_logp)
        return (delta - state["c"][:, None] - self.tau) ** 2


def test_fixed_point_of_stateful_loss():
    """Two responses, p = P(0 ≻ 1): x = g_0 − g_1 solves x = (2p−1)(c + τ), c = (2p−1)x, so
    x* = (2p − 1)τ / (4p(1 − p))."""
    p, tau = 0.8, 0.5
    prob = tb.Problem(tb.FlatSpace(2), torch.log(torch.tensor([[0.3, 0.7]], dtype=torch.float64)),
                      preference=torch.tensor([[[0.5, p], [1 - p, 0.5]]], dtype=torch.float64))
    sol = solve(CentredIPO(tau=tau), tb.population(prob))
    x = (sol.logp[0, 0] - sol.logp[0, 1]).item() - np.log(0.3 / 0.7)
    assert sol.case == "fixed_point"
    assert x == pytest.approx((2 * p - 1) * tau / (4 * p * (1 - p)), abs=1e-9)
    assert sol.certificate <= 1e-10


# ------------------------------------------------------------------------------ runs
def test_per_run_beta_equals_one_by_one():
    prob = tb.Problem.random(tb.FlatSpace(4), prompts=2, seed=1)
    pairs = tb.population(prob)
    betas = [0.5, 1.0, 2.0]
    sol = solve(tb.losses.make("dpo", beta=torch.tensor(betas, dtype=torch.float64)), pairs)
    assert sol.logp.shape == (3, 2, 4) and sol.value.shape == (3,) and sol.identified.shape == (3,)
    for b, beta in enumerate(betas):
        one = solve(tb.losses.make("dpo", beta=beta), pairs)
        torch.testing.assert_close(sol.logp[b], one.logp, rtol=0, atol=1e-12)
        assert sol.value[b].item() == pytest.approx(one.value, rel=1e-12)


def test_per_run_samples_equal_one_by_one():
    prob = e1_problem()
    batched = tb.sample_pairs(prob, n=200, seed=[4, 9])
    sol = solve(tb.losses.make("ipo", beta=1.0), batched)
    assert sol.logp.shape == (2, 1, 4)
    for b, seed in enumerate([4, 9]):
        one = solve(tb.losses.make("ipo", beta=1.0), tb.sample_pairs(prob, n=200, seed=seed))
        torch.testing.assert_close(sol.logp[b], one.logp, rtol=0, atol=1e-12)


def test_per_run_error_names_the_run():
    prob = e1_problem()
    with pytest.raises(NoFiniteMinimum, match=r"^run \d+, prompt 0"):
        solve(tb.losses.make("dpo", beta=1.0), tb.sample_pairs(prob, n=6, seed=[3, 4]))


# ------------------------------------------------------------------------------ validation
@pytest.mark.parametrize("kwargs", [{"restarts": 0}, {"max_iter": 1.5}, {"tol": -1.0}, {"seed": "a"}])
def test_bad_options_raise(kwargs):
    with pytest.raises(ValueError):
        solve(tb.losses.make("dpo"), tb.population(e1_problem()), **kwargs)


def test_bad_arguments_raise():
    pairs = tb.population(e1_problem())
    with pytest.raises(ValueError, match="toybench loss"):
        solve("dpo", pairs)
    with pytest.raises(ValueError, match="runs"):
        solve(tb.losses.make("dpo", beta=torch.tensor([1.0, 2.0, 3.0])), tb.sample_pairs(e1_problem(), n=50, seed=[0, 1]))
