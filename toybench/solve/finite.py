"""Proofs that a population objective has no finite minimiser.

1. Structure (losses that declare ``falls_forever`` and an affine margin): in the effective
   record table D (``Loss.effective_table``, nonnegative), a record a ≻ b whose b cannot reach a
   along records is on no directed cycle. Let U be the responses that reach a. Raising the
   margin scores of U together raises every margin from U to outside it and leaves the others
   unchanged (no record leads into U from outside), strictly raising a ≻ b's: every per-record
   loss is nonincreasing along that ray and one strictly falls, so no point is a minimiser.
2. Negative cuts (effective tables with negative entries, DPO-type losses): along the direction
   1_S the objective Σ D(a,b)·sp(−βΔ_ab) changes asymptotically at the rate β·Σ_{a∉S, b∈S} D(a,b)
   (the Lovász extension of that cut function is the recession function), so a set S with a
   negative cut makes the objective unbounded below; none makes it bounded.
3. Certified recession: along a direction d the objective, evaluated in overflow-safe form at
   s + t·d for t = 1, 2, 4, …, 8192, falls at a steady linear rate: it is unbounded below.
Evidence: derived (convex analysis of the tabular objective; Rockafellar, Convex Analysis, 1970, Section 8).
"""
from __future__ import annotations

import itertools

import numpy as np
import torch

from ..graph import strong_component_labels
from .errors import NoFiniteMinimum
from .task import Task

TINY = 1e-12
"""Effective weights within TINY·max|D| of zero count as zero."""
MAX_CUT_RESPONSES = 16
"""Negative cuts are searched exhaustively (2^Y sets) up to this many responses per prompt."""
RAY = 2.0 ** np.arange(14)
"""Step lengths t of the recession check (unit max-abs direction in the logits)."""
STEADY = 0.1
"""Relative spread allowed between the last three secant slopes of a certified recession."""


def check_structure(task: Task) -> None:
    """Raise NoFiniteMinimum by rule 1 or 2 of the module docstring; return when neither applies."""
    if not task.base.falls_forever or task.slope is None:
        return
    table = task.base.effective_table(task.table)
    tiny = TINY * float(table.abs().max()) if table.numel() else 0.0
    if bool((table < -tiny).any()):
        _negative_cut(task, table, tiny)
        return
    edges = table > tiny
    strong = strong_component_labels(edges).to(edges.device)
    broken = edges & (strong[:, :, None] != strong[:, None, :])
    if bool(broken.any()):
        prompt, chosen, rejected = (int(i) for i in broken.nonzero()[0])
        reach = _reaching(edges[prompt].cpu().numpy(), chosen)
        raise NoFiniteMinimum(
            f"{task.where}prompt {prompt}, record (chosen {chosen}, rejected {rejected}): it has positive weight but "
            f"no chain of records leads from {rejected} back to {chosen}; raising the margin scores of responses "
            f"{sorted(reach)} together raises that margin and lowers none, and {task.base.name!r}'s loss keeps "
            f"falling as a margin grows, so there is no finite minimiser ({int(broken.sum())} such record(s); "
            "every record must lie on a directed cycle)")


def _reaching(edges: np.ndarray, target: int) -> set[int]:
    """Responses with a directed path of records (chosen → rejected) to ``target``, itself included."""
    found, todo = {target}, [target]
    while todo:
        node = todo.pop()
        for source in np.nonzero(edges[:, node])[0]:
            if int(source) not in found:
                found.add(int(source))
                todo.append(int(source))
    return found


def _negative_cut(task: Task, table: torch.Tensor, tiny: float) -> None:
    if task.Y > MAX_CUT_RESPONSES:
        return
    masks = np.array(list(itertools.product([0.0, 1.0], repeat=task.Y)))          # [2^Y, Y]
    for prompt in range(task.P):
        weights = table[prompt].cpu().numpy()
        cuts = (((1 - masks) @ weights) * masks).sum(1)                            # Σ_{a∉S, b∈S} D(a, b)
        best = int(np.argmin(cuts))
        if cuts[best] < -tiny * task.Y ** 2:
            inside = masks[best].astype(bool)
            crossing = np.where(~inside[:, None] & inside[None, :], weights, np.inf)
            chosen, rejected = divmod(int(np.argmin(crossing)), task.Y)
            raise NoFiniteMinimum(
                f"{task.where}prompt {prompt}, record (chosen {chosen}, rejected {rejected}): its effective weight "
                f"{weights[chosen, rejected]:.3g} is negative (the observed flip rate is below the loss's assumed one); "
                f"raising the log-probs of responses {np.nonzero(inside)[0].tolist()} together changes "
                f"{task.base.name!r}'s objective at the rate {task.beta * cuts[best]:.3g} < 0 per unit, so it is "
                "unbounded below")


def check_recession(task: Task, logits: torch.Tensor, direction: torch.Tensor, found_by: str) -> None:
    """Raise NoFiniteMinimum if the objective falls at a steady linear rate along ``direction``
    from ``logits`` (rule 3); return otherwise."""
    direction = direction - direction.mean(-1, keepdim=True)
    size = float(direction.abs().max())
    if not np.isfinite(size) or size == 0:
        return
    direction = direction / size
    values = np.array([task.value(torch.log_softmax(logits + t * direction, -1)) for t in RAY])
    if not np.isfinite(values).all():
        return
    slopes = np.diff(values) / np.diff(RAY)
    last = slopes[-3:]
    if not (slopes < 0).all() or last.max() >= 0 or np.ptp(last) > STEADY * abs(last.mean()):
        return
    prompt = int(direction.abs().amax(-1).argmax())
    raise NoFiniteMinimum(
        f"{task.where}prompt {prompt}: no finite minimiser: along the logit direction "
        f"{np.round(direction[prompt].cpu().numpy(), 3).tolist()} (found by {found_by}) {task.base.name!r}'s "
        f"objective falls at a steady rate {last.mean():.3g} per unit out to step {RAY[-1]:g} (evaluated in "
        "log-space), so it is unbounded below")
