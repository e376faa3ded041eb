"""Kinked losses (``Loss.kink``): a smooth constrained reformulation, then the kink face.

A loss that bends through relu(σ·g_y) of one log-ratio per record and is nondecreasing in that
relu term equals, at the optimum, the smooth problem in (s, t) with the relu replaced by a slack
t_y ≥ max(0, σ·g_y(s)) (``Loss.relaxed``): minimising pushes t down onto the max. It is solved
by SLSQP (Kraft 1988, through SciPy). Responses that end on their kink (|g_y| within a window)
are then pinned exactly at g_y = 0 and the rest re-optimised by L-BFGS, so that the answer sits
exactly on the kink face where the Clarke certificate of ``certify`` applies. Evidence: derived.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize

from ..objective import record_inputs
from .local import lbfgs
from .task import SURROGATE_LOGP, Task

WINDOWS = (1e-9, 1e-7, 1e-5, 1e-3)
"""|g_y| below which a response is tried pinned on its kink (each window gives one candidate)."""
FACE_GTOL, FACE_PASSES = 1e-13, 2
"""L-BFGS on a kink face runs to max|∇| ≤ 1e-13 (well inside certify.ACCEPT), in two passes."""
SLSQP_OPTIONS = {"ftol": 1e-15, "maxiter": 1000}
MAIN = ("chosen_logp", "rejected_logp", "ref_chosen_logp", "ref_rejected_logp")


def slack_solve(task: Task, logits: torch.Tensor) -> tuple[torch.Tensor, float]:
    """(logits, objective) from SLSQP on the slack reformulation, started at ``logits``."""
    role, sign = task.base.kink
    index = (task.chosen_index if role == "chosen" else task.rejected_index).cpu()
    size = task.P * task.Y
    ref = task.ref.cpu()
    extras = {k: v for k, v in task.inputs.items() if k not in MAIN}
    weight = task.weight.cpu()

    def split(x):
        x = torch.as_tensor(x, dtype=torch.float64)
        return x[:size].reshape(task.P, task.Y), x[size:]

    def value(x):
        with torch.enable_grad():
            point = torch.as_tensor(x, dtype=torch.float64).requires_grad_(True)
            s, t = point[:size].reshape(task.P, task.Y), point[size:]
            inputs = record_inputs(task.loss, torch.log_softmax(s, -1)[None], task.pairs)
            per_record = task.base.relaxed(*(inputs[k] for k in MAIN), slack=t[index][None], **extras)[0]
            total = (weight * per_record).sum()
            grad, = torch.autograd.grad(total, point)
        return float(total.detach()), grad.numpy()

    def constraint(x):
        s, t = split(x)
        return (t - sign * (torch.log_softmax(s, -1) - ref).reshape(-1)).numpy()

    def constraint_jac(x):
        s, _ = split(x)
        pi = torch.softmax(s, -1).numpy()
        blocks = [np.eye(task.Y) - np.outer(np.ones(task.Y), pi[p]) for p in range(task.P)]
        jac_s = -sign * _block_diagonal(blocks)
        return np.hstack([jac_s, np.eye(size)])

    start = torch.where(torch.isfinite(logits), logits, SURROGATE_LOGP).cpu()
    slack = (sign * (torch.log_softmax(start, -1) - ref)).clamp_min(0).reshape(-1)
    x0 = np.concatenate([start.reshape(-1).numpy(), slack.numpy()])
    found = minimize(value, x0, jac=True, method="SLSQP", bounds=[(None, None)] * size + [(0.0, None)] * size,
                     constraints=[{"type": "ineq", "fun": constraint, "jac": constraint_jac}], options=SLSQP_OPTIONS)
    s, _ = split(found.x)
    logits = s.to(task.ref.device)
    return logits, task.value(torch.log_softmax(logits, -1))


def _block_diagonal(blocks):
    n = sum(b.shape[0] for b in blocks)
    out, at = np.zeros((n, n)), 0
    for b in blocks:
        out[at:at + b.shape[0], at:at + b.shape[0]] = b
        at += b.shape[0]
    return out


def face_candidates(task: Task, logp: torch.Tensor) -> list[torch.Tensor]:
    """For each window, ``logp`` with the responses within it of their kink pinned at g = 0
    exactly and the others re-optimised by L-BFGS (distinct pinned sets only)."""
    gap = (logp - task.ref).abs()
    seen, out = set(), []
    for window in WINDOWS:
        pinned = gap < window
        key = tuple(pinned.reshape(-1).tolist())
        if key in seen or not bool(pinned.any()):
            continue
        seen.add(key)
        out.append(_on_face(task, logp, pinned))
    return out


def _on_face(task: Task, logp: torch.Tensor, pinned: torch.Tensor) -> torch.Tensor:
    rest = torch.log1p(-torch.where(pinned, task.ref.exp(), 0.0).sum(-1, keepdim=True).clamp(max=1 - 1e-16))

    def to_logp(free_logits):
        return torch.where(pinned, task.ref, rest + torch.log_softmax(free_logits.masked_fill(pinned, -1e4), -1))

    free_logits = torch.where(torch.isneginf(logp), SURROGATE_LOGP, logp)
    for _ in range(FACE_PASSES):   # a fresh L-BFGS memory per pass; the second tightens the first
        free_logits, _ = lbfgs(task, free_logits, to_logp, gtol=FACE_GTOL)
    return to_logp(free_logits)
