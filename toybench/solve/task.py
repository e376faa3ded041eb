"""One run of ``solve``: the loss (state bound), its records, record table, comparison components
and the affine margin form the loss declares (``Loss.margin_coefficients``)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .._numerics import flat_index
from ..graph import component_labels
from ..objective import call_loss, objective, record_inputs

SURROGATE_LOGP = -700.0
"""Stand-in log-prob of a boundary response where a finite value is needed (e^−700 ≈ 1e-304)."""
SLOPE_TOL = 1e-12
"""Relative disagreement allowed between the declared margin slopes of one response."""


class Bound:
    """A stateful loss with its state fixed: calls pass ``state=``; attributes forward."""

    def __init__(self, loss, state):
        self.loss, self.state = loss, state

    def __getattr__(self, name):
        return getattr(self.loss, name)

    def __call__(self, *args, **inputs):
        return self.loss(*args, state=self.state, **inputs)


class Task:
    """One run: P, Y, π_ref, flat record indices (prompt·Y + response), weights, the record table
    ``[P, Y, Y]``, component labels, and (slope k ``[P, Y]``, offset o ``[N]``) when the margin is
    Δ_rec = k_w·ℓ_w − k_l·ℓ_l + o_rec with one positive slope per response."""

    def __init__(self, loss, pairs, where: str, state=None):
        self.base, self.pairs, self.where = loss, pairs, where
        self.loss = loss if state is None else Bound(loss, state)
        prob = pairs.problem
        self.P, self.Y, self.ref = prob.P, prob.Y, prob.ref_logp.to(pairs.weight.device)
        self.weight = pairs.weight[0].to(torch.float64)
        self.chosen_index = flat_index(pairs.prompt, pairs.chosen, prob.Y)[0].to(self.ref.device)
        self.rejected_index = flat_index(pairs.prompt, pairs.rejected, prob.Y)[0].to(self.ref.device)
        self.record_prompt = pairs.prompt[0].to(self.ref.device)
        self.table = pairs.record_table()[0]                                    # [P, Y, Y]
        self.labels = component_labels(self.table > 0).to(self.ref.device)       # [P, Y]
        self.beta = float(getattr(loss, "beta", 1.0))
        self.inputs = record_inputs(self.loss, self.ref[None], pairs)
        self.slope, self.offset = self._margin_form()
        if self.slope is not None:
            flat = self.slope.reshape(-1)
            self.chosen_slope, self.rejected_slope = flat.gather(0, self.chosen_index), flat.gather(0, self.rejected_index)

    @property
    def connected(self) -> bool:
        return bool((self.labels == 0).all())

    def _margin_form(self):
        coefficients = self.base.margin_coefficients(self.inputs)
        if coefficients is None:
            return None, None
        chosen, rejected, offset = (c.expand_as(self.inputs["chosen_logp"])[0].to(torch.float64) for c in coefficients)
        index, slopes = torch.cat([self.chosen_index, self.rejected_index]), torch.cat([chosen, rejected])
        high = torch.full((self.P * self.Y,), -torch.inf, dtype=torch.float64, device=slopes.device)
        high = high.scatter_reduce(0, index, slopes, "amax")
        low = torch.full_like(high, torch.inf).scatter_reduce(0, index, slopes, "amin")
        seen = torch.isfinite(high)
        if not bool((low[seen] > 0).all()) or bool(((high - low)[seen] > SLOPE_TOL * high[seen]).any()):
            return None, None
        return torch.where(seen, high, torch.ones_like(high)).reshape(self.P, self.Y), offset

    def value(self, logp: torch.Tensor) -> float:
        """The objective at ``logp``; where −inf entries meet (−inf − (−inf) = NaN), its limit
        with the boundary at the −700 stand-in."""
        value = float(objective(self.loss, logp[None], self.pairs)[0])
        if value != value:
            value = float(objective(self.loss, torch.where(torch.isneginf(logp), SURROGATE_LOGP, logp)[None],
                                    self.pairs)[0])
        return value

    def prompt_values(self, logp: torch.Tensor) -> torch.Tensor:
        """The objective's per-prompt parts ``[P]`` (it is a sum over prompts)."""
        per_record = call_loss(self.loss, record_inputs(self.loss, logp[None], self.pairs))[0]
        parts = torch.zeros(self.P, dtype=torch.float64, device=logp.device)
        return parts.index_add_(0, self.record_prompt, self.weight * per_record)

    def record_terms(self, chosen_logp, rejected_logp, order: int = 2):
        """Per-record loss and its first (and second) derivative in the margin Δ, ``[N]`` each."""
        inputs = dict(self.inputs, rejected_logp=rejected_logp[None])
        with torch.enable_grad():
            shift = torch.zeros_like(chosen_logp, requires_grad=True)
            inputs["chosen_logp"] = (chosen_logp + shift / self.chosen_slope)[None]
            per_record = call_loss(self.loss, inputs)[0]
            first, = torch.autograd.grad(per_record.sum(), shift, create_graph=order > 1)
            if order == 1 or not first.requires_grad:
                return per_record.detach(), first.detach(), torch.zeros_like(first)
            second, = torch.autograd.grad(first.sum(), shift)
        return per_record.detach(), first.detach(), second


def tv(p_logp: torch.Tensor, q_logp: torch.Tensor) -> float:
    """Largest per-prompt total variation between two log-prob tables."""
    return float(0.5 * (p_logp.exp() - q_logp.exp()).abs().sum(-1).max())


@dataclass
class Found:
    """One run's answer before the runs are stacked into a ``Solution``."""

    logp: torch.Tensor
    value: float
    case: str
    certificate: float
    identified: bool
    hessian_min: float | None
    restarts: int
    message: str


def free_parts_note(task: Task) -> str:
    if task.connected:
        return "comparison graph connected in every prompt"
    return "free parts (unseen responses or disconnected components) kept at their π_ref mass"
