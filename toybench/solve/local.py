"""Local smooth machinery in the logits: L-BFGS, Newton polish on the support, the active set.

L-BFGS-B (SciPy; Byrd, Lu, Nocedal & Zhu 1995) in s with π = softmax(s); a response driven below
BOUNDARY_CANDIDATE whose KKT multiplier ∂F/∂π_y − ν is positive when it alone is set to zero
is put on the boundary; Newton root-finding on the gradient over the support then polishes
(Nocedal & Wright, Numerical Optimization, 2nd ed., Sections 7.2 and 11.1). Evidence: derived.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize

from ..objective import objective
from .newton import normalise
from .task import SURROGATE_LOGP, Task

LBFGS_MAXITER, LBFGS_GTOL, LBFGS_FLAT = 200, 1e-9, 1e-15
"""L-BFGS stops at max|∇_s F| ≤ 1e-9, a relative value change below 1e-15 or 200 iterations."""
BOUNDARY_CANDIDATE, KKT_MARGIN = 1e-6, 1e-8
"""A response below 1e-6 whose KKT multiplier exceeds 1e-8·(1 + |ν|) when it alone is set to
zero is put on the boundary; a stationary response with a tiny mass stays interior."""


def value_and_grad(task: Task, logits: torch.Tensor, create_graph: bool = False):
    with torch.enable_grad():
        logits = logits.detach().requires_grad_(True)
        value = objective(task.loss, torch.log_softmax(logits, -1)[None], task.pairs)[0]
        grad, = torch.autograd.grad(value, logits, create_graph=create_graph)
    return value, grad, logits


def lbfgs(task: Task, start: torch.Tensor, to_logp=lambda logits: torch.log_softmax(logits, -1), gtol=LBFGS_GTOL,
          maxiter=LBFGS_MAXITER):
    """SciPy's L-BFGS-B on F(to_logp(s)) in float64 (gradients by autograd on the inputs' device);
    (logits, value). A non-finite objective is reported as +inf so the line search backs off."""
    shape, device = start.shape, start.device

    def value_grad(x):
        with torch.enable_grad():
            logits = torch.as_tensor(x, dtype=torch.float64, device=device).reshape(shape).requires_grad_(True)
            value = objective(task.loss, to_logp(logits)[None], task.pairs)[0]
            if not bool(torch.isfinite(value)):
                return np.inf, np.zeros(logits.numel())
            grad, = torch.autograd.grad(value, logits)
        grad = grad.cpu().numpy().ravel()
        return (float(value.detach()), grad) if np.isfinite(grad).all() else (np.inf, np.zeros_like(grad))

    x0 = torch.nan_to_num(start.detach(), nan=0.0, neginf=SURROGATE_LOGP).cpu().numpy().ravel()
    found = minimize(value_grad, x0, jac=True, method="L-BFGS-B",
                     options={"maxiter": maxiter, "gtol": gtol, "ftol": LBFGS_FLAT, "maxcor": 30})
    logits = torch.as_tensor(found.x, dtype=torch.float64, device=device).reshape(shape)
    return logits, float(found.fun)


def jacobian(task: Task, logits: torch.Tensor):
    """Gradient ``[P, Y]`` and its per-prompt Jacobian ``[P, Y, Y]`` in the logits (the objective is
    prompt-separable: one backward pass per response index covers every prompt; a plain loop,
    since batched or explicit grad_outputs load torch's symbolic-shape machinery, seconds on first use)."""
    with torch.enable_grad():
        _, grad, leaf = value_and_grad(task, logits, create_graph=True)
        eye = torch.eye(task.Y, dtype=torch.float64, device=logits.device)
        rows = [torch.autograd.grad((grad * eye[y]).sum(), leaf, retain_graph=True)[0] for y in range(task.Y)]
    return grad.detach(), torch.stack(rows, 1)


def polish(task: Task, logits: torch.Tensor, options: dict):
    """Newton root-finding on the gradient over the support (boundary responses frozen at −700
    below the top logit), merit |∇|² per prompt."""
    support = active_support(task, logits)
    logits = torch.where(support, logits - logits.amax(-1, keepdim=True), SURROGATE_LOGP)
    frozen = ~support
    eye = torch.eye(task.Y, dtype=torch.float64, device=logits.device)
    for _ in range(options["max_iter"]):
        grad, jac = jacobian(task, logits)
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
            trial_grad = torch.where(frozen, 0.0, value_and_grad(task, trial)[1])
            accept = (trial_grad ** 2).sum(-1) <= (1 - 1e-4 * size) * merit
            if bool(accept.all()):
                break
            size = torch.where(accept, size, size / 2)
        size = torch.where(accept, size, 0.0)
        if not bool((size > 0).any()):
            break
        logits = logits + size[:, None] * step
    return logits, support


def active_support(task: Task, logits: torch.Tensor) -> torch.Tensor:
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


def project(task: Task, logits: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    """Log-probs on the support (−inf off it); margin losses get free components at π_ref mass."""
    logp = torch.log_softmax(torch.where(support, logits, -torch.inf), -1)
    if task.slope is None:
        return logp
    return normalise(task.slope * logp, task.slope, task.labels, task.ref)


def smooth_hessian_min(task: Task, logits: torch.Tensor, support: torch.Tensor) -> float:
    _, jac = jacobian(task, logits)
    keep = (support[:, :, None] & support[:, None, :]).to(torch.float64)
    sym = (jac + jac.transpose(-1, -2)) / 2 * keep
    ones = support.to(torch.float64)
    gauge = ones[:, :, None] * ones[:, None, :] / ones.sum(-1)[:, None, None]
    bound = 2 * sym.abs().sum(-1).amax(-1) + 1
    sym = sym + bound[:, None, None] * (gauge + torch.diag_embed(1 - ones))
    return float(torch.linalg.eigvalsh(sym).amin())


