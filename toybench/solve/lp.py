"""Hinge-type losses relu(1 − β·Δ) on an affine margin: a linear program.

min Σ w·t, t ≥ 0, t ≥ 1 − βΔ is solved by HiGHS through its dual, a circulation with one balance
row per response (far smaller than the primal); the scores v are minus 1/β times the balance
rows' marginals, the certificate is the primal–dual gap, and uniqueness is decided by minimising
and maximising a random linear functional of v over the optimal face (complementary slackness
with the optimal dual). Evidence: derived (LP duality; Huangfu & Hall 2018 for HiGHS).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse
import torch
from scipy.optimize import linprog

from .newton import normalise
from .task import Found, Task, free_parts_note

LP_SLACK = 1e-12
"""Relative distance of a dual flow λ_r from 0 or w_r below which it counts as at that bound."""
LP_UNIQUE_TOL = 1e-8
"""Spread of a random functional over the LP's optimal face above which it is non-unique."""
LP_OPTIONS = {"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10}


def solve_lp(task: Task, options: dict) -> Found | None:
    """Hinge as an LP, solved through its dual, a circulation: max Σ λ_r(1 − β·o_r) over
    0 ≤ λ_r ≤ w_r with Σ_{r: y chosen} λ_r = Σ_{r: y rejected} λ_r for every response y; the
    scores v are (minus 1/β times) the HiGHS marginals of those balance rows. The primal
    min Σ w·t, t ≥ 0, t ≥ 1 − βΔ is then evaluated at v, and the gap between the two values is
    the certificate (zero at an exact optimum)."""
    if task.slope is None:
        raise ValueError(f"loss {task.base.name!r}: the LP route needs a margin affine in the log-probs")
    live = (task.weight > 0).cpu().numpy()
    weight = task.weight.cpu().numpy()[live]
    chosen, rejected = task.chosen_index.cpu().numpy()[live], task.rejected_index.cpu().numpy()[live]
    offset = task.offset.cpu().numpy()[live]
    n, nv, beta = len(weight), task.P * task.Y, task.beta
    balance = scipy.sparse.csr_matrix((np.concatenate([np.ones(n), -np.ones(n)]),
                                       (np.concatenate([chosen, rejected]), np.concatenate([np.arange(n)] * 2))),
                                      shape=(nv, n))
    gain = 1 - beta * offset
    dual = linprog(-gain, A_eq=balance, b_eq=np.zeros(nv), bounds=np.stack([np.zeros(n), weight], 1),
                   method="highs-ds", options=LP_OPTIONS)
    if dual.status != 0:
        return None
    scores = -dual.eqlin.marginals / beta
    margins = scores[chosen] - scores[rejected] + offset
    primal = float(weight @ np.maximum(0.0, 1 - beta * margins))
    gap = abs(primal + dual.fun)
    unique = _lp_unique(task, dual.x, weight, chosen, rejected, offset, options["seed"])
    v = torch.as_tensor(scores, dtype=torch.float64, device=task.ref.device).reshape(task.P, task.Y)
    logp = normalise(v, task.slope, task.labels, task.ref)
    note = "optimum unique" if unique else "optimum NOT unique (one optimal vertex returned)"
    message = f"HiGHS LP (dual circulation), duality gap {gap:.2g}; {note}; {free_parts_note(task)}"
    return Found(logp, task.value(logp), "lp", gap, unique and task.connected, None, 1, message)


def _lp_unique(task: Task, flow, weight, chosen, rejected, offset, seed: int) -> bool:
    """Min and max of a random functional of the unpinned scores over the optimal face.

    With an optimal dual λ fixed, complementary slackness describes every optimal v:
    β·Δ_r = 1 where 0 < λ_r < w_r, β·Δ_r ≥ 1 where λ_r = 0, β·Δ_r ≤ 1 where λ_r = w_r
    (equivalent to the face {Σ w·t ≤ v*} of the primal, and far smaller)."""
    nv, beta = task.P * task.Y, task.beta
    at_zero, at_top = flow <= LP_SLACK * weight, flow >= (1 - LP_SLACK) * weight
    inside = ~(at_zero | at_top)

    def rows(mask, sign):
        count = int(mask.sum())
        matrix = scipy.sparse.csr_matrix((np.concatenate([np.full(count, sign * beta), np.full(count, -sign * beta)]),
                                          (np.concatenate([np.arange(count)] * 2),
                                           np.concatenate([chosen[mask], rejected[mask]]))), shape=(count, nv))
        return matrix, sign * (1 - beta * offset[mask])

    equal, equal_rhs = rows(inside, 1.0)
    above, above_rhs = rows(at_zero, -1.0)     # −β(v_w − v_l) ≤ β·o − 1
    below, below_rhs = rows(at_top, 1.0)       #  β(v_w − v_l) ≤ 1 − β·o
    labels = task.labels.cpu().numpy()
    pinned = np.zeros((task.P, task.Y), dtype=bool)
    for p in range(task.P):
        pinned[p, np.unique(labels[p], return_index=True)[1]] = True
    pinned = pinned.reshape(-1)
    bounds = [(0.0, 0.0) if pin else (None, None) for pin in pinned]
    gen = torch.Generator().manual_seed(seed)
    direction = torch.randn(nv, generator=gen, dtype=torch.float64).numpy() * ~pinned
    a_ub = scipy.sparse.vstack([above, below]).tocsr()
    b_ub = np.concatenate([above_rhs, below_rhs])
    ends = [linprog(sign * direction, A_ub=a_ub if a_ub.shape[0] else None, b_ub=b_ub if a_ub.shape[0] else None,
                    A_eq=equal if equal.shape[0] else None, b_eq=equal_rhs if equal.shape[0] else None,
                    bounds=bounds, method="highs", options=LP_OPTIONS) for sign in (1.0, -1.0)]
    if any(end.status != 0 for end in ends):
        return False
    return abs(ends[0].fun + ends[1].fun) <= LP_UNIQUE_TOL

