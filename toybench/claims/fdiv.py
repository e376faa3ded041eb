"""Claims for the f-divergence losses: ``fdpo``, ``fpo``, ``exo`` (docs/losses.md).

E1 is the worked instance of docs/conventions.md; W_u, W_s its pair laws. Distances are total
variation in float64 between ``solve``'s exact minimiser and a closed form or another minimiser.
Per-pair statements minimise p·L(z) + (1 − p)·L(−z) over the scaled margin z with the loss's own
per-record values (a root of the autograd derivative, Brent's method).
"""
from __future__ import annotations

import functools
import math

import torch
from scipy.optimize import brentq

from .. import losses, metrics, optima
from ..losses.fdiv import with_rewards
from ..pairs import population
from ..solve import solve
from .core import e1, tv
from .registry import claim

FDPO_CITATION = "Wang et al., arXiv 2309.16240 (f-DPO)"
FPO_CITATION = "Han et al., arXiv 2410.21662 (f-PO)"
EXO_CITATION = "Ji et al., arXiv 2402.00856 (EXO)"
FDPO_CASES = (("forward_kl", 0.5), ("js", 0.5), ("alpha", 0.3), ("alpha", 0.5))
SOLVER_TOL = 1e-7
"""TV allowed between solve and a closed form: these losses are not convex in the logits, and
solve's multi-start path stops on a gradient tolerance (reference reports ≤ 4e-8)."""
MARGIN_TOL = 1e-8
"""|z − z*| allowed for a per-pair root found by Brent's method (xtol 1e-13) on a smooth derivative."""


@functools.cache
def _solved(loss, law: str, rewards: bool = False) -> torch.Tensor:
    """``solve``'s minimiser on E1 under ``law``, with the reward inputs for list modes (cached:
    several claims share a solve)."""
    pairs = population(e1(law))
    return solve(loss, with_rewards(pairs) if rewards else pairs).logp


def _pair_objective(loss, p: float, z: torch.Tensor) -> torch.Tensor:
    """p·L(z) + (1 − p)·L(−z) for a pair loss at β = 1 (z is the margin on the chosen log-prob)."""
    zero = torch.zeros_like(z)
    return p * loss(z, zero, zero, zero) + (1 - p) * loss(-z, zero, zero, zero)


def _pair_minimiser(loss, p: float) -> float:
    """argmin_z of ``_pair_objective`` by a root of its autograd derivative on [0, 20] (p > ½ puts
    the minimiser there; every minimiser checked here is below 8)."""
    def slope(z: float) -> float:
        with torch.enable_grad():
            margin = torch.tensor([[z]], dtype=torch.float64, requires_grad=True)
            return float(torch.autograd.grad(_pair_objective(loss, p, margin).sum(), margin)[0])

    return brentq(slope, 0.0, 20.0, xtol=1e-13, rtol=1e-15)


# ------------------------------------------------------------------------------ f-DPO
def _fdpo_distance(law: str) -> float:
    prob = e1(law)
    return max(tv(_solved(losses.make("fdpo", beta=1.0, divergence=divergence, alpha=alpha), law),
                  optima.fdpo_target(prob, 1.0, divergence, alpha)) for divergence, alpha in FDPO_CASES)


@claim("fdpo.target",
       citation=f"{FDPO_CITATION}; derived here (E1: TV ≤ 4e-8)",
       assumptions="E1, BT, clean labels, β = 1, pair law W_u; divergences forward KL, JS, α = 0.3, α = 0.5",
       tolerance=SOLVER_TOL)
def fdpo_target() -> float:
    """f-DPO's minimiser is π_ref·(f′)⁻¹((r − λ)/β), λ the normalising root (max TV to the closed form)."""
    return _fdpo_distance("uniform")


@claim("fdpo.target_ref",
       citation=f"{FDPO_CITATION}; derived here (E1: TV ≤ 4e-8)",
       assumptions="E1, BT, clean labels, β = 1, pair law W_s (π_ref ⊗ π_ref); divergences forward KL, JS, α = 0.3, α = 0.5",
       tolerance=SOLVER_TOL)
def fdpo_target_ref() -> float:
    """f-DPO's minimiser is its divergence's target under another pair law too (max TV)."""
    return _fdpo_distance("ref")


@claim("fdpo.reverse_kl_is_dpo",
       citation=f"{FDPO_CITATION}; derived here (reverse KL gives DPO)",
       assumptions="E1, BT, clean labels, β ∈ {0.5, 1}; pair laws W_u, W_s", tolerance=1e-8)
def fdpo_reverse_kl() -> float:
    """f-DPO with reverse KL is minimised at π*_β (max TV)."""
    return max(tv(_solved(losses.make("fdpo", beta=beta, divergence="reverse_kl"), law),
                  optima.reverse_kl(e1(law), beta)) for law in ("uniform", "ref") for beta in (0.5, 1.0))


@claim("fdpo.not_dpo_optimum",
       citation=f"{FDPO_CITATION}; BPO arXiv 2505.19601 Table 1 ('O ✗'); derived here "
                "(E1: TV 0.132 FKL, 0.378 JS, 0.104 α = 0.5, 0.073 α = 0.3)",
       assumptions="E1, W_u, β = 1; divergences forward KL, JS, α = 0.3, α = 0.5", tolerance=0.05, comparison=">=")
def fdpo_not_dpo_optimum() -> float:
    """f-DPO's minimiser differs from π*_β for f ≠ reverse KL (smallest TV over the divergences)."""
    prob = e1("uniform")
    pistar = optima.reverse_kl(prob, 1.0)
    return min(tv(_solved(losses.make("fdpo", beta=1.0, divergence=divergence, alpha=alpha), "uniform"), pistar)
               for divergence, alpha in FDPO_CASES)


@claim("fdpo.bpo_b1_normaliser",
       citation="BPO arXiv 2505.19601, App. B.1 (π_ref·(f′)⁻¹(r/β)/Z_f); derived here (E1: TV 0.229)",
       assumptions="E1, W_u, α-divergence α = 0.5, β = 2 (so that (f′)⁻¹(r/β) exists)",
       tolerance=1e-6, expected="fails")
def fdpo_bpo_b1() -> float:
    """App. B.1's multiplicatively normalised π_ref·(f′)⁻¹(r/β)/Z_f is f-DPO's minimiser (TV to it)."""
    prob, alpha, beta = e1("uniform"), 0.5, 2.0
    printed = torch.log_softmax(prob.ref_logp - torch.log1p(-alpha * prob.reward / beta) / alpha, -1)
    found = _solved(losses.make("fdpo", beta=beta, divergence="alpha", alpha=alpha), "uniform")
    return tv(printed, found)


def _entropy_gap(beta: float) -> float:
    """H(forward-KL f-DPO optimum) − H(π*_β) on E1 (nats), from the closed-form targets."""
    prob = e1("uniform")
    covering = losses.make("fdpo", beta=beta, divergence="forward_kl").target(prob)
    return float(metrics.entropy(covering) - metrics.entropy(optima.reverse_kl(prob, beta)))


@claim("fdpo.fkl_more_entropy_beta1",
       citation=f"{FDPO_CITATION} (forward KL 'mass-covering'); derived here (E1, β = 1: 1.049 vs 1.180 nats)",
       assumptions="E1, β = 1; entropies of the forward-KL target and π*_β", tolerance=0.0, comparison=">=",
       expected="fails")
def fdpo_fkl_entropy_beta1() -> float:
    """At equal β, forward-KL f-DPO has at least the entropy of DPO's optimum (entropy difference, nats)."""
    return _entropy_gap(1.0)


@claim("fdpo.fkl_more_entropy_other_beta",
       citation=f"{FDPO_CITATION} (forward KL 'mass-covering'); derived here (holds at β ∈ {{0.1, 0.3, 3, 10}})",
       assumptions="E1, β ∈ {0.1, 0.3, 3, 10}; entropies of the forward-KL target and π*_β",
       tolerance=0.0, comparison=">=")
def fdpo_fkl_entropy_other_beta() -> float:
    """Away from β = 1 on E1, forward-KL f-DPO has more entropy than DPO's optimum (smallest difference, nats)."""
    return min(_entropy_gap(beta) for beta in (0.1, 0.3, 3.0, 10.0))


# ------------------------------------------------------------------------------ f-PO
FPO_DIVERGENCES = ("alpha", "reverse_kl", "forward_kl", "js", "jeffreys", "hellinger")


@claim("fpo.exact_target",
       citation=f"{FPO_CITATION}; BPO arXiv 2505.19601 Table 1 ('O ✓'); derived here",
       assumptions="E1, W_u; true-reward targets softmax(r/β_r) on each record's two responses; "
                   "β = β_r = 0.5; every f-PO generator (α = 0.1)",
       tolerance=SOLVER_TOL)
def fpo_exact_target() -> float:
    """f-PO with true-reward targets is minimised at π_ref·e^{r/(β·β_r)}/Z for every f (max TV)."""
    closed = optima.reverse_kl(e1("uniform"), 0.25)
    return max(tv(_solved(losses.make("fpo", mode="exact", divergence=divergence), "uniform", rewards=True), closed)
               for divergence in FPO_DIVERGENCES)


def fpo_pair_margin(p: float, alpha: float, eps: float) -> float:
    """Closed-form per-pair minimiser of the α-f-PO pair loss: (1/α)·log(A/B),
    A = p(1−ε)^α + (1−p)ε^α, B = pε^α + (1−p)(1−ε)^α (docs/losses.md)."""
    high, low = (1 - eps) ** alpha, eps ** alpha
    return math.log((p * high + (1 - p) * low) / (p * low + (1 - p) * high)) / alpha


FPO_PAIR_SETTINGS = ((0.5, 1e-3), (0.1, math.exp(-10.0)), (0.5, 1e-8))


@claim("fpo.pair_closed_form",
       citation=f"{FPO_CITATION}; derived here",
       assumptions="one pair, p ∈ {0.6, 0.75, 0.9}; (α, ε) ∈ {(0.5, 1e-3), (0.1, e^−10), (0.5, 1e-8)}; target (1 − ε, ε)",
       tolerance=MARGIN_TOL)
def fpo_pair_closed_form() -> float:
    """The α-f-PO pair loss's per-pair minimiser is z* = (1/α)·log(A/B) (max |z − z*|)."""
    return max(abs(_pair_minimiser(losses.make("fpo", beta=1.0, alpha=alpha, eps=eps), p)
                   - fpo_pair_margin(p, alpha, eps))
               for alpha, eps in FPO_PAIR_SETTINGS for p in (0.6, 0.75, 0.9))


@claim("fpo.pair_not_dpo_optimum",
       citation=f"{FPO_CITATION}; BPO arXiv 2505.19601 (f-PO pair ≠ π*); derived here (E1: TV 0.356)",
       assumptions="E1, W_u, α-divergence α = 0.5, ε = 1e-8, β = 1", tolerance=0.1, comparison=">=")
def fpo_pair_not_dpo() -> float:
    """f-PO's pair-mode minimiser differs from π*_β (TV)."""
    found = _solved(losses.make("fpo", beta=1.0, alpha=0.5, eps=1e-8), "uniform")
    return tv(found, optima.reverse_kl(e1("uniform"), 1.0))


@claim("fpo.pair_small_eps_tempered",
       citation=f"{FPO_CITATION}; derived here (ε → 0: z* → logit(p)/α, π*_{{αβ}}; E1: TV 1.3e-4)",
       assumptions="E1, W_u, α-divergence α = 0.5, ε = 1e-8, β = 1", tolerance=1e-3)
def fpo_pair_small_eps() -> float:
    """With a tiny ε, f-PO's pair-mode minimiser is close to the tempered π*_{αβ} (TV)."""
    found = _solved(losses.make("fpo", beta=1.0, alpha=0.5, eps=1e-8), "uniform")
    return tv(found, optima.reverse_kl(e1("uniform"), 0.5))


@claim("fpo.code_eps_not_negligible",
       citation=f"{FPO_CITATION}; MinkaiXu/fPO run/hh_pref.sh (α = 0.1, log-target −10); derived here "
                "(p = 0.9: z* = 7.76, not logit(p)/α = 21.97)",
       assumptions="one pair, p = 0.9; α = 0.1, ε = e^−10 (the scripts' settings); '≈' read as within 5%",
       tolerance=0.05, expected="fails")
def fpo_code_eps() -> float:
    """At the scripts' settings the pair loss's margin is ≈ logit(p)/α, i.e. pair ≈ π*_{αβ} (relative error)."""
    alpha, p = 0.1, 0.9
    tempered = math.log(p / (1 - p)) / alpha
    found = _pair_minimiser(losses.make("fpo", beta=1.0, alpha=alpha, eps=math.exp(-10.0)), p)
    return abs(found - tempered) / tempered


# ------------------------------------------------------------------------------ EXO
@claim("exo.pair_target",
       citation=f"{EXO_CITATION}; TRL exo_pair; derived here (1.3814 at p = 0.6, 5.5254 at 0.9, ε = 1e-3)",
       assumptions="one pair, p ∈ {0.6, 0.75, 0.9}; ε ∈ {1e-3, e^−10/(1 + e^−10)}",
       tolerance=MARGIN_TOL)
def exo_pair_target() -> float:
    """EXO's pair loss is minimised at z* = (2p − 1)·log((1 − ε)/ε) (max |z − z*| plus any lower value on a grid)."""
    worst = 0.0
    grid = torch.linspace(-20.0, 20.0, 4001, dtype=torch.float64)[:, None]
    for eps in (1e-3, math.exp(-10.0) / (1 + math.exp(-10.0))):
        loss = losses.make("exo", beta=1.0, eps=eps)
        for p in (0.6, 0.75, 0.9):
            closed = (2 * p - 1) * math.log((1 - eps) / eps)
            found = _pair_minimiser(loss, p)
            value = float(_pair_objective(loss, p, torch.tensor([[found]], dtype=torch.float64)))
            grid_best = float(_pair_objective(loss, p, grid).min())
            worst = max(worst, abs(found - closed), value - grid_best)
    return worst


@claim("exo.pair_recovers_pistar",
       citation=f"{EXO_CITATION}; derived here (E1: TV 0.442 under W_u; optimum (0.000459, 0.001821, 0.026594, 0.971126))",
       assumptions="E1, W_u, pair mode, ε = 1e-3, β = 1", tolerance=1e-6, expected="fails")
def exo_pair_recovers_pistar() -> float:
    """EXO's pair mode recovers π*_β (TV from π*_β)."""
    return tv(_solved(losses.make("exo", beta=1.0, eps=1e-3), "uniform"), optima.reverse_kl(e1("uniform"), 1.0))


@claim("exo.list_exact",
       citation=f"{EXO_CITATION}; haozheji/exact-optimization exact_loss ('rw' targets); derived here",
       assumptions="E1, W_u and W_s; true-reward targets softmax(r/β_r) on each record's two responses; β = β_r = 0.5",
       tolerance=SOLVER_TOL)
def exo_list_exact() -> float:
    """EXO with true-reward targets is minimised at π_ref·e^{r/(β·β_r)}/Z (max TV)."""
    return max(tv(_solved(losses.make("exo", mode="list"), law, rewards=True), optima.reverse_kl(e1(law), 0.25))
               for law in ("uniform", "ref"))


@claim("exo.depends_on_mu",
       citation=f"{EXO_CITATION}; derived here (E1: TV(W_u, W_s) = 0.0016)",
       assumptions="E1, pair mode, ε = 1e-3, β = 1; W_u versus W_s", tolerance=1e-3, comparison=">=")
def exo_depends_on_mu() -> float:
    """EXO's pair-mode optimum depends on the pair distribution (TV between the W_u and W_s minimisers)."""
    loss = losses.make("exo", beta=1.0, eps=1e-3)
    return tv(_solved(loss, "uniform"), _solved(loss, "ref"))
