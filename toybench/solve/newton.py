"""Convex margin losses with an affine margin: damped Newton in the margin scores.

With Δ_rec = k_w·ℓ_w − k_l·ℓ_l + o_rec (``Loss.margin_coefficients``) put v_y = k_y·ℓ_y: the
objective is Σ w·L(v_w − v_l + o), convex in v when L is convex in Δ, and blind to one constant
per comparison component C (any v is normalised by that constant: ℓ_y = (v_y + c_C)/k_y with
Σ_C π = π_ref(C)). Damped Newton with the Hessian H = Σ w·L''(Δ)(e_w − e_l)(e_w − e_l)ᵀ, the
gauge fixed by adding Σ_C 1_C1_Cᵀ/|C|, per-prompt Armijo backtracking, stop at max|∇| ≤ tol.
Evidence: derived (Boyd & Vandenberghe, Convex Optimization, 2004, Section 9.5).
"""
from __future__ import annotations

import torch

from .._numerics import bisect
from ..graph import spread_free_parts
from .certify import certificate
from .task import SLOPE_TOL, SURROGATE_LOGP, Found, Task, free_parts_note

DIVERGED_MARGIN = 1e4
"""|β·Δ| past which Newton gives up (the caller then tries other methods)."""
POLISH = 1e-2
"""Newton runs on to POLISH·tol while it still halves the gradient."""


def solve_newton(task: Task, options: dict) -> Found | None:
    """Newton in v from π_ref (or ``options["init"]``); None when it runs off or stalls."""
    init = options.get("init")
    start = task.ref if init is None else torch.where(torch.isneginf(init), SURROGATE_LOGP, init)
    v = task.slope * start
    gauge = _gauge(task.labels)
    index = _hessian_index(task)
    evaluate = lambda v: _newton_terms(task, v, index)  # noqa: E731
    value, grad, hess, margins = evaluate(v)
    previous, steps = torch.inf, 0
    for _ in range(options["max_iter"]):
        largest = float(grad.abs().max())
        if largest <= POLISH * options["tol"] or (largest <= options["tol"] and largest >= previous / 2):
            break   # well inside the tolerance, or inside it and no longer improving (float64 floor)
        previous = largest
        scale = hess.diagonal(dim1=-2, dim2=-1).abs().amax(-1)
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        step, singular = torch.linalg.solve_ex(hess + scale[:, None, None] * gauge, -grad)
        if bool(singular.any()):   # curvature gone with a gradient left: a linear tail
            return None
        slope_along = (grad * step).sum(-1)
        size = torch.ones(task.P, dtype=torch.float64, device=v.device)
        for _ in range(60):
            trial = evaluate(v + size[:, None] * step)
            armijo = trial[0] <= value + 1e-4 * size * slope_along
            at_floor = ((trial[0] - value).abs() <= 1e-12 * value.abs()) & (
                trial[1].abs().amax(-1) < grad.abs().amax(-1))   # value flat to rounding: judge by |∇|
            accept = armijo | at_floor
            if bool(accept.all()):
                break
            size = torch.where(accept, size, size / 2)
        else:   # prompts with no acceptable step stay where they are
            size = torch.where(accept, size, 0.0)
            trial = evaluate(v + size[:, None] * step)
        if not bool((size > 0).any()):
            break
        v, steps = v + size[:, None] * step, steps + 1
        value, grad, hess, margins = trial
        if not bool(torch.isfinite(value).all()) or float((task.beta * margins).abs().max()) > DIVERGED_MARGIN:
            return None
    logp = normalise(v, task.slope, task.labels, task.ref)
    residual, how = certificate(task, logp)
    bound = 2 * hess.abs().sum(-1).amax(-1) + 1
    hessian_min = float(torch.linalg.eigvalsh(hess + bound[:, None, None] * gauge).amin())
    message = (f"damped Newton in the margin scores ({steps} steps, max|∇_v| {float(grad.abs().max()):.2g}); "
               f"certificate: {how}; {free_parts_note(task)}")
    return Found(logp, task.value(logp), "convex", residual, task.connected, hessian_min, 1, message)


def _newton_terms(task: Task, v: torch.Tensor, index: torch.Tensor):
    """Per-prompt objective ``[P]``, gradient ``[P, Y]``, Hessian ``[P, Y, Y]`` in v, margins ``[N]``."""
    flat = v.reshape(-1)
    chosen_v, rejected_v = flat.gather(0, task.chosen_index), flat.gather(0, task.rejected_index)
    per_record, first, second = task.record_terms(chosen_v / task.chosen_slope, rejected_v / task.rejected_slope)
    margins = chosen_v - rejected_v + task.offset
    w = task.weight
    value = torch.zeros(task.P, dtype=torch.float64, device=v.device).index_add_(0, task.record_prompt, w * per_record)
    value = torch.where(torch.isnan(value), torch.inf, value)
    grad = torch.zeros_like(flat).index_add_(0, task.chosen_index, w * first).index_add_(0, task.rejected_index, -w * first)
    curvature = w * second
    hess = torch.zeros(task.P * task.Y * task.Y, dtype=torch.float64, device=v.device)
    hess.index_add_(0, index, torch.cat([curvature, curvature, -curvature, -curvature]))
    return value, grad.reshape(task.P, task.Y), hess.reshape(task.P, task.Y, task.Y), margins


def _hessian_index(task: Task) -> torch.Tensor:
    """Flat ``[P·Y·Y]`` positions of (w,w), (l,l), (w,l), (l,w) for every record."""
    base = task.record_prompt * task.Y * task.Y
    chosen = task.pairs.chosen[0].to(base.device)
    rejected = task.pairs.rejected[0].to(base.device)
    return torch.cat([base + chosen * task.Y + chosen, base + rejected * task.Y + rejected,
                      base + chosen * task.Y + rejected, base + rejected * task.Y + chosen])


def _gauge(labels: torch.Tensor) -> torch.Tensor:
    """Σ_C 1_C 1_Cᵀ/|C| per prompt ``[P, Y, Y]``: the directions the objective cannot see."""
    onehot = torch.nn.functional.one_hot(labels, int(labels.max()) + 1).to(torch.float64)   # [P, Y, K]
    sizes = onehot.sum(-2, keepdim=True).clamp_min(1)
    return (onehot / sizes) @ onehot.transpose(-1, -2)


def normalise(v: torch.Tensor, slope: torch.Tensor, labels: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """log π with ℓ_y = (v_y + c_C)/k_y, each component C at its π_ref mass (c_C by bisection;
    k ≡ 1 is ``spread_free_parts``)."""
    if bool(((slope - 1).abs() <= SLOPE_TOL).all()):
        return spread_free_parts(ref, v - ref, labels)
    members = torch.nn.functional.one_hot(labels, int(labels.max()) + 1).bool()             # [P, Y, K]
    log_mass = torch.logsumexp(torch.where(members, ref[..., None], -torch.inf), -2)        # [P, K]
    log_size = members.sum(-2).clamp_min(1).to(torch.float64).log()
    k, values = slope[..., None], v[..., None]

    def component_min(t):
        return torch.where(members, t, torch.inf).amin(-2)

    low = component_min(k * (log_mass - log_size)[:, None, :] - values)
    high = component_min(k * log_mass[:, None, :] - values)
    occupied = members.any(-2)
    low, high = torch.where(occupied, low, 0.0), torch.where(occupied, high, 0.0)

    def excess(shift):   # [P, K] -> log Σ_C e^ℓ − log π_ref(C), increasing in the shift
        logp = (values + shift[:, None, :]) / k
        return torch.logsumexp(torch.where(members, logp, -torch.inf), -2) - log_mass

    shift = bisect(excess, low, high).gather(1, labels)
    return (v + shift) / slope


