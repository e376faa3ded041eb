"""Multi-start minimisation in the logits with certified acceptance (convex and non-convex).

Each round runs L-BFGS from several starts (π_ref, uniform, random logits from ``seed``); a start
whose logits run apart past DIVERGED or whose objective stops being finite is checked for a
certified recession direction (``finite.check_recession``) and otherwise dropped. The ends near
the best value are polished (Newton on the support) and, for kinked losses, re-solved through
the slack reformulation instead of L-BFGS (SLSQP, ``kinks``) and pinned onto their kink face. A candidate is accepted only
when its certificate is at most ``certify.ACCEPT`` and no candidate found has a lower objective
(for a convex objective every certified point is a global minimiser). Otherwise a second round
with four times the starts runs, and then ``SolveFailed`` is raised with the best point.
Evidence: derived.
"""
from __future__ import annotations

import numpy as np
import torch

from . import kinks
from .certify import ACCEPT, certificate
from .errors import SolveFailed
from .finite import check_recession
from .local import lbfgs, polish, project, smooth_hessian_min, value_and_grad
from .task import SURROGATE_LOGP, Found, Task, tv

DIVERGED = 1e4
"""Logit spread past which an L-BFGS run is taken to have run off to infinity."""
POLISH_WINDOW = 1e-6
"""Ends within POLISH_WINDOW·(1 + |best|) of the best value are polished."""
SAME_VALUE, SAME_POLICY = 1e-10, 1e-6
"""Certified answers within SAME_VALUE·(1 + |v|) in objective but more than SAME_POLICY apart in
TV: not identified. An uncertified point lower than the best certified one by more than
SAME_VALUE·(1 + |v|) blocks acceptance."""
TILTS = (1.0, 4.0)
"""Strengths of the data-tilted starts (logit change of the response with the largest net wins)."""
CONFIRM, CONFIRM_GAP = 3, 1e-7
"""Non-convex: the first round is accepted only when every prompt's lowest part is reached by at
least CONFIRM L-BFGS ends (within CONFIRM_GAP relative); otherwise the wider round runs too."""
ROUNDS = (1, 4)
"""Starts per round, as multiples of ``restarts``."""


def solve_smooth(task: Task, options: dict, convex: bool) -> Found:
    """The minimiser over the simplex (module docstring); raises SolveFailed or NoFiniteMinimum."""
    pool, tried, used = [], [], 0
    for round_number, factor in enumerate(ROUNDS):
        starts = _starts(task, options, factor * options["restarts"], options["seed"] + round_number, round_number)
        used += len(starts)
        ends = []
        for number, start in enumerate(starts):
            logits, value = kinks.slack_solve(task, start) if task.base.kink else lbfgs(task, start)
            width = float((logits.amax(-1) - logits.amin(-1)).max())
            if not (np.isfinite(value) and width <= DIVERGED):
                for direction, how in _directions(task, start, logits):
                    check_recession(task, start, direction, f"{how} from start {number}")
                tried.append(f"start {number} of round {round_number} ran off (objective {value:.3g}, logit spread "
                             f"{width:.3g}) with no certified recession; dropped")
                continue
            ends.append((logits, value))
        pool += _candidates(task, ends, options)
        warm = options.get("init") is not None     # a fixed-point round warm-started at the last answer
        if not convex and not warm and round_number + 1 < len(ROUNDS) and not _confirmed(task, ends):
            tried.append(f"round {round_number}: {len(starts)} L-BFGS starts (seed {options['seed'] + round_number}); "
                         "some prompt's lowest part was reached by one start only")
            continue
        tried.append(f"round {round_number}: {len(starts)} L-BFGS starts (seed {options['seed'] + round_number}), "
                     f"{len(pool)} candidates so far (polish{', slack SLSQP and kink faces' if task.base.kink else ''})")
        best = _accept(pool, convex)
        if best is not None:
            return _found(task, pool, best, convex, used)
    lowest = min(pool, key=lambda c: c["value"]) if pool else None
    logp = lowest["logp"] if lowest else task.ref.clone()
    cert = lowest["certificate"] if lowest else float("inf")
    raise SolveFailed(f"{task.where}{task.base.name!r}: no candidate reached certificate <= {ACCEPT:g} at the lowest "
                      f"objective found (best point: value {lowest['value'] if lowest else float('nan'):.12g}, "
                      f"certificate {cert:.3g}); tried: " + "; ".join(tried), logp, cert, ACCEPT, tried)


def _directions(task: Task, start: torch.Tensor, end: torch.Tensor):
    """Candidate recession directions once a run has run off: where L-BFGS went, steepest
    descent at the start, and each response's logit alone up or down (in every prompt)."""
    if bool(torch.isfinite(end).all()):
        yield end - start, "the L-BFGS run"
    yield -value_and_grad(task, start)[1], "steepest descent"
    for y in range(task.Y):
        unit = torch.zeros_like(start)
        unit[:, y] = 1.0
        yield unit, f"raising response {y}"
        yield -unit, f"lowering response {y}"


def _starts(task: Task, options: dict, count: int, seed: int, round_number: int) -> list[torch.Tensor]:
    """Round 0: π_ref, uniform, π_ref tilted towards the responses that win more records than they
    lose (two strengths), then random N(0, 1) logits; later rounds: random logits, wider."""
    init = options.get("init")
    if init is not None and round_number == 0:
        return [torch.where(torch.isneginf(init), SURROGATE_LOGP, init)]
    net = torch.zeros(task.P * task.Y, dtype=torch.float64, device=task.ref.device)
    net = net.index_add(0, task.chosen_index, task.weight).index_add(0, task.rejected_index, -task.weight)
    net = (net / net.abs().max().clamp_min(1e-300)).reshape(task.P, task.Y)
    fixed = [task.ref.clone(), torch.zeros_like(task.ref)] + [task.ref + tilt * net for tilt in TILTS]
    gen = torch.Generator().manual_seed(seed)
    scale = 1.0 + round_number
    randoms = [scale * torch.randn(task.P, task.Y, generator=gen, dtype=torch.float64).to(task.ref.device)
               for _ in range(max(0, count - len(fixed)))]
    return (fixed + randoms)[:count] if round_number == 0 else randoms + fixed[:max(0, count - len(randoms))]


def _candidates(task: Task, ends, options: dict) -> list[dict]:
    if not ends:
        return []
    low = min(value for _, value in ends)
    contenders = [logits for logits, value in ends if value <= low + POLISH_WINDOW * (1 + abs(low))]
    if task.P > 1 and len(ends) > 1:   # separable: the best end of every prompt, put together
        parts = torch.stack([task.prompt_values(torch.log_softmax(logits, -1)) for logits, _ in ends])
        pick = parts.nan_to_num(torch.inf).argmin(0)
        combined = torch.stack([ends[int(e)][0][p] for p, e in enumerate(pick)])
        if not any(bool((combined == logits).all()) for logits in contenders):
            contenders.append(combined)
    pairs = [] if task.base.kink else [polish(task, logits, options) for logits in contenders]
    pairs += [(logits, torch.ones_like(logits, dtype=torch.bool)) for logits in contenders]
    points = [(project(task, logits, support), logits, support) for logits, support in pairs]
    if task.base.kink is not None:
        for logp in [point[0] for point in points]:
            for face in kinks.face_candidates(task, logp):
                points.append((face, face, torch.isfinite(face)))
    out = []
    for logp, logits, support in points:
        value = task.value(logp)
        if not np.isfinite(value):
            continue
        cert, how = certificate(task, logp)
        out.append({"logp": logp, "logits": logits, "support": support, "value": value, "certificate": cert,
                    "how": how})
    return out


def _confirmed(task: Task, ends) -> bool:
    """Every prompt's lowest part of the objective is reached by at least CONFIRM ends."""
    if len(ends) < CONFIRM:
        return False
    parts = torch.stack([task.prompt_values(torch.log_softmax(logits, -1)) for logits, _ in ends]).nan_to_num(torch.inf)
    low = parts.amin(0)
    near = parts <= low + CONFIRM_GAP * (1 + low.abs())
    return bool((near.sum(0) >= CONFIRM).all())


def _accept(pool: list[dict], convex: bool):
    certified = [c for c in pool if c["certificate"] <= ACCEPT]
    if not certified:
        return None
    top = min(c["value"] for c in certified)
    best = min((c for c in certified if c["value"] <= top + SAME_VALUE * (1 + abs(top))),
               key=lambda c: c["certificate"])
    lowest = min(c["value"] for c in pool)
    if not convex and lowest < best["value"] - SAME_VALUE * (1 + abs(best["value"])):
        return None
    return best


def _found(task: Task, pool, best, convex: bool, used: int) -> Found:
    logp = best["logp"]
    close = [c for c in pool if c["certificate"] <= ACCEPT
             and c["value"] <= best["value"] + SAME_VALUE * (1 + abs(best["value"]))]
    spread = max(tv(c["logp"], logp) for c in close)
    identified = spread <= SAME_POLICY and (task.slope is None or task.connected)
    logits = torch.where(torch.isfinite(best["logits"]), best["logits"], SURROGATE_LOGP)
    hessian_min = smooth_hessian_min(task, logits, best["support"]) if convex else None
    boundary = int(torch.isneginf(logp).sum())
    how = "SLSQP on the slack reformulation, kink faces" if task.base.kink else "L-BFGS, Newton polish on the support"
    message = (f"best of {used} starts ({how}); certificate: {best['how']} "
               f"{best['certificate']:.2g} <= {ACCEPT:g}; {boundary} boundary response(s); certified answers at the best "
               f"value differ by TV {spread:.2g}")
    return Found(logp, best["value"], "convex" if convex else "nonconvex", best["certificate"], identified,
                 hessian_min, used, message)
