"""DPO and the margin losses that share its parametrisation: ``dpo``, ``ipo``, ``hinge``.

Symbols: g = ℓ − ℓ_ref (sequence log-ratio), Δ = g_w − g_l, z = β·Δ, sp(t) = log(1 + e^t).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .._checks import check_positive
from .._numerics import run_axis, softplus
from ..optima import ipo as ipo_optimum
from ._targets import is_zero, potential_target
from .base import LENGTH_INPUTS, MarginLoss, by_fields, register


@register
@dataclass(frozen=True)
class DPO(MarginLoss):
    """Direct Preference Optimization: L = −log σ(β·Δ) = sp(−z).

    Target: π*_β = π_ref·e^{r/β}/Z for any connected pair law (BT, clean labels; also the
    DID record law). Source: Rafailov et al., arXiv 2305.18290, Eq. 7."""

    name = "dpo"
    citation = "Rafailov et al., arXiv 2305.18290, Eq. 7"
    evidence = "code, derived"
    target_kind = "closed"
    plain_margin = True
    family = "logit_link"
    convex = True
    falls_forever = True

    def phi(self, z):
        return softplus(-z)

    def dphi(self, z):
        return -torch.sigmoid(-z)

    def dphi_kernel_(self, z):
        return z.sigmoid_()                          # −σ(−z) = σ(z) − 1

    def dphi_shift(self, like):
        return -1.0

    def dphi_pair_sum(self, like):
        return -1.0                                  # −σ(−z) − σ(z)

    def target(self, prob, noise=0.0):
        if prob.reward is None or not is_zero(noise):
            return None
        return potential_target(prob, prob.reward / run_axis(self.beta, "beta"))


@register
@dataclass(frozen=True)
class IPO(MarginLoss):
    """Identity Preference Optimisation: L = (Δ − 1/(2τ))², τ = ``beta``.

    ``length_normalized=False`` (default) is the paper's Eq. 17 on summed log-probs;
    ``True`` is TRL's convention (every version; also HALOs): each log-ratio divided by its
    token count before forming Δ, which needs ``FlatSpace(K, lengths=...)``.
    Target (paper form): the weighted least-squares projection of the per-pair margins
    (2p̃ − 1)/(2τ), π* ∝ π_ref·exp(p(y≻μ)/τ) for product μ; it depends on μ.
    Source: Azar et al., arXiv 2310.12036, Eqs. 7, 9, 13, 17; TRL DPOTrainer ``ipo``."""

    length_normalized: bool = False

    name = "ipo"
    citation = "Azar et al., arXiv 2310.12036, Eq. 17"
    evidence = "paper, code, derived"
    target_kind = "closed"
    plain_margin = True
    family = "non_proper"
    convex = by_fields(True, lambda loss: not loss.length_normalized)   # unequal lengths: convex in Δ only
    solver_case = "convex"

    @property
    def needs(self):
        return LENGTH_INPUTS if self.length_normalized else ()

    def margin_coefficients(self, inputs):
        if not self.length_normalized:
            return super().margin_coefficients(inputs)
        chosen, rejected = 1 / inputs["chosen_len"], 1 / inputs["rejected_len"]
        return chosen, rejected, rejected * inputs["ref_rejected_logp"] - chosen * inputs["ref_chosen_logp"]

    def validate(self):
        check_positive(self.beta, "beta")
        if not isinstance(self.length_normalized, bool):
            raise ValueError(f"length_normalized must be True or False, got {self.length_normalized!r}")

    def margin(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **inputs):
        if not self.length_normalized:
            return super().margin(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp)
        return ((chosen_logp - ref_chosen_logp) / inputs["chosen_len"]
                - (rejected_logp - ref_rejected_logp) / inputs["rejected_len"])

    def phi(self, z):
        beta = self.hp("beta", z)
        return ((z - 0.5) / beta) ** 2

    def dphi(self, z):
        beta = self.hp("beta", z)
        return 2 * (z - 0.5) / beta**2

    def dphi_pair_sum(self, like):
        return -2 / self.hp("beta", like) ** 2       # φ′ is affine: 2·φ′(0)

    def target(self, prob, noise=0.0):
        if self.length_normalized:
            return None
        return ipo_optimum(prob, self.beta, noise)


@register
@dataclass(frozen=True)
class Hinge(MarginLoss):
    """SLiC / RSO hinge: L = relu(1 − β·Δ).

    ``reference_free=True`` uses ℓ_w − ℓ_l in place of Δ (SLiC-HF's calibration term with
    δ = 1/β; its λ·NLL regulariser is ``rpo``'s business and not included here).
    The per-pair optimum is rank-only (z* = ±1); the population optimum is a linear program,
    μ-dependent in general and possibly non-unique. Source: Zhao et al., arXiv 2305.10425;
    Liu et al. (RSO), arXiv 2309.06657; TRL DPOTrainer ``hinge``."""

    reference_free: bool = False

    name = "hinge"
    citation = "Zhao et al. (SLiC-HF), arXiv 2305.10425; RSO arXiv 2309.06657"
    evidence = "code, derived"
    target_kind = "projection"
    family = "non_proper"
    convex = True

    def validate(self):
        check_positive(self.beta, "beta")
        if not isinstance(self.reference_free, bool):
            raise ValueError(f"reference_free must be True or False, got {self.reference_free!r}")

    solver_case = "lp"

    def margin_coefficients(self, inputs):
        if not self.reference_free:
            return super().margin_coefficients(inputs)
        ones = torch.ones_like(inputs["chosen_logp"])
        return ones, ones, torch.zeros_like(ones)

    @property
    def plain_margin(self) -> bool:
        return not self.reference_free   # SLiC-HF's margin has no reference terms

    def margin(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **inputs):
        if self.reference_free:
            return chosen_logp - rejected_logp
        return super().margin(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp)

    def phi(self, z):
        return torch.relu(1 - z)

    def dphi(self, z):
        return -(z < 1).to(z.dtype)
