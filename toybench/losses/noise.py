"""Label-noise losses: ``cdpo`` (conservative DPO) and ``rdpo`` (provably robust DPO).

Symbols as in ``dpo``: z = β·Δ, sp(t) = log(1 + e^t); ε = ``eps`` is the assumed flip rate.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .._checks import check_positive, check_probability_rate, hyper_values
from .._numerics import run_axis, softplus
from ._targets import potential_target
from .base import MarginLoss, register


@register
@dataclass(frozen=True)
class CDPO(MarginLoss):
    """Conservative DPO (label smoothing): L = (1 − ε)·sp(−z) + ε·sp(z).

    ∂L/∂z = σ(z) − (1 − ε): a record stops at z = log((1 − ε)/ε). Per pair the optimum has
    σ(z*) = (1 − ε)p + ε(1 − p): cDPO on clean data is DPO on ε-flipped data, and on flipped
    data it smooths twice. Not a logit link: a μ-dependent convex projection.
    Source: E. Mitchell, "A note on DPO with noisy preferences & relationship to IPO" (2023);
    TRL ≤ v0.28 ``sigmoid`` with ``label_smoothing``."""

    eps: float = 0.1

    name = "cdpo"
    citation = "Mitchell, cDPO note (2023); TRL v0.28 sigmoid + label_smoothing"
    evidence = "code, secondary, derived"
    target_kind = "projection"
    plain_margin = True
    family = "non_proper"
    convex = True

    def validate(self):
        check_positive(self.beta, "beta")
        check_probability_rate(self.eps, "eps")

    def phi(self, z):
        eps = self.hp("eps", z)
        return (1 - eps) * softplus(-z) + eps * softplus(z)

    def dphi(self, z):
        return torch.sigmoid(z) - (1 - self.hp("eps", z))

    def dphi_kernel_(self, z):
        return z.sigmoid_()

    def dphi_shift(self, like):
        return self.hp("eps", like) - 1

    def dphi_pair_sum(self, like):
        return 2 * self.hp("eps", like) - 1          # σ(z) + σ(−z) − 2(1 − ε)


@register
@dataclass(frozen=True)
class RDPO(MarginLoss):
    """Provably robust DPO: L = [(1 − ε)·sp(−z) − ε·sp(z)] / (1 − 2ε).

    Unbiased under flips at the known rate ε: p̃L(z) + (1 − p̃)L(−z) = p·sp(−z) + (1 − p)·sp(z)
    with p̃ = (1 − ε)p + ε(1 − p), so on ε-flipped data the minimiser is the clean π*_β,
    whatever μ. The per-record loss is unbounded below (slope −ε/(1 − 2ε)).
    Source: Chowdhury, Kini, Natarajan, arXiv 2403.00409; TRL DPOTrainer ``robust``."""

    eps: float = 0.1

    name = "rdpo"
    citation = "Chowdhury, Kini, Natarajan, arXiv 2403.00409"
    evidence = "code, derived"
    target_kind = "closed"
    plain_margin = True
    family = "logit_link"
    convex = True
    falls_forever = True

    def effective_table(self, table):
        """D_eff(a, b) = [(1 − ε)D(a, b) − εD(b, a)]/(1 − 2ε): rDPO's population loss is DPO's on
        D_eff (plus a constant) [derived]."""
        eps = float(self.eps)
        return ((1 - eps) * table - eps * table.transpose(-1, -2)) / (1 - 2 * eps)

    def validate(self):
        check_positive(self.beta, "beta")
        check_probability_rate(self.eps, "eps")

    def phi(self, z):
        eps = self.hp("eps", z)
        return ((1 - eps) * softplus(-z) - eps * softplus(z)) / (1 - 2 * eps)

    def dphi(self, z):
        eps = self.hp("eps", z)
        return (-(1 - eps) * torch.sigmoid(-z) - eps * torch.sigmoid(z)) / (1 - 2 * eps)

    def dphi_pair_sum(self, like):
        return -1 / (1 - 2 * self.hp("eps", like))   # −[(1 − ε) + ε]·(σ(−z) + σ(z))/(1 − 2ε)

    def dphi_kernel_(self, z):
        return z.sigmoid_()                          # φ′(z) = σ(z) − (1 − ε)/(1 − 2ε)

    def dphi_shift(self, like):
        eps = self.hp("eps", like)
        return (eps - 1) / (1 - 2 * eps)

    def target(self, prob, noise=0.0):
        """Clean π*_β when the data's flip rate equals ``eps`` (BT, pair law μ); else None."""
        noise_rates, eps = hyper_values(noise, "noise"), hyper_values(self.eps, "eps")
        if prob.reward is None or noise_rates.shape != eps.shape and min(noise_rates.ndim, eps.ndim) > 0:
            return None
        if not bool((noise_rates == eps).all()):
            return None
        if isinstance(prob.pair_dist, str) and prob.pair_dist == "did":
            return None
        return potential_target(prob, prob.reward / run_axis(self.beta, "beta"))
