"""Shared pieces of closed-form targets."""
from __future__ import annotations

import torch

from .._checks import hyper_values
from ..graph import component_labels, spread_free_parts


def is_zero(noise) -> bool:
    return bool((hyper_values(noise, "noise") == 0).all())


def potential_target(prob, log_ratio: torch.Tensor) -> torch.Tensor:
    """log π with log π/π_ref = ``log_ratio`` + one constant per comparison component,
    each component at its π_ref mass (``[..., P, Y]``)."""
    return spread_free_parts(prob.ref_logp, log_ratio, component_labels(prob.pair_weights()))
