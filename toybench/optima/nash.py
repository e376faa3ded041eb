"""The Nash equilibrium of the β-KL-regularised preference game (general preferences allowed)."""
from __future__ import annotations

import math

import torch

from .._checks import check_positive, check_range


def nash(prob, beta, damping: float = 0.5, tol: float = 1e-16, max_iter: int = 100000):
    """Equilibrium of the β-KL-regularised preference game, π = π_ref·exp(P(y ≻ π)/β)/Z per prompt
    (log-probs ``[P, Y]``, float64), by the damped iteration
    π ← (1 − a)·π + a·softmax(log π_ref + M·π/β), a = ``damping``, from π_ref, until the largest
    change is ≤ ``tol`` or stops shrinking at float64 rounding. The undamped map need not contract
    for small τ: lower ``damping`` then (ValueError when ``max_iter`` is reached first).
    Source: derived here; Munos et al. (Nash-MD) [unverified]."""
    check_positive(beta, "beta")
    check_range(damping, "damping", low=0.0, high=1.0, low_open=True, allowed="0 < damping <= 1")
    pref, ref_logp = prob.preference_matrix(), prob.ref_logp
    policy = ref_logp.exp()
    smallest = math.inf
    for _ in range(max_iter):
        response = torch.softmax(ref_logp + torch.einsum("pab,pb->pa", pref, policy) / beta, -1)
        change = float((response - policy).abs().max())
        policy = (1 - damping) * policy + damping * response
        if change <= tol or (change >= smallest and change < 1e-13):
            return policy.log()
        smallest = min(smallest, change)
    raise ValueError(f"nash did not converge in {max_iter} iterations (last change {change:.3g}); "
                     "lower damping")
