"""Nash equilibria of the preference game (general, possibly intransitive preferences).

With M[x, y, y′] = P(y ≻ y′|x) (M + Mᵀ = 1) and A = M − ½ (antisymmetric), the β-KL-regularised
symmetric game (Munos et al., Nash learning from human feedback, arXiv 2312.00886; the
target of SPPO, arXiv 2405.00675, and DNO, arXiv 2404.03715) has the unique equilibrium

    π*_β = softmax(log π_ref + M·π*_β/β)        (per prompt),

the best response to itself. Its exploitability V(π) = max_σ[σᵀAπ − β·KL(σ‖π_ref)] + β·KL(π‖π_ref)
equals β·KL(π ‖ BR(π)), BR(π) = softmax(log π_ref + Mπ/β), and is β-strongly convex in π (w.r.t.
‖·‖₁) with minimum 0 at π*_β, so TV(π, π*_β) ≤ √(KL(π‖BR(π))/2) for every π [derived].

``nash`` solves the fixed-point equation in log space by Newton's method with a backtracking line
search; ``nash_certificate`` checks any candidate; ``nash_unregularised`` is the β → 0 game's
equilibrium (von Neumann winner) by linear programming, where it is unique.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .._checks import check_positive, hyper_values

ARMIJO = 1e-4
CONTINUATION = 4.0
"""Largest factor by which 1/β grows from one continuation stage to the next (halved in log after a
stage that does not converge, doubled back after one that does)."""
STAGE_TOL = 1e-8
"""Scaled residual at which an intermediate continuation stage hands over to the next."""
STAGE_ITER = 20
DIRECT_ITER = 10
"""Newton iterations tried straight at the target β before falling back to continuation."""
"""Newton iterations allowed per continuation stage before the stage is retried with a smaller step."""
MAX_HALVINGS = 60
EPS = float(torch.finfo(torch.float64).eps)


@dataclass(frozen=True)
class NashCertificate:
    """How far a candidate is from the regularised equilibrium, per prompt (``[P]`` or ``[B, P]``).

    ``residual``: max_y |log π(y) − log BR(π)(y)|, the log-space fixed-point residual;
    ``gap``: the exploitability β·KL(π ‖ BR(π)) ≥ 0, zero only at π*_β;
    ``tv_bound``: √(KL(π ‖ BR(π))/2), an upper bound on TV(π, π*_β) (strong convexity of the gap);
    ``iterations``: Newton iterations used (0 when the certificate was computed for a given π)."""

    residual: torch.Tensor
    gap: torch.Tensor
    tv_bound: torch.Tensor
    iterations: int = 0


def _game(prob, beta):
    """(log π_ref ``[..., P, Y]``, A/β ``[..., P, Y, Y]``, batched) for scalar or ``[B]`` β."""
    check_positive(beta, "beta")
    betas = hyper_values(beta, "beta")
    antisym = prob.preference_matrix() - 0.5
    ref = prob.ref_logp
    if betas.ndim:
        scaled = antisym[None] / betas.to(antisym.device)[:, None, None, None]
        return ref.expand(betas.shape[0], -1, -1), scaled, betas[:, None]
    return ref, antisym / betas, betas


def _best_response_logits(ref, scaled, policy):
    return ref + torch.einsum("...ab,...b->...a", scaled, policy)


def _kl_to_best_response(logp, ref, scaled):
    """(KL(π ‖ BR(π)), max|log π − log BR(π)|) per prompt, computed without cancellation:
    with d = log π − log BR, KL = Σ π·(d + e^{−d} − 1) since Σ π·e^{−d} = Σ BR = 1."""
    best = torch.log_softmax(_best_response_logits(ref, scaled, logp.exp()), -1)
    diff = logp - best
    terms = torch.where(torch.isfinite(logp), logp.exp() * (diff + torch.expm1(-diff)), 0.0)
    return terms.sum(-1).clamp_min(0.0), diff.abs().amax(-1)


def nash_certificate(prob, beta, logp) -> NashCertificate:
    """The certificate of a candidate ``logp`` (``[P, Y]`` or ``[B, P, Y]``) for the β-regularised game."""
    ref, scaled, betas = _game(prob, beta)
    logp = torch.as_tensor(logp, dtype=torch.float64)
    if logp.shape[-2:] != ref.shape[-2:]:
        raise ValueError(f"logp must be [P, Y] or [B, P, Y] with P, Y = {tuple(ref.shape[-2:])}, got {tuple(logp.shape)}")
    kl, residual = _kl_to_best_response(logp, ref, scaled)
    return NashCertificate(residual, betas * kl, (kl / 2).sqrt())


def nash(prob, beta, *, tol: float = 1e-13, max_iter: int = 100, return_certificate: bool = False):
    """Equilibrium π*_β of the β-KL-regularised preference game, log-probs ``[P, Y]`` float64
    (``[B, P, Y]`` for ``[B]`` β); with ``return_certificate=True`` also its ``NashCertificate``.

    Solves F(u) = u − log π_ref − A·softmax(u)/β = 0 for logits u (A = M − ½; the root is the
    equilibrium's logits, its log-partition included) by Newton's method with an Armijo line
    search on ½‖F‖², all prompts and β values at once. The Jacobian J = I − A·(diag π − ππᵀ)/β is
    nonsingular everywhere (x = ASx/β gives xᵀSx = 0, so Sx = 0 and x = 0) and ‖F(u)‖ bounds ‖u‖,
    so level sets are compact: backtracking Newton converges from any start, quadratically near
    the root (Nocedal & Wright, Numerical Optimization, Thm 11.6) [derived]. Far from the root at
    small β its steps are short, so β is reached by continuation along the equilibrium path,
    which is smooth in β (implicit function theorem, J nonsingular): from β₀ = max(β, ‖A‖_∞),
    where π_ref is a good start, 1/β grows by up to ``CONTINUATION`` per stage, each stage started
    from the previous answer moved along the path's tangent (Euler predictor); a stage that does not
    converge in ``STAGE_ITER`` iterations is retried with a smaller step. Stops when
    ‖F‖_∞ ≤ ``tol``·(1 + ‖log π_ref‖_∞ + ‖A‖_∞/β); raises ValueError when the final solve needs more
    than ``max_iter`` iterations or the continuation stalls. Source: Munos et al., arXiv
    2312.00886 (the regularised Nash equilibrium)."""
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}")
    if not tol > 0:
        raise ValueError(f"tol must be > 0, got {tol!r}")
    ref, scaled, betas = _game(prob, beta)
    shape = ref.shape
    ref, scaled = ref.reshape(-1, shape[-1]), scaled.expand(*shape, shape[-1]).reshape(-1, shape[-1], shape[-1])
    target = torch.as_tensor(betas, dtype=torch.float64).expand(*shape[:-1]).reshape(-1).reciprocal()   # 1/β
    antisym = scaled / target[:, None, None]
    # Newton straight at β first; rows it does not settle within DIRECT_ITER restart the continuation
    direct, done, iterations = _newton(ref.clone(), ref, scaled, STAGE_TOL, DIRECT_ITER)
    easy = torch.minimum(target, antisym.abs().sum(-1).amax(-1).clamp_min(1e-300).reciprocal())
    current = torch.where(done, target, easy)
    logits, _, used = _newton(torch.where(done[:, None], direct, ref), ref, antisym * current[:, None, None],
                              STAGE_TOL, max_iter)
    iterations += used
    factor = torch.full_like(target, CONTINUATION)
    while (current < target).any():
        moving = current < target
        proposal = torch.where(moving, torch.minimum(target, current * factor), current)
        start = logits + (proposal - current)[:, None] * _path_tangent(logits, antisym * current[:, None, None], antisym)
        trial, done, used = _newton(torch.where(moving[:, None], start, logits), ref,
                                    antisym * proposal[:, None, None], STAGE_TOL, STAGE_ITER)
        iterations += used
        accept, reject = moving & done, moving & ~done
        logits, current = torch.where(accept[:, None], trial, logits), torch.where(accept, proposal, current)
        factor = torch.where(accept, (factor * 2).clamp(max=CONTINUATION), factor.sqrt())
        if bool((reject & (factor < 1 + 1e-9)).any()):
            raise ValueError(f"nash's continuation in β stalled at β = {float(1 / current[reject].max()):.3g}; "
                             "raise max_iter or tol")
    logits, done, used = _newton(logits, ref, scaled, tol, max_iter)
    if not bool(done.all()):
        raise ValueError(f"nash did not converge in {max_iter} Newton iterations; raise max_iter or tol")
    logp = torch.log_softmax(logits, -1).reshape(shape)
    if not return_certificate:
        return logp
    kl, log_residual = _kl_to_best_response(logp, ref.reshape(shape), scaled.reshape(*shape, shape[-1]))
    return logp, NashCertificate(log_residual, betas * kl, (kl / 2).sqrt(), iterations + used)


def _path_tangent(logits, scaled, antisym):
    """du/dκ along the equilibrium path, κ = 1/β: differentiating u − log π_ref − κ·A·softmax(u) = 0
    gives (I − κ·A·S)·du/dκ = A·π, S = diag π − ππᵀ (Euler predictor for the continuation)."""
    policy = torch.softmax(logits, -1)
    spread = torch.diag_embed(policy) - policy[:, :, None] * policy[:, None, :]
    eye = torch.eye(logits.shape[-1], dtype=torch.float64, device=logits.device)
    return torch.linalg.solve(eye - scaled @ spread, (antisym @ policy[..., None])).squeeze(-1)


def _newton(logits, ref, scaled, tol: float, max_iter: int):
    """Backtracking Newton on F(u) = u − log π_ref − (A/β)·softmax(u) from ``logits``, rows at once;
    (logits, converged ``[N]``, iterations used). Converged rows stay where they are."""
    scale = 1 + ref.abs().amax(-1) + scaled.abs().sum(-1).amax(-1)
    eye = torch.eye(ref.shape[-1], dtype=torch.float64, device=ref.device)
    residual = _residual(logits, ref, scaled)
    for iterations in range(max_iter + 1):
        active = residual.abs().amax(-1) > tol * scale
        if not active.any() or iterations == max_iter:
            return logits, ~active, iterations
        policy = torch.softmax(logits, -1)
        spread = torch.diag_embed(policy) - policy[:, :, None] * policy[:, None, :]
        step = -torch.linalg.solve(eye - scaled @ spread, residual.unsqueeze(-1)).squeeze(-1)
        logits, residual = _line_search(logits, residual, step, ref, scaled, active)
    return logits, ~active, max_iter


def _residual(logits, ref, scaled):
    return logits - _best_response_logits(ref, scaled, torch.softmax(logits, -1))


def _line_search(logits, residual, step, ref, scaled, active):
    """Armijo backtracking on ½‖F‖² along the Newton step, per row; rows already converged stay."""
    merit = 0.5 * residual.square().sum(-1)
    size = torch.where(active, 1.0, 0.0).to(logits)
    pending = active.clone()
    new_logits, new_residual = logits.clone(), residual.clone()
    for _ in range(MAX_HALVINGS):
        trial = logits + size[:, None] * step
        trial_residual = _residual(trial, ref, scaled)
        # the Newton step's directional derivative of ½‖F‖² is −‖F‖², so Armijo reads:
        accept = pending & (0.5 * trial_residual.square().sum(-1) <= (1 - 2 * ARMIJO * size) * merit)
        new_logits[accept], new_residual[accept] = trial[accept], trial_residual[accept]
        pending &= ~accept
        if not pending.any():
            break
        size = torch.where(pending, size / 2, size)
    # a row whose merit is at float64 rounding cannot decrease further: keep the full step
    stuck = pending & (merit <= (64 * EPS) ** 2 * (1 + logits.abs().amax(-1)) ** 2 * logits.shape[-1])
    full = logits + step
    new_logits[stuck], new_residual[stuck] = full[stuck], _residual(full, ref, scaled)[stuck]
    return new_logits, new_residual


def nash_unregularised(prob, tol: float = 1e-9) -> torch.Tensor:
    """The unregularised game's equilibrium (von Neumann winner): the π in the simplex with
    Σ_y π(y)·(M[y, y′] − ½) ≥ 0 for every y′ (the value of a symmetric zero-sum game is 0), by
    the HiGHS linear program, per prompt; log-probs ``[P, Y]`` (−inf off the support).

    The equilibrium set is a polytope; it is returned only when it is a single point (checked by
    minimising and maximising each π(y) over it, to ``tol``), else ValueError. Under
    Bradley–Terry with a unique best response it is the point mass on argmax r. Source: Dudík et
    al., arXiv 1502.06362 (von Neumann winner); Munos et al., arXiv 2312.00886."""
    from scipy.optimize import linprog

    payoff = (prob.preference_matrix() - 0.5).cpu().numpy()
    rows = []
    for x, game in enumerate(payoff):
        Y = game.shape[0]
        bounds, a_ub, b_ub = [(0, None)] * Y, -game.T, np.zeros(Y)
        a_eq, b_eq = np.ones((1, Y)), [1.0]
        extremes = []
        for y in range(Y):
            for sign in (1.0, -1.0):
                cost = np.zeros(Y)
                cost[y] = sign
                result = linprog(cost, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")
                if result.status != 0:
                    raise ValueError(f"prompt {x}: the equilibrium LP failed ({result.message})")
                extremes.append(result.x)
        points = np.stack(extremes)
        if np.ptp(points, axis=0).max() > tol:
            raise ValueError(f"prompt {x}: the unregularised game has many equilibria (π(y) ranges up to "
                             f"{np.ptp(points, axis=0).max():.3g}); use the regularised nash(prob, beta)")
        strategy = points.mean(0).clip(min=0.0)
        strategy[strategy <= tol] = 0.0
        rows.append(strategy / strategy.sum())
    return torch.as_tensor(np.stack(rows), dtype=torch.float64).log()


