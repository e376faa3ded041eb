"""IPO's population optimum for any pair law (Azar et al., arXiv 2310.12036)."""
from __future__ import annotations

import torch

from .._checks import check_probability_rate, hyper_values
from ..graph import component_labels, spread_free_parts
from .reverse_kl import _beta_axis


def ipo(prob, beta, noise=0.0) -> torch.Tensor:
    """Minimiser of Σ D(a,b)·(Δ_ab − 1/(2τ))² over tabular policies, τ = ``beta``.

    Each unordered pair {a, b} with weight w_ab asks for the margin t_ab = (2p̃_ab − 1)/(2τ),
    so G = log π/π_ref solves the weighted least-squares (graph Laplacian) system
    Σ_b w_ab (G_a − G_b − t_ab) = 0, one constant per connected component (left at the
    component's π_ref mass). For product pair laws μ ⊗ μ this is Prop. 3's closed form
    π* ∝ π_ref·exp(p(y ≻ μ)/τ) (arXiv 2310.12036, Eqs. 7, 9, 13); p̃ = (1 − noise)·p + noise·(1 − p).
    Under ``pair_dist="did"`` records carry hard labels, handled through the record table.
    """
    tau = _beta_axis(beta)
    check_probability_rate(noise, "noise")
    rate = hyper_values(noise, "noise")
    rate = rate if rate.ndim == 0 else rate[:, None, None, None]
    if isinstance(prob.pair_dist, str) and prob.pair_dist == "did":
        mu = prob.pair_law()
        records = (1 - rate) * mu + rate * mu.transpose(-1, -2)
        weights = records + records.transpose(-1, -2)
        wins = torch.where(weights > 0, records / weights.clamp_min(1e-300), 0.5)
    else:
        pref = prob.preference_matrix()
        weights = prob.pair_weights()
        wins = (1 - rate) * pref + rate * (1 - pref)
    if tau.ndim:
        tau = tau[..., None]
    target_margin = (2 * wins - 1) / (2 * tau)                                  # [..., P, Y, Y]
    weights = weights.expand_as(target_margin)
    laplacian = torch.diag_embed(weights.sum(-1)) - weights
    rhs = (weights * target_margin).sum(-1, keepdim=True)
    log_ratio = (torch.linalg.pinv(laplacian, hermitian=True) @ rhs).squeeze(-1)
    labels = component_labels(prob.pair_weights())
    return spread_free_parts(prob.ref_logp, log_ratio, labels)
