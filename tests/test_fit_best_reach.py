"""Can a restricted class reach the simplex optimum? ``loglinear_residual`` against least-squares
residuals worked out by hand, and ``fit_best``'s ``gap_to_simplex``/``reachable`` on cases built so
that π*_β = π_ref·e^{r/β}/Z is, or is not, a LogLinear point."""
import math

import pytest
import torch

import toybench as tb
from toybench.fit_best import REACH_TOL

loglinear_residual = tb.loglinear_residual
REF = torch.tensor([[0.5, 0.3, 0.2]], dtype=torch.float64).log()


def flat_problem(reward, prompts=1):
    reward = torch.tensor(reward, dtype=torch.float64).reshape(prompts, 3)
    return tb.Problem(tb.FlatSpace(3), REF.expand(prompts, 3), reward=reward, pair_dist="uniform")


def pistar(prob, beta):
    return torch.log_softmax(prob.ref_logp + prob.reward / beta, -1)


@pytest.mark.parametrize("beta", [0.5, 2.0])
def test_residual_by_hand(beta):
    """log π* − log π_ref = r/β − log Z. r = (0, 1, 2):
    - φ = r: reachable (w = 1/β), residual 0;
    - φ = e_0: (a + c, c, c) against (0, 1, 2)/β: best c = 1.5/β, residual 0.5/β."""
    prob = flat_problem([0.0, 1.0, 2.0])
    target = pistar(prob, beta)
    reachable = tb.LogLinear(prob, torch.tensor([[0.0], [1.0], [2.0]]), dtype=torch.float64)
    assert loglinear_residual(reachable, target) <= 1e-14
    indicator = tb.LogLinear(prob, torch.tensor([[1.0], [0.0], [0.0]]), dtype=torch.float64)
    assert loglinear_residual(indicator, target) == pytest.approx(0.5 / beta, abs=1e-14)


def test_shared_weights_across_prompts_by_hand():
    """φ = (0, 1, 2) in both prompts, r = (0, 1, 2) and (0, 2, 4), β = 1: each prompt alone is
    reachable (w = 1, w = 2) but w is shared. Centred: (−1, 0, 1)·w against (−1, 0, 1) and
    (−2, 0, 2): w = 1.5, residual 0.5."""
    prob = flat_problem([[0.0, 1.0, 2.0], [0.0, 2.0, 4.0]], prompts=2)
    policy = tb.LogLinear(prob, torch.tensor([[0.0], [1.0], [2.0]]), dtype=torch.float64)
    assert loglinear_residual(policy, pistar(prob, 1.0)) == pytest.approx(0.5, abs=1e-14)
    # per-prompt features [P, Y, D]: prompt 1 reads the second column through its own features
    per_prompt = torch.tensor([[[0.0], [1.0], [2.0]], [[0.0], [2.0], [4.0]]])
    assert loglinear_residual(tb.LogLinear(prob, per_prompt, dtype=torch.float64), pistar(prob, 1.0)) <= 1e-14


def test_residual_of_zero_mass_and_bad_input():
    prob = flat_problem([0.0, 1.0, 2.0])
    policy = tb.LogLinear(prob, torch.eye(3))
    assert loglinear_residual(policy, torch.tensor([[0.0, -math.inf, -math.inf]])) == math.inf
    assert loglinear_residual(policy, pistar(prob, 1.0)) <= 1e-6   # float32 policy, float64 residual
    with pytest.raises(ValueError, match="LogLinear"):
        loglinear_residual(tb.MLP(prob), pistar(prob, 1.0))
    with pytest.raises(ValueError, match=r"\[P, Y\]"):
        loglinear_residual(policy, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="simplex"):
        tb.fit_best(policy, tb.losses.make("dpo"), tb.population(prob), simplex="yes")


@pytest.mark.parametrize("features, reachable", [([[0.0], [1.0], [2.0]], True), ([[1.0], [0.0], [0.0]], False)])
def test_fit_best_reports_the_gap(features, reachable):
    """DPO is convex in the LogLinear weights, so the class best is global: reachable ⇔ zero gap."""
    prob = flat_problem([0.0, 1.0, 2.0])
    loss, pairs = tb.losses.make("dpo", beta=1.0), tb.population(prob)
    fit = tb.fit_best(tb.LogLinear(prob, torch.tensor(features)), loss, pairs, starts=1)
    gap = fit.gap_to_simplex
    assert fit.certified and fit.reachable is reachable
    assert gap.tv == pytest.approx(tb.metrics.tv(fit.logp, pistar(prob, 1.0)).item(), abs=1e-9)
    kl = (pistar(prob, 1.0).exp() * (pistar(prob, 1.0) - fit.logp)).sum().item()
    assert gap.kl == pytest.approx(kl, abs=1e-9)
    if reachable:
        assert gap.residual <= REACH_TOL and gap.tv <= 1e-8 and abs(gap.value) <= 1e-12
        assert "reaches" in fit.message
    else:
        assert gap.residual == pytest.approx(0.5, abs=1e-8) and gap.tv > 0.05 and gap.value > 1e-3
        assert "cannot reach" in fit.message
    plain = tb.fit_best(tb.LogLinear(prob, torch.tensor(features)), loss, pairs, starts=1, simplex=False)
    assert plain.gap_to_simplex is None and plain.reachable is None


def test_autoregressive_tabular_is_reachable_and_no_finite_simplex_optimum_is_reported():
    prob = tb.Problem.random(tb.SequenceSpace(2, 2), seed=0, pair_dist="uniform")
    fit = tb.fit_best(tb.AutoregressiveTabular(prob), tb.losses.make("dpo", beta=1.0), tb.population(prob), starts=1)
    assert fit.reachable is True and fit.gap_to_simplex.tv <= 1e-6
    flat = flat_problem([0.0, 1.0, 2.0])
    one_record = tb.Pairs.from_records(flat, [(0, 2, 0)])    # DPO's simplex infimum is at infinity
    fit = tb.fit_best(tb.LogLinear(flat, torch.tensor([[1.0], [1.0], [0.0]])), tb.losses.make("ipo", beta=1.0),
                      one_record, starts=1)
    assert fit.gap_to_simplex is not None                       # IPO has a finite minimiser on one record
    dpo_fit = tb.fit_best(tb.LogLinear(flat, torch.tensor([[1.0], [1.0], [0.0]])), tb.losses.make("dpo", beta=1.0),
                          one_record, starts=1, max_iter=50)
    assert dpo_fit.gap_to_simplex is None and dpo_fit.reachable is None and "NoFiniteMinimum" in dpo_fit.message


def test_solve_with_a_restricted_class_points_to_fit_best():
    prob = flat_problem([0.0, 1.0, 2.0])
    loss, pairs = tb.losses.make("dpo", beta=1.0), tb.population(prob)
    plain = tb.solve(loss, pairs)
    torch.testing.assert_close(tb.solve(loss, pairs, policy=tb.Tabular(prob)).logp, plain.logp, rtol=0, atol=0)
    for policy in (tb.LogLinear(prob, torch.eye(3)[:, :1]), tb.MLP(prob), tb.TinyTransformer(prob)):
        with pytest.raises(ValueError, match="fit_best"):
            tb.solve(loss, pairs, policy=policy)
