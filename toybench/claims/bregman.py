"""Claims for Bregman preference optimisation: ``bpo`` and ``sba`` (docs/losses.md).

E1 is the worked instance of docs/conventions.md with β = 1; W_u, W_s, W_c its pair laws. Distances
are total variation in float64 between ``solve``'s exact minimiser and π*_β = π_ref·e^{r/β}/Z.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from .. import losses, optima
from ..losses.base import MarginLoss
from ..objective import objective
from ..pairs import Pairs, population
from ..problem import Problem
from ..solve import solve
from ..spaces import FlatSpace
from .core import e1, random_table, tv
from .registry import claim

BPO_CITATION = "Kim, Bae, Na, Moon, arXiv 2505.19601"
BPO_INSTANCES = (dict(h="lr"), dict(h="kliep"), dict(h="lsif"), dict(h="ba", lam=-0.5), dict(h="ba", lam=0.5))
SBA_LAMS = (-0.5, 0.0, 0.5, 1.2)
SOLVER_TOL = 1e-7
"""TV allowed between solve and a closed form: solve's non-convex path (lsif, ba/sba λ > 0) stops
on a gradient tolerance, not at machine precision (reference reports ≤ 3e-8)."""


@functools.cache
def solved_e1(loss, law: str) -> torch.Tensor:
    """``solve``'s minimiser on E1 under ``law`` (cached: several claims share a solve)."""
    return solve(loss, population(e1(law))).logp


def _bpo_distance(law: str) -> float:
    pistar = optima.reverse_kl(e1(law), 1.0)
    return max(tv(solved_e1(losses.make("bpo", beta=1.0, **spec), law), pistar) for spec in BPO_INSTANCES)


def _sba_distance(law: str) -> float:
    pistar = optima.reverse_kl(e1(law), 1.0)
    return max(tv(solved_e1(losses.make("sba", beta=1.0, lam=lam), law), pistar) for lam in (-0.5, 0.5, 1.2))


LAW_NAMES = {"uniform": "W_u (uniform)", "ref": "W_s (π_ref ⊗ π_ref)", "chain": "W_c (chain 0–1–2–3, a tree)"}
for _law in LAW_NAMES:
    claim(f"bpo.target_all_h_{_law}",
          citation=f"{BPO_CITATION}, Thm. 2; derived here (E1: TV ≤ 3e-8)",
          assumptions=f"E1, BT, clean labels, β = 1, pair law {LAW_NAMES[_law]}; h ∈ {{lr, kliep, lsif, ba λ = ±½}}",
          tolerance=SOLVER_TOL,
          statement=f"Every BPO generator is minimised at π*_β under {LAW_NAMES[_law]} (max TV over the generators)."
          )(functools.partial(_bpo_distance, _law))
    claim(f"sba.target_{_law}",
          citation=f"{BPO_CITATION}, Thm. 2; derived here (E1: TV ≤ 3e-8)",
          assumptions=f"E1, BT, clean labels, β = 1, s = 4, pair law {LAW_NAMES[_law]}; λ ∈ {{−½, ½, 1.2}}",
          tolerance=SOLVER_TOL,
          statement=f"SBA is minimised at π*_β under {LAW_NAMES[_law]} for every λ (max TV over λ)."
          )(functools.partial(_sba_distance, _law))


@claim("bpo.target_random_table",
       citation=f"{BPO_CITATION}, Thm. 2 (any connected pair law)",
       assumptions="random problem, one prompt, Y = 6, BT rewards N(0, 1), a random dense pair-law table, "
                   "β = 0.5; h ∈ {kliep, lsif, ba λ = 0.5}",
       tolerance=SOLVER_TOL)
def bpo_target_random_table() -> float:
    """BPO reaches π*_β under a random pair-law table (max TV over the generators)."""
    prob = Problem.random(FlatSpace(6), prompts=1, seed=7, pair_dist=random_table(1, 6, 7))
    pistar = optima.reverse_kl(prob, 0.5)
    return max(tv(solve(losses.make("bpo", beta=0.5, **spec), population(prob)).logp, pistar)
               for spec in (dict(h="kliep"), dict(h="lsif"), dict(h="ba", lam=0.5)))


@dataclass(frozen=True)
class PrintedLSIF(MarginLoss):
    """LSIF as the available text of BPO Table 2 prints it: ℓ(R) = R² − 2R, R = e^{−z}. Not a
    registered loss: it is (e^{−z} − 1)² − 1, minimised at z = 0 by every record."""

    name = "bpo_lsif_as_printed"
    convex = False

    def phi(self, z):
        return torch.exp(-2 * z) - 2 * torch.exp(-z)

    def dphi(self, z):
        return -2 * torch.exp(-2 * z) + 2 * torch.exp(-z)


@claim("bpo.lsif_as_printed",
       citation=f"{BPO_CITATION}, Table 2 (LSIF row as printed); derived here (E1: TV 0.4645)",
       assumptions="E1, W_u, β = 1; the per-record loss R² − 2R as printed (the correct form is R² − 2R⁻¹)",
       tolerance=1e-6, expected="fails")
def bpo_lsif_as_printed() -> float:
    """LSIF as printed (R² − 2R) is minimised at π*_β (it gives π_ref instead: TV from π*_β)."""
    return tv(solved_e1(PrintedLSIF(beta=1.0), "uniform"), optima.reverse_kl(e1("uniform"), 1.0))


def _logit_gradient(loss, logp: torch.Tensor, pairs) -> torch.Tensor:
    """∂(population objective)/∂(tabular logits) at ``logp`` ``[P, Y]`` (float64 autograd)."""
    with torch.enable_grad():
        logits = logp.detach().clone().requires_grad_(True)
        value = objective(loss, torch.log_softmax(logits, -1)[None], pairs).sum()
        return torch.autograd.grad(value, logits)[0]


@claim("sba.gradient_match",
       citation=f"{BPO_CITATION}, Table 2 and App. C (s = 4 so that G_SBA(1) = G_LR(1) = ½)",
       assumptions="random problem, P = 3, Y = 5, pair law π_ref ⊗ π_ref; β ∈ {0.1, 1}; s = 4; "
                   "λ ∈ {−½, 0, ½, 1.2}; at π_θ = π_ref",
       tolerance=1e-14)
def sba_gradient_match() -> float:
    """At initialisation (π_θ = π_ref) SBA's population gradient equals DPO's, for every λ (max abs difference)."""
    prob = Problem.random(FlatSpace(5), prompts=3, seed=2, reward_scale=1.5)
    pairs = population(prob)
    worst = 0.0
    for beta in (0.1, 1.0):
        reference = _logit_gradient(losses.make("dpo", beta=beta), prob.ref_logp, pairs)
        for lam in SBA_LAMS:
            grad = _logit_gradient(losses.make("sba", beta=beta, lam=lam, s=4.0), prob.ref_logp, pairs)
            worst = max(worst, float((grad - reference).abs().max()))
    return worst


@claim("sba.lambda_only_dynamics",
       citation=f"{BPO_CITATION}, Thm. 2 and Prop. 4 (h only reweights records); derived here",
       assumptions="E1, W_s, β = 1, s = 4, no clipping; λ ∈ {−½, 0, ½, 1.2}",
       tolerance=SOLVER_TOL)
def sba_lambda_only_dynamics() -> float:
    """SBA's unclipped optimum does not depend on λ (max TV between the λ's minimisers)."""
    found = [solved_e1(losses.make("sba", beta=1.0, lam=lam), "ref") for lam in SBA_LAMS]
    return max(tv(found[0], other) for other in found[1:])


@claim("sba.lambda_changes_gradient",
       citation=f"{BPO_CITATION}, Prop. 4 (G_SBA(R) = (R^λ + R^{{−λ−1}})/s depends on λ away from R = 1)",
       assumptions="E1, W_s, β = 1, s = 4; uniform policy (away from π_ref); λ = −½ versus λ = 1.2",
       tolerance=1e-2, comparison=">=")
def sba_lambda_changes_gradient() -> float:
    """Away from π_ref, λ changes SBA's population gradient (max abs difference between λ = −½ and 1.2)."""
    prob = e1("ref")
    pairs, uniform = population(prob), torch.full((1, 4), -math.log(4.0), dtype=torch.float64)
    first, second = (_logit_gradient(losses.make("sba", beta=1.0, lam=lam), uniform, pairs) for lam in (-0.5, 1.2))
    return float((first - second).abs().max())


CLIP_MIN = 0.01


@claim("bpo.clip_plateau",
       citation=f"{BPO_CITATION}, App. C.2 (R clipped ≥ 0.01; clamp presumed); derived here",
       assumptions="two responses, one hard-labelled record y0 ≻ y1; clip_min = 0.01; β = 1; "
                   "h ∈ {lr, kliep, lsif, ba λ = ½}; margins z from just above −log 0.01 = 4.605 (the kink) to 4.605 + 40",
       tolerance=1e-12)
def bpo_clip_plateau() -> float:
    """With R ≥ c_min the hard-label objective is flat for z ≥ −log c_min: a plateau, not divergence
    (max change of the objective plus max logit gradient along the plateau)."""
    prob = Problem(FlatSpace(2), torch.full((1, 2), -math.log(2.0), dtype=torch.float64),
                   preference=torch.tensor([[[0.5, 1.0], [0.0, 0.5]]], dtype=torch.float64))
    pairs = Pairs.from_records(prob, [(0, 0, 1)])
    threshold = -math.log(CLIP_MIN)
    worst = 0.0
    for spec in (dict(h="lr"), dict(h="kliep"), dict(h="lsif"), dict(h="ba", lam=0.5)):
        loss = losses.make("bpo", beta=1.0, clip_min=CLIP_MIN, **spec)
        values = []
        for margin in torch.linspace(threshold + 1e-6, threshold + 40.0, 41, dtype=torch.float64):
            logp = torch.log_softmax(torch.stack([margin, torch.zeros((), dtype=torch.float64)])[None], -1)
            values.append(float(objective(loss, logp[None], pairs)))
            worst = max(worst, float(_logit_gradient(loss, logp, pairs).abs().max()))
        worst = max(worst, max(values) - min(values))
    return worst
