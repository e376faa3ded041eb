"""Claims about rankings, list losses, iterated DPO schedules and soft labels.

E1 is the instance r = (0, 0.5, 1.5, 3), π_ref = (0.4, 0.3, 0.2, 0.1). Lists are Plackett–Luce
rankings of candidate sets (``toybench.rankings.list_population``), minimised exactly by
``losses.solve_lists``. Distances are total variation in float64.
"""
from __future__ import annotations

import torch

from .. import losses, optima
from ..pairs import population
from ..rankings import list_population, model_pair_law, smoothed_preference
from ..solve import solve
from .core import e1, tv
from .registry import claim


@claim("plackett_luce.minimiser_is_pistar",
       citation="Rafailov et al., arXiv 2305.18290, App. A.3 (Plackett–Luce DPO) [derived]",
       assumptions="E1, Plackett–Luce rankings of every k-subset, k ∈ {2, 3, 4}, candidate sets uniform or drawn "
                   "from π_ref without replacement, β ∈ {0.5, 1}; exact list population, Newton oracle",
       tolerance=1e-8)
def plackett_luce_minimiser() -> float:
    """The list-wise DPO minimiser equals π*_β under Plackett–Luce for every list size (max TV)."""
    prob = e1()
    worst = 0.0
    for k in (2, 3, 4):
        for law in ("uniform", "ref"):
            for beta in (0.5, 1.0):
                found = losses.solve_lists(losses.make("plackett_luce", beta=beta), list_population(prob, k, law)).logp
                worst = max(worst, tv(found, optima.reverse_kl(prob, beta)))
    return worst


@claim("anchored_dpo.listwise_target",
       citation="Wang, arXiv 2510.18913 (ADPO-anchor) [derived: soft targets softmax(r/β_r) give π*_{β_r/τ}]",
       assumptions="E1, every 3-subset (uniform), soft targets q = softmax_S(r/β_r), β_r = 0.5, τ = 0.8, anchor π_ref",
       tolerance=1e-8)
def anchored_listwise() -> float:
    """Anchored DPO with reward soft labels on lists targets π*_{β_r/τ} (TV)."""
    prob = e1()
    loss = losses.make("anchored_dpo", beta=0.5, tau=0.8)
    found = losses.solve_lists(loss, list_population(prob, 3, reward_scores=True)).logp
    return tv(found, optima.reverse_kl(prob, 0.5 / 0.8))


@claim("anchored_dpo.pairwise_target",
       citation="Wang, arXiv 2510.18913 (pairwise ADPO = DPO at β = 1/τ) [derived]",
       assumptions="E1, every pair equally likely, hard labels drawn from BT (the population of ranked pairs, "
                   "k = 2 lists), τ = 0.8",
       tolerance=1e-8)
def anchored_pairwise() -> float:
    """Pairwise anchored DPO targets π*_{1/τ} (TV of the exact minimiser)."""
    prob = e1()
    found = losses.solve_lists(losses.make("anchored_dpo", tau=0.8), list_population(prob, 2)).logp
    return tv(found, optima.reverse_kl(prob, 1 / 0.8))


@claim("curry_dpo.stages_compound",
       citation="Pattnaik et al., arXiv 2403.07230 (reference reset to the previous stage) [derived]",
       assumptions="E1, W_u, β = 1, K = 3 full-coverage stages, each solved exactly by tb.solve with the previous "
                   "stage's policy as the reference",
       tolerance=1e-8)
def curry_stages() -> float:
    """K Curry-DPO stages with reference resets give π*_{β/K} (TV)."""
    prob = e1()
    stage = prob
    for _ in range(3):
        found = solve(losses.make("curry_dpo", beta=1.0, stages=3), population(stage)).logp
        stage = stage.replace(ref_logp=found)
    return tv(found, optima.reverse_kl(prob, 1 / 3))


@claim("exo.list_longer_than_two",
       citation="Ji et al., arXiv 2402.00856 (EXO over K responses); Han et al., arXiv 2410.21662 (f-PO) [derived]",
       assumptions="E1, lists of k ∈ {3, 4} with reward labels, β = 0.5, β_r = 2: EXO list form and f-PO (alpha, "
                   "α = 0.3) list form vs π_ref·e^{r/(β·β_r)}",
       tolerance=1e-8)
def fpo_exo_lists() -> float:
    """EXO and f-PO on lists longer than two keep the closed-form target π_ref·e^{r/(β·β_r)} (max TV)."""
    prob = e1()
    worst = 0.0
    for loss in (losses.make("exo", beta=0.5, beta_reward=2.0, mode="list"),
                 losses.make("fpo", beta=0.5, beta_reward=2.0, mode="exact", alpha=0.3)):
        for k in (3, 4):
            found = losses.solve_lists(loss, list_population(prob, k, reward_scores=True)).logp
            worst = max(worst, tv(found, optima.reverse_kl(prob, 1.0)))
    return worst


@claim("smpo.soft_labels_give_reward_model_tilt",
       citation="Lu et al., arXiv 2506.02698 (SmPO: soft labels from a reward model) [derived]",
       assumptions="E1 with W_u; soft labels σ(r̂(a) − r̂(b)) from a mis-specified reward model r̂ = (0, 1, 1, 2), "
                   "no smoothing, DPO β = 1: the minimiser vs π_ref·e^{r̂/β}/Z",
       tolerance=1e-8)
def smpo_model_tilt() -> float:
    """DPO with a reward model's soft labels converges to that model's tilt π_ref·e^{r̂/β} (TV)."""
    prob = e1()
    model = torch.tensor([[0.0, 1.0, 1.0, 2.0]], dtype=torch.float64)
    found = solve(losses.make("dpo", beta=1.0), population(smoothed_preference(prob, 0.0, model))).logp
    return tv(found, optima.reverse_kl(prob.replace(reward=model), 1.0))


@claim("smpo.smoothed_labels_keep_pistar",
       citation="Lu et al., arXiv 2506.02698 (smoothed preference distribution) [derived: smoothing by ε is label "
                "noise ε/2, a μ-dependent projection]",
       assumptions="E1 with W_u, the true reward, smoothing ε = 0.3 (p̂ = 0.7·σ(r_a − r_b) + 0.15), DPO β = 1",
       tolerance=1e-6, expected="fails")
def smpo_smoothing() -> float:
    """Smoothed labels leave DPO's optimum at π*_β (TV; smoothing toward ½ flattens it)."""
    prob = e1()
    found = solve(losses.make("dpo", beta=1.0), population(smoothed_preference(prob, 0.3))).logp
    return tv(found, optima.reverse_kl(prob, 1.0))


@claim("dpo.multi_model_pairs_same_target",
       citation="Wang et al., arXiv 2504.02193 (multi-model preference data) [derived: DPO's logit link makes its "
                "population target independent of the pair law]",
       assumptions="E1 (BT, clean labels); pairs from π_ref ⊗ π_ref (single model) vs a stronger model π_s = "
                   "softmax(2r) for one response and π_ref for the other (multi-model), β = 1; exact populations",
       tolerance=1e-8)
def dpo_multi_model() -> float:
    """With exact BT labels DPO's minimiser does not depend on which models produced the pair (TV): the
    multi-model pitfalls need finite data or features, not the population objective."""
    prob = e1()
    strong = torch.log_softmax(2 * prob.reward, -1)
    single = solve(losses.make("dpo", beta=1.0), population(prob.replace(pair_dist=model_pair_law(prob.ref_logp)))).logp
    multi = solve(losses.make("dpo", beta=1.0),
                  population(prob.replace(pair_dist=model_pair_law(strong, prob.ref_logp)))).logp
    return tv(single, multi)
