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
FIRST_RATIO = 4.0
"""Factor by which 1/β grows at the first continuation stage; afterwards the factor adapts to the Newton
iterations a stage needed: squared after ≤ ``EASY_ITER``, kept after ≤ ``STAGE_ITER``/2, its square root
taken after more, and a stage that fails is retried with the square root (geometric continuation)."""
EASY_ITER = 3
MAX_RATIO = 1e6
STAGE_TOL = 1e-8
"""Scaled residual at which an intermediate continuation stage hands over to the next."""
STAGE_ITER = 30
"""Newton iterations allowed per continuation stage before the stage is retried with a smaller step."""
PATIENCE = 4
"""Damped Newton steps after which a continuation stage is judged too far from its root and retried."""
MAX_HALVINGS = 60
NUMPY_SOLVE_MAX = 64
EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class NashCertificate:
    """How far a candidate is from the regularised equilibrium, per prompt (``[P]`` or ``[B, P]``).

    ``residual``: max_y |log π(y) − log BR(π)(y)|, the log-space fixed-point residual;
    ``gap``: the exploitability β·KL(π ‖ BR(π)) ≥ 0, zero only at π*_β;
    ``tv_bound``: √(KL(π ‖ BR(π))/2), an upper bound on TV(π, π*_β) (strong convexity of the gap);
    ``iterations``: Newton steps taken by the slowest row (0 when the certificate was computed for a given π)."""

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
    best = _best_response_logits(ref, scaled, logp.exp())
    best = best - torch.logsumexp(best, -1, keepdim=True)   # torch.log_softmax stalls ~10 ms on contended threads
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

    Solves F(u) = u − log π_ref − κ·A·softmax(u) = 0 for logits u (A = M − ½, κ = 1/β; the root is
    the equilibrium's logits, its log-partition included) by Newton's method with an Armijo line
    search on ½‖F‖², every prompt and β value a row of one batched NumPy program (float64 on the
    host: for the small systems of a tabular game, Y ≲ 256, per-call overhead dominates and NumPy's
    is ~10× lower than torch's; the answer and its certificate are tensors on the problem's device).
    The Jacobian J = I − κ·A·(diag π − ππᵀ) is nonsingular everywhere (x = κASx gives xᵀSx = 0, so
    Sx = 0 and x = 0) and ‖F(u)‖ bounds ‖u‖, so level sets are compact: backtracking Newton converges
    from any start, quadratically near the root (Nocedal & Wright, Numerical Optimization, Thm 11.6)
    [derived]. Far from the root at small β its steps are short, so β is reached by continuation
    along the equilibrium path, which is smooth in κ (implicit function theorem, J nonsingular):
    Newton is first tried straight at κ from π_ref; rows that need more than ``PATIENCE`` damped steps
    restart from κ₀ = 1/‖A‖_∞, where π_ref is a good start, and κ grows geometrically by a per-row
    factor that adapts to the Newton steps each stage needed (``FIRST_RATIO``, ``EASY_ITER``), each
    stage started from the previous answer moved along the path's tangent (Euler predictor); a stage
    that does not converge within ``STAGE_ITER`` steps or ``PATIENCE`` damped ones is retried with a
    smaller factor. Stops when
    ‖F‖_∞ ≤ ``tol``·(1 + ‖log π_ref‖_∞ + κ‖A‖_∞); raises ValueError when the final solve needs more
    than ``max_iter`` iterations or the continuation stalls. Source: Munos et al., arXiv
    2312.00886 (the regularised Nash equilibrium)."""
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}")
    if not tol > 0:
        raise ValueError(f"tol must be > 0, got {tol!r}")
    ref, scaled, betas = _game(prob, beta)
    shape = ref.shape
    antisym = (prob.preference_matrix() - 0.5).expand(*shape, shape[-1])
    kappa = torch.as_tensor(betas, dtype=torch.float64).expand(*shape[:-1]).reciprocal()
    logits, iterations = _solve(ref.reshape(-1, shape[-1]).cpu().numpy(), antisym.reshape(-1, *shape[-1:] * 2).cpu().numpy(),
                                kappa.reshape(-1).cpu().numpy(), tol, max_iter)
    logits = torch.as_tensor(logits, device=ref.device)
    logp = (logits - torch.logsumexp(logits, -1, keepdim=True)).reshape(shape)   # not log_softmax: see _kl_to_best_response
    if not return_certificate:
        return logp
    kl, log_residual = _kl_to_best_response(logp, ref, scaled)
    return logp, NashCertificate(log_residual, betas * kl, (kl / 2).sqrt(), iterations)


def _solve(ref, antisym, kappa, tol, max_iter):
    """Rows of (log π_ref ``[N, Y]``, A ``[N, Y, Y]``, κ ``[N]``): continuation in κ, then Newton to ``tol``;
    (logits ``[N, Y]``, Newton iterations of the slowest row)."""
    direct, done, steps = _newton(ref.copy(), ref, antisym, kappa, STAGE_TOL, STAGE_ITER, PATIENCE)
    norm = np.abs(antisym).sum(-1).max(-1)
    current = np.where(done, kappa, np.minimum(kappa, 1 / np.maximum(norm, 1e-300)))
    logits, _, used = _newton(np.where(done[:, None], direct, ref), ref, antisym, current, STAGE_TOL, max_iter)
    steps += used
    ratio = np.full_like(kappa, FIRST_RATIO)
    while (moving := np.flatnonzero(current < kappa)).size:
        now, proposal = current[moving], np.minimum(kappa[moving], current[moving] * ratio[moving])
        start = logits[moving] + (proposal - now)[:, None] * _path_tangent(logits[moving], antisym[moving], now)
        trial, done, used = _newton(start, ref[moving], antisym[moving], proposal, STAGE_TOL, STAGE_ITER, PATIENCE)
        steps[moving] += used
        accept = moving[done]
        logits[accept], current[accept] = trial[done], proposal[done]
        ratio[moving] = np.where(~done | (used > STAGE_ITER // 2), np.sqrt(ratio[moving]),
                                 np.where(used <= EASY_ITER, np.minimum(ratio[moving] ** 2, MAX_RATIO), ratio[moving]))
        if (~done & (ratio[moving] < 1 + 1e-9)).any():
            raise ValueError(f"nash's continuation in β stalled at β = {1 / now[~done].min():.3g}; raise max_iter or tol")
    logits, done, used = _newton(logits, ref, antisym, kappa, tol, max_iter)
    if not done.all():
        raise ValueError(f"nash did not converge in {max_iter} Newton iterations; raise max_iter or tol")
    return logits, int((steps + used).max())


def _softmax(logits):
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    return weights / weights.sum(-1, keepdims=True)


def _residual(logits, ref, scaled):
    return logits - ref - (scaled @ _softmax(logits)[..., None])[..., 0]


def _jacobian(logits, scaled):
    """J = I − κA·S, S = diag π − ππᵀ, rows at once (``scaled`` = κA)."""
    policy = _softmax(logits)
    product = scaled * policy[:, None, :] - (scaled @ policy[..., None]) * policy[:, None, :]
    return np.eye(logits.shape[-1]) - product, policy


def _path_tangent(logits, antisym, kappa):
    """du/dκ along the equilibrium path: differentiating u − log π_ref − κ·A·softmax(u) = 0 gives
    (I − κ·A·S)·du/dκ = A·π, S = diag π − ππᵀ (Euler predictor for the continuation)."""
    jacobian, policy = _jacobian(logits, kappa[:, None, None] * antisym)
    return _linear_solve(jacobian, antisym @ policy[..., None])[..., 0]


def _linear_solve(matrix, rhs):
    """Batched solve: NumPy's for Y ≤ ``NUMPY_SOLVE_MAX`` (no thread start-up); torch's above, whose threads follow
    ``torch.set_num_threads`` (OpenBLAS's own threads, which NumPy's solve starts from Y ≈ 128, contend badly
    with other processes on a loaded machine: 0.25 s for one 128 × 128 solve, measured on 2 busy cores)."""
    if matrix.shape[-1] <= NUMPY_SOLVE_MAX:
        return np.linalg.solve(matrix, rhs)
    return torch.linalg.solve(torch.from_numpy(matrix), torch.from_numpy(rhs)).numpy()


def _newton(logits, ref, antisym, kappa, tol: float, max_iter: int, patience: int | None = None):
    """Backtracking Newton on F(u) = u − log π_ref − κA·softmax(u) from ``logits``, rows at once, each row
    until its own ‖F‖_∞ ≤ tol·(1 + ‖log π_ref‖_∞ + κ‖A‖_∞); (logits, converged ``[N]``, Newton steps per row ``[N]``).
    Converged rows stay where they are; with ``patience``, a row that needed that many damped (shortened) steps
    is given up as not converged (a continuation stage that is far from its root)."""
    scaled = kappa[:, None, None] * antisym
    scale = 1 + np.abs(ref).max(-1) + np.abs(scaled).sum(-1).max(-1)
    logits = logits.copy()
    residual = _residual(logits, ref, scaled)
    damped, steps = np.zeros(len(logits), dtype=int), np.zeros(len(logits), dtype=int)
    for iterations in range(max_iter + 1):
        unsettled = np.abs(residual).max(-1) > tol * scale
        active = np.flatnonzero(unsettled & (damped < (patience or max_iter + 1)))
        if not active.size or iterations == max_iter:
            return logits, ~unsettled, steps
        jacobian, _ = _jacobian(logits[active], scaled[active])
        step = -_linear_solve(jacobian, residual[active][..., None])[..., 0]
        logits[active], residual[active], full = _line_search(logits[active], residual[active], step, ref[active],
                                                              scaled[active])
        damped[active] += ~full
        steps[active] += 1
    raise AssertionError("unreachable")


def _line_search(logits, residual, step, ref, scaled):
    """Armijo backtracking on ½‖F‖² along the Newton step, per row; (logits, residual, full step taken ``[N]``)."""
    merit = 0.5 * np.square(residual).sum(-1)
    size = np.ones(len(logits))
    new_logits, new_residual = logits.copy(), residual.copy()
    pending = np.arange(len(logits))
    for _ in range(MAX_HALVINGS):
        trial = logits[pending] + size[pending, None] * step[pending]
        trial_residual = _residual(trial, ref[pending], scaled[pending])
        # the Newton step's directional derivative of ½‖F‖² is −‖F‖², so Armijo reads:
        accept = 0.5 * np.square(trial_residual).sum(-1) <= (1 - 2 * ARMIJO * size[pending]) * merit[pending]
        new_logits[pending[accept]], new_residual[pending[accept]] = trial[accept], trial_residual[accept]
        pending = pending[~accept]
        if not pending.size:
            return new_logits, new_residual, size == 1
        size[pending] /= 2
    # a row whose merit is at float64 rounding cannot decrease further: keep the full step
    bound = (64 * EPS) ** 2 * (1 + np.abs(logits[pending]).max(-1)) ** 2 * logits.shape[-1]
    stuck = pending[merit[pending] <= bound]
    new_logits[stuck] = logits[stuck] + step[stuck]
    new_residual[stuck] = _residual(new_logits[stuck], ref[stuck], scaled[stuck])
    return new_logits, new_residual, size == 1


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


