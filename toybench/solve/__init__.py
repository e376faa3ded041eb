"""``solve``: the certified float64 minimiser of a loss's population objective over tabular policies.

For a tabular policy π = softmax(s) the objective F(s) = Σ_records weight·L is prompt-separable.
``solve`` first looks for a proof that no finite minimiser exists (``finite``), then minimises
by the route the loss declares (``Loss.solver_case``):

- ``"convex"`` with an affine margin (``Loss.margin_coefficients``): damped Newton in the margin
  scores (``newton``); other convex losses: multi-start L-BFGS in the logits (``smooth``);
- ``"lp"`` (hinge): a linear program solved through its dual (``lp``);
- ``"nonconvex"``: multi-start L-BFGS, Newton polish, kink faces for kinked losses (``smooth``);
- stateful losses: the population state iterated to a fixed point, each round one of the above.

Every answer carries a certificate (``certify``) and is returned only when it is at most
``certify.ACCEPT``; otherwise the next method is tried and finally ``SolveFailed`` is raised.
Free parts (a response in no positive-weight record of its prompt, disconnected comparison
components, a non-unique LP or certified answers that agree in value but not in policy) give
``identified=False``; margin losses keep each component at its π_ref mass
(``toybench.graph.spread_free_parts``). Evidence: derived.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from .._numerics import one_blas_thread
from ..autoregressive import AutoregressiveTabular
from ..losses.base import Loss
from ..objective import record_inputs
from ..pairs import Pairs
from ..policies import Tabular
from .certify import ACCEPT
from .errors import NoFiniteMinimum, SolveFailed
from .finite import check_structure
from .lp import solve_lp
from .newton import solve_newton
from .smooth import solve_smooth
from .task import SURROGATE_LOGP, Found, Task

__all__ = ["solve", "Solution", "NoFiniteMinimum", "SolveFailed", "ACCEPT"]

MAX_ROUNDS, STATE_TOL = 200, 1e-12
"""Fixed-point rounds allowed, and the max-abs state change at which a stateful solve stops; a
solve whose last change is still above ACCEPT raises SolveFailed."""


@dataclass(frozen=True)
class Solution:
    """What ``solve`` found. ``logp`` float64 ``[P, Y]`` (``[B, P, Y]`` with runs), −inf where
    the minimiser puts no mass; ``value`` the objective there (float or ``[B]``); ``case`` one of
    convex, lp, nonconvex, fixed_point (the loss's declared ``solver_case``); ``certificate``
    at most ``ACCEPT`` (1e-8): max-abs gradient in the logits (smooth interior), duality gap
    (lp), KKT residual on the simplex (boundary) or minimum-norm Clarke subgradient (kinks),
    float or ``[B]``;
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


def solve(loss, pairs, *, restarts: int = 8, seed: int = 0, tol: float = 1e-10, max_iter: int = 200,
          policy=None) -> Solution:
    """Exact minimiser of Σ_records weight·loss over tabular policies (module docstring).

    ``policy``: optional; a ``Tabular`` or ``AutoregressiveTabular`` policy (classes that hold every
    full-support distribution) is accepted and changes nothing. A restricted class (``LogLinear``,
    ``MLP``, ``TinyTransformer``) raises ValueError pointing to ``tb.fit_best``, whose result says
    how far the class's best point is from this optimum and whether the class can reach it.

    ``restarts``: starts of the non-convex route (π_ref, uniform, then random logits drawn from
    ``torch.Generator().manual_seed(seed)``); ``tol``: gradient tolerance of the Newton steps;
    ``max_iter``: Newton iterations. Runs (``[B]`` hyperparameters or per-run pairs) are solved
    one by one. Raises ``NoFiniteMinimum`` (a ValueError) with its proof (the run, prompt and
    record or direction) when there is no finite minimiser, and ``SolveFailed`` (a
    RuntimeError) with the best point when no answer could be certified."""
    if not isinstance(loss, Loss):
        raise ValueError(f"solve needs a toybench loss (tb.losses.make(...)), got {type(loss).__name__}")
    if policy is not None and not isinstance(policy, (Tabular, AutoregressiveTabular)):
        raise ValueError(f"tb.solve minimises over every policy on the simplex, and {type(policy).__name__} is a "
                         "restricted class that may not reach that optimum: use tb.fit_best(policy, loss, pairs) "
                         "for the class's own best point; its gap_to_simplex and reachable say how far it is from "
                         "tb.solve(loss, pairs) and whether the class can reach it")
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
    with one_blas_thread():
        found = [_solve_run(_run_loss(loss, b), _run_pairs(pairs, b), f"run {b}, " if batched else "", options)
                 for b in range(runs)]
    return _assemble(found, batched)



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


def _assemble(found: list[Found], batched: bool) -> Solution:
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


def _solve_run(loss, pairs: Pairs, where: str, options: dict) -> Found:
    if not loss.stateful:
        task = Task(loss, pairs, where)
        check_structure(task)
        return _solve_task(task, options)
    return _fixed_point(loss, pairs, where, options)


def _solve_task(task: Task, options: dict) -> Found:
    """The declared route first; when it cannot certify its answer, the multi-start route."""
    case = task.base.solver_case
    if case in ("lp", "convex") and task.slope is not None:
        found = (solve_lp if case == "lp" else solve_newton)(task, options)
        if found is not None and found.certificate <= ACCEPT:
            return found
    found = solve_smooth(task, options, convex=case == "convex")
    return dataclasses.replace(found, case=case)


def _fixed_point(loss, pairs: Pairs, where: str, options: dict) -> Found:
    prob = pairs.problem
    state = loss.population_state(record_inputs(loss, prob.ref_logp[None], pairs), pairs.weight)
    init = None
    for rounds in range(1, MAX_ROUNDS + 1):
        task = Task(loss, pairs, where, state)
        if rounds == 1:
            check_structure(task)
        inner = _solve_task(task, dict(options, init=init))
        logp = torch.where(torch.isneginf(inner.logp), SURROGATE_LOGP, inner.logp)
        new_state = loss.population_state(record_inputs(loss, logp[None], pairs), pairs.weight)
        change = max(float((new_state[k] - state[k]).abs().max()) for k in state)
        state, init = new_state, inner.logp
        if change < STATE_TOL:
            break
    certificate = max(change, inner.certificate)
    if certificate > ACCEPT:
        raise SolveFailed(f"{where}{loss.name!r}: the population state still moved by {change:.3g} after {rounds} "
                          f"fixed-point rounds (inner certificate {inner.certificate:.3g})", inner.logp, certificate,
                          ACCEPT, [f"{rounds} fixed-point rounds"])
    message = (f"fixed point of population_state after {rounds} rounds (last state change {change:.2g}); "
               f"inner {inner.case}: {inner.message}")
    return dataclasses.replace(inner, case="fixed_point", certificate=certificate, message=message)
