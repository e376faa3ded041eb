"""Claims on likelihood displacement and its remedies: the probability-space gradient ratio and the
"3D properties" of Yan et al. (arXiv 2406.07327), the regularisers DPOP, RPO and Flex-DPO measured on
the LogLinear construction of Razin et al. (arXiv 2410.08847, Thm. 2; ``experiments.displacement``),
and the CHES score (Razin et al., Thm. 3) as a predictor on a TinyTransformer [exploratory].

"The chosen log-prob change" is log π_t(y+) − log π_0(y+) in nats, exact (float64 tables).
"""
from __future__ import annotations

import functools

import torch

from .. import losses
from ..displacement import probability_gradients
from ..experiments import displacement, three_d
from .registry import claim

RAZIN = ("LogLinear: fixed unembeddings W+ = (1, 0.1), W− = (1, −0.1), Wz = (0, 1), bias log(0.6, 0.3, 0.1), "
         "trainable hidden h from 0, one record y+ ≻ y−, SGD lr 0.1, 500 steps, float64")


def _probability_ratio_error(loss, factor: float) -> float:
    """max |ratio / (−factor·π_w/π_l) − 1| over a grid of (π_w, π_l) and reference log-probs."""
    gen = torch.Generator().manual_seed(0)
    chosen, rejected = (torch.rand(2, 50, generator=gen, dtype=torch.float64) * 0.98 + 0.01 for _ in range(2))
    refs = torch.randn(2, 2, 50, generator=gen, dtype=torch.float64) - 2.0
    d_chosen, d_rejected = probability_gradients(loss, chosen, rejected, refs[0], refs[1])
    return float((d_rejected / d_chosen / (-factor * chosen / rejected) - 1).abs().max())


@claim("dpo.probability_gradient_ratio",
       citation="Yan et al., arXiv 2406.07327 (gradient ratio in probability space); derived: ∂L/∂π_w = −βσ(−z)/π_w, "
                "∂L/∂π_l = βσ(−z)/π_l",
       assumptions="DPO β ∈ {0.1, 1, 10}, 100 random (π_w, π_l) ∈ [0.01, 0.99]² with random reference log-probs; "
                   "the two probabilities treated as free variables (no softmax Jacobian); autograd, float64 "
                   "(max relative error of the ratio)",
       tolerance=1e-12)
def dpo_probability_ratio() -> float:
    """DPO's probability-space gradients have the ratio (∂L/∂π_l)/(∂L/∂π_w) = −π_w/π_l (max relative error)."""
    return max(_probability_ratio_error(losses.make("dpo", beta=beta), 1.0) for beta in (0.1, 1.0, 10.0))


@claim("displacement.flex_dpo_probability_gradient_ratio",
       citation="Yan et al., arXiv 2406.07327 (Flex-DPO); derived: the ratio becomes −(β⁻/β⁺)·π_w/π_l",
       assumptions="Flex-DPO (β⁺, β⁻) ∈ {(0.1, 0.08), (1, 0.5)}, the same grid as dpo.probability_gradient_ratio",
       tolerance=1e-12)
def flex_probability_ratio() -> float:
    """Flex-DPO damps the push on the rejected response: ratio −(β⁻/β⁺)·π_w/π_l (max relative error)."""
    return max(_probability_ratio_error(losses.make("flex_dpo", beta_plus=plus, beta_minus=minus), minus / plus)
               for plus, minus in ((0.1, 0.08), (1.0, 0.5)))


@functools.cache
def _three_d_run() -> dict:
    return three_d.run(epochs=200, every=200)


@claim("repro.three_d.chosen_degrades",
       citation="Yan et al., arXiv 2406.07327 (3D properties: degradation of the chosen likelihood)",
       assumptions="the reconstruction of repro.three_d.dispersion_to_unseen (exploratory, the paper's toy is "
                   "unpublished), 200 epochs, 5 seeds: record-mean chosen probability change. A finding: it rises "
                   "(0.04 → 0.30) although the record-mean chosen log-prob falls (−0.48 nats): the chosen responses "
                   "that are also rejected in another record plunge (repro.three_d.some_chosen_displaced)",
       tolerance=0.0, expected="fails")
def three_d_chosen() -> float:
    """DPO degrades the chosen responses' likelihood (mean change of their probability)."""
    return float(_three_d_run()["chosen_mass_change"][-1].mean())


@claim("repro.three_d.some_chosen_displaced",
       citation="Yan et al., arXiv 2406.07327 (3D properties: degradation of the chosen likelihood)",
       assumptions="the same reconstruction and run: mean over seeds of the fraction of records whose chosen "
                   "log-prob fell below its start (measured 0.41; in each prompt's chain of 4 records, 3 responses "
                   "appear in two records, and may be chosen in one and rejected in the other)",
       tolerance=0.25, comparison=">=")
def three_d_displaced() -> float:
    """Under DPO a sizeable fraction of the chosen responses loses likelihood (displaced fraction)."""
    return float(_three_d_run()["displaced_fraction"][-1].mean())


@claim("displacement.dpop_keeps_chosen",
       citation="Pal et al. (Smaug/DPOP), arXiv 2402.13228, Eq. 3; construction: Razin et al., arXiv 2410.08847, "
                "Thm. 2",
       assumptions=RAZIN + "; DPOP β = 1, λ = 50. Below its start the penalty turns the rate of log π(y+) "
                   "positive (∝ (1 + λ)‖u‖² − ⟨u, v⟩ > 0 at h = 0, u, v as in displacement.flex_dpo_threshold); "
                   "an SGD step can overshoot by at most lr·β·max|⟨W+ − W̄, W+ − W−⟩| ≤ 0.1·0.18 = 0.018 nats to "
                   "first order [derived]: min over steps of the chosen log-prob change (measured −0.0013)",
       tolerance=-0.018, comparison=">=")
def dpop_keeps_chosen() -> float:
    """DPOP keeps the chosen log-prob from falling below its start by more than one SGD step (min change)."""
    change, _ = displacement.regularised(losses.make("dpop", beta=1.0, lam=50.0))
    return float(change.min())


@claim("displacement.rpo_keeps_chosen",
       citation="Pang et al. (RPO), arXiv 2404.19733 (DPO + NLL); construction: Razin et al., arXiv 2410.08847",
       assumptions=RAZIN + "; RPO β = 1, α = 1 (NLL of y+, one token): min over steps 1..500 of the chosen "
                   "log-prob change (the start rate is −0.003 + 0.0109 > 0 [derived]; π(y+) 0.6 → 0.75). "
                   "With α = 0.01 it falls 1.16 nats (not registered)",
       tolerance=0.0, comparison=">=")
def rpo_keeps_chosen() -> float:
    """RPO's NLL term keeps the chosen log-prob above its start at every step (min change)."""
    change, _ = displacement.regularised(losses.make("rpo", beta=1.0, alpha=1.0))
    return float(change[1:].min())


@claim("displacement.flex_dpo_keeps_chosen",
       citation="Yan et al., arXiv 2406.07327 (Flex-DPO, β⁺ ≠ β⁻); construction: Razin et al., arXiv 2410.08847",
       assumptions=RAZIN + "; Flex-DPO β⁺ = 1, β⁻ = 0.8 (the paper's ratio 0.08/0.1): min over steps of the "
                   "chosen log-prob change, tolerance −0.018 as for DPOP (one SGD step). A finding: it falls "
                   "(≈ −0.18 nats by step 500; DPO: −1.45), since β⁻/β⁺ = 0.8 is above the threshold 109/169 of "
                   "displacement.flex_dpo_threshold",
       tolerance=-0.018, comparison=">=", expected="fails")
def flex_keeps_chosen() -> float:
    """Flex-DPO keeps the chosen log-prob from falling below its start (min change)."""
    change, _ = displacement.regularised(losses.make("flex_dpo", beta_plus=1.0, beta_minus=0.8))
    return float(change.min())


@claim("displacement.flex_dpo_threshold",
       citation="Yan et al., arXiv 2406.07327 (Flex-DPO); Razin et al., arXiv 2410.08847, Thm. 2; derived: at h = 0, "
                "d/dt log π(y+) = σ(0)·(β⁺‖u‖² − β⁻⟨u, v⟩), u = W+ − W̄, v = W− − W̄, so it is positive iff "
                "β⁻/β⁺ < ‖u‖²/⟨u, v⟩ = 0.0109/0.0169 = 109/169",
       assumptions="the construction of displacement.flex_dpo_keeps_chosen at h = 0, β⁺ = 1; the rate by autograd at "
                   "β⁻ ∈ {0.5, 1} (it is linear in β⁻), its root vs 109/169 (abs error)",
       tolerance=1e-12)
def flex_threshold() -> float:
    """Flex-DPO raises the chosen response at the start iff β⁻/β⁺ < 109/169 on the construction (root error)."""
    low, high = (displacement.chosen_rate(losses.make("flex_dpo", beta_plus=1.0, beta_minus=b)) for b in (0.5, 1.0))
    root = 0.5 + low * 0.5 / (low - high)
    return abs(root - 109 / 169)


@claim("displacement.ches_predicts_chosen_drop",
       citation="Razin et al., arXiv 2410.08847, Thm. 3 (CHES: larger scores, larger drops of the chosen response)",
       assumptions="exploratory: 4 one-layer TinyTransformers (width 16, float64) on SequenceSpace(3, 2), one random "
                   "prompt; 64 random pairs each, one pair per run; DPO β = 1, 5 SGD steps lr 0.1; mean over models "
                   "of the Spearman correlation between CHES at the start and the chosen log-prob change (measured "
                   "−0.24: per model −0.33, −0.24, −0.55, +0.15; a correlation of 64 pairs has a standard error "
                   "≈ 0.13, the mean of 4 ≈ 0.065; < 1 % of the chosen log-probs fall at all, so CHES ranks how much "
                   "the chosen response gains)",
       tolerance=0.0)
def ches_correlation() -> float:
    """Higher CHES goes with a smaller chosen log-prob change (mean Spearman correlation, negative)."""
    found = displacement.ches_correlation()
    return sum(found) / len(found)
