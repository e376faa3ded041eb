"""toybench.metrics against hand-worked values and separate NumPy/SciPy formulas.

Tolerances: 1e-12 absolute on float64 sums of a few terms (rounding only), unless stated.
"""
import math

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch
from conftest import E1_REF, E1_REWARD, e1_problem

import toybench as tb
from toybench import metrics

TOL = 1e-12  # float64 rounding of short sums


def random_logp(shape, seed):
    """A random full-support log-prob table (Dirichlet(1) rows)."""
    probs = np.random.default_rng(seed).dirichlet(np.ones(shape[-1]), size=shape[:-1])
    return np.log(probs)


def log(probs):
    """np.log with log 0 = -inf and no warning."""
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(probs, dtype=float))


def t(array):
    return torch.tensor(array, dtype=torch.float64)


def np_weighted(values, weights):
    weights = np.asarray(weights, dtype=float)
    return (values * weights / weights.sum()).sum(-1)


# ---------------------------------------------------------------- KL, TV, entropy, reward
def test_kl_tv_entropy_match_scipy():
    p, q = random_logp((3, 2, 5), 0), random_logp((3, 2, 5), 1)
    kl_np = scipy.special.rel_entr(np.exp(p), np.exp(q)).sum(-1)
    tv_np = 0.5 * np.abs(np.exp(p) - np.exp(q)).sum(-1)
    h_np = scipy.stats.entropy(np.exp(p), axis=-1)
    np.testing.assert_allclose(metrics.kl(t(p), t(q), per_prompt=True).numpy(), kl_np, atol=TOL)
    np.testing.assert_allclose(metrics.kl(t(p), t(q)).numpy(), kl_np.mean(-1), atol=TOL)
    np.testing.assert_allclose(metrics.tv(t(p), t(q), per_prompt=True).numpy(), tv_np, atol=TOL)
    np.testing.assert_allclose(metrics.entropy(t(p)).numpy(), h_np.mean(-1), atol=TOL)
    assert metrics.kl(t(p), t(q)).shape == (3,) and metrics.entropy(t(p), per_prompt=True).shape == (3, 2)


def test_kl_direction_is_explicit():
    p, q = random_logp((1, 4), 2), random_logp((1, 4), 3)
    forward = scipy.special.rel_entr(np.exp(q), np.exp(p)).sum()
    assert metrics.kl(t(q), t(p)).item() == pytest.approx(forward, abs=TOL)
    assert abs(metrics.kl(t(p), t(q)).item() - forward) > 1e-3  # KL is not symmetric here


def test_zero_mass_entries_are_exact():
    p = log([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    q = log([[0.25, 0.25, 0.5], [0.0, 0.5, 0.5]])
    kl_pp = metrics.kl(t(p), t(q), per_prompt=True).numpy()
    assert kl_pp[0] == pytest.approx(math.log(2.0), abs=TOL)  # 0·log 0 = 0 in the third slot
    assert kl_pp[1] == math.inf  # p > 0 = q
    assert metrics.kl(t(q), t(p), per_prompt=True)[0].item() == math.inf
    both_zero = log([[0.5, 0.5, 0.0]])
    assert metrics.kl(t(both_zero), t(both_zero)).item() == 0.0
    assert metrics.entropy(t(p), per_prompt=True)[0].item() == pytest.approx(math.log(2.0), abs=TOL)
    assert metrics.tv(t(p), t(q), per_prompt=True)[0].item() == pytest.approx(0.5, abs=TOL)
    # a prompt of weight zero contributes nothing, even an infinite KL
    assert metrics.kl(t(p), t(q), prompt_weights=[1.0, 0.0]).item() == pytest.approx(math.log(2.0), abs=TOL)


def test_expected_reward_and_mass_on_best_with_ties():
    logp = np.log(np.array([[0.1, 0.2, 0.3, 0.4], [0.25, 0.25, 0.25, 0.25]]))
    reward = np.array([[1.0, 3.0, 3.0, 0.0], [0.0, -1.0, 2.0, 1.0]])
    # hand: prompt 0: 0.1 + 0.6 + 0.9 + 0 = 1.6; prompt 1: (0 - 1 + 2 + 1)/4 = 0.5
    per_prompt = metrics.expected_reward(t(logp), t(reward), per_prompt=True).numpy()
    np.testing.assert_allclose(per_prompt, [1.6, 0.5], atol=TOL)
    best = metrics.mass_on_best(t(logp), t(reward), per_prompt=True).numpy()
    np.testing.assert_allclose(best, [0.5, 0.25], atol=TOL)  # tied maximisers y1, y2 both count
    weighted = metrics.expected_reward(t(logp), t(reward), prompt_weights=[3.0, 1.0]).item()
    assert weighted == pytest.approx(0.75 * 1.6 + 0.25 * 0.5, abs=TOL)


def test_e1_expected_reward_at_pistar():
    prob = e1_problem()
    pistar = E1_REF * np.exp(E1_REWARD) / (E1_REF * np.exp(E1_REWARD)).sum()
    value = metrics.expected_reward(t(np.log(pistar))[None], prob.reward).item()
    assert value == pytest.approx(float(pistar @ E1_REWARD), abs=TOL)
    # the RLHF identity (Rafailov et al., arXiv 2305.18290, Eq. 4): R(π*) − β·KL(π*‖π_ref) = β·log Z (β = 1)
    value_fn = value - metrics.kl(t(np.log(pistar))[None], prob.ref_logp).item()
    assert value_fn == pytest.approx(math.log((E1_REF * np.exp(E1_REWARD)).sum()), abs=TOL)


# ---------------------------------------------------------------- batching, weights, dtype
@pytest.mark.parametrize("name", ["kl", "tv"])
def test_batching_over_leading_axes_equals_slices(name):
    p, q = random_logp((2, 3, 4, 6), 4), random_logp((4, 6), 5)
    fn = getattr(metrics, name)
    batched = fn(t(p), t(q), prompt_weights=[1, 2, 3, 4])
    assert batched.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            assert batched[i, j].item() == fn(t(p[i, j]), t(q), prompt_weights=[1, 2, 3, 4]).item()


def test_prompt_weights_are_normalised():
    p = random_logp((2, 3, 5), 6)
    per_prompt = scipy.stats.entropy(np.exp(p), axis=-1)
    got = metrics.entropy(t(p), prompt_weights=torch.tensor([2.0, 0.0, 6.0])).numpy()
    np.testing.assert_allclose(got, np_weighted(per_prompt, [2.0, 0.0, 6.0]), atol=TOL)


def test_float32_input_gives_float64():
    p = torch.log_softmax(torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(0)), -1)
    assert p.dtype == torch.float32
    out = metrics.entropy(p)
    assert out.dtype == torch.float64 and out.device == p.device
    expected = scipy.stats.entropy(np.exp(p.double().numpy()), axis=-1).mean(-1)
    np.testing.assert_allclose(out.numpy(), expected, atol=TOL)


# ---------------------------------------------------------------- win rate, top responses
def test_win_rate_half_at_reference():
    general = tb.Problem.random(tb.FlatSpace(5), prompts=3, seed=1, preference="general", reward_scale=2.0)
    bt = tb.Problem.random(tb.FlatSpace(5), prompts=3, seed=2, reward_scale=2.0)
    for prob in (general, bt):
        ref = prob.ref_logp
        value = metrics.win_rate(ref, ref, prob.preference_matrix(), per_prompt=True)
        np.testing.assert_allclose(value.numpy(), 0.5, atol=TOL)


def test_win_rate_two_responses_by_hand():
    # π = (0.8, 0.2), π_ref = (0.5, 0.5), P(0 ≻ 1) = 0.7:
    # 0.8·0.5·0.5 + 0.8·0.5·0.7 + 0.2·0.5·0.3 + 0.2·0.5·0.5 = 0.56
    pref = t([[[0.5, 0.7], [0.3, 0.5]]])
    value = metrics.win_rate(t(np.log([[0.8, 0.2]])), t(np.log([[0.5, 0.5]])), pref)
    assert value.item() == pytest.approx(0.56, abs=TOL)


def test_win_rate_batched_matches_numpy():
    prob = tb.Problem.random(tb.FlatSpace(4), prompts=2, seed=3, preference="general")
    logp = random_logp((3, 2, 4), 7)
    pi, ref, pref = np.exp(logp), np.exp(prob.ref_logp.numpy()), prob.preference_matrix().numpy()
    expected = np.array([[pi[b, x] @ pref[x] @ ref[x] for x in range(2)] for b in range(3)])
    got = metrics.win_rate(t(logp), prob.ref_logp, pref, prompt_weights=[1.0, 3.0])
    np.testing.assert_allclose(got.numpy(), np_weighted(expected, [1.0, 3.0]), atol=TOL)


def test_top_responses_order_and_ties():
    logp = t(np.log([[0.1, 0.3, 0.3, 0.3], [0.4, 0.1, 0.2, 0.3]]))
    index, probs = metrics.top_responses(logp, 2)
    assert index.tolist() == [[1, 2], [0, 3]]
    np.testing.assert_allclose(probs.numpy(), [[0.3, 0.3], [0.4, 0.3]], atol=TOL)
    assert index.dtype == torch.int64 and probs.dtype == torch.float64


# ---------------------------------------------------------------- displacement and accuracies
def three_response_problem():
    return tb.Problem(tb.FlatSpace(3), t(np.log([[0.5, 0.3, 0.2]])), reward=t([[1.0, 0.0, 0.5]]))


def test_displacement_hand_example_with_unseen_response():
    prob = three_response_problem()
    pairs = tb.Pairs.from_records(prob, [(0, 0, 1), (0, 1, 0)], weights=[3.0, 1.0])  # y2 never appears
    before, after = np.array([[0.5, 0.3, 0.2]]), np.array([[0.4, 0.1, 0.5]])  # [P, Y]
    out = metrics.displacement(t(np.log(before))[None], t(np.log(after))[None], pairs)
    chosen = 0.75 * math.log(0.4 / 0.5) + 0.25 * math.log(0.1 / 0.3)
    rejected = 0.75 * math.log(0.1 / 0.3) + 0.25 * math.log(0.4 / 0.5)
    expected = {"chosen_logp_change": chosen, "rejected_logp_change": rejected,
                "chosen_mass_change": 0.75 * -0.1 + 0.25 * -0.2, "displaced_fraction": 1.0,
                "unseen_mass_gain": 0.3, "max_unseen_gain": 0.3}
    assert set(out) == set(expected)
    for key, value in expected.items():
        assert out[key].shape == (1,)
        assert out[key].item() == pytest.approx(value, abs=TOL), key


def test_displacement_zero_mass_and_population():
    prob = three_response_problem()
    pairs = tb.Pairs.from_records(prob, [(0, 0, 1)])
    before, after = t(log([[0.5, 0.5, 0.0]])), t(log([[1.0, 0.0, 0.0]]))
    out = metrics.displacement(before, after, pairs)
    assert out["chosen_logp_change"].item() == pytest.approx(math.log(2.0), abs=TOL)
    assert out["rejected_logp_change"].item() == -math.inf
    assert out["unseen_mass_gain"].item() == 0.0  # y2 has zero mass in both tables: change 0, not NaN
    full = metrics.displacement(prob.ref_logp, after, tb.population(prob))
    assert full["unseen_mass_gain"].item() == 0.0 and full["max_unseen_gain"].item() == 0.0  # S_x = Y


def test_displacement_per_run_pairs_equal_single_runs():
    prob = tb.Problem.random(tb.FlatSpace(6), prompts=2, seed=4)
    runs = tb.sample_pairs(prob, n=3, seed=[10, 11])
    before, after = prob.ref_logp, t(random_logp((2, 2, 6), 8))
    batched = metrics.displacement(before, after, runs)
    for b, seed in enumerate([10, 11]):
        single = metrics.displacement(before, after[b], tb.sample_pairs(prob, n=3, seed=seed))
        for key, value in single.items():
            assert batched[key][b].item() == pytest.approx(value.item(), abs=TOL), key
    # unseen mass of run 0 by hand from its records
    records = tb.sample_pairs(prob, n=3, seed=10)
    seen = np.zeros((2, 6), dtype=bool)
    for x, a, b in zip(records.prompt[0].tolist(), records.chosen[0].tolist(), records.rejected[0].tolist(), strict=False):
        seen[x, a] = seen[x, b] = True
    gain = ((np.exp(after[0].numpy()) - np.exp(before.numpy())) * ~seen).sum(-1)
    assert batched["unseen_mass_gain"][0].item() == pytest.approx(np_weighted(gain, [1, 1]), abs=TOL)


def test_accuracies_with_ties():
    prob = tb.Problem(tb.FlatSpace(3), t(np.log([[0.5, 0.25, 0.25]])), reward=t([[0.0, 1.0, 2.0]]))
    pairs = tb.Pairs.from_records(prob, [(0, 0, 1), (0, 2, 0), (0, 1, 2), (0, 0, 2)], weights=[1, 1, 1, 1])
    logp = t(np.log([[0.4, 0.4, 0.2]]))
    # log π: (0≻1) tie, (2≻0) wrong, (1≻2) right, (0≻2) right
    assert metrics.ranking_accuracy(logp, pairs).item() == pytest.approx(3 / 4, abs=TOL)
    assert metrics.ranking_accuracy(logp, pairs, tie_credit=0.5).item() == pytest.approx(2.5 / 4, abs=TOL)
    # g = log(π/π_ref) = (log 0.8, log 1.6, log 0.8): (0≻1) wrong, (2≻0) tie, (1≻2) right, (0≻2) tie
    assert metrics.implicit_reward_accuracy(logp, prob.ref_logp, pairs).item() == pytest.approx(1 / 4, abs=TOL)
    half = metrics.implicit_reward_accuracy(logp, prob.ref_logp, pairs, tie_credit=0.5).item()
    assert half == pytest.approx(2 / 4, abs=TOL)
    assert metrics.implicit_reward_accuracy(prob.ref_logp, prob.ref_logp, pairs).item() == 0.0


def test_ranking_accuracy_weights_and_batch():
    prob = e1_problem()
    pairs = tb.population(prob)
    logp = t(random_logp((3, 1, 4), 9))
    weight, chosen, rejected = (pairs.weight[0].numpy(), pairs.chosen[0].numpy(), pairs.rejected[0].numpy())
    expected = [(weight * (lp[0, chosen] >= lp[0, rejected])).sum() for lp in logp.numpy()]
    np.testing.assert_allclose(metrics.ranking_accuracy(logp, pairs).numpy(), expected, atol=TOL)


# ---------------------------------------------------------------- gradient norm
def np_dpo_logit_grad(logp, beta):
    """∂/∂s of Σ_{a≠b} w_ab σ(r_a − r_b)·sp(−βΔ_ab) on E1 with W_u (w_ab = 1/6); Δ_ab depends on
    s only through s_a − s_b, so the log-softmax normaliser drops out."""
    ref = np.log(E1_REF)
    grad = np.zeros(4)
    for a in range(4):
        for b in range(4):
            if a != b:
                delta = (logp[a] - ref[a]) - (logp[b] - ref[b])
                coef = (1 / 6) * scipy.special.expit(E1_REWARD[a] - E1_REWARD[b]) \
                    * -beta * scipy.special.expit(-beta * delta)
                grad[a] += coef
                grad[b] -= coef
    return grad


def test_grad_norm_dpo_at_pistar_and_at_reference():
    prob, pairs = e1_problem(), tb.population(e1_problem())
    betas = [0.5, 2.0]
    stars = [np.log(E1_REF * np.exp(E1_REWARD / b) / (E1_REF * np.exp(E1_REWARD / b)).sum()) for b in betas]
    loss = tb.losses.make("dpo", beta=torch.tensor(betas, dtype=torch.float64))
    at_star = metrics.grad_norm(loss, t(np.stack(stars))[:, None], pairs)
    assert at_star.shape == (2,) and at_star.max().item() < 1e-10
    at_ref = metrics.grad_norm(loss, prob.ref_logp, pairs)
    expected = [np.linalg.norm(np_dpo_logit_grad(np.log(E1_REF), b)) for b in betas]
    assert expected[0] > 0.05  # the reference is far from stationary
    np.testing.assert_allclose(at_ref.numpy(), expected, rtol=1e-12)
    single = metrics.grad_norm(tb.losses.make("dpo", beta=0.5), prob.ref_logp, pairs)
    assert single.shape == () and single.item() == pytest.approx(expected[0], rel=1e-12)


# ---------------------------------------------------------------- summary
def test_summary_values():
    prob = e1_problem()
    logp = t(random_logp((2, 1, 4), 10))
    target = tb.optima.reverse_kl(prob, 1.0)
    out = metrics.summary(logp, prob, target)
    pi, ref, tgt = np.exp(logp.numpy()), E1_REF, np.exp(target.numpy())
    pref = scipy.special.expit(E1_REWARD[:, None] - E1_REWARD[None, :])
    expected = {
        "kl_to_ref": scipy.special.rel_entr(pi, ref).sum((-1, -2)),
        "entropy": scipy.stats.entropy(pi, axis=-1)[:, 0],
        "win_rate": np.array([p[0] @ pref @ ref for p in pi]),
        "expected_reward": pi[:, 0] @ E1_REWARD,
        "mass_on_best": pi[:, 0, 3],
        "kl_to_target": scipy.special.rel_entr(pi, tgt).sum((-1, -2)),
        "kl_from_target": scipy.special.rel_entr(tgt, pi).sum((-1, -2)),
        "tv_to_target": 0.5 * np.abs(pi - tgt).sum((-1, -2)),
    }
    assert set(out) == set(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(out[key].numpy(), value, atol=TOL, err_msg=key)
    general = tb.Problem.random(tb.FlatSpace(4), prompts=1, seed=0, preference="general")
    assert set(metrics.summary(logp, general)) == {"kl_to_ref", "entropy", "win_rate"}


# ---------------------------------------------------------------- validation
def test_validation_errors():
    p, q = t(random_logp((2, 3, 4), 11)), t(random_logp((3, 5), 12))
    with pytest.raises(ValueError, match=r"\(2, 3, 4\) and \(3, 5\)"):
        metrics.kl(p, q)
    with pytest.raises(ValueError, match="broadcastable"):
        metrics.tv(p, t(random_logp((3, 3, 4), 13)))
    with pytest.raises(ValueError, match="NaN"):
        metrics.entropy(torch.full((1, 2), float("nan"), dtype=torch.float64))
    with pytest.raises(ValueError, match="normalise"):
        metrics.entropy(torch.zeros(1, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"\[\.\.\., P, Y\], got shape \(3,\)"):
        metrics.entropy(torch.zeros(3, dtype=torch.float64))
    for bad in ([1.0, 1.0], [1.0, -1.0, 1.0], [0.0, 0.0, 0.0]):
        with pytest.raises(ValueError, match="prompt_weights must be 3"):
            metrics.entropy(p, prompt_weights=bad)
    with pytest.raises(ValueError, match="per_prompt"):
        metrics.entropy(p, per_prompt="yes")
    with pytest.raises(ValueError, match="k must be"):
        metrics.top_responses(p, 5)
    with pytest.raises(ValueError, match=r"preference must have shape \[3, 4, 4\]"):
        metrics.win_rate(p, p, torch.full((3, 4, 3), 0.5, dtype=torch.float64))
    with pytest.raises(ValueError, match="reward"):
        metrics.expected_reward(p, torch.zeros(3, 5, dtype=torch.float64))


def test_record_metric_validation():
    prob = e1_problem()
    pairs = tb.population(prob)
    with pytest.raises(ValueError, match="P=1 prompts and Y=4"):
        metrics.ranking_accuracy(t(random_logp((1, 5), 14)), pairs)
    with pytest.raises(ValueError, match="tie_credit"):
        metrics.ranking_accuracy(prob.ref_logp, pairs, tie_credit=2)
    with pytest.raises(ValueError, match="Pairs"):
        metrics.ranking_accuracy(prob.ref_logp, [(0, 0, 1)])
    per_run = tb.sample_pairs(prob, n=4, seed=[0, 1])
    with pytest.raises(ValueError, match="B=2 runs"):
        metrics.displacement(prob.ref_logp, t(random_logp((3, 1, 4), 15)), per_run)
    with pytest.raises(ValueError, match="-inf"):
        metrics.grad_norm(tb.losses.make("dpo"), t(log([[0.5, 0.5, 0.0, 0.0]])), pairs)
    with pytest.raises(ValueError, match="run counts disagree"):
        metrics.grad_norm(tb.losses.make("dpo", beta=t([0.1, 0.2, 0.3])), t(random_logp((2, 1, 4), 16)), pairs)
