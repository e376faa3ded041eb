"""Foundation claims: DPO, IPO, cDPO, rDPO and hinge on flat spaces, the solver and training.

E1 is the worked instance of docs/conventions.md: r = (0, 0.5, 1.5, 3), π_ref = (0.4, 0.3, 0.2, 0.1).
Distances are total variation, prompt-averaged, in float64.
"""
from __future__ import annotations

import math

import torch

from .. import losses, metrics, optima
from ..pairs import Pairs, population
from ..problem import Problem, e1
from ..solve import NoFiniteMinimum, solve
from ..spaces import FlatSpace
from .registry import claim


def random_table(P: int, Y: int, seed: int) -> torch.Tensor:
    """A random dense pair-law table (connected comparison graph)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(P, Y, Y, generator=gen, dtype=torch.float64) + 0.05


def tv(p_logp, q_logp) -> float:
    return float(metrics.tv(p_logp, q_logp).max())


DPO_GRID = [(beta, law, P) for beta in (0.1, 0.5, 2.0) for law in ("ref", "uniform", "table") for P in (1, 4)]


@claim("dpo.population_minimiser",
       citation="Rafailov et al., arXiv 2305.18290, Eq. 4 and §4",
       assumptions="BT preferences, clean labels, connected pair law; β ∈ {0.1, 0.5, 2}, pair_dist ∈ "
                   "{ref, uniform, random table}, P ∈ {1, 4} prompts, Y = 5",
       tolerance=1e-8)
def dpo_population_minimiser() -> float:
    """DPO's exact population minimiser is π*_β = π_ref·e^{r/β}/Z (max TV over the grid)."""
    worst = 0.0
    for beta, law, P in DPO_GRID:
        prob = Problem.random(FlatSpace(5), prompts=P, seed=P, reward_scale=2.0,
                              pair_dist=random_table(P, 5, P) if law == "table" else law)
        found = solve(losses.make("dpo", beta=beta), population(prob)).logp
        worst = max(worst, tv(found, optima.reverse_kl(prob, beta)))
    return worst


@claim("dpo.independent_of_pair_dist",
       citation="Rafailov et al., arXiv 2305.18290; G1 in docs/losses.md (logit link)",
       assumptions="BT, clean labels, β = 0.5, P = 3, Y = 6; pair laws ref, uniform, two random tables",
       tolerance=1e-8)
def dpo_independent_of_pair_dist() -> float:
    """DPO's minimiser does not depend on the pair distribution (max TV between pair laws)."""
    base = Problem.random(FlatSpace(6), prompts=3, seed=11, reward_scale=1.5)
    answers = [solve(losses.make("dpo", beta=0.5), population(base.replace(pair_dist=law))).logp
               for law in ("ref", "uniform", random_table(3, 6, 1), random_table(3, 6, 2))]
    return max(tv(answers[0], other) for other in answers[1:])


@claim("dpo.gradient_vanishes_at_pistar",
       citation="Rafailov et al., arXiv 2305.18290; G1 in docs/losses.md",
       assumptions="BT, clean labels, population pairs, β = 0.3, P = 4, Y = 8",
       tolerance=1e-12)
def dpo_gradient_vanishes() -> float:
    """The DPO population gradient w.r.t. tabular logits vanishes at π*_β (gradient norm)."""
    prob = Problem.random(FlatSpace(8), prompts=4, seed=3, reward_scale=2.0)
    loss = losses.make("dpo", beta=0.3)
    return float(metrics.grad_norm(loss, optima.reverse_kl(prob, 0.3)[None], population(prob)).max())


@claim("dpo.no_finite_minimiser_one_sided",
       citation="Azar et al., arXiv 2310.12036, §4.2; G4 in docs/losses.md",
       assumptions="deterministic preferences y0 ≻ y1 ≻ y2 (p ∈ {0, 1}), every pair seen in one orientation only",
       tolerance=1.0, comparison=">=")
def dpo_no_finite_minimiser() -> float:
    """DPO on one-sided deterministic pairs has no finite minimiser (1 when solve raises NoFiniteMinimum)."""
    order = torch.tensor([[[0.5, 1.0, 1.0], [0.0, 0.5, 1.0], [0.0, 0.0, 0.5]]], dtype=torch.float64)
    prob = Problem(FlatSpace(3), torch.full((1, 3), -math.log(3.0), dtype=torch.float64), preference=order)
    try:
        solve(losses.make("dpo", beta=1.0), population(prob))
    except NoFiniteMinimum:
        return 1.0
    return 0.0


IPO_BANDIT_TAUS = (1.0, 0.5, 0.1)


@claim("ipo.three_action_example",
       citation="Azar et al., arXiv 2310.12036, §5.2 (sampled three-action bandit, data set D1)",
       assumptions="uniform π_ref over {a, b, c}; data D1 = {(a,b), (b,c), (a,c)}, hard labels, equal "
                   "weights; τ ∈ {1, 0.5, 0.1}",
       tolerance=1e-8)
def ipo_three_action() -> float:
    """IPO's finite-sample minimiser is softmax(2/(3τ), 1/(3τ), 0) (max TV over τ)."""
    uniform = torch.full((1, 3), -math.log(3.0), dtype=torch.float64)
    prob = Problem(FlatSpace(3), uniform, preference=torch.full((1, 3, 3), 0.5, dtype=torch.float64))
    data = Pairs.from_records(prob, [(0, 0, 1), (0, 1, 2), (0, 0, 2)])
    worst = 0.0
    for tau in IPO_BANDIT_TAUS:
        closed = torch.log_softmax(torch.tensor([[2.0, 1.0, 0.0]], dtype=torch.float64) / (3 * tau), -1)
        worst = max(worst, tv(solve(losses.make("ipo", beta=tau), data).logp, closed))
    return worst


@claim("ipo.closed_form_product_mu",
       citation="Azar et al., arXiv 2310.12036, Prop. 3",
       assumptions="E1, τ = 1, pair laws W_u and W_s (products μ ⊗ μ, diagonal excluded)",
       tolerance=1e-8)
def ipo_closed_form() -> float:
    """IPO's population minimiser is π_ref·exp(p(y ≻ μ)/τ)/Z for product pair laws (max TV)."""
    worst = 0.0
    for law in ("uniform", "ref"):
        prob = e1(law)
        mu = prob.ref_logp.exp() if law == "ref" else torch.full((1, 4), 0.25, dtype=torch.float64)
        closed = torch.log_softmax(prob.ref_logp + torch.einsum("pab,pb->pa", prob.preference_matrix(), mu), -1)
        worst = max(worst, tv(solve(losses.make("ipo", beta=1.0), population(prob)).logp, closed))
    return worst


@claim("ipo.depends_on_mu",
       citation="Azar et al., arXiv 2310.12036, Eq. 9; derived here (E1: TV(W_u, W_s) = 0.0058)",
       assumptions="E1, τ = 1; W_u versus W_s", tolerance=1e-3, comparison=">=")
def ipo_depends_on_mu() -> float:
    """IPO's optimum depends on the pair distribution (TV between the W_u and W_s minimisers)."""
    loss = losses.make("ipo", beta=1.0)
    return tv(solve(loss, population(e1("uniform"))).logp, solve(loss, population(e1("ref"))).logp)


@claim("ipo.two_action",
       citation="Azar et al., arXiv 2310.12036, §5.3",
       assumptions="two actions, p(y1 ≻ y2) = 1, uniform μ and π_ref, τ ∈ {0.1, 0.5, 1}",
       tolerance=1e-8)
def ipo_two_action() -> float:
    """IPO keeps π(y1) = σ(1/(2τ)) under a deterministic preference, where DPO would give 1 (max error)."""
    pref = torch.tensor([[[0.5, 1.0], [0.0, 0.5]]], dtype=torch.float64)
    prob = Problem(FlatSpace(2), torch.full((1, 2), -math.log(2.0), dtype=torch.float64), preference=pref,
                   pair_dist="uniform")
    return max(abs(float(solve(losses.make("ipo", beta=tau), population(prob)).logp[0, 0].exp())
                   - 1 / (1 + math.exp(-1 / (2 * tau)))) for tau in (0.1, 0.5, 1.0))


@claim("rdpo.unbiased",
       citation="Chowdhury, Kini, Natarajan, arXiv 2403.00409; derived here",
       assumptions="E1 and a random 3-prompt problem; labels flipped at rate ε = 0.1 = the loss's eps; "
                   "pair laws W_u and W_s; β = 1",
       tolerance=1e-8)
def rdpo_unbiased() -> float:
    """rDPO on ε-flipped data recovers the clean π*_β (max TV)."""
    loss = losses.make("rdpo", beta=1.0, eps=0.1)
    problems = [e1("uniform"), e1("ref"), Problem.random(FlatSpace(5), prompts=3, seed=4)]
    return max(tv(solve(loss, population(prob, noise=0.1)).logp, optima.reverse_kl(prob, 1.0))
               for prob in problems)


@claim("cdpo.recovers_pistar_under_flips",
       citation="Mitchell, cDPO note (2023); derived here (E1: TV 0.261 under W_u)",
       assumptions="E1, W_u, labels flipped at rate ε = 0.1 = the loss's eps, β = 1",
       tolerance=1e-6, expected="fails")
def cdpo_under_flips() -> float:
    """cDPO recovers the clean π*_β from ε-flipped data (it smooths twice, so it does not)."""
    prob = e1("uniform")
    found = solve(losses.make("cdpo", beta=1.0, eps=0.1), population(prob, noise=0.1)).logp
    return tv(found, optima.reverse_kl(prob, 1.0))


@claim("cdpo.hard_label_fixed_point",
       citation="Mitchell, cDPO note (2023); derived here",
       assumptions="one pair seen in one orientation only (hard label), ε ∈ {0.1, 0.25}, β = 2",
       tolerance=1e-9)
def cdpo_fixed_point() -> float:
    """On hard labels cDPO stops at σ(βΔ) = 1 − ε, a finite margin (max error in σ(βΔ))."""
    pref = torch.tensor([[[0.5, 1.0], [0.0, 0.5]]], dtype=torch.float64)
    prob = Problem(FlatSpace(2), torch.tensor([[0.7, 0.3]], dtype=torch.float64).log(), preference=pref)
    worst = 0.0
    for eps in (0.1, 0.25):
        found = solve(losses.make("cdpo", beta=2.0, eps=eps), population(prob)).logp
        margin = (found - prob.ref_logp)[0, 0] - (found - prob.ref_logp)[0, 1]
        worst = max(worst, abs(float(torch.sigmoid(2.0 * margin)) - (1 - eps)))
    return worst


@claim("cdpo.depends_on_mu",
       citation="derived here (E1: TV(W_u, W_s) = 0.012)",
       assumptions="E1, clean labels, ε = 0.1, β = 1; W_u versus W_s", tolerance=1e-3, comparison=">=")
def cdpo_depends_on_mu() -> float:
    """cDPO's optimum depends on the pair distribution (TV between the W_u and W_s minimisers)."""
    loss = losses.make("cdpo", beta=1.0, eps=0.1)
    return tv(solve(loss, population(e1("uniform"))).logp, solve(loss, population(e1("ref"))).logp)


@claim("hinge.differs_from_pistar",
       citation="Zhao et al., arXiv 2305.10425; derived here (E1: G = (0,1,2,3)/β, TV 0.122 from π*_β)",
       assumptions="E1, W_u, β = 1", tolerance=0.05, comparison=">=")
def hinge_differs() -> float:
    """The hinge (SLiC) optimum is rank-only and differs from π*_β (TV)."""
    prob = e1("uniform")
    return tv(solve(losses.make("hinge", beta=1.0), population(prob)).logp, optima.reverse_kl(prob, 1.0))


@claim("train.adam_reaches_solver",
       citation="toybench (batched training must agree with the exact oracle)",
       assumptions="B = 4 runs with β = (0.5, 1, 2, 4) in one program; P = 2, Y = 5; population DPO; "
                   "full-batch Adam, lr 0.05, 1500 steps, float64",
       tolerance=1e-5)
def train_reaches_solver() -> float:
    """Batched full-batch Adam training reaches the solver's answer for every run (max TV)."""
    from ..policies import Tabular
    from ..train import train
    prob = Problem.random(FlatSpace(5), prompts=2, seed=5)
    betas = torch.tensor([0.5, 1.0, 2.0, 4.0], dtype=torch.float64)
    loss, pairs = losses.make("dpo", beta=betas), population(prob)
    policy = Tabular(prob, runs=4, dtype=torch.float64)
    train(policy, loss, pairs, steps=1500, optimizer="adam", lr=0.05, seed=0)
    return tv(policy.logp().detach(), solve(loss, pairs).logp)
