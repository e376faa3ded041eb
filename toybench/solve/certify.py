"""Optimality certificates on the simplex, for smooth and for kinked objectives.

For π = softmax(s) and F(ℓ) with ℓ = log π, ∂F/∂s = G − π·ΣG with G = ∂F/∂ℓ: at an interior
point the logit gradient is the KKT residual π_y(∂F/∂π_y − ν), ν = ΣG. At a response with
π_y = 0 the KKT condition is ∂F/∂π_y ≥ ν. A loss that bends through relu(±g_y) of a log-ratio
g_y = ℓ_y − ℓ^ref_y (``Loss.kink``) is a sum of maxima of smooth pieces near g_y = 0, so its
Clarke subdifferential in ℓ is the box G_y ∈ [left, right] on those coordinates; the
certificate is the smallest logit gradient over that box (a bounded least-squares problem),
zero exactly when 0 is a subgradient (Clarke, Optimization and Nonsmooth Analysis, 1983,
Prop. 2.3.12 and Thm. 2.3.10). Every certificate is relative: the residual divided by
max(1, max|G|), so a loss scaled by a large weight (DPOP's λ = 50) is held to the same number of
correct digits. Evidence: derived.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import lsq_linear

from ..objective import objective
from .task import SURROGATE_LOGP, Task

ACCEPT = 1e-8
"""A point is accepted only when its certificate (max-abs logit gradient, KKT residual or
minimum-norm subgradient) is at most this; objectives are weighted sums with total weight ≲ 1."""
INFINITE_SLOPE = 1e100
"""|∂F/∂π_y| at the −700 stand-in beyond which it is taken as infinite (a power of e^−700)."""
KINK_STEP = 1e-12
"""Offset of g_y from its kink at which the one-sided derivatives are read (error O(1e-10·F''))."""


def logp_gradient(task: Task, logp: torch.Tensor) -> torch.Tensor:
    """G = ∂F/∂ℓ ``[P, Y]`` with the log-probs as free coordinates (boundary at the stand-in)."""
    with torch.enable_grad():
        point = torch.where(torch.isneginf(logp), SURROGATE_LOGP, logp).detach().requires_grad_(True)
        grad, = torch.autograd.grad(objective(task.loss, point[None], task.pairs)[0], point)
    return grad


def on_kink(task: Task, logp: torch.Tensor) -> torch.Tensor:
    """Responses sitting exactly on their declared kink g_y = 0 (bool ``[P, Y]``)."""
    if task.base.kink is None:
        return torch.zeros_like(logp, dtype=torch.bool)
    return logp == task.ref


def certificate(task: Task, logp: torch.Tensor) -> tuple[float, str]:
    """(certificate, what it is) at ``logp`` (−inf = boundary)."""
    boundary, kinked = torch.isneginf(logp), on_kink(task, logp)
    pi = torch.where(boundary, 0.0, logp.exp())
    if bool(kinked.any()):
        shift = torch.where(kinked, KINK_STEP, 0.0)
        right, left = logp_gradient(task, logp + shift), logp_gradient(task, logp - shift)
        grad = torch.where(kinked, (left + right) / 2, logp_gradient(task, logp))
        grad, residual = _smallest(grad, torch.minimum(left, right), torch.maximum(left, right), kinked, pi)
        how = "minimum-norm subgradient in the logits (Clarke box at the kinks)"
    else:
        grad = logp_gradient(task, logp)
        residual = float((grad - pi * grad.sum(-1, keepdim=True)).abs().max())
        how = "max-abs gradient in the logits"
    if bool(boundary.any()):
        grad_prob = grad * torch.exp(-torch.where(boundary, SURROGATE_LOGP, logp))
        if bool((grad_prob.abs() < INFINITE_SLOPE).all()):
            nu = torch.where(boundary, 0.0, grad).sum(-1, keepdim=True)
            residual = max(residual, float(torch.where(boundary, (nu - grad_prob).clamp_min(0), 0.0).max()))
            how += " plus the KKT sign condition ∂F/∂π ≥ ν at the boundary"
    return residual / max(1.0, float(grad.abs().max())), how + " (relative to max(1, max|∂F/∂ℓ|))"


def _smallest(grad, low, high, kinked, pi):
    """Per prompt, the G in the box (``low``/``high`` on kinked coordinates, ``grad`` elsewhere)
    with the smallest ‖G − π·ΣG‖₂; returns (that G, its max-abs logit gradient)."""
    grad, low, high = grad.clone(), low.cpu().numpy(), high.cpu().numpy()
    worst = 0.0
    for p in range(grad.shape[0]):
        free = kinked[p].cpu().numpy()
        jac = np.eye(grad.shape[1]) - np.outer(pi[p].cpu().numpy(), np.ones(grad.shape[1]))
        fixed = jac[:, ~free] @ grad[p].cpu().numpy()[~free]
        if free.any():
            lo, hi = low[p, free], high[p, free]
            fit = lsq_linear(jac[:, free], -fixed, bounds=(lo, np.maximum(hi, lo + 1e-300)), method="bvls",
                             tol=1e-15, lsmr_tol=None)
            chosen = np.clip(fit.x, lo, hi)
            grad[p, torch.as_tensor(free)] = torch.as_tensor(chosen, dtype=grad.dtype)
            fixed = fixed + jac[:, free] @ chosen
        worst = max(worst, float(np.abs(fixed).max()))
    return grad, worst
