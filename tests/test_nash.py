"""The Nash oracles against independent computations: a 2-response closed form, symmetric games
whose equilibrium is known by symmetry, SciPy's root-finder, the first-order conditions in NumPy,
and the LP's hand-derived solution for a skew 3-cycle."""
import numpy as np
import pytest
import torch
from scipy.optimize import brentq, root

import toybench as tb
from toybench.optima import nash, nash_certificate, nash_unregularised


def t64(x):
    return torch.tensor(x, dtype=torch.float64)


SKEW = [[0.5, 0.9, 0.4], [0.1, 0.5, 0.7], [0.6, 0.3, 0.5]]       # P(1≻2) = .9, P(2≻3) = .7, P(3≻1) = .6


def game(pref, ref):
    pref = t64(pref)
    pref = pref[None] if pref.ndim == 2 else pref
    ref = t64(ref)
    ref = ref[None] if ref.ndim == 1 else ref
    return tb.Problem(tb.FlatSpace(pref.shape[-1]), ref.log(), preference=pref)


def first_order_spread(prob, beta, logp):
    """max over prompts of the spread of log π − log π_ref − Mπ/β across responses (0 at the
    equilibrium: the fixed point up to the normaliser), in NumPy."""
    pref, ref, pol = prob.preference_matrix().numpy(), prob.ref_logp.numpy(), np.asarray(logp)
    gap = pol - ref - np.einsum("pab,pb->pa", pref, np.exp(pol)) / beta
    return float((gap.max(-1) - gap.min(-1)).max())


@pytest.mark.parametrize("p, ref1, beta", [(0.9, 0.5, 1.0), (0.7, 0.2, 0.1), (0.55, 0.8, 0.01), (0.1, 0.3, 0.05)])
def test_two_responses_closed_form(p, ref1, beta):
    """(Mπ)_1 − (Mπ)_2 = p − ½ for every π, so π*_1 = σ(logit π_ref(1) + (p − ½)/β)."""
    prob = game([[0.5, p], [1 - p, 0.5]], [ref1, 1 - ref1])
    logit = np.log(ref1 / (1 - ref1)) + (p - 0.5) / beta
    expected = 1 / (1 + np.exp(-logit))
    assert nash(prob, beta)[0, 0].exp().item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("win", [1.0, 0.8, 0.6])
@pytest.mark.parametrize("beta", [1.0, 0.1, 1e-3])
def test_rock_paper_scissors_uniform(win, beta):
    """With a uniform reference the cyclic symmetry maps the unique equilibrium to itself: uniform."""
    lose = 1 - win
    prob = game([[0.5, win, lose], [lose, 0.5, win], [win, lose, 0.5]], [1 / 3] * 3)
    np.testing.assert_allclose(nash(prob, beta).exp().numpy(), 1 / 3, atol=1e-13)
    np.testing.assert_allclose(nash_unregularised(prob).exp().numpy(), 1 / 3, atol=1e-9)


def test_skew_cycle_non_uniform_reference_small_beta():
    """The case the damped iteration failed on (3-cycle, non-uniform π_ref, β = 0.1), and smaller β:
    first-order conditions hold to float64 rounding (tolerance: 1e-12 on log-probs whose size is 1/β)."""
    prob = game(SKEW, [0.5, 0.3, 0.2])
    for beta in (0.1, 0.01, 1e-3):
        logp, cert = nash(prob, beta, return_certificate=True)
        assert first_order_spread(prob, beta, logp.numpy()) < 1e-12 * (1 + 1 / beta)
        assert cert.residual.max() < 1e-11 and cert.tv_bound.max() < 1e-10


def test_skew_cycle_unregularised_by_hand():
    """Payoff A = P − ½; equalising (Aᵀπ)_y = 0 gives π ∝ (0.2, 0.1, 0.4) = (2/7, 1/7, 4/7)."""
    np.testing.assert_allclose(nash_unregularised(game(SKEW, [1 / 3] * 3)).exp().numpy()[0],
                               [2 / 7, 1 / 7, 4 / 7], atol=1e-9)


def test_regularised_path_approaches_the_lp_solution():
    """π*_τ → the von Neumann winner as τ → 0: the distance at τ = 1e-4 is O(τ)."""
    prob = game(SKEW, [1 / 3] * 3)
    gap = (nash(prob, 1e-4).exp() - nash_unregularised(prob).exp()).abs().max().item()
    assert gap < 1e-2


@pytest.mark.parametrize("seed, Y, beta", [(0, 5, 0.5), (1, 8, 0.05), (2, 6, 0.01)])
def test_against_scipy_root(seed, Y, beta):
    """SciPy's hybrid root-finder on the same equation in probability space, per prompt."""
    prob = tb.Problem.random(tb.FlatSpace(Y), prompts=2, seed=seed, preference="general", reward_scale=2.0)
    found = nash(prob, beta).exp().numpy()
    pref, ref = prob.preference_matrix().numpy(), prob.ref_logp.exp().numpy()
    for x in range(2):
        def equation(v):
            pol = np.exp(v - v.max())
            pol /= pol.sum()
            return v - np.log(ref[x]) - pref[x] @ pol / beta
        result = root(equation, np.log(ref[x]), method="hybr", tol=1e-14)
        assert np.abs(equation(result.x)).max() < 1e-11
        expected = np.exp(result.x - result.x.max())
        # the root is within |residual|·‖J⁻¹‖ of the exact one, J = I − P·(diag π − ππᵀ)/β the
        # equation's Jacobian; asserted ≤ 1e-10 in log space, so π is within 1e-10 too
        pol = expected / expected.sum()
        jacobian = np.eye(len(pol)) - pref[x] @ (np.diag(pol) - np.outer(pol, pol)) / beta
        assert np.abs(equation(result.x)).max() * np.linalg.norm(np.linalg.inv(jacobian), 2) < 1e-10
        np.testing.assert_allclose(found[x], pol, atol=1e-10)


def test_bradley_terry_three_responses_by_bisection():
    """Independent 1-D reduction for a BT game with Y = 3 and equal rewards on responses 1, 2:
    π(1)/π(2) = π_ref(1)/π_ref(2) by symmetry of the payoff, leaving one unknown π(0) solved by
    Brent's method on the fixed-point equation."""
    r = np.array([1.0, 0.0, 0.0])
    ref = np.array([0.2, 0.5, 0.3])
    beta = 0.2
    prob = tb.Problem(tb.FlatSpace(3), t64(ref[None]).log(), reward=t64(r[None]))
    sig = 1 / (1 + np.exp(-(r[:, None] - r[None, :])))

    def pol(p0):
        return np.array([p0, (1 - p0) * 0.5 / 0.8, (1 - p0) * 0.3 / 0.8])

    def equation(p0):
        logits = np.log(ref) + sig @ pol(p0) / beta
        return np.exp(logits[0] - np.logaddexp.reduce(logits)) - p0

    p0 = brentq(equation, 1e-12, 1 - 1e-12, xtol=1e-15)
    np.testing.assert_allclose(nash(prob, beta).exp().numpy()[0], pol(p0), atol=1e-12)   # brentq, xtol 1e-15


def test_batched_beta_matches_single_calls():
    prob = tb.Problem.random(tb.FlatSpace(6), prompts=3, seed=4, preference="general", reward_scale=3.0)
    betas = [1.0, 0.1, 0.003]
    batched = nash(prob, t64(betas))
    assert batched.shape == (3, 3, 6)
    for b, beta in enumerate(betas):
        torch.testing.assert_close(batched[b], nash(prob, beta), atol=1e-12, rtol=0)


def test_certificate_bounds_the_distance():
    """For perturbed candidates, TV(π, π*) ≤ tv_bound and the gap is positive (the bound is a
    theorem; the check is independent of the solver except for π*)."""
    prob = tb.Problem.random(tb.FlatSpace(5), prompts=2, seed=3, preference="general", reward_scale=2.0)
    gen = torch.Generator().manual_seed(0)
    star = nash(prob, 0.3)
    for scale in (1e-4, 0.1, 1.0):
        cand = torch.log_softmax(star + scale * torch.randn(star.shape, generator=gen, dtype=torch.float64), -1)
        cert = nash_certificate(prob, 0.3, cand)
        distance = 0.5 * (cand.exp() - star.exp()).abs().sum(-1)
        assert (distance <= cert.tv_bound + 1e-15).all()
        assert (cert.gap > 0).all()
    assert nash_certificate(prob, 0.3, star).tv_bound.max() < 1e-12


def test_bradley_terry_unregularised_is_the_best_response():
    prob = tb.problem.e1("ref")
    np.testing.assert_array_equal(nash_unregularised(prob).exp().numpy(), [[0.0, 0.0, 0.0, 1.0]])


def test_bad_input():
    prob = game(SKEW, [0.5, 0.3, 0.2])
    tie = tb.Problem(tb.FlatSpace(3), t64([[0.4, 0.3, 0.3]]).log(), reward=t64([[1.0, 1.0, 0.0]]))
    with pytest.raises(ValueError, match="many equilibria"):
        nash_unregularised(tie)
    with pytest.raises(ValueError, match="beta"):
        nash(prob, 0.0)
    with pytest.raises(ValueError, match="max_iter"):
        nash(prob, 1.0, max_iter=0)
    with pytest.raises(ValueError, match="did not converge"):
        nash(prob, 1e-3, tol=1e-300, max_iter=3)
    with pytest.raises(ValueError, match="logp must be"):
        nash_certificate(prob, 1.0, torch.zeros(1, 4))


@pytest.mark.parametrize("tau, expected", [(1.0, (0.36592, 0.30814, 0.32594)), (0.5, (0.39454, 0.27971, 0.32575)),
                                           (0.1, (0.43385, 0.14818, 0.41797)), (0.05, (0.38343, 0.12513, 0.49144)),
                                           (0.01, (0.30611, 0.13424, 0.55965))])
def test_skew_cycle_regularised_path_published_digits(tau, expected):
    """The skew cycle with a uniform reference: π*_τ to the 5 printed digits (tolerance 5e-6 from
    the rounding), values computed independently by a damped iteration to residual 1e-12."""
    np.testing.assert_allclose(nash(game(SKEW, [1 / 3] * 3), tau).exp().numpy()[0], expected, atol=5e-6)


def test_von_neumann_winner_beats_every_policy_on_a_grid():
    """W(π_NE, π′) = π_NEᵀ M π′ ≥ ½ for every π′ on a grid of the simplex (NumPy)."""
    pref = np.array(SKEW)
    winner = nash_unregularised(game(SKEW, [1 / 3] * 3)).exp().numpy()[0]
    grid = [(a / 20, b / 20, 1 - (a + b) / 20) for a in range(21) for b in range(21 - a)]
    assert min(winner @ pref @ np.array(q) for q in grid) >= 0.5 - 1e-9


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_small_beta_extreme_preferences_first_order(seed):
    """Near-deterministic intransitive preferences (σ(10·N(0,1)) entries), skewed references and
    β down to 1e-5 (reached by continuation): the first-order conditions hold in NumPy to float64
    rounding of log-probs of size up to ‖A‖/β (tolerance 1e-13 relative to that size)."""
    prob = tb.Problem.random(tb.FlatSpace(8), prompts=2, seed=seed, preference="general", reward_scale=10.0,
                             ref_scale=3.0)
    for beta in (1e-3, 1e-4, 1e-5):
        logp = nash(prob, beta).numpy()
        assert first_order_spread(prob, beta, logp) < 1e-13 * (1 + 8 / beta)


def exploitability_tv_bound(prob, beta, logp):
    """√(KL(π ‖ BR(π))/2) per prompt, BR(π) = softmax(log π_ref + Mπ/β), in NumPy/SciPy: an upper bound on
    TV(π, π*_β) (the exploitability is β-strongly convex with minimum 0 at π*_β), independent of the solver."""
    from scipy.special import logsumexp

    pref, ref, pol = prob.preference_matrix().numpy(), prob.ref_logp.numpy(), np.asarray(logp)
    logits = ref + np.einsum("pab,pb->pa", pref, np.exp(pol)) / beta
    best = logits - logsumexp(logits, axis=-1, keepdims=True)
    diff = pol - best              # KL = Σ π·(d + e^{−d} − 1) as Σ BR = 1: no cancellation of the first order
    kl = (np.exp(pol) * (diff + np.expm1(-diff))).sum(-1)
    return np.sqrt(np.maximum(kl, 0.0) / 2)


@pytest.mark.parametrize("beta", [1e-3, 1e-4])
@pytest.mark.parametrize("Y, kind, scale, seed", [(4, "general", 30.0, 0), (9, "general", 10.0, 1),
                                                  (16, "general", 30.0, 2), (16, "bt", 20.0, 3)])
def test_near_deterministic_games_small_beta(beta, Y, kind, scale, seed):
    """Near-deterministic preferences (intransitive σ(30·N(0,1)) entries, or BT with reward sd 20) and skewed
    references at β ∈ {1e-3, 1e-4} (the case the continuation schedule was tuned for): the exploitability
    bound, computed in NumPy, puts the answer within float64 rounding of π*_β. Logits have size up to
    ‖A‖_∞/β ≤ Y/(2β), so the log-space residual is ~1e-16·Y/β and TV ≤ that; asserted at 1e-13·(1 + Y/β)."""
    prob = tb.Problem.random(tb.FlatSpace(Y), prompts=2, seed=seed, preference=kind, reward_scale=scale, ref_scale=2.0)
    bound = exploitability_tv_bound(prob, beta, nash(prob, beta).numpy())
    assert bound.max() < 1e-13 * (1 + Y / beta)


@pytest.mark.parametrize("p", [1 - 1e-9, 1e-9])
def test_two_responses_near_deterministic_tiny_beta(p):
    """The 2-response closed form σ(logit π_ref(1) + (p − ½)/β) at β = 1e-4 and p within 1e-9 of 0 or 1."""
    beta = 1e-4
    prob = game([[0.5, p], [1 - p, 0.5]], [0.999, 0.001])
    logit = np.log(0.999 / 0.001) + (p - 0.5) / beta
    expected = -np.logaddexp(0.0, -logit)                    # log σ(logit), accurate in both tails
    assert nash(prob, beta)[0, 0].item() == pytest.approx(expected, rel=1e-12, abs=1e-300)
