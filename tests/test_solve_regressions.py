"""Regressions of issue 8: every case where ``tb.solve`` once raised a false NoFiniteMinimum or
returned a wrong minimiser, against closed forms or the independent NumPy minimiser of
``independent_losses`` (BFGS with finite differences plus Powell; it evaluates real points, so
its value is an upper bound on the infimum)."""
import numpy as np
import pytest
import torch
from conftest import E1_REF, E1_REWARD, e1_problem
from independent_losses import Objective, minimise
from scipy.special import logsumexp

import toybench as tb
from toybench.solve import ACCEPT, smooth

VALUE_TOL = 1e-8
"""solve's certified value may exceed the independent upper bound by at most this (see
test_solve_stress for the derivation)."""


def objective_of(name, hyper, prob, lengths=None):
    law = prob.pair_dist
    lengths = np.ones(prob.Y) if lengths is None else np.asarray(lengths, dtype=float)
    return Objective(name, hyper, prob.ref_logp.numpy(), prob.reward.numpy(), prob.prompt_weights.numpy(), law, lengths)


@pytest.fixture
def overflowing_start(monkeypatch):
    """A data-tilted start 900 logits wide: e^{−g} and e^{λz} overflow there, as an L-BFGS start
    once did and was taken for a proof of unboundedness."""
    monkeypatch.setattr(smooth, "TILTS", (1.0, 900.0))


def test_fdpo_forward_kl_e1_ref_is_its_target(overflowing_start):
    prob = e1_problem("ref")
    loss = tb.losses.make("fdpo", divergence="forward_kl", beta=1.0)
    sol = tb.solve(loss, tb.population(prob))
    assert sol.certificate <= ACCEPT
    assert tb.metrics.tv(sol.logp, loss.target(prob)) <= 1e-9
    reference, _, unbounded = minimise(objective_of("fdpo", {"beta": 1.0, "divergence": "forward_kl"}, prob), 0, starts=3)
    assert not unbounded and sol.value <= reference + VALUE_TOL


@pytest.mark.parametrize("seed", range(4))
def test_bpo_ba_lambda2_minimiser_is_pistar(seed, overflowing_start):
    """BPO's minimiser is π*_β = π_ref·e^{r/β}/Z for every generator (arXiv 2505.19601, Thm. 2)."""
    prob = tb.Problem.random(tb.FlatSpace(4), prompts=2, seed=seed)
    sol = tb.solve(tb.losses.make("bpo", h="ba", lam=2.0, beta=1.0), tb.population(prob))
    logits = prob.ref_logp.numpy() + prob.reward.numpy()
    pistar = logits - logsumexp(logits, axis=-1, keepdims=True)
    assert np.abs(sol.logp.numpy() - pistar).max() <= 1e-7     # certificate 1e-8, Hessian ≳ 0.1 here


@pytest.mark.parametrize("ulps", [0, 1, 3])
def test_simpo_unequal_lengths_does_not_depend_on_the_last_bit(ulps):
    """γ > 0, the top-reward response of length 1: the margin form is declared, not probed, so a
    few ulps in π_ref change nothing; not convex in the logits, convex in the margin scores."""
    lengths = [2.0, 3.0, 4.0, 1.0]
    ref = np.log(E1_REF)
    for _ in range(ulps):
        ref = np.nextafter(ref, np.inf)
    prob = tb.Problem(tb.FlatSpace(4, lengths=lengths), torch.tensor(ref[None]), reward=torch.tensor(E1_REWARD[None]),
                      pair_dist="ref")
    loss = tb.losses.make("simpo", beta=2.0, gamma=0.5)
    sol = tb.solve(loss, tb.population(prob))
    assert sol.case == "convex" and loss.solver_case == "convex" and loss.convex is False
    reference, _, _ = minimise(objective_of("simpo", {"beta": 2.0, "gamma": 0.5}, prob, lengths), ulps)
    assert sol.value <= reference + VALUE_TOL
    assert sol.certificate <= ACCEPT


def test_simpo_one_sided_record_is_unbounded_with_a_direction():
    prob = e1_problem(lengths=[1.0, 2.0, 3.0, 4.0])
    with pytest.raises(tb.NoFiniteMinimum, match=r"record \(chosen 2, rejected 1\).*responses \[2\]"):
        tb.solve(tb.losses.make("simpo", beta=2.0, gamma=0.5), tb.Pairs.from_records(prob, [(0, 2, 1)]))


def test_dpop_does_not_stop_at_the_reference_policy():
    """P = 2, Y = 6, uniform pairs, β = 1, λ = 5: π_ref (value log 2) is a kink point, not the
    minimum; the independent minimiser finds a lower point."""
    prob = tb.Problem.random(tb.FlatSpace(6), prompts=2, seed=32, pair_dist="uniform")
    hyper = {"beta": 1.0, "lam": 5.0}
    sol = tb.solve(tb.losses.make("dpop", **hyper), tb.population(prob))
    reference, _, _ = minimise(objective_of("dpop", hyper, prob), 32, starts=3, kinked=True)
    assert reference < np.log(2) - 1e-3
    assert sol.value <= reference + VALUE_TOL
    assert sol.certificate <= ACCEPT and "Clarke" in sol.message


def test_solve_failed_carries_the_best_point(monkeypatch):
    """With an impossible tolerance no candidate is accepted: SolveFailed, a RuntimeError (not a
    ValueError: the input was valid), with the best point, its certificate and what was tried."""
    monkeypatch.setattr(smooth, "ACCEPT", 0.0)
    prob = e1_problem()
    with pytest.raises(tb.SolveFailed) as info:
        tb.solve(tb.losses.make("apo_down", beta=1.0), tb.population(prob), restarts=2)
    err = info.value
    assert isinstance(err, RuntimeError) and not isinstance(err, ValueError)
    assert err.logp.shape == (1, 4) and np.isclose(torch.logsumexp(err.logp, -1).item(), 0.0, atol=1e-12)
    assert err.certificate > 0 and err.tolerance == 0.0 and len(err.tried) >= 2
