"""f-divergence-regularised optima: the f-DPO target (Wang et al., arXiv 2309.16240).

max_π E_π[r] − β·D_f(π ‖ π_ref), D_f(π ‖ π_ref) = Σ π_ref·f(π/π_ref), f convex, f(1) = 0,
f′ invertible with f′(0⁺) = −∞. KKT: r = β·f′(u*) + λ, u = π/π_ref, so

    π*_f(y) = π_ref(y)·(f′)⁻¹((r(y) − λ)/β),   λ ∈ (λ_min, ∞) the root of Σ_y π*_f(y) = 1,

per prompt (derived here, table; [derived]). The sum is strictly decreasing in λ, +∞ at
λ_min⁺ and 0 at ∞, so the root is unique; it is found by bisection in float64. With
v = r/β, x = λ/β − λ_min/β + (v_max − v) > 0 the inverse scores are u = e^{−h(x)}:

| divergence   | f′(u)             | (f′)⁻¹(w)           | λ_min              | h(x)          |
|--------------|-------------------|---------------------|--------------------|---------------|
| reverse_kl   | 1 + log u         | e^{w−1}             | −∞ (closed form)   | —             |
| forward_kl   | −1/u              | −1/w                | max r              | log x         |
| alpha (α>0)  | (1 − u^{−α})/α    | (1 − αw)^{−1/α}     | max r − β/α        | log(αx)/α     |
| js           | log(2u/(1 + u))   | e^w/(2 − e^w)       | max r − β·log 2    | log(eˣ − 1)   |

α is the paper's α (α → 0 is reverse KL, α → 1 forward KL); TRL ≥ v0.29's
``f_alpha_divergence_coef`` a is 1 − α. Evidence: code (f′ in the authors' code, TRL and BPO
App. B.1 agree), derived (the normaliser λ inside (f′)⁻¹, not a multiplicative Z_f).
"""
from __future__ import annotations

import torch

from .._checks import check_choice, check_positive, run_count
from .._numerics import bisect, run_axis

DIVERGENCES = ("reverse_kl", "forward_kl", "js", "alpha")


def _neg_log_inverse(x: torch.Tensor, divergence: str, alpha: torch.Tensor) -> torch.Tensor:
    """h(x) = −log (f′)⁻¹ at distance x > 0 above the pole (table above), increasing in x."""
    if divergence == "forward_kl":
        return torch.log(x)
    if divergence == "alpha":
        return torch.log(alpha * x) / alpha
    return x + torch.log(-torch.expm1(-x))  # js: log(eˣ − 1), stable for every x > 0


def _log_h_inverse(level: torch.Tensor, divergence: str, alpha: torch.Tensor) -> torch.Tensor:
    """log x with h(x) = ``level``: the brackets of the root."""
    if divergence == "forward_kl":
        return level
    if divergence == "alpha":
        return alpha * level - torch.log(alpha)
    return torch.log(torch.nn.functional.softplus(level))  # js: x = log(1 + e^level)


def target_within(log_weight: torch.Tensor, value: torch.Tensor, log_mass: torch.Tensor,
                  divergence: str, alpha) -> torch.Tensor:
    """log π = log_weight + log (f′)⁻¹(value − λ/β), λ per row such that Σ π = e^{log_mass}.

    ``log_weight`` ``[..., Y]`` (−inf outside the set being normalised), ``value`` = r/β and
    ``log_mass`` ``[..., 1]`` broadcast against it; ``alpha`` a float64 tensor (``[]`` or
    ``[B, 1, 1]``). Rows need one finite ``log_weight``. Returns float64, −inf where the weight is 0."""
    inside = torch.isfinite(log_weight)
    if divergence == "reverse_kl":
        logits = log_weight + value
        return logits - torch.logsumexp(logits, -1, keepdim=True) + log_mass
    value = torch.where(inside, value, -torch.inf)
    top = value.amax(-1, keepdim=True)
    gap = torch.where(inside, top - value, 0.0)                                   # v_max − v ≥ 0
    total = torch.logsumexp(log_weight, -1, keepdim=True)
    at_top = torch.where(gap == 0, log_weight, -torch.inf).amax(-1, keepdim=True)
    low = _log_h_inverse(at_top - log_mass, divergence, alpha)     # Σ ≥ mass: top term alone
    high = _log_h_inverse(total - log_mass, divergence, alpha)     # Σ ≤ mass: every gap at 0
    low, high = torch.broadcast_tensors(low, high)

    def shortfall(log_x):   # log mass − log Σ π, increasing in log x
        return log_mass - torch.logsumexp(log_weight - _neg_log_inverse(log_x.exp() + gap, divergence, alpha), -1,
                                          keepdim=True)

    log_x = bisect(shortfall, low, high)
    logp = log_weight - _neg_log_inverse(log_x.exp() + gap, divergence, alpha)
    logp = torch.where(inside, logp, -torch.inf)
    return logp - torch.logsumexp(logp, -1, keepdim=True) + log_mass


def check_divergence(divergence, alpha) -> None:
    """ValueError unless ``divergence`` is one of DIVERGENCES (and α > 0 for "alpha")."""
    check_choice(divergence, "divergence", DIVERGENCES)
    if divergence == "alpha":
        check_positive(alpha, "alpha")


def fdpo_target(prob, beta, divergence: str = "reverse_kl", alpha=0.5, ref_logp=None) -> torch.Tensor:
    """The f-DPO optimum π_ref·(f′)⁻¹((r − λ)/β), λ per prompt by bisection (module docstring).

    ``beta`` > 0 and ``alpha`` (read only by ``divergence="alpha"``; any α > 0, f-DPO uses (0, 1))
    are numbers or ``[B]`` tensors. ``ref_logp`` ``[P, Y]`` replaces the problem's π_ref; it may be
    unnormalised (e.g. zeros: a constant reference, AlphaPO's tempered target). Needs a BT reward.
    Returns float64 log-probs ``[P, Y]``, or ``[B, P, Y]`` with ``[B]`` hyperparameters. Reverse
    KL gives π*_β = π_ref·e^{r/β}/Z. Source: arXiv 2309.16240 (f-DPO); derived here."""
    check_positive(beta, "beta")
    check_divergence(divergence, alpha)
    run_count(beta, alpha if divergence == "alpha" else None)
    if prob.reward is None:
        raise ValueError("fdpo_target needs a Bradley–Terry reward; the problem has a general preference matrix")
    weight = prob.ref_logp if ref_logp is None else torch.as_tensor(ref_logp, dtype=torch.float64)
    if weight.shape != prob.reward.shape or not torch.isfinite(weight).all():
        raise ValueError(f"ref_logp must be finite with shape {tuple(prob.reward.shape)}, got {tuple(weight.shape)}")
    alpha_axis = run_axis(alpha if divergence == "alpha" else 1.0, "alpha")
    value = prob.reward / run_axis(beta, "beta")
    log_mass = torch.zeros(1, dtype=torch.float64)
    return target_within(weight, value, log_mass, divergence, alpha_axis)

