"""Bregman preference optimisation (BPO): ``bpo`` (generator h ∈ lr, kliep, lsif, ba) and ``sba``.

Symbols: g = ℓ − ℓ_ref, Δ = g_w − g_l, z = β·Δ and the model's ratio
R = [π(y_l)π_ref(y_w) / (π(y_w)π_ref(y_l))]^β = e^{−z}. BPO fits R to the data ratio
R_data = p(y_l ≻ y_w)/p(y_w ≻ y_l) in the Bregman divergence of a strictly convex h; per observed
record the tractable loss is (Thm. 3) ℓ_h(R) = h′(R)·R − h(R) − h′(1/R), up to a constant.
Its gradient is G_h(R)·∇R with G_h(R) = R·h″(R) + R⁻²·h″(1/R) > 0 (Prop. 4): h only reweights
records, and per pair p·ℓ_h(R) + (1 − p)·ℓ_h(1/R) is minimised at R = (1 − p)/p, z = logit p, for
every h. So every instance is a logit link (G1 in docs/losses.md): the population minimiser is
π*_β = π_ref·e^{r/β}/Z for any connected pair law (Thm. 2).

The per-record losses are the paper's Table 2 forms, constant-free (convention chosen here;
Thm. 3's exact form adds +1 for lsif, +1/λ for ba, +1/(sλ(λ+1)) for sba, which moves no gradient
and no optimum). **LSIF is the corrected R² − 2R⁻¹**: the available text prints R² − 2R, which is
minimised at R = 1 whatever the data (claim ``bpo.lsif_as_printed``).

Clipping (paper App. C.2: "R clipped ≥ 0.01"; mechanism unstated, a clamp presumed, derived here):
``clip_min``/``clip_max`` clamp R to [c_min, c_max], i.e. z to [−log c_max, −log c_min]; the loss
is flat (zero gradient) outside. Source: Kim, Bae, Na, Moon, arXiv 2505.19601 v2 (NeurIPS 2025),
Thm. 2, Thm. 3, Prop. 4, Table 2, App. C Code 1. Evidence: paper, derived.
"""
from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass

import torch

from .._checks import check_choice, check_positive, check_range, hyper_values
from .._numerics import run_axis, softplus
from ._targets import is_zero, potential_target
from .base import MarginLoss, by_fields, register

GENERATORS = ("lr", "kliep", "lsif", "ba")


def _all(value, predicate) -> bool:
    """``predicate`` holds for every run's value of a scalar or ``[B]`` hyperparameter."""
    return bool(predicate(hyper_values(value, "value")).all())


@dataclass(frozen=True)
class ClippedRatioLoss(MarginLoss):
    """A loss ℓ(R) of R = e^{−z}, with R optionally clamped to [``clip_min``, ``clip_max``].

    Subclasses give ``ratio_loss(z)`` = ℓ(e^{−z}) and its derivative ``ratio_dloss(z)``."""

    clip_min: float | None = None
    clip_max: float | None = None

    @abstractmethod
    def ratio_loss(self, z):
        """ℓ(e^{−z}), unclipped."""

    @abstractmethod
    def ratio_dloss(self, z):
        """d ℓ(e^{−z}) / dz = −R·G(R), unclipped."""

    def validate_clip(self):
        for name in ("clip_min", "clip_max"):
            if getattr(self, name) is not None:
                check_positive(getattr(self, name), name)
        if self.clip_min is not None and self.clip_max is not None:
            low, high = hyper_values(self.clip_min, "clip_min"), hyper_values(self.clip_max, "clip_max")
            if not bool((low < high).all()):
                raise ValueError(f"clip_min must be below clip_max, got {self.clip_min!r} and {self.clip_max!r}")

    def _bounds(self, z):
        """(lower, upper) bounds on z: −log clip_max, −log clip_min (None where unclipped)."""
        bound = lambda name: None if getattr(self, name) is None else (  # noqa: E731
            -torch.as_tensor(self.hp(name, z), dtype=z.dtype, device=z.device).log())
        return bound("clip_max"), bound("clip_min")

    def phi(self, z):
        low, high = self._bounds(z)
        if low is None and high is None:
            return self.ratio_loss(z)
        return self.ratio_loss(torch.clamp(z, min=low, max=high))

    def dphi(self, z):
        low, high = self._bounds(z)
        if low is None and high is None:
            return self.ratio_dloss(z)
        inside = torch.ones_like(z, dtype=torch.bool)
        if low is not None:
            inside = inside & (z >= low)
        if high is not None:
            inside = inside & (z <= high)
        return torch.where(inside, self.ratio_dloss(torch.clamp(z, min=low, max=high)), 0.0)

    def target(self, prob, noise=0.0):
        """π*_β (BT reward, clean labels, connected components at their π_ref mass). With
        ``clip_min`` only: still π*_β when every compared pair has |r_a − r_b| ≤ −log clip_min (then
        z* = r_a − r_b lies where the clamp is inactive and the pair objective is unimodal); else None.
        With ``clip_max`` the clamped loss is not analysed (None)."""
        if prob.reward is None or not is_zero(noise) or self.clip_max is not None:
            return None
        if self.clip_min is not None:
            gaps = (prob.reward[:, :, None] - prob.reward[:, None, :]).abs()
            widest = float(gaps[prob.pair_weights() > 0].max())
            if not _all(self.clip_min, lambda c: widest <= -c.log()):
                return None
        return potential_target(prob, prob.reward / run_axis(self.beta, "beta"))


@register
@dataclass(frozen=True)
class BPO(ClippedRatioLoss):
    """BPO with generator ``h``; ℓ as a function of R = e^{−z} (paper Table 2, constant-free):

    | h       | h(R)                              | ℓ(R)                           | G_h(R)                 |
    |---------|-----------------------------------|--------------------------------|------------------------|
    | lr      | [R log R − (1+R) log(1+R)]/2      | log(1 + R) = sp(−z)  (= DPO)   | 1/(1 + R)              |
    | kliep   | R log R − R                       | R + log R = e^{−z} − z         | 1 + 1/R                |
    | lsif    | (R − 1)²                          | R² − 2R⁻¹ (corrected)          | 2R + 2R⁻²              |
    | ba (λ)  | (R^{1+λ} − R)/λ, λ > −1, λ ≠ 0    | R^{λ+1} − ((λ+1)/λ)·R^{−λ}     | (λ+1)(R^λ + R^{−λ−1})  |

    ``lam`` is BA's λ (required for h="ba", not accepted otherwise; no published default).
    Convex in the logits for lr, kliep and ba with λ < 0 (without ``clip_max``); lsif and ba with
    λ > 0 are not (``solve`` multi-starts). Target π*_β for every h (Thm. 2). Defaults β 0.1
    (paper's HH setting). Source: arXiv 2505.19601, Thm. 3, Table 2. Evidence: paper, derived."""

    h: str = "lr"
    lam: float | None = None

    name = "bpo"
    citation = "Kim, Bae, Na, Moon, arXiv 2505.19601, Thm. 3 and Table 2"
    evidence = "paper, derived"
    target_kind = "closed"
    plain_margin = True
    family = "logit_link"
    convex = by_fields(True, lambda loss: loss.clip_max is None and (
        loss.h in ("lr", "kliep") or loss.h == "ba" and _all(loss.lam, lambda lam: lam < 0)))

    def validate(self):
        check_positive(self.beta, "beta")
        check_choice(self.h, "h", GENERATORS)
        if self.h == "ba":
            if self.lam is None:
                raise ValueError("h='ba' needs lam (BA's λ): lam > -1 and lam != 0")
            check_range(self.lam, "lam", low=-1.0, low_open=True, allowed="lam > -1 and lam != 0")
            if not _all(self.lam, lambda lam: lam != 0):
                raise ValueError(f"lam={self.lam!r} is not allowed for h='ba'; need lam > -1 and lam != 0 "
                                 "(lam -> 0 is h='kliep')")
        elif self.lam is not None:
            raise ValueError(f"lam is BA's λ and is used only with h='ba'; got h={self.h!r}, lam={self.lam!r}")
        self.validate_clip()

    def ratio_loss(self, z):
        if self.h == "lr":
            return softplus(-z)
        if self.h == "kliep":
            return torch.exp(-z) - z
        if self.h == "lsif":
            return torch.exp(-2 * z) - 2 * torch.exp(z)
        lam = self.hp("lam", z)
        return torch.exp(-(lam + 1) * z) - (lam + 1) / lam * torch.exp(lam * z)

    def ratio_dloss(self, z):
        if self.h == "lr":
            return -torch.sigmoid(-z)
        if self.h == "kliep":
            return -torch.exp(-z) - 1
        if self.h == "lsif":
            return -2 * torch.exp(-2 * z) - 2 * torch.exp(z)
        lam = self.hp("lam", z)
        return -(lam + 1) * (torch.exp(-(lam + 1) * z) + torch.exp(lam * z))


@register
@dataclass(frozen=True)
class SBA(ClippedRatioLoss):
    """Scaled Basu's power divergence: h(R) = (R^{1+λ} − R)/(s·λ(λ+1)),

    ℓ(R) = R^{λ+1}/(s(λ+1)) − R^{−λ}/(sλ),   G(R) = (R^λ + R^{−λ−1})/s,

    and at λ = 0 (paper Code 1's branch) ℓ = (R + log R)/s, KLIEP scaled. G(1) = 2/s, so s = 4
    matches DPO's gradient at π_θ = π_ref for every λ; λ only changes the dynamics, the optimum is
    π*_β. λ = −½, s = 4 gives exactly e^{−z/2}. Defaults λ = −0.5 (paper's TL;DR and Mistral
    settings), s = 4, β 0.1; λ > −1. Convex for λ ≤ 0 (without ``clip_max``).
    Source: arXiv 2505.19601, Table 2 and App. C Code 1 (the /(4(1+λ)) on both SBA branches,
    derived here). Evidence: paper, derived."""

    lam: float = -0.5
    s: float = 4.0

    name = "sba"
    citation = "Kim, Bae, Na, Moon, arXiv 2505.19601, Table 2 (SBA) and App. C Code 1"
    evidence = "paper, derived"
    target_kind = "closed"
    plain_margin = True
    family = "logit_link"
    convex = by_fields(True, lambda loss: loss.clip_max is None and _all(loss.lam, lambda lam: lam <= 0))

    def validate(self):
        check_positive(self.beta, "beta")
        check_range(self.lam, "lam", low=-1.0, low_open=True, allowed="lam > -1")
        check_positive(self.s, "s")
        self.validate_clip()

    def ratio_loss(self, z):
        lam, s = self.hp("lam", z), self.hp("s", z)
        if not isinstance(lam, torch.Tensor):
            if lam == 0:
                return (torch.exp(-z) - z) / s
            return torch.exp(-(lam + 1) * z) / (s * (lam + 1)) - torch.exp(lam * z) / (s * lam)
        # per-run λ: each branch sees only its own runs' z (0 elsewhere), so an overflow in the
        # unused branch cannot reach the gradient as 0·inf
        at_zero = lam == 0
        safe = torch.where(at_zero, torch.ones_like(lam), lam)
        zero_z, power_z = torch.where(at_zero, z, 0.0), torch.where(at_zero, 0.0, z)
        kliep = (torch.exp(-zero_z) - zero_z) / s
        power = torch.exp(-(safe + 1) * power_z) / (s * (safe + 1)) - torch.exp(safe * power_z) / (s * safe)
        return torch.where(at_zero, kliep, power)

    def ratio_dloss(self, z):
        lam, s = self.hp("lam", z), self.hp("s", z)
        return -(torch.exp(-(lam + 1) * z) + torch.exp(lam * z)) / s
