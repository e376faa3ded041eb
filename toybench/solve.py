"""``solve``: the exact float64 minimiser of a loss's population objective over tabular policies.

For a tabular policy π = softmax(s) the objective F(s) = Σ_records weight·L is prompt-separable;
``solve`` minimises it per run (docs/conventions.md, what solve returns) by one of four routes (``Solution.case``):

- ``"convex"``: a convex margin loss (``loss.convex``, family ``logit_link``/``non_proper``).
  When the margin is affine in per-response scores, Δ = S(y_w) − S(y_l) + o_rec with
  S(y) = k_y·ℓ(y) (k = 1 for Δ = g_w − g_l; k = 1/|y| for length-normalised margins, found by
  probing ``loss.margin``), F is convex in v = S and invariant to one constant per comparison
  component: damped Newton in v (gradient and Hessian H = Σ w·L''(Δ)(e_w − e_l)(e_w − e_l)ᵀ from
  autograd of the per-record loss in its margin, the gauge fixed by adding Σ_C 1_C1_Cᵀ/|C|),
  per-prompt backtracking, stop at max|∇| ≤ ``tol``. Other convex losses: L-BFGS then Newton in s.
- ``"lp"``: ``hinge`` (relu(1 − βΔ)): the linear program min Σ w·t, t ≥ 0, t ≥ 1 − βΔ, solved by
  HiGHS through its dual (a circulation with Y balance rows per prompt, far smaller than the
  primal); v from the balance rows' marginals; certificate the primal–dual gap; uniqueness by
  minimising and maximising a random linear functional of v over the optimal face (described by
  complementary slackness with the optimal dual).
- ``"nonconvex"``: L-BFGS in s from ``restarts`` starts (π_ref, uniform, random logits from
  ``seed``), best value kept, Newton polish on the support. A response driven below 1e-6 whose
  KKT multiplier is positive (mass there only costs) is boundary (log-prob −inf); the
  certificate is the KKT residual on the simplex there, the logit gradient at an interior point.
- ``"fixed_point"``: a stateful loss: state = ``loss.population_state`` at the current answer,
  re-solved with that state fixed until the state moves < 1e-12 (at most 200 rounds).

Free parts (a response in no positive-weight record of its prompt, disconnected comparison
components, a non-unique LP or restarts that agree in value but not in policy) give
``identified=False``; margin losses keep each component at its π_ref mass
(``toybench.graph.spread_free_parts``). ``NoFiniteMinimum`` is raised when the infimum needs an
infinite margin: for a loss whose per-record loss keeps falling as the margin grows (a logit link,
SimPO, ...) exactly when a positive-weight record a ≻ b lies on no directed cycle of its prompt's
record graph (a, b in different strong components); rDPO uses its effective weights
D_eff(a,b) = [(1 − ε)D(a,b) − εD(b,a)]/(1 − 2ε) (its population loss is DPO's on D_eff), and a
numeric backstop (scaled margins past 1e4, a non-finite objective) catches the rest.
Evidence: derived (convex analysis of the tabular objective; families G1–G4 in docs/losses.md).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import scipy.sparse
import torch
from scipy.optimize import linprog

from .graph import component_labels, spread_free_parts, strong_component_labels
from .losses.base import LENGTH_INPUTS, Loss, MarginLoss
from .losses.dpo import Hinge
from .objective import call_loss, objective, record_inputs
from .pairs import Pairs

DIVERGED_MARGIN = 1e4
"""|β·Δ| (Newton) or logit spread (L-BFGS) past which a solve is declared to run off to infinity."""
TAIL_MARGINS = (30.0, 100.0)
"""Scaled margins β·Δ at which a per-record loss still falling (L' < 0 at both) counts as
"decreasing to its infimum at an infinite margin"; float64 resolves sp(−z) to z ≈ 700."""
LP_SLACK = 1e-12
"""Relative distance of a dual flow λ_r from 0 or w_r below which it counts as at that bound."""
LP_UNIQUE_TOL = 1e-8
"""Spread of a random functional over the LP's optimal face above which it is non-unique."""
LP_OPTIONS = {"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10}
SAME_VALUE, SAME_POLICY = 1e-10, 1e-6
"""Polished restarts within SAME_VALUE in objective but more than SAME_POLICY apart in TV: not identified."""
MAX_ROUNDS, STATE_TOL = 200, 1e-12
"""Fixed-point rounds allowed, and the max-abs state change at which a stateful solve stops."""
KINK_WINDOW = 1e-3
"""|log π − log π_ref| below which a response is tried pinned at π_ref (kinked losses, ``_kink_face``)."""
SURROGATE_LOGP = -700.0
"""Stand-in log-prob of a boundary response where a finite value is needed (e^−700 ≈ 1e-304)."""
INFINITE_SLOPE = 1e100
"""|∂F/∂π_y| at the stand-in beyond which it is taken as infinite (a power π^{β−1} of e^−700)."""
LBFGS_MAXITER, LBFGS_GTOL, LBFGS_FLAT = 200, 1e-9, 1e-15
"""L-BFGS stops at max|∇_s F| ≤ 1e-9, a value change below 1e-15 or 200 iterations; every start
ending within POLISH_WINDOW·(1 + |best|) of the best value is then Newton-polished on its support."""
POLISH_WINDOW = 1e-6
BOUNDARY_CANDIDATE, KKT_MARGIN = 1e-6, 1e-8
"""A response the optimiser drives below 1e-6 whose KKT multiplier ∂F/∂π_y − ν exceeds
1e-8·(1 + |ν|) when it alone is set to zero (adding mass there only costs) is put on the
boundary, then the support polished; a stationary response with a tiny mass stays interior."""
POLISH = 1e-2
"""Newton runs on to POLISH·tol while it still halves the gradient, so the reported certificate
(recomputed through ``objective``) lands inside ``tol``."""
SLOPE_TOL = 1e-12
"""Relative disagreement allowed between probed margin slopes of one response."""


class NoFiniteMinimum(ValueError):
    """The population objective's infimum needs an infinite margin: no finite minimiser."""


@dataclass(frozen=True)
class Solution:
    """What ``solve`` found. ``logp`` float64 ``[P, Y]`` (``[B, P, Y]`` with runs), −inf where
    the minimiser puts no mass; ``value`` the objective there (float or ``[B]``); ``case`` one of
    convex, lp, nonconvex, fixed_point; ``certificate`` max-abs gradient in the logits (smooth
    interior), duality gap (lp) or KKT residual on the simplex (boundary), float or ``[B]``;
    ``boundary`` True where mass is 0; ``identified`` False where the records leave part of the
    minimiser free; ``hessian_min_eigenvalue`` on the identified subspace (convex case only);
    ``restarts`` starts used; ``message`` what was done."""

    logp: torch.Tensor
    value: float | torch.Tensor
    case: str
    certificate: float | torch.Tensor
    boundary: torch.Tensor
    identified: bool | torch.Tensor
    hessian_min_eigenvalue: float | torch.Tensor | None
    restarts: int
    message: str


def solve(loss, pairs, *, restarts: int = 8, seed: int = 0, tol: float = 1e-10, max_iter: int = 200) -> Solution:
    """Exact minimiser of Σ_records weight·loss over tabular policies (module docstring).

    ``restarts``: starts of the non-convex route (π_ref, uniform, then random logits drawn from
    ``torch.Generator().manual_seed(seed)``); ``tol``: gradient tolerance of the Newton steps;
    ``max_iter``: Newton iterations. Runs (``[B]`` hyperparameters or per-run pairs) are solved
    one by one. Raises ``NoFiniteMinimum`` (a ValueError) naming the run, prompt and record
    when the infimum is at an infinite margin."""
    if not isinstance(loss, Loss):
        raise ValueError(f"solve needs a toybench loss (tb.losses.make(...)), got {type(loss).__name__}")
    if not isinstance(pairs, Pairs):
        raise ValueError(f"solve needs Pairs (tb.population or tb.sample_pairs), got {type(pairs).__name__}")
    for name, value, low in (("restarts", restarts, 1), ("max_iter", max_iter, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    if isinstance(tol, bool) or not (isinstance(tol, (int, float)) and tol > 0):
        raise ValueError(f"tol must be a positive number, got {tol!r}")
    loss_runs, pair_runs = loss.runs, pairs.runs
    if loss_runs is not None and pair_runs > 1 and loss_runs != pair_runs:
        raise ValueError(f"the loss has {loss_runs} runs ([B] hyperparameters) but the pairs have {pair_runs}")
    runs = loss_runs or pair_runs
    batched = loss_runs is not None or pair_runs > 1
    options = dict(restarts=restarts, seed=seed, tol=float(tol), max_iter=max_iter)
    found = [_solve_run(_run_loss(loss, b), _run_pairs(pairs, b), f"run {b}, " if batched else "", options)
             for b in range(runs)]
    return _assemble(found, batched)


# ------------------------------------------------------------------------------ runs
def _run_loss(loss, b: int):
    changes = {f.name: getattr(loss, f.name)[b].item() for f in dataclasses.fields(loss)
               if isinstance(getattr(loss, f.name), torch.Tensor) and getattr(loss, f.name).ndim == 1}
    return dataclasses.replace(loss, **changes) if changes else loss


def _run_pairs(pairs: Pairs, b: int) -> Pairs:
    if pairs.runs == 1 and not (isinstance(pairs.noise, torch.Tensor) and pairs.noise.ndim == 1):
        return pairs
    take = lambda t: t[b:b + 1] if t.shape[0] > 1 else t  # noqa: E731
    noise = pairs.noise[b].item() if isinstance(pairs.noise, torch.Tensor) and pairs.noise.ndim == 1 else pairs.noise
    return dataclasses.replace(pairs, prompt=take(pairs.prompt), chosen=take(pairs.chosen),
                               rejected=take(pairs.rejected), weight=take(pairs.weight), noise=noise,
                               fields={k: take(v) for k, v in pairs.fields.items()})


@dataclass
class _Found:
    logp: torch.Tensor
    value: float
    case: str
    certificate: float
    identified: bool
    hessian_min: float | None
    restarts: int
    message: str


def _assemble(found: list[_Found], batched: bool) -> Solution:
    if not batched:
        one = found[0]
        return Solution(one.logp, one.value, one.case, one.certificate, torch.isneginf(one.logp), one.identified,
                        one.hessian_min, one.restarts, one.message)
    logp = torch.stack([f.logp for f in found])
    as_tensor = lambda name, dtype=torch.float64: torch.tensor(  # noqa: E731
        [getattr(f, name) for f in found], dtype=dtype, device=logp.device)
    hessian = None if found[0].hessian_min is None else as_tensor("hessian_min")
    messages = {f.message for f in found}
    message = found[0].message if len(messages) == 1 else "; ".join(f"run {b}: {f.message}" for b, f in enumerate(found))
    return Solution(logp, as_tensor("value"), found[0].case, as_tensor("certificate"), torch.isneginf(logp),
                    as_tensor("identified", torch.bool), hessian, max(f.restarts for f in found), message)


class _Bound:
    """A stateful loss with its state fixed: calls pass ``state=``; attributes forward."""

    def __init__(self, loss, state):
        self.loss, self.state = loss, state

    def __getattr__(self, name):
        return getattr(self.loss, name)

    def __call__(self, *args, **inputs):
        return self.loss(*args, state=self.state, **inputs)


class _Task:
    """One run: the loss (state bound), its records, record table, components and margin form."""

    def __init__(self, loss, pairs: Pairs, where: str, state=None):
        self.base, self.pairs, self.where = loss, pairs, where
        self.loss = loss if state is None else _Bound(loss, state)
        prob = pairs.problem
        self.P, self.Y, self.ref = prob.P, prob.Y, prob.ref_logp.to(pairs.weight.device)
        self.weight = pairs.weight[0].to(torch.float64)
        self.chosen_index = (pairs.prompt * prob.Y + pairs.chosen)[0].to(self.ref.device)
        self.rejected_index = (pairs.prompt * prob.Y + pairs.rejected)[0].to(self.ref.device)
        self.table = pairs.record_table()[0]                                    # [P, Y, Y]
        self.labels = component_labels(self.table > 0).to(self.ref.device)       # [P, Y]
        self.beta = float(getattr(loss, "beta", 1.0))
        self.inputs = record_inputs(self.loss, self.ref[None], pairs)
        self.record_prompt = pairs.prompt[0].to(self.ref.device)
        self.slope, self.offset = _margin_form(self)
        if self.slope is not None:
            flat_slope = self.slope.reshape(-1)
            self.chosen_slope = flat_slope.gather(0, self.chosen_index)
            self.rejected_slope = flat_slope.gather(0, self.rejected_index)
            base = self.record_prompt * self.Y * self.Y
            within_c, within_r = pairs.chosen[0].to(base.device), pairs.rejected[0].to(base.device)
            self.hessian_index = torch.cat([base + within_c * self.Y + within_c, base + within_r * self.Y + within_r,
                                            base + within_c * self.Y + within_r, base + within_r * self.Y + within_c])

    @property
    def connected(self) -> bool:
        return bool((self.labels == 0).all())

    def value(self, logp: torch.Tensor) -> float:
        """The objective at ``logp``; where −inf entries meet (−inf − (−inf) = NaN), its limit
        with the boundary at the −700 stand-in."""
        value = float(objective(self.loss, logp[None], self.pairs)[0])
        if value != value:
            value = float(objective(self.loss, torch.where(torch.isneginf(logp), SURROGATE_LOGP, logp)[None], self.pairs)[0])
        return value

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


def _margin_form(task: _Task):
    """(k ``[P, Y]``, o ``[N]``) with Δ_rec = k_w·ℓ_w − k_l·ℓ_l + o_rec for a margin loss whose
    margin is affine with one positive slope per response; (None, None) otherwise."""
    if not isinstance(task.base, MarginLoss):
        return None, None
    inputs = task.inputs
    extras = {k: v for k, v in inputs.items() if k not in ("chosen_logp", "rejected_logp",
                                                            "ref_chosen_logp", "ref_rejected_logp")}

    def margin(chosen, rejected):
        return task.base.margin(chosen, rejected, inputs["ref_chosen_logp"], inputs["ref_rejected_logp"], **extras)[0]

    zero = torch.zeros_like(inputs["chosen_logp"])
    offset = margin(zero, zero)
    chosen_slope, rejected_slope = margin(zero + 1, zero) - offset, offset - margin(zero, zero + 1)
    probe = torch.randn((2, *zero.shape), generator=torch.Generator().manual_seed(0), dtype=zero.dtype).to(zero.device)
    affine = chosen_slope * probe[0, 0] - rejected_slope * probe[1, 0] + offset
    if not bool(((margin(probe[0], probe[1]) - affine).abs() <= 1e-9 * (1 + affine.abs())).all()):
        return None, None
    index = torch.cat([task.chosen_index, task.rejected_index])
    slopes = torch.cat([chosen_slope, rejected_slope])
    high = torch.full((task.P * task.Y,), -torch.inf, dtype=torch.float64, device=slopes.device)
    high = high.scatter_reduce(0, index, slopes, "amax")
    low = torch.full_like(high, torch.inf).scatter_reduce(0, index, slopes, "amin")
    seen = torch.isfinite(high)
    if not bool((low[seen] > 0).all()) or bool(((high - low)[seen] > SLOPE_TOL * high[seen]).any()):
        return None, None
    return torch.where(seen, high, torch.ones_like(high)).reshape(task.P, task.Y), offset


# ------------------------------------------------------------------------------ dispatch
def _case(loss) -> str:
    if isinstance(loss, Hinge):
        return "lp"
    if loss.convex and loss.family in ("logit_link", "non_proper"):
        return "convex"
    return "nonconvex"


def _solve_run(loss, pairs: Pairs, where: str, options: dict) -> _Found:
    if not loss.stateful:
        task = _Task(loss, pairs, where)
        _check_finite(task)
        return _ROUTES[_case(loss)](task, options)
    return _fixed_point(loss, pairs, where, options)


def _fixed_point(loss, pairs: Pairs, where: str, options: dict) -> _Found:
    prob = pairs.problem
    state = loss.population_state(record_inputs(loss, prob.ref_logp[None], pairs), pairs.weight)
    init = None
    for rounds in range(1, MAX_ROUNDS + 1):
        task = _Task(loss, pairs, where, state)
        if rounds == 1:
            _check_finite(task)
        inner = _ROUTES[_case(loss)](task, dict(options, init=init))
        logp = torch.where(torch.isneginf(inner.logp), SURROGATE_LOGP, inner.logp)
        new_state = loss.population_state(record_inputs(loss, logp[None], pairs), pairs.weight)
        change = max(float((new_state[k] - state[k]).abs().max()) for k in state)
        state, init = new_state, inner.logp
        if change < STATE_TOL:
            break
    message = (f"fixed point of population_state after {rounds} rounds (last state change {change:.2g}); "
               f"inner {inner.case}: {inner.message}")
    return dataclasses.replace(inner, case="fixed_point", certificate=max(change, inner.certificate), message=message)


# ------------------------------------------------------------------------------ finiteness
def _check_finite(task: _Task) -> None:
    """Raise NoFiniteMinimum when a positive-weight record lies on no directed cycle of a loss
    whose per-record loss falls all the way to an infinite margin."""
    if not _falls_forever(task):
        return
    table = task.table
    if task.base.name == "rdpo":
        eps = float(task.base.eps)
        table = ((1 - eps) * table - eps * table.transpose(-1, -2)) / (1 - 2 * eps)
        tiny = 1e-12 * task.table.abs().amax((-1, -2), keepdim=True)
        if bool((table < -tiny).any()):
            return  # unbounded below or not: the numeric backstop of the Newton route decides
        table = torch.where(table > tiny, table, 0.0)
    edges = table > 0
    strong = strong_component_labels(edges).to(edges.device)
    broken = edges & (strong[:, :, None] != strong[:, None, :])
    if bool(broken.any()):
        prompt, chosen, rejected = (int(i) for i in broken.nonzero()[0])
        kind = "effective weight" if task.base.name == "rdpo" else "weight"
        raise NoFiniteMinimum(
            f"{task.where}prompt {prompt}, record (chosen {chosen}, rejected {rejected}): it has positive {kind} but no "
            f"chain of positive-{kind} records leads from {rejected} back to {chosen}, so {task.base.name!r}'s loss "
            f"keeps falling as that margin grows ({int(broken.sum())} such record(s)); a finite minimiser needs every "
            "record on a directed cycle (both orientations seen, or a cycle of preferences)")


def _falls_forever(task: _Task) -> bool:
    if task.slope is None:
        label_driven = set(task.base.needs) <= set(LENGTH_INPUTS)
        return task.base.family == "logit_link" and label_driven
    live = task.weight > 0
    for scaled in TAIL_MARGINS:
        chosen = (scaled / task.beta - task.offset) / task.chosen_slope
        _, first, _ = task.record_terms(chosen, torch.zeros_like(chosen), order=1)
        if not bool(torch.where(live, first < 0, True).all()):
            return False
    return True


def _diverged(task: _Task, margins: torch.Tensor, values: torch.Tensor, force: bool = False) -> None:
    """Raise NoFiniteMinimum when the Newton iterates run off (|β·Δ| past 1e4, a non-finite
    value, or ``force``), naming the record with the largest margin (rDPO: its most negative
    effective weight)."""
    live = task.weight > 0
    scaled = torch.where(live, task.beta * margins.abs().nan_to_num(torch.inf), 0.0)
    if not force and bool(torch.isfinite(values).all()) and not bool((scaled > DIVERGED_MARGIN).any()):
        return
    worst = int(scaled.argmax())
    prompt = int(task.pairs.prompt[0, worst])
    chosen, rejected = int(task.pairs.chosen[0, worst]), int(task.pairs.rejected[0, worst])
    why = "its margin runs off to infinity while the objective keeps falling"
    if task.base.name == "rdpo":
        eps = float(task.base.eps)
        effective = ((1 - eps) * task.table - eps * task.table.transpose(-1, -2))[prompt]
        chosen, rejected = (int(i) for i in divmod(int(effective.argmin()), task.Y))
        why = (f"the observed flip rate of this pair is below eps={eps:g}: (1 − ε)·D(a,b) − ε·D(b,a) < 0, and "
               "rDPO's per-record loss is unbounded below")
    raise NoFiniteMinimum(f"{task.where}prompt {prompt}, record (chosen {chosen}, rejected {rejected}): no finite "
                          f"minimiser: {why}")


# ------------------------------------------------------------------------------ convex: Newton in v
def _solve_convex(task: _Task, options: dict) -> _Found:
    if task.slope is None:
        return _solve_smooth(task, options, convex=True)
    init = options.get("init")
    start = task.ref if init is None else torch.where(torch.isneginf(init), SURROGATE_LOGP, init)
    v = task.slope * start
    gauge = _gauge(task.labels)
    evaluate = lambda v: _newton_terms(task, v)  # noqa: E731
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
        if bool(singular.any()):   # curvature gone with a gradient left: a linear tail, no finite minimum
            _diverged(task, margins, value, force=True)
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
        _diverged(task, margins, value)
    logp = _normalise(v, task.slope, task.labels, task.ref)
    gradient = _logit_gradient(task, logp)
    bound = 2 * hess.abs().sum(-1).amax(-1) + 1
    hessian_min = float(torch.linalg.eigvalsh(hess + bound[:, None, None] * gauge).amin())
    message = (f"damped Newton in the margin scores ({steps} steps, max|∇| {float(grad.abs().max()):.2g}); "
               f"{_free_parts_note(task)}")
    return _Found(logp, task.value(logp), "convex", gradient, task.connected, hessian_min, 1, message)


def _newton_terms(task: _Task, v: torch.Tensor):
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
    hess.index_add_(0, task.hessian_index, torch.cat([curvature, curvature, -curvature, -curvature]))
    return value, grad.reshape(task.P, task.Y), hess.reshape(task.P, task.Y, task.Y), margins


def _gauge(labels: torch.Tensor) -> torch.Tensor:
    """Σ_C 1_C 1_Cᵀ/|C| per prompt ``[P, Y, Y]``: the directions the objective cannot see."""
    onehot = torch.nn.functional.one_hot(labels, int(labels.max()) + 1).to(torch.float64)   # [P, Y, K]
    sizes = onehot.sum(-2, keepdim=True).clamp_min(1)
    return (onehot / sizes) @ onehot.transpose(-1, -2)


def _normalise(v: torch.Tensor, slope: torch.Tensor, labels: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
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

    for _ in range(200):
        middle = (low + high) / 2
        below = excess(middle) < 0
        low, high = torch.where(below, middle, low), torch.where(below, high, middle)
    shift = ((low + high) / 2).gather(1, labels)
    return (v + shift) / slope


def _free_parts_note(task: _Task) -> str:
    if task.connected:
        return "comparison graph connected in every prompt"
    return "free parts (unseen responses or disconnected components) kept at their π_ref mass"


def _logit_gradient(task: _Task, logp: torch.Tensor) -> float:
    """max|∂F/∂s| at s = logp (boundary entries at a −700 stand-in), autograd through ``objective``."""
    with torch.enable_grad():
        logits = torch.where(torch.isneginf(logp), SURROGATE_LOGP, logp).detach().requires_grad_(True)
        value = objective(task.loss, torch.log_softmax(logits, -1)[None], task.pairs)[0]
        grad, = torch.autograd.grad(value, logits)
    return float(grad.abs().max())


# ------------------------------------------------------------------------------ lp: hinge
def _solve_lp(task: _Task, options: dict) -> _Found:
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
        raise ValueError(f"{task.where}the hinge LP failed: {dual.message}")
    scores = -dual.eqlin.marginals / beta
    margins = scores[chosen] - scores[rejected] + offset
    primal = float(weight @ np.maximum(0.0, 1 - beta * margins))
    gap = abs(primal + dual.fun)
    unique = _lp_unique(task, dual.x, weight, chosen, rejected, offset, options["seed"])
    v = torch.as_tensor(scores, dtype=torch.float64, device=task.ref.device).reshape(task.P, task.Y)
    logp = _normalise(v, task.slope, task.labels, task.ref)
    note = "optimum unique" if unique else "optimum NOT unique (one optimal vertex returned)"
    message = f"HiGHS LP (dual circulation), duality gap {gap:.2g}; {note}; {_free_parts_note(task)}"
    return _Found(logp, task.value(logp), "lp", gap, unique and task.connected, None, 1, message)


def _lp_unique(task: _Task, flow, weight, chosen, rejected, offset, seed: int) -> bool:
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


# ------------------------------------------------------------------------------ smooth routes in s
def _solve_nonconvex(task: _Task, options: dict) -> _Found:
    return _solve_smooth(task, options, convex=False)


def _solve_smooth(task: _Task, options: dict, convex: bool) -> _Found:
    """L-BFGS in the logits from several starts, best value kept, Newton polish on the support."""
    starts = _starts(task, options, 2 if convex else options["restarts"])
    ends = [_lbfgs(task, s) for s in starts]
    for number, (logits, value) in enumerate(ends):
        width = logits.amax(-1) - logits.amin(-1)
        if not (np.isfinite(value) and bool((width <= DIVERGED_MARGIN).all())):
            prompt = int(width.nan_to_num(torch.inf).argmax())
            raise NoFiniteMinimum(f"{task.where}prompt {prompt}: no finite minimiser: from start {number} L-BFGS ran "
                                  f"the logits of {task.base.name!r} apart by more than 1e4 (objective {value:.6g}); "
                                  "the objective is not bounded below or needs an infinite margin")
    values = [end[1] for end in ends]
    contenders = [end[0] for end in ends if end[1] <= min(values) + POLISH_WINDOW * (1 + abs(min(values)))]
    # Newton polish shrinks the gradient, not the objective: at a kink (dpop, spo) it can end
    # higher than where L-BFGS stopped, so the unpolished ends stay in the running.
    polished = [_polish(task, logits, options) for logits in contenders]
    polished += [(logits, torch.ones_like(logits, dtype=torch.bool)) for logits in contenders]
    polished += [(_kink_face(task, torch.log_softmax(logits, -1)), torch.ones_like(logits, dtype=torch.bool))
                 for logits in contenders if _near_kink(task, torch.log_softmax(logits, -1)).any()]
    answers = [_project(task, logits, support) for logits, support in polished]
    finals = [task.value(logp) for logp in answers]
    best = int(np.argmin(finals[:len(contenders)]))
    lower = [i for i in range(len(contenders), len(finals)) if finals[i] < finals[best] - SAME_VALUE]
    best = min(lower, key=finals.__getitem__) if lower else best
    logits, support = polished[best]
    logp = answers[best]
    spread = max(float(_tv(other, logp)) for other, value in zip(answers, finals, strict=False) if value <= finals[best] + SAME_VALUE)
    identified = spread <= SAME_POLICY and (task.slope is None or task.connected)
    boundary = ~support
    hessian_min = _smooth_hessian_min(task, logits, support) if convex else None
    if bool(boundary.any()):
        certificate, how = _kkt_residual(task, logp)
    else:
        certificate, how = _logit_gradient(task, logp), "max-abs gradient in the logits"
    message = (f"best of {len(starts)} starts plus stationarity (L-BFGS, Newton polish on the support); "
               f"certificate: {how}; {int(boundary.sum())} boundary response(s); restarts at the best value "
               f"differ by TV {spread:.2g}")
    return _Found(logp, task.value(logp), "convex" if convex else "nonconvex", certificate, identified,
                  hessian_min, len(starts), message)


def _near_kink(task: _Task, logp: torch.Tensor) -> torch.Tensor:
    """Responses whose log-ratio log π − log π_ref is within KINK_WINDOW of zero."""
    return (logp - task.ref).abs() < KINK_WINDOW


def _kink_face(task: _Task, logp: torch.Tensor) -> torch.Tensor:
    """Re-solve on a kink face: losses such as ``dpop`` (relu(−g_w)), ``spo`` and ``minor_dpo``
    (max(0, g_l)) bend at a zero log-ratio, where L-BFGS stalls short of the minimum. Responses
    near g = 0 are pinned at π_ref exactly and the others re-optimised by L-BFGS; the caller keeps
    whichever candidate has the lowest objective."""
    pinned = _near_kink(task, logp)
    rest = torch.log1p(-torch.where(pinned, task.ref.exp(), 0.0).sum(-1, keepdim=True).clamp(max=1 - 1e-16))

    def to_logp(free_logits):
        return torch.where(pinned, task.ref, rest + torch.log_softmax(free_logits.masked_fill(pinned, -1e4), -1))

    free_logits, _ = _lbfgs(task, torch.where(torch.isneginf(logp), SURROGATE_LOGP, logp), to_logp)
    return to_logp(free_logits)


def _starts(task: _Task, options: dict, count: int) -> list[torch.Tensor]:
    init = options.get("init")
    if init is not None:
        return [torch.where(torch.isneginf(init), SURROGATE_LOGP, init)]
    gen = torch.Generator().manual_seed(options["seed"])
    fixed = [task.ref.clone(), torch.zeros_like(task.ref)]
    randoms = [torch.randn(task.P, task.Y, generator=gen, dtype=torch.float64).to(task.ref.device)
               for _ in range(max(0, count - 2))]
    return (fixed + randoms)[:count]


def _value_and_grad(task: _Task, logits: torch.Tensor, create_graph: bool = False):
    with torch.enable_grad():
        logits = logits.detach().requires_grad_(True)
        value = objective(task.loss, torch.log_softmax(logits, -1)[None], task.pairs)[0]
        grad, = torch.autograd.grad(value, logits, create_graph=create_graph)
    return value, grad, logits


def _lbfgs(task: _Task, start: torch.Tensor, to_logp=lambda logits: torch.log_softmax(logits, -1)):
    """torch's L-BFGS (strong Wolfe line search) on F(to_logp(s)) in float64, on the inputs' device."""
    logits = start.detach().clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([logits], lr=1.0, max_iter=LBFGS_MAXITER, max_eval=2 * LBFGS_MAXITER,
                                  tolerance_grad=LBFGS_GTOL, tolerance_change=LBFGS_FLAT, history_size=30,
                                  line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        value = objective(task.loss, to_logp(logits)[None], task.pairs)[0]
        value.backward()
        return value

    with torch.enable_grad():
        optimizer.step(closure)
        value = objective(task.loss, to_logp(logits)[None], task.pairs)[0]
    return logits.detach(), float(value.detach())


def _jacobian(task: _Task, logits: torch.Tensor):
    """Gradient ``[P, Y]`` and its per-prompt Jacobian ``[P, Y, Y]`` in the logits (the objective is
    prompt-separable: one batched backward pass per response index covers every prompt)."""
    with torch.enable_grad():
        _, grad, leaf = _value_and_grad(task, logits, create_graph=True)
        basis = torch.eye(task.Y, dtype=torch.float64, device=logits.device)[:, None, :].expand(task.Y, task.P, task.Y)
        rows, = torch.autograd.grad(grad, leaf, grad_outputs=basis, is_grads_batched=True)
    return grad.detach(), rows.permute(1, 0, 2)


def _polish(task: _Task, logits: torch.Tensor, options: dict):
    """Newton root-finding on the gradient over the support (boundary responses frozen at −700
    below the top logit), merit |∇|² per prompt."""
    support = _active_support(task, logits)
    logits = torch.where(support, logits - logits.amax(-1, keepdim=True), SURROGATE_LOGP)
    frozen = ~support
    eye = torch.eye(task.Y, dtype=torch.float64, device=logits.device)
    for _ in range(options["max_iter"]):
        grad, jac = _jacobian(task, logits)
        grad = torch.where(frozen, 0.0, grad)
        if float(grad.abs().max()) <= options["tol"]:
            break
        mask = frozen[:, :, None] | frozen[:, None, :]
        jac = torch.where(mask, eye * frozen[:, :, None], jac)
        step = torch.linalg.lstsq(jac, -grad[..., None], rcond=1e-13, driver="gelsd").solution[..., 0]
        merit = (grad ** 2).sum(-1)
        size = torch.ones(task.P, dtype=torch.float64, device=logits.device)
        for _ in range(40):
            trial = logits + size[:, None] * step
            trial_grad = torch.where(frozen, 0.0, _value_and_grad(task, trial)[1])
            accept = (trial_grad ** 2).sum(-1) <= (1 - 1e-4 * size) * merit
            if bool(accept.all()):
                break
            size = torch.where(accept, size, size / 2)
        size = torch.where(accept, size, 0.0)
        if not bool((size > 0).any()):
            break
        logits = logits + size[:, None] * step
    return logits, support


def _active_support(task: _Task, logits: torch.Tensor) -> torch.Tensor:
    """Responses kept in the support: all but those below BOUNDARY_CANDIDATE whose KKT multiplier
    ∂F/∂π_y − ν is positive when that response alone is set to zero (mass there only costs).
    The one-at-a-time variants are evaluated together on the run axis of ``objective``."""
    candidate = torch.softmax(logits, -1) < BOUNDARY_CANDIDATE
    if not bool(candidate.any()):
        return ~candidate
    rank = torch.where(candidate, candidate.cumsum(-1) - 1, -1)
    variants = torch.arange(int(candidate.sum(-1).max()), device=logits.device)[:, None, None]
    pushed = rank[None] == variants                                                       # [V, P, Y]
    logp = torch.log_softmax(torch.where(pushed, -torch.inf, logits[None]), -1)
    with torch.enable_grad():
        log_probs = torch.where(pushed, SURROGATE_LOGP, logp).detach().requires_grad_(True)
        grad_logp, = torch.autograd.grad(objective(task.loss, log_probs, task.pairs).sum(), log_probs)
    nu = torch.where(pushed, 0.0, grad_logp).sum(-1, keepdim=True)
    multiplier = torch.where(pushed, grad_logp * torch.exp(-log_probs.detach()) - nu, 0.0).sum(0)   # [P, Y]
    return ~(candidate & (multiplier > KKT_MARGIN * (1 + nu.abs().amax(0))))


def _project(task: _Task, logits: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    """Log-probs on the support (−inf off it); margin losses get free components at π_ref mass."""
    logp = torch.log_softmax(torch.where(support, logits, -torch.inf), -1)
    if task.slope is None:
        return logp
    return _normalise(task.slope * logp, task.slope, task.labels, task.ref)


def _tv(p_logp: torch.Tensor, q_logp: torch.Tensor) -> torch.Tensor:
    return 0.5 * (p_logp.exp() - q_logp.exp()).abs().sum(-1).max()


def _smooth_hessian_min(task: _Task, logits: torch.Tensor, support: torch.Tensor) -> float:
    _, jac = _jacobian(task, logits)
    keep = (support[:, :, None] & support[:, None, :]).to(torch.float64)
    sym = (jac + jac.transpose(-1, -2)) / 2 * keep
    ones = support.to(torch.float64)
    gauge = ones[:, :, None] * ones[:, None, :] / ones.sum(-1)[:, None, None]
    bound = 2 * sym.abs().sum(-1).amax(-1) + 1
    sym = sym + bound[:, None, None] * (gauge + torch.diag_embed(1 - ones))
    return float(torch.linalg.eigvalsh(sym).amin())


def _simplex_gradient(task: _Task, logp: torch.Tensor):
    """(∂F/∂π ``[P, Y]``, ν = Σ_y π_y ∂F/∂π_y ``[P, 1]``) at ``logp``; boundary entries (−inf) are
    evaluated at the −700 stand-in."""
    boundary = torch.isneginf(logp)
    with torch.enable_grad():
        log_probs = torch.where(boundary, SURROGATE_LOGP, logp).detach().requires_grad_(True)
        value = objective(task.loss, log_probs[None], task.pairs)[0]
        grad_logp, = torch.autograd.grad(value, log_probs)
    nu = torch.where(boundary, 0.0, grad_logp).sum(-1, keepdim=True)
    return grad_logp * torch.exp(-log_probs.detach()), nu


def _kkt_residual(task: _Task, logp: torch.Tensor):
    """KKT residual on the simplex: |∂F/∂π_y − ν| on the support, max(0, ν − ∂F/∂π_y) off it;
    the logit gradient where ∂F/∂π is infinite at the boundary."""
    grad_prob, nu = _simplex_gradient(task, logp)
    if not bool((grad_prob.abs() < INFINITE_SLOPE).all()):
        return _logit_gradient(task, logp), "max-abs logit gradient (∂F/∂π is infinite at the boundary)"
    residual = torch.where(torch.isneginf(logp), (nu - grad_prob).clamp_min(0), (grad_prob - nu).abs())
    return float(residual.max()), "KKT residual on the simplex"


_ROUTES = {"convex": _solve_convex, "lp": _solve_lp, "nonconvex": _solve_nonconvex}
