"""The best policy of a restricted class: float64 L-BFGS from several starts, gradient-norm certificate.

``tb.solve`` minimises over the whole simplex (a tabular policy). A class with shared parameters
(``LogLinear``, ``MLP``, ``TinyTransformer``) may not reach that minimiser; ``fit_best`` gives the
class's own best point, so "how far is a trained model from the best model of its class, and from
π*?" are exact questions (distances between float64 tables). The objective is the population (or
data-set) loss Σ_k ω_k·L_k of ``toybench.objective``; the search is non-convex in general, so the
answer is "best of ``starts`` starts, each certified stationary" (the certificate is the gradient
norm ‖∇_θ 𝓛‖₂ at the returned point, not a proof of global optimality).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ._numerics import one_blas_thread
from .autoregressive import check_normalised
from .objective import objective

GRAD_TOL = 1e-8
"""Default certificate threshold on ‖∇_θ 𝓛‖₂ (float64; L-BFGS on these smooth objectives gets to
~1e-10 and below)."""


@dataclass(frozen=True)
class FitResult:
    """``logp`` ``[P, Y]`` float64 of the best start; ``value`` its objective; ``grad_norm`` its
    certificate; ``certified`` = grad_norm ≤ tol; ``values`` and ``grad_norms`` per start;
    ``policy`` the fitted float64 one-run policy."""

    logp: torch.Tensor
    value: float
    grad_norm: float
    certified: bool
    values: list
    grad_norms: list
    policy: object


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
             max_iter: int = 2000) -> FitResult:
    """The best point of ``policy``'s class for ``loss`` on ``pairs`` (see the module docstring).

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
    fits = []
    for start in range(starts):
        candidate = policy.like(runs=1, dtype=torch.float64, seed=seed + start)
        check_normalised(candidate)
        value, grad_norm = fit_one(candidate, loss, pairs, max_iter)
        fits.append((value, grad_norm, candidate))
    value, grad_norm, best = min(fits, key=lambda fit: fit[0])
    with torch.no_grad():
        logp = check_normalised(best)[0].detach().clone()
    return FitResult(logp, value, grad_norm, grad_norm <= tol, [f[0] for f in fits], [f[1] for f in fits], best)
