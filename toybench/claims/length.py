"""Claims for the length-normalised, reference-free and odds-ratio losses and for DiscoPOP
(docs/losses.md).

E1 is the worked instance of docs/conventions.md with β = 1; "lengths (1, 2, 3, 4)" gives the four
responses those token lengths (|y| = 1 otherwise). Distances are total variation, in float64,
between ``solve``'s exact minimiser and the closed form or another minimiser.
"""
from __future__ import annotations

import functools
import math

import torch

from .. import losses, optima
from ..pairs import population
from ..problem import Problem
from ..solve import solve
from ..spaces import FlatSpace
from .core import e1, tv
from .registry import claim

UNIT = (1.0, 1.0, 1.0, 1.0)
LENGTHS_14 = (1.0, 2.0, 3.0, 4.0)
RESTARTS = 2
"""Starts of ``solve``'s non-convex route here (π_ref and uniform): CPO is convex in the logits,
ASFT convex in π, AlphaPO a convex problem in its reward differences, ORPO and DiscoPOP agree with
the independently derived multi-start E1 values (checked in tests/test_claims_length.py)."""


def e1_lengths(pair_dist="uniform", lengths=UNIT) -> Problem:
    """E1 under a pair law ("uniform" W_u, "ref" W_s, "chain" W_c) with per-response token lengths."""
    return e1(pair_dist, lengths=lengths)


def solved(loss, prob) -> torch.Tensor:
    return solve(loss, population(prob), restarts=RESTARTS).logp


@functools.cache
def solved_e1(loss, law: str, lengths: tuple) -> torch.Tensor:
    """The exact minimiser on E1 (cached: several claims compare the same minimisers)."""
    return solved(loss, e1_lengths(law, lengths))


def distance_to_target(loss, laws, lengths=UNIT) -> float:
    """Max TV between the exact minimiser and ``loss.target`` on E1 over pair laws."""
    return max(tv(solved_e1(loss, law, lengths), loss.target(e1_lengths(law, lengths))) for law in laws)


def distance_between_laws(loss, lengths=UNIT, laws=("uniform", "ref")) -> float:
    """TV between the minimisers under two pair laws."""
    return tv(solved_e1(loss, laws[0], lengths), solved_e1(loss, laws[1], lengths))


def distance_to_pistar(loss, law="uniform", lengths=UNIT) -> float:
    return tv(solved_e1(loss, law, lengths), optima.reverse_kl(e1(law), 1.0))


# ------------------------------------------------------------------------------ SimPO
@claim("simpo.gamma0_target",
       citation="Meng, Xia, Chen, arXiv 2405.14734; derived here (E1, lengths (1,2,3,4): "
                "(0.0489, 0.0065, 0.0106, 0.9340), TV ≤ 4e-9)",
       assumptions="E1, BT, clean labels, β = 1, γ = 0; lengths (1,1,1,1) and (1,2,3,4); pair laws W_u, W_s",
       tolerance=1e-8)
def simpo_gamma0_target() -> float:
    """SimPO with γ = 0 is minimised at log π = |y|(r/β + c), whatever π_ref and μ (max TV)."""
    loss = losses.make("simpo", beta=1.0, gamma=0.0)
    return max(distance_to_target(loss, ("uniform", "ref"), lengths) for lengths in (UNIT, LENGTHS_14))


@claim("simpo.gamma0_independent_of_mu",
       citation="G1 in docs/losses.md (logit link on S = ℓ̄)",
       assumptions="E1 with lengths (1,2,3,4), β = 1, γ = 0; W_u versus W_s and W_c",
       tolerance=1e-8)
def simpo_gamma0_independent_of_mu() -> float:
    """SimPO's γ = 0 minimiser does not depend on the pair distribution (max TV between laws)."""
    loss = losses.make("simpo", beta=1.0, gamma=0.0)
    return max(distance_between_laws(loss, LENGTHS_14, ("uniform", other)) for other in ("ref", "chain"))


SIMPO_PAIR_GRID = [(p, gamma) for p in (0.6, 0.75, 0.9) for gamma in (0.5, 1.0)]


@claim("simpo.gamma_pair_target",
       citation="derived here: per pair p·σ(γ − z) = (1 − p)·σ(γ + z), "
                "e^{z*} = [G(2p−1) + √(G²(1−2p)² + 4p(1−p))]/(2(1−p)), G = e^γ",
       assumptions="two responses with lengths (2, 3), BT with p(y0 ≻ y1) = p ∈ {0.6, 0.75, 0.9}, "
                   "γ ∈ {0.5, 1}, β = 2, uniform π_ref",
       tolerance=1e-8)
def simpo_gamma_pair_target() -> float:
    """With two responses SimPO's minimiser has the closed-form margin z* = β(ℓ̄_0 − ℓ̄_1) (max error in z)."""
    worst, beta = 0.0, 2.0
    for p, gamma in SIMPO_PAIR_GRID:
        prob = Problem(FlatSpace(2, lengths=[2.0, 3.0]), torch.full((1, 2), -math.log(2.0), dtype=torch.float64),
                       reward=torch.tensor([[math.log(p / (1 - p)), 0.0]], dtype=torch.float64))
        logp = solved(losses.make("simpo", beta=beta, gamma=gamma), prob)[0]
        margin = beta * float(logp[0] / 2 - logp[1] / 3)
        G = math.exp(gamma)
        closed = math.log((G * (2 * p - 1) + math.sqrt(G**2 * (1 - 2 * p) ** 2 + 4 * p * (1 - p))) / (2 * (1 - p)))
        worst = max(worst, abs(margin - closed))
    return worst


@claim("simpo.gamma_depends_on_mu",
       citation="derived here (E1, γ = 0.5: TV(W_u, W_s) = 0.005)",
       assumptions="E1, |y| = 1, β = 1, γ = 0.5; W_u versus W_s", tolerance=1e-3, comparison=">=")
def simpo_gamma_depends_on_mu() -> float:
    """SimPO with γ > 0 depends on the pair distribution (TV between the W_u and W_s minimisers)."""
    return distance_between_laws(losses.make("simpo", beta=1.0, gamma=0.5))


# ------------------------------------------------------------------------------ logit links
@claim("sigmoid_norm.target",
       citation="TRL v1.9 DPOTrainer sigmoid_norm; derived here (E1, lengths (1,2,3,4): TV ≤ 7e-9)",
       assumptions="E1 with lengths (1,2,3,4), BT, clean labels, β = 1; W_u and W_s",
       tolerance=1e-8)
def sigmoid_norm_target() -> float:
    """Length-normalised DPO is minimised at log π = log π_ref + |y|(r/β + c) (max TV)."""
    loss = losses.make("sigmoid_norm", beta=1.0)
    return distance_to_target(loss, ("uniform", "ref"), LENGTHS_14)


@claim("sigmoid_norm.not_pistar",
       citation="derived here (E1, lengths (1,2,3,4): TV 0.418 from π*_β)",
       assumptions="E1 with lengths (1,2,3,4), β = 1, W_u", tolerance=0.1, comparison=">=")
def sigmoid_norm_not_pistar() -> float:
    """With unequal lengths length-normalised DPO does not recover π*_β (TV)."""
    return distance_to_pistar(losses.make("sigmoid_norm", beta=1.0), "uniform", LENGTHS_14)


@claim("r_dpo.target",
       citation="Park, Rafailov, Ermon, Finn, arXiv 2403.19159; derived here (E1: TV 2e-8)",
       assumptions="E1 with lengths (1,2,3,4), BT, clean labels, β = 1, α = 0.3; W_u and W_s",
       tolerance=1e-8)
def r_dpo_target() -> float:
    """R-DPO is minimised at π_ref·e^{(r − α|y|)/β}/Z (max TV)."""
    loss = losses.make("r_dpo", beta=1.0, alpha=0.3)
    return distance_to_target(loss, ("uniform", "ref"), LENGTHS_14)


@claim("alpha_po.target",
       citation="AlphaPO, arXiv 2501.03884; TRL CPOTrainer alpha; derived here (E1, α = 0.3: TV ≤ 5e-9)",
       assumptions="E1, BT, clean labels, β = 1, α = 0.3, summed score, no γ, no NLL; W_u and W_s",
       tolerance=1e-7)
def alpha_po_target() -> float:
    """AlphaPO (sigmoid, no NLL) is minimised at the f-DPO α-target with constant reference 1 (max TV
    to ``optima.fdpo_target(..., ref_logp=0)`` and to the loss's own target)."""
    loss = losses.make("alpha_po", beta=1.0, alpha=0.3)
    worst = 0.0
    for law in ("uniform", "ref"):
        prob = e1(law)
        found = solved_e1(loss, law, UNIT)
        tempered = optima.fdpo_target(prob, 1.0, "alpha", 0.3, ref_logp=torch.zeros_like(prob.ref_logp))
        worst = max(worst, tv(found, tempered), tv(found, loss.target(prob)))
    return worst


# ------------------------------------------------------------------------------ ORPO, CPO, ASFT
@claim("orpo.not_pistar",
       citation="Hong, Lee, Thorne, arXiv 2403.07691; derived here (E1, λ = 0.1: TV 0.078 under W_u)",
       assumptions="E1, |y| = 1, λ = 0.1, W_u; distance to π*_β at β = 1", tolerance=0.05, comparison=">=")
def orpo_not_pistar() -> float:
    """ORPO's population minimiser is not π*_β (TV)."""
    return distance_to_pistar(losses.make("orpo", lam=0.1))


@claim("orpo.depends_on_mu",
       citation="derived here (E1, λ = 0.1: TV 0.078 (W_u) and 0.281 (W_s) from π*_β)",
       assumptions="E1, |y| = 1, λ = 0.1; W_u versus W_s", tolerance=0.05, comparison=">=")
def orpo_depends_on_mu() -> float:
    """ORPO's minimiser depends on the pair distribution (TV between the W_u and W_s minimisers)."""
    return distance_between_laws(losses.make("orpo", lam=0.1))


@claim("cpo.not_pistar",
       citation="Xu et al., arXiv 2401.08417; derived here (E1: TV 0.041 under W_u)",
       assumptions="E1, |y| = 1, β = 1, α = 1, W_u; distance to π*_β", tolerance=0.02, comparison=">=")
def cpo_not_pistar() -> float:
    """CPO's population minimiser is not π*_β (TV)."""
    return distance_to_pistar(losses.make("cpo", beta=1.0, alpha=1.0))


@claim("cpo.depends_on_mu",
       citation="derived here (E1: TV 0.041 (W_u) and 0.218 (W_s) from π*_β)",
       assumptions="E1, |y| = 1, β = 1, α = 1; W_u versus W_s", tolerance=0.05, comparison=">=")
def cpo_depends_on_mu() -> float:
    """CPO's minimiser depends on the pair distribution (TV between the W_u and W_s minimisers)."""
    return distance_between_laws(losses.make("cpo", beta=1.0, alpha=1.0))


@claim("asft.kkt",
       citation="Gorbatovski et al., arXiv 2502.01237 §2.4 (ASFT loss); derived here (E1, λ = 1: TV 4e-9)",
       assumptions="E1, |y| = 1, λ = 1; W_u, W_s and W_c",
       tolerance=1e-7)
def asft_kkt() -> float:
    """ASFT's minimiser is the KKT solution νπ² − (ν + a + b)π + a = 0 with ν the root of Σπ = 1 (max TV)."""
    loss = losses.make("asft", lam=1.0)
    return distance_to_target(loss, ("uniform", "ref", "chain"))


@claim("asft.depends_on_mu",
       citation="derived here (E1, λ = 1: TV 0.062 (W_u) and 0.261 (W_s) from π*_β)",
       assumptions="E1, |y| = 1, λ = 1; W_u versus W_s", tolerance=0.05, comparison=">=")
def asft_depends_on_mu() -> float:
    """ASFT's minimiser depends on the pair distribution (TV between the W_u and W_s minimisers)."""
    return distance_between_laws(losses.make("asft", lam=1.0))


@claim("asft.bounds_orpo",
       citation="Gorbatovski et al., arXiv 2502.01237 §2.4: L_ORPO ≤ L_ASFT; derived here",
       assumptions="equal λ ∈ {0.1, 1, 5}, P = e^{ℓ̄} in both; 4096 random records (ℓ̄ ∈ (−8, 0), lengths 1–6)",
       tolerance=0.0)
def asft_bounds_orpo() -> float:
    """ORPO's per-record loss never exceeds ASFT's at equal λ (max of L_ORPO − L_ASFT)."""
    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 7, (2, 1, 4096), generator=gen).to(torch.float64)
    logp = -8 * torch.rand(2, 1, 4096, generator=gen, dtype=torch.float64) * lengths
    inputs = dict(chosen_logp=logp[0], rejected_logp=logp[1], ref_chosen_logp=logp[0], ref_rejected_logp=logp[1],
                  chosen_len=lengths[0], rejected_len=lengths[1])
    return max(float((losses.make("orpo", lam=lam)(**inputs) - losses.make("asft", lam=lam)(**inputs)).max())
               for lam in (0.1, 1.0, 5.0))


# ------------------------------------------------------------------------------ DiscoPOP
@claim("discopop.recovers_pistar",
       citation="Lu et al., arXiv 2406.08414; derived here (E1: TV 0.040 (W_u), 0.035 (W_s))",
       assumptions="E1, BT, clean labels, β = 1, τ = 0.05; W_u and W_s",
       tolerance=1e-6, expected="fails")
def discopop_recovers_pistar() -> float:
    """DiscoPOP's population minimiser is π*_β (it is not: z*(p) ≠ logit p; max TV)."""
    loss = losses.make("discopop", beta=1.0, tau=0.05)
    return max(distance_to_pistar(loss, law) for law in ("uniform", "ref"))


@claim("discopop.init_gradient_sign",
       citation="derived here (τ = 0.05: dL/dz(0) = +0.784, local minimum at z ≈ −0.119)",
       assumptions="one hard-labelled record, τ = 0.05, gradient descent on z = βΔ from z = 0 (π_θ = π_ref), "
                   "step 0.05, 400 steps", tolerance=0.05, comparison=">=")
def discopop_init_gradient_sign() -> float:
    """From π_ref a hard-labelled DiscoPOP record pushes its margin the wrong way, into a local minimum (−z reached)."""
    loss = losses.make("discopop", beta=1.0, tau=0.05)
    z = torch.zeros(1, 1, dtype=torch.float64)
    for _ in range(400):
        z = z - 0.05 * loss.dphi(z)
    return float(-z)


@claim("discopop.depends_on_mu",
       citation="derived here (E1: TV(W_u, W_s) = 0.011)",
       assumptions="E1, β = 1, τ = 0.05; W_u versus W_s", tolerance=1e-3, comparison=">=")
def discopop_depends_on_mu() -> float:
    """DiscoPOP's optimum depends on the pair distribution (TV between the W_u and W_s minimisers)."""
    return distance_between_laws(losses.make("discopop", beta=1.0, tau=0.05))
