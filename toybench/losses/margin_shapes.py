"""Other non-proper margin shapes (docs/losses.md): ``discopop`` and ``tan_principled``.

Symbols: Δ = (ℓ_w − ℓ^ref_w) − (ℓ_l − ℓ^ref_l), z = β·Δ, sp(t) = log(1 + e^t), σ the sigmoid.
Both are G2: the per-pair minimiser z*(p) is not logit p, so the population optimum is a
μ-dependent projection with no closed form (``target`` is None).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .._checks import check_choice, check_positive
from .._numerics import log_sigmoid, softplus
from .base import MarginLoss, register

ZETA_MODES = ("margin", "reward_scaled")


@register
@dataclass(frozen=True)
class DiscoPOP(MarginLoss):
    """DiscoPOP (log-ratio modulated loss): L = (1 − m)·sp(−z) + m·e^{−z}, m = σ(z/τ).

    A blend of the logistic and exponential losses, discovered by LLM search. Per pair the
    minimiser is not logit p (z* = 0.782, 1.333, 2.293 at p = 0.6, 0.75, 0.9), so the optimum is
    a μ-dependent projection, not π*_β (E1: TV 0.040 under W_u, 0.035 under W_s), and non-convex
    (``solve`` multi-starts). Near z = 0 the loss is non-monotone: dL/dz(0) = +0.784 at τ = 0.05,
    so from π_ref a hard-labelled record first pushes its margin down, into a local minimum at
    z ≈ −0.119. Unbounded under hard labels (z*(1) = ∞). Defaults: β 0.1, τ 0.05 (TRL's
    ``discopop_tau``). Source: Lu et al., arXiv 2406.08414, Eq. 5 (per TRL); TRL DPOTrainer
    ``loss_type="discopop"`` (v1.9: on the f-score difference; v0.28: on Δ). Evidence: code, derived."""

    tau: float = 0.05

    name = "discopop"
    citation = "Lu et al., arXiv 2406.08414, Eq. 5 (TRL DPOTrainer discopop)"
    evidence = "code, derived"
    target_kind = "projection"
    plain_margin = True
    family = "non_proper"
    convex = False

    def validate(self):
        check_positive(self.beta, "beta")
        check_positive(self.tau, "tau")

    def phi(self, z):
        """m·e^{−z} = e^{log σ(z/τ) − z}: one exponential, so 0·inf cannot arise as z → −∞."""
        scaled = z / self.hp("tau", z)
        return torch.sigmoid(-scaled) * softplus(-z) + torch.exp(log_sigmoid(scaled) - z)

    def dphi(self, z):
        """m′ = σ(z/τ)σ(−z/τ)/τ; the products with e^{−z} are formed in log space as in ``phi``."""
        tau = self.hp("tau", z)
        log_mix, log_rest = log_sigmoid(z / tau), log_sigmoid(-z / tau)
        exp_mix = torch.exp(log_mix - z)                          # m·e^{−z}
        return (torch.exp(log_mix + log_rest - z) / tau - torch.exp(log_mix + log_rest) / tau * softplus(-z)
                - log_rest.exp() * torch.sigmoid(-z) - exp_mix)


@register
@dataclass(frozen=True)
class TanPrincipled(MarginLoss):
    """RECONSTRUCTION of Tan's "principled" loss: L = f(ζ) = −ζ·e^{−ζ}.

    f has its minimum at ζ = 1, grows exponentially for ζ → −∞, decays for ζ → +∞ and is
    convex for ζ < 2, so the margin is pulled to a finite value and gradients stay bounded as
    π(y_l) → 0 [paper: abstract]. ζ is not confirmed by any read source (docs/losses.md):

    - ``zeta="margin"``: ζ = β·Δ (target margin 1/β). Per pair p·f(z) + (1 − p)·f(−z) has a
      finite minimiser for soft labels (G2, not derived further); hard labels stop at z = 1.
    - ``zeta="reward_scaled"``: ζ = β·Δ/(r_w − r_l), minimum at β·Δ = r_w − r_l. It needs the
      per-record reward gap as the named ``Pairs`` field ``score_gap`` (attach it with
      ``pairs.with_fields(score_gap=...)``; a zero gap is outside its domain and raises). Both
      orientations of a pair give the same ζ, so with the true gap every record is minimised at
      π*_β's margin whatever p and μ [derived]; ``target`` stays None because ``target`` cannot
      know which gap the records carry.

    Never register a paper claim against it. Source: Tan, arXiv 2508.07137 (OpenReview
    1NIyjrtxJU; title of one version "Stable Preference Optimization"); no code.
    Evidence: paper: abstract."""

    zeta: str = "margin"

    name = "tan_principled"
    citation = "Tan, arXiv 2508.07137 (OpenReview 1NIyjrtxJU), f(ζ) = −ζe^{−ζ}; RECONSTRUCTION"
    evidence = "paper: abstract"
    reconstruction = True
    target_kind = "projection"
    family = "non_proper"
    convex = False

    @property
    def needs(self):
        return ("score_gap",) if self.zeta == "reward_scaled" else ()

    def validate(self):
        check_positive(self.beta, "beta")
        check_choice(self.zeta, "zeta", ZETA_MODES)

    def margin_coefficients(self, inputs):
        return super().margin_coefficients(inputs) if self.zeta == "margin" else None

    def margin(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **inputs):
        delta = super().margin(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp)
        if self.zeta == "margin":
            return delta
        gap = inputs["score_gap"]
        if bool((gap == 0).any()):
            raise ValueError("tan_principled(zeta='reward_scaled') divides by the reward gap r_w − r_l; "
                             "a record has score_gap == 0 (use zeta='margin' or drop tied records)")
        return delta / gap

    def phi(self, z):
        return -z * torch.exp(-z)

    def dphi(self, z):
        return (z - 1) * torch.exp(-z)

    def input_grads(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **inputs):
        if self.zeta == "margin":
            return super().input_grads(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp)
        scaled = self.margin(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **inputs)
        beta = self.hp("beta", scaled)
        slope = beta * self.dphi(beta * scaled) / inputs["score_gap"]
        return slope, -slope
