"""Validation helpers for the public boundary, and hyperparameter broadcasting.

A hyperparameter is a Python number (shared by every run) or a ``[B]`` tensor (one value per
run). ``as_run_param`` turns it into something that broadcasts against a ``[B, ...]`` input.
"""
from __future__ import annotations

import math

import torch

Hyper = float | torch.Tensor


def hyper_values(value, name: str) -> torch.Tensor:
    """``value`` as a float64 tensor of shape [] or [B]; ValueError on anything else."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number or a [B] tensor, got a bool")
    try:
        tensor = torch.as_tensor(value, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{name} must be a number or a [B] tensor, got {value!r}") from err
    if tensor.ndim > 1:
        raise ValueError(f"{name} must be a scalar or a [B] tensor (one value per run), got shape {tuple(tensor.shape)}")
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{name} must be finite, got {value!r}")
    return tensor


def check_range(value, name: str, low=-math.inf, high=math.inf, low_open=False, high_open=False,
                allowed: str | None = None) -> None:
    """Raise ValueError unless every element of ``value`` lies in the stated interval."""
    tensor = hyper_values(value, name)
    below = (tensor <= low) if low_open else (tensor < low)
    above = (tensor >= high) if high_open else (tensor > high)
    if below.any() or above.any():
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        rule = allowed or f"{name} in {lo}{low}, {high}{hi}"
        raise ValueError(f"{name}={_show(value)} is not allowed; need {rule}")


BETA_RANGE = (1e-8, 1e8)
"""Meaningful values of a regularisation strength β (``beta``, ``beta_plus``, ...). Below 1e-8,
r/β exceeds 1e8 for O(1) rewards, so π*_β is already a point mass on argmax r to float64
precision, and β·Δ is below float32's resolution of a margin of order one, so float32 training
barely moves (β under ~1e-38 is 0 in float32); above 1e8, π*_β equals π_ref to within 1e-8·|r|
and β·Δ overflows float32 for |Δ| > 3e30. Outside this range a result says nothing about β."""


def check_positive(value, name: str) -> None:
    """``value`` > 0; a strength named ``beta...`` must also lie in ``BETA_RANGE``."""
    check_range(value, name, low=0.0, low_open=True, allowed=f"{name} > 0")
    if name.startswith("beta"):
        low, high = BETA_RANGE
        check_range(value, name, low=low, high=high,
                    allowed=f"{low:g} <= {name} <= {high:g} (outside it β·Δ under- or overflows float32 "
                            f"and π*_β is a point mass or π_ref to machine precision)")


def check_probability_rate(value, name: str) -> None:
    """A flip/smoothing rate: 0 <= value < 1/2."""
    check_range(value, name, low=0.0, high=0.5, high_open=True, allowed=f"0 <= {name} < 0.5")


def check_choice(value, name: str, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not one of {sorted(choices)}")


def run_count(*values) -> int | None:
    """The run count B implied by ``[B]`` hyperparameters (None when all are scalars)."""
    sizes = {int(torch.as_tensor(v).shape[0]) for v in values
             if isinstance(v, torch.Tensor) and v.ndim == 1}
    if len(sizes) > 1:
        raise ValueError(f"per-run hyperparameters disagree on the number of runs: {sorted(sizes)}")
    return sizes.pop() if sizes else None


def as_run_param(value, like: torch.Tensor):
    """Broadcast a scalar or ``[B]`` hyperparameter against ``like`` (shape ``[B, ...]``)."""
    if isinstance(value, torch.Tensor):
        if value.ndim == 0:
            return value.to(dtype=like.dtype, device=like.device)
        return value.to(dtype=like.dtype, device=like.device).reshape(-1, *([1] * (like.ndim - 1)))
    return value


def _show(value) -> str:
    if isinstance(value, torch.Tensor):
        return str(value.tolist())
    return repr(value)
