"""``tb.solve`` against an independent NumPy/SciPy minimiser on random problems, every registered loss.

The reference (``independent_losses``) only evaluates real points, so its value is at or above the
infimum: solve's certified value must not exceed it by more than VALUE_TOL·(1 + |v|). VALUE_TOL:
solve stops at a certificate ≤ 1e-8 in the logit gradient, which puts its value within
~cert²/(2λ_min) ≲ 1e-10 of a local minimum for curvatures λ_min ≳ 1e-6, and float64 sums of ≤ 110
terms of size ≤ 100 are exact to ~1e-12; 1e-8 covers both. Unboundedness must agree both ways
(reference unbounded ⇔ NoFiniteMinimum). Stateful losses (alpha_dpo, bco, kto; beta_dpo's
full-batch state is β₀) have a fixed point, not a minimum, as their population optimum, and a
problem can have several (bco with a running δ does): the state is computed here in NumPy at
solve's answer, solve's value must equal the independent objective there with that state, and no
point may be lower with that state held fixed. List losses are checked as pair losses (a list of
two); token-level losses on SequenceSpace(2, 2) with independently computed per-step views.
The fast test runs 24 draws; the slow one 264 (each of the 88 cases of ``stress_cases.CASES``
3 times; 1.5–4 minutes single-threaded, measured on a shared 2-core machine).
"""
import numpy as np
import pytest
from independent_losses import KINKED, minimise
from stress_cases import CASES, case

import toybench as tb
from toybench.solve import ACCEPT

VALUE_TOL = 1e-8
SAME_VALUE = 1e-9
"""solve's reported value against the independent formula at solve's point (float64 rounding of
two different formula orderings, values ≤ 100)."""


def check(index: int, seed: int) -> str:
    loss, pairs, objective = case(index, seed)
    where = f"{CASES[index % len(CASES)]} seed {seed}"
    try:
        sol = tb.solve(loss, pairs, seed=seed)
    except (tb.NoFiniteMinimum, tb.SolveFailed) as err:
        sol = err
    point = objective.ref if isinstance(sol, tb.NoFiniteMinimum) else np.maximum(sol.logp.numpy(), -700.0)
    if objective.state(point) is not None:
        # a fixed point (there may be several): π minimises F(·; state(π)), the state computed
        # here in NumPy at solve's answer (at π_ref, where solve's first round proved unboundedness)
        objective = objective.with_state(objective.state(point))
    reference, _, unbounded = minimise(objective, seed, kinked=loss.name in KINKED)
    if isinstance(sol, tb.NoFiniteMinimum):
        assert unbounded, f"{where}: NoFiniteMinimum but the independent minimiser reached {reference}: {sol}"
        return "unbounded"
    assert not unbounded, f"{where}: solve gave {type(sol).__name__} on an unbounded objective"
    if isinstance(sol, tb.SolveFailed):
        assert objective(point) >= reference - VALUE_TOL * (1 + abs(reference))
        return "failed"
    assert sol.certificate <= ACCEPT
    assert objective(point) == pytest.approx(sol.value, rel=SAME_VALUE, abs=SAME_VALUE), where
    assert sol.value <= reference + VALUE_TOL * (1 + abs(reference)), (
        f"{where}: solve {sol.value!r} above reference {reference!r}")
    return "certified"


def test_every_registered_loss_has_stress_cases():
    assert {name for name, _ in CASES} == set(tb.losses.names())


def test_a_deep_finite_minimum_is_not_called_unbounded():
    """bpo's Basu family (λ = 2) on a well-separated draw: per record unbounded, per pair of orders
    p·L(z) + (1 − p)·L(−z) has its minimum near −p³/(2(1 − p)²) (large p), here below −1e3; solve certifies it and
    the reference must not take it for a run to −∞."""
    assert CASES[195 % len(CASES)] == ("bpo", {"beta": 1.0, "h": "ba", "lam": 2.0})
    assert check(195, 5195) == "certified"


@pytest.mark.parametrize("draw", range(24))
def test_solve_matches_independent_minimiser_fast(draw):
    check(7 * draw, 1000 + draw)


@pytest.mark.slow
def test_solve_matches_independent_minimiser_on_264_draws():
    outcomes = [check(draw, 5000 + draw) for draw in range(264)]
    assert outcomes.count("failed") <= 0.05 * len(outcomes), outcomes
