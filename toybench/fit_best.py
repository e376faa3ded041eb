"""The best policy of a restricted class: float64 L-BFGS from several starts, gradient-norm certificate.

``tb.solve`` minimises over the whole simplex (a tabular policy). A class with shared parameters
(``LogLinear``, ``MLP``, ``TinyTransformer``) may not reach that minimiser; ``fit_best`` gives the
class's own best point, so "how far is a trained model from the best model of its class, and from
π*?" are exact questions (distances between float64 tables). The objective is the population (or
data-set) loss Σ_k ω_k·L_k of ``toybench.objective``; the search is non-convex in general, so the
answer is "best of ``starts`` starts, each certified stationary" (the certificate is the gradient
norm ‖∇_θ 𝓛‖₂ at the returned point, not a proof of global optimality).

**Can the class reach the simplex optimum?** With ``simplex=True`` (default) the result carries
``gap_to_simplex``, the class best against ``tb.solve(loss, pairs)`` (value gap, TV, KL), and
``reachable``:

- ``LogLinear`` (log π = log_softmax(base + φ·w), w shared by every prompt): exact linear algebra.
  The simplex optimum π* is reachable iff log π* − base lies in span(φ) + per-prompt constants,
  i.e. the least-squares residual ``loglinear_residual`` is 0 (``True`` when ≤ ``REACH_TOL``,
  ``False`` otherwise).
- ``AutoregressiveTabular``: every full-support distribution is reachable (it factorises uniquely
  along the prefix tree), so ``True``.
- other classes (``MLP``, ``TinyTransformer``): ``True`` when the fit reached π* (TV ≤
  ``REACH_TOL``); otherwise ``None``: a non-convex search that misses π* does not prove the class
  cannot represent it.

Every class here has full support at finite parameters, so a simplex optimum with zero-mass
responses (``Solution.boundary``) is approached only in a limit: ``reachable`` is ``False``.
``message`` says which case applied.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from . import metrics
from ._numerics import one_blas_thread
from .autoregressive import AutoregressiveTabular, check_normalised
from .objective import objective
from .shared_policies import LogLinear
from .solve import NoFiniteMinimum, Solution, SolveFailed, solve

GRAD_TOL = 1e-8
"""Default certificate threshold on ‖∇_θ 𝓛‖₂ (float64; L-BFGS on these smooth objectives gets to
~1e-10 and below)."""
REACH_TOL = 1e-6
"""``loglinear_residual`` (nats) and TV below which the simplex optimum counts as reached: tb.solve
certifies its logits to a gradient of 1e-8, so an exactly reachable log π* is fitted to about
1e-8 / (the Hessian's smallest eigenvalue), far below this when that eigenvalue is ≳ 1e-2."""


@dataclass(frozen=True)
class SimplexGap:
    """The class best against the simplex optimum ``solution = tb.solve(loss, pairs)``: ``value`` =
    class objective − simplex objective (≥ 0 up to both certificates); ``tv`` and ``kl`` =
    KL(π*‖class best) (prompt-averaged; finite, the class best has full support); ``residual`` the
    ``loglinear_residual`` of π* for a ``LogLinear`` class, else None."""

    value: float
    tv: float
    kl: float
    residual: float | None
    solution: Solution


@dataclass(frozen=True)
class FitResult:
    """``logp`` ``[P, Y]`` float64 of the best start; ``value`` its objective; ``grad_norm`` its
    certificate; ``certified`` = grad_norm ≤ tol; ``values`` and ``grad_norms`` per start;
    ``policy`` the fitted float64 one-run policy; ``gap_to_simplex`` (a ``SimplexGap``, None when
    ``simplex=False`` or tb.solve gave no minimiser), ``reachable`` (True, False or None = not
    decided) and ``message`` as in the module docstring."""

    logp: torch.Tensor
    value: float
    grad_norm: float
    certified: bool
    values: list
    grad_norms: list
    policy: object
    gap_to_simplex: SimplexGap | None = None
    reachable: bool | None = None
    message: str = ""


def loglinear_residual(policy: LogLinear, logp) -> float:
    """min over (w, c) of max_{x,y} |log π(y|x) − base(x,y) − ⟨φ(x,y), w⟩ − c_x| at the least-squares
    (w, c), in float64: 0 iff ``logp`` (``[P, Y]`` or ``[1, P, Y]``, finite) is a point of the
    ``LogLinear`` class (shared weights w, a free normaliser c_x per prompt); +inf when ``logp`` has
    −inf entries (finite weights give full support). Solved with the pseudo-inverse (rank-deficient
    features allowed)."""
    if not isinstance(policy, LogLinear):
        raise ValueError(f"loglinear_residual needs a LogLinear policy, got {type(policy).__name__}")
    P, Y = policy.problem.P, policy.problem.Y
    target = torch.as_tensor(logp, dtype=torch.float64)
    if target.shape not in ((P, Y), (1, P, Y)):
        raise ValueError(f"logp must be [P, Y] = [{P}, {Y}] (or [1, P, Y]), got {tuple(target.shape)}")
    target = target.reshape(P, Y).to(policy.device)
    if torch.isneginf(target).any():
        return float("inf")
    if not torch.isfinite(target).all():
        raise ValueError("logp must be finite log-probs (−inf allowed for zero mass)")
    features = policy.features.to(torch.float64)                                 # [P, Y, D]
    constants = torch.eye(P, dtype=torch.float64, device=policy.device)[:, None, :].expand(P, Y, P)
    design = torch.cat([features, constants], -1).reshape(P * Y, -1)
    rhs = (target - policy.base.to(torch.float64)).reshape(P * Y)
    fitted = design @ (torch.linalg.pinv(design) @ rhs)
    return (fitted - rhs).abs().max().item()


def _simplex_gap(best, logp, value, loss, pairs):
    """(gap_to_simplex, reachable, message) of the module docstring."""
    try:
        sol = solve(loss, pairs)
    except (NoFiniteMinimum, SolveFailed) as err:
        return None, None, f"no simplex optimum to compare with: {type(err).__name__}: {err}"
    residual = loglinear_residual(best, sol.logp) if isinstance(best, LogLinear) else None
    gap = SimplexGap(value - float(sol.value), metrics.tv(logp, sol.logp).item(), metrics.kl(sol.logp, logp).item(),
                     residual, sol)
    if bool(sol.boundary.any()):
        return gap, False, ("the simplex optimum puts zero mass on some responses; this class has full support at "
                            "finite parameters, so it only approaches it in a limit")
    if residual is not None:
        if residual <= REACH_TOL:
            return gap, True, f"LogLinear reaches the simplex optimum (least-squares residual {residual:.3g})"
        if not bool(sol.identified):
            return gap, None, (f"the simplex minimiser is not unique; the one tb.solve returned is off the LogLinear "
                               f"class by {residual:.3g} nats, another may not be")
        return gap, False, (f"LogLinear cannot reach the simplex optimum: log π* − base is off span(features) + "
                            f"per-prompt constants by {residual:.3g} nats (least squares); the class best is "
                            f"TV {gap.tv:.3g} away with objective {gap.value:.3g} higher")
    if isinstance(best, AutoregressiveTabular):
        return gap, True, "every full-support distribution is reachable by this class"
    if gap.tv <= REACH_TOL:
        return gap, True, f"the class best reaches the simplex optimum (TV {gap.tv:.3g})"
    return gap, None, (f"the class best is TV {gap.tv:.3g} from the simplex optimum (objective {gap.value:.3g} "
                       "higher); the search is non-convex, so this does not prove the class cannot reach it")


def _value_and_grad(policy, loss, pairs, params):
    value = objective(loss, policy.logp(), pairs).sum()
    grads = torch.autograd.grad(value, params, allow_unused=True, materialize_grads=True)
    return value.item(), torch.cat([g.reshape(-1) for g in grads])


def fit_one(policy, loss, pairs, max_iter: int = 2000) -> tuple[float, float]:
    """Minimise the objective over ``policy``'s parameters in place (SciPy's L-BFGS-B, float64 gradients
    by autograd); returns (value, gradient norm) at the end."""
    from scipy.optimize import minimize

    params = policy.parameters()
    sizes = [p.numel() for p in params]

    def load(x):
        with torch.no_grad():
            for param, chunk in zip(params, torch.split(torch.from_numpy(x), sizes), strict=True):
                param.copy_(chunk.reshape(param.shape))

    def fun(x):
        load(x)
        value, grad = _value_and_grad(policy, loss, pairs, params)
        return value, grad.numpy()

    x = torch.cat([p.detach().reshape(-1) for p in params]).to(torch.float64).numpy()
    with one_blas_thread():
        for _ in range(3):        # L-BFGS stops on its tolerances; a fresh memory sometimes gets further
            x = minimize(fun, x, jac=True, method="L-BFGS-B",
                         options={"maxiter": max_iter, "gtol": 1e-13, "ftol": 1e-16, "maxcor": 50}).x
    load(x)
    value, grad = _value_and_grad(policy, loss, pairs, params)
    return value, grad.norm().item()


def fit_best(policy, loss, pairs, starts: int = 4, seed: int = 0, tol: float = GRAD_TOL,
             max_iter: int = 2000, simplex: bool = True) -> FitResult:
    """The best point of ``policy``'s class for ``loss`` on ``pairs`` (see the module docstring);
    ``simplex=True`` also solves the simplex problem (``tb.solve``) and fills ``gap_to_simplex``,
    ``reachable`` and ``message``.

    Start i is ``policy.like(runs=1, dtype=torch.float64, seed=seed + i)`` (for
    ``AutoregressiveTabular`` the starts differ only when it was built with ``init_scale`` > 0).
    ``pairs`` must be shared by all runs (leading axis 1); stateful losses are not supported.
    Loops over starts in Python: an oracle, like ``tb.solve``."""
    if isinstance(starts, bool) or not isinstance(starts, int) or starts < 1:
        raise ValueError(f"starts must be a positive integer, got {starts!r}")
    if not hasattr(policy, "like"):
        raise ValueError(f"fit_best needs a policy with like(runs, dtype, seed), got {type(policy).__name__}")
    if pairs.runs != 1:
        raise ValueError(f"fit_best takes one data set (pairs with a leading axis of 1), got {pairs.runs} runs")
    if getattr(loss, "stateful", False):
        raise ValueError(f"loss {loss.name!r} keeps batch statistics; fit_best minimises a fixed objective")
    if getattr(loss, "runs", None) not in (None, 1):
        raise ValueError("fit_best needs scalar hyperparameters (one loss, not [B] per-run values)")
    if not tol > 0:
        raise ValueError(f"tol must be > 0, got {tol!r}")
    if not isinstance(simplex, bool):
        raise ValueError(f"simplex must be True or False, got {simplex!r}")
    fits = []
    for start in range(starts):
        candidate = policy.like(runs=1, dtype=torch.float64, seed=seed + start)
        check_normalised(candidate)
        value, grad_norm = fit_one(candidate, loss, pairs, max_iter)
        fits.append((value, grad_norm, candidate))
    value, grad_norm, best = min(fits, key=lambda fit: fit[0])
    with torch.no_grad():
        logp = check_normalised(best)[0].detach().clone()
    gap, reachable, message = _simplex_gap(best, logp, value, loss, pairs) if simplex else (None, None, "")
    return FitResult(logp, value, grad_norm, grad_norm <= tol, [f[0] for f in fits], [f[1] for f in fits], best,
                     gap, reachable, message)
