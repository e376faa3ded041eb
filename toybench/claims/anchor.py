"""Claims for the single-response and anchoring losses (docs/losses.md).

E1 is the worked instance of docs/conventions.md with β = 1 and no self-pairs; W_u = uniform
pairs, W_s = pairs ∝ π_ref ⊗ π_ref. Every optimum here is numeric (G3 in docs/losses.md): ``solve``'s
multi-start minimiser, or its fixed point for stateful losses. Distances are total variation in
float64. ``minor_dpo`` and ``spo`` are RECONSTRUCTIONS: their claims are derived statements about
the reconstructed losses, not paper claims.
"""
from __future__ import annotations

import functools
import math

import torch

from .. import losses, optima
from ..objective import objective, record_inputs
from ..pairs import population
from ..solve import solve
from ..spaces import FlatSpace
from .core import e1, tv
from .registry import claim

LAWS = ("uniform", "ref")
UNIT_LENGTHS = [1.0, 1.0, 1.0, 1.0]


@functools.cache
def problem(law: str):
    """E1 under ``law`` with |y| = 1 for every response (so length-aware losses run too)."""
    return e1(law).replace(space=FlatSpace(4, lengths=UNIT_LENGTHS))


@functools.cache
def minimiser(loss, law: str = "uniform") -> torch.Tensor:
    """``solve``'s answer on E1 under ``law``; cached, since several claims share a minimiser."""
    return solve(loss, population(problem(law))).logp


def distance_to_pistar(loss, law="uniform") -> float:
    return tv(minimiser(loss, law), optima.reverse_kl(problem(law), 1.0))


def distance_to_ref(loss, law="uniform") -> float:
    return tv(minimiser(loss, law), problem(law).ref_logp)


def distance_between_laws(loss) -> float:
    return tv(minimiser(loss, "uniform"), minimiser(loss, "ref"))


def rates(pairs) -> tuple[torch.Tensor, torch.Tensor]:
    """(n_w, n_l) ``[P, Y]``: how often each response is chosen / rejected in the records."""
    records = pairs.record_table()[0]
    return records.sum(-1), records.sum(-2)


# ------------------------------------------------------------------------------ KTO
@claim("kto.equals_apo_zero_when_z0_zero",
       citation="Ethayarajh et al., arXiv 2402.01306; derived here (E1: fixed point z₀ = 0, "
                "(0, 0, 0.2985, 0.7015) under W_u)",
       assumptions="E1, β = 1, λ_D = λ_U = 1, W_u; z₀ = clamped data-weighted mean of g over the "
                   "completions, at its population fixed point",
       tolerance=1e-8)
def kto_equals_apo_zero() -> float:
    """KTO's fixed point has z₀ = 0 and equals APO-zero's minimiser (max of TV and z₀)."""
    kto = losses.make("kto", beta=1.0)
    pairs, found = population(problem("uniform")), minimiser(kto)
    z0 = float(kto.population_state(record_inputs(kto, found[None], pairs), pairs.weight)["z0"].max())
    return max(tv(found, minimiser(losses.make("apo_zero", beta=1.0))), z0)


@claim("kto.equals_apo_zero_unequal_weights",
       citation="derived here (KTO = APO-zero needs λ_D = λ_U); TRL KTO docs' ratio λ_D n_D/(λ_U n_U) ≤ 4/3",
       assumptions="E1, β = 1, W_u, λ_D = 4/3, λ_U = 1 (z₀ is still 0 at the fixed point)",
       tolerance=1e-8, expected="fails")
def kto_unequal_weights() -> float:
    """KTO with λ_D ≠ λ_U equals APO-zero's minimiser (it does not: TV)."""
    kto = losses.make("kto", beta=1.0, lam_desirable=4 / 3, lam_undesirable=1.0)
    return tv(minimiser(kto), minimiser(losses.make("apo_zero", beta=1.0)))


@claim("kto.not_pistar",
       citation="derived here (E1: TV 0.236 from π*_β under W_u; 0.23546 to five digits)",
       assumptions="E1, β = 1, λ_D = λ_U = 1, W_u", tolerance=0.1, comparison=">=")
def kto_not_pistar() -> float:
    """KTO's population fixed point is not π*_β (TV)."""
    return distance_to_pistar(losses.make("kto", beta=1.0))


# ------------------------------------------------------------------------------ APO
@claim("apo_zero.boundary",
       citation="D'Oosterlinck et al., arXiv 2408.06266, Eq. 7; derived here (E1: (0, 0, 0.2985, 0.7015) "
                "under W_u, (0, 0, 0.542, 0.458) under W_s)",
       assumptions="E1, β = 1; W_u and W_s", tolerance=1e-6)
def apo_zero_boundary() -> float:
    """APO-zero's minimiser sits on the simplex boundary: no mass on y₀, y₁ (max mass there; the
    slope vanishes like σ′ at the boundary, so solvers stop near, not at, it)."""
    loss = losses.make("apo_zero", beta=1.0)
    return max(float(minimiser(loss, law).exp()[:, :2].sum()) for law in LAWS)


@claim("apo_zero.depends_on_mu",
       citation="derived here (E1: W_u (0, 0, 0.2985, 0.7015) vs W_s (0, 0, 0.542, 0.458))",
       assumptions="E1, β = 1; W_u versus W_s", tolerance=0.1, comparison=">=")
def apo_zero_depends_on_mu() -> float:
    """APO-zero's minimiser depends on the pair distribution (TV between the W_u and W_s minimisers)."""
    return distance_between_laws(losses.make("apo_zero", beta=1.0))


@claim("apo_down.boundary",
       citation="D'Oosterlinck et al., arXiv 2408.06266, Eq. 8; derived here (E1: all mass on y₁ under "
                "W_u, on y₃ under W_s)",
       assumptions="E1, β = 1; W_u (expected vertex y₁) and W_s (expected vertex y₃)", tolerance=1e-6)
def apo_down_boundary() -> float:
    """APO-down puts all its mass on one response, which depends on μ (max of 1 − π(expected vertex))."""
    loss = losses.make("apo_down", beta=1.0)
    return max(1 - float(minimiser(loss, law).exp()[0, vertex]) for law, vertex in (("uniform", 1), ("ref", 3)))


# ------------------------------------------------------------------------------ NCA
@claim("nca.target",
       citation="Chen et al., arXiv 2402.05369 (pairwise NCA); derived here: e^{βg(y)} = 2n_w/(n_w + n_l), "
                "unnormalised [derived, exact]",
       assumptions="E1, β ∈ {0.5, 1, 2}; W_u and W_s; the log-prob table left unnormalised (an energy model)",
       tolerance=1e-12)
def nca_target() -> float:
    """Without the normalisation NCA's population loss is stationary at log π = log π_ref +
    log(2n_w/(n_w + n_l))/β (max |∂𝓛/∂log π|)."""
    worst = 0.0
    for law in LAWS:
        pairs = population(problem(law))
        chosen, rejected = rates(pairs)
        for beta in (0.5, 1.0, 2.0):
            table = (pairs.problem.ref_logp + torch.log(2 * chosen / (chosen + rejected)) / beta)[None]
            table.requires_grad_(True)
            (grad,) = torch.autograd.grad(objective(losses.make("nca", beta=beta), table, pairs).sum(), table)
            worst = max(worst, float(grad.abs().max()))
    return worst


@claim("nca.normalised_target",
       citation="derived here (the unnormalised optimum; the tabular policy must normalise, so the constraint binds)",
       assumptions="E1, β = 1, W_u; candidate π ∝ π_ref·(2n_w/(n_w + n_l))^{1/β}",
       tolerance=1e-6, expected="fails")
def nca_normalised_target() -> float:
    """NCA's tabular minimiser is the normalised unconstrained optimum (it is not: TV)."""
    pairs = population(problem("uniform"))
    chosen, rejected = rates(pairs)
    candidate = torch.log_softmax(pairs.problem.ref_logp + torch.log(2 * chosen / (chosen + rejected)), -1)
    return tv(minimiser(losses.make("nca", beta=1.0)), candidate)


@claim("nca.not_pistar",
       citation="derived here (E1: TV 0.319 from π*_β)", assumptions="E1, β = 1, W_u",
       tolerance=0.1, comparison=">=")
def nca_not_pistar() -> float:
    """Pairwise NCA's tabular minimiser is not π*_β (TV)."""
    return distance_to_pistar(losses.make("nca", beta=1.0))


@claim("nca.depends_on_mu",
       citation="derived here (E1: TV(W_u, W_s) = 0.024)", assumptions="E1, β = 1; W_u versus W_s",
       tolerance=5e-3, comparison=">=")
def nca_depends_on_mu() -> float:
    """NCA's minimiser depends on the pair distribution (TV between the W_u and W_s minimisers)."""
    return distance_between_laws(losses.make("nca", beta=1.0))


# ------------------------------------------------------------------------------ BCO
@claim("bco.free_delta_target",
       citation="Jung et al., arXiv 2404.04656; derived here: free δ gives π ∝ π_ref·(n_w/n_l)^{1/β} (TV 4e-8)",
       assumptions="E1 (one prompt), β = 1, δ minimised jointly with the policy; W_u and W_s",
       tolerance=1e-7)
def bco_free_delta_target() -> float:
    """BCO with a free δ is minimised at π_T ∝ π_ref·(n_w/n_l)^{1/β}: with δ* = β·log(π_T/π_ref) −
    log(n_w/n_l) (one constant), π_T minimises the loss at δ = δ* and δ* minimises it at π_T, a joint
    stationary point, hence the joint minimum (the loss is strictly convex in t = βg − δ).
    Max over laws of TV(solve at δ*, π_T) and |δ*(π_T) − δ*|."""
    beta = 1.0
    free = losses.make("bco", beta=beta, delta="free")
    worst = 0.0
    for law in LAWS:
        pairs = population(problem(law))
        target = free.target(problem(law))
        chosen, rejected = rates(pairs)
        delta = float((beta * (target - pairs.problem.ref_logp) - torch.log(chosen / rejected)).mean())
        profiled = float(free.population_state(record_inputs(free, target[None], pairs), pairs.weight)["delta"][0])
        found = minimiser(losses.make("bco", beta=beta, delta=delta), law)
        worst = max(worst, tv(found, target), abs(profiled - delta))
    return worst


@claim("bco.delta0_not_pistar",
       citation="TRL v1.9 DPOTrainer bco_pair (δ = 0); derived here (E1: TV 0.012 (W_u), 0.193 (W_s) from π*_β)",
       assumptions="E1, β = 1, δ = 0; the smaller of the W_u and W_s distances", tolerance=5e-3, comparison=">=")
def bco_delta0_not_pistar() -> float:
    """BCO with δ = 0 does not recover π*_β under either pair law (min TV)."""
    loss = losses.make("bco", beta=1.0, delta=0.0)
    return min(distance_to_pistar(loss, law) for law in LAWS)


# ------------------------------------------------------------------------------ Cal-DPO, DPOP, Minor-DPO
@claim("cal_dpo.not_pistar",
       citation="Xiao et al., arXiv 2412.14516; derived here (E1: TV 0.327 from π*_β)",
       assumptions="E1, β = 1, calib_weight ½ (the code's), W_u", tolerance=0.1, comparison=">=")
def cal_dpo_not_pistar() -> float:
    """Cal-DPO's population minimiser is not π*_β (TV)."""
    return distance_to_pistar(losses.make("cal_dpo", beta=1.0, calib_weight=0.5))


@claim("dpop.collapse_full_coverage",
       citation="Pal et al., arXiv 2402.13228, Eq. 3; derived here (E1, λ = 50: exactly π_ref, "
                "loss log 2 per record)",
       assumptions="E1 (every response chosen somewhere: full-coverage soft labels), β = 1, λ = 50; W_u and W_s",
       tolerance=1e-6)
def dpop_collapse() -> float:
    """DPOP with a large λ is minimised at π_ref with population loss log 2 (max of TV and |value − log 2|)."""
    loss = losses.make("dpop", beta=1.0, lam=50.0)
    worst = 0.0
    for law in LAWS:
        pairs = population(problem(law))
        found = minimiser(loss, law)
        value = float(objective(loss, found[None], pairs)[0])
        worst = max(worst, tv(found, pairs.problem.ref_logp), abs(value - math.log(2.0)))
    return worst


@claim("dpop.collapse_lambda5",
       citation="derived here (E1, λ = 5: TV 0.062 from π_ref; 0.0607 by a kink-aware 1-D search)",
       assumptions="E1, β = 1, λ = 5 (below the collapse threshold), W_u", tolerance=1e-6, expected="fails")
def dpop_collapse_lambda5() -> float:
    """DPOP with λ = 5 collapses to π_ref (it does not: TV)."""
    return distance_to_ref(losses.make("dpop", beta=1.0, lam=5.0))


@claim("minor_dpo.depends_on_mu",
       citation="derived here (on the RECONSTRUCTION of Xie et al., arXiv 2408.09834; "
                "E1: TV(W_u, W_s) = 0.090); not a paper claim",
       assumptions="E1, β = 1; W_u versus W_s", tolerance=0.03, comparison=">=")
def minor_dpo_depends_on_mu() -> float:
    """The reconstructed Minor-DPO's minimiser depends on the pair distribution (TV between W_u and W_s)."""
    return distance_between_laws(losses.make("minor_dpo", beta=1.0))


# ------------------------------------------------------------------------------ RPO, SPO, Flex-DPO
@claim("rpo.not_pistar",
       citation="Pang et al., arXiv 2404.19733; derived here (E1, α = 1: TV 0.066 (W_u), 0.260 (W_s))",
       assumptions="E1 with |y| = 1, β = 1, α = 1, variant pang, W_u", tolerance=0.03, comparison=">=")
def rpo_not_pistar() -> float:
    """DPO + NLL (RPO) is not minimised at π*_β (TV)."""
    return distance_to_pistar(losses.make("rpo", beta=1.0, alpha=1.0))


@claim("spo.hinge_collapse",
       citation="derived here (on the hinge RECONSTRUCTION of Jian et al., arXiv 2507.07723: "
                "π = π_ref for λ ≥ 10 on E1); not a paper claim",
       assumptions="E1, β = 1, reading hinge, λ = 10; W_u and W_s (larger λ adds a penalty that is 0 at π_ref "
                   "and ≥ 0 elsewhere, so π_ref stays optimal)", tolerance=1e-6)
def spo_hinge_collapse() -> float:
    """SPO (hinge reading) with λ ≥ 10 is minimised at π_ref (max TV)."""
    return max(distance_to_ref(losses.make("spo", beta=1.0, lam=10.0), law) for law in LAWS)


@claim("spo.hinge_collapse_lambda1",
       citation="derived here (hinge RECONSTRUCTION, E1, λ = 1: TV 0.177 from π_ref); not a paper claim",
       assumptions="E1, β = 1, reading hinge, λ = 1 (below the collapse threshold), W_u",
       tolerance=1e-6, expected="fails")
def spo_hinge_collapse_lambda1() -> float:
    """SPO (hinge reading) with λ = 1 collapses to π_ref (it does not: TV)."""
    return distance_to_ref(losses.make("spo", beta=1.0, lam=1.0))


@claim("flex_dpo.not_pistar",
       citation="Yan et al., arXiv 2406.07327; derived here (E1, β⁺ = 1, β⁻ = 0.8: TV 0.074)",
       assumptions="E1, β⁺ = 1, β⁻ = 0.8, W_u; π*_β at β = 1", tolerance=0.03, comparison=">=")
def flex_dpo_not_pistar() -> float:
    """Flex-DPO's minimiser is not π*_β (TV)."""
    return distance_to_pistar(losses.make("flex_dpo", beta_plus=1.0, beta_minus=0.8))
