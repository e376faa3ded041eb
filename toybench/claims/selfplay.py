"""Claims for the self-play losses ``sppo`` and ``ddo`` (docs/losses.md).

E1 is the worked instance of docs/conventions.md. SPPO's ideal update is Hedge,
π_{t+1} ∝ π_t·exp(η·P(y ≻ π_t)); one SPPO step is the least-squares loss with π_t as its
reference, solved exactly here. DDO's data law is p_data = softmax(r) on E1, its reference p_ref =
π_ref. Distances are total variation in float64.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linprog

from .. import losses, optima
from ..losses.selfplay import ddo_formula, ddo_matching_alpha, ddo_pairs, hedge_step, with_win_probs
from ..pairs import population
from ..problem import Problem
from ..solve import solve
from ..spaces import FlatSpace
from .core import e1, tv
from .registry import claim

HEDGE_ROUNDS = 200
SELF_PLAY_ROUNDS = 200


def rock_paper_scissors(win: float) -> Problem:
    """Rock-paper-scissors with P(winner ≻ loser) = ``win``, uniform π_ref."""
    lose = 1 - win
    pref = torch.tensor([[[0.5, win, lose], [lose, 0.5, win], [win, lose, 0.5]]], dtype=torch.float64)
    return Problem(FlatSpace(3), torch.full((1, 3), 1 / 3, dtype=torch.float64).log(), preference=pref)


def unregularised_nash(pref: np.ndarray) -> np.ndarray:
    """A maximin strategy of the symmetric preference game on one prompt: maximise v subject to
    Σ_y π(y)(P(y ≻ y′) − ½) ≥ v for every y′, π in the simplex (HiGHS LP)."""
    Y = pref.shape[0]
    cost = np.zeros(Y + 1)
    cost[-1] = -1.0
    a_ub = np.hstack([-(pref - 0.5).T, np.ones((Y, 1))])
    a_eq = np.hstack([np.ones((1, Y)), np.zeros((1, 1))])
    result = linprog(cost, A_ub=a_ub, b_ub=np.zeros(Y), A_eq=a_eq, b_eq=[1.0],
                     bounds=[(0, None)] * Y + [(None, None)], method="highs")
    return result.x[:Y]


def regularised_residual(prob, tau: float) -> float:
    """max |π − softmax(log π_ref + M·π/τ)| at ``tb.optima.nash``'s answer."""
    policy = optima.nash(prob, tau).exp()
    response = torch.softmax(prob.ref_logp + torch.einsum("pab,pb->pa", prob.preference_matrix(), policy) / tau, -1)
    return float((policy - response).abs().max())


def ddo_self_play(prob, data_logp: torch.Tensor, beta: float, rounds: int) -> torch.Tensor:
    """DDO self-play at the matching α each round: log p ← ``ddo_formula``(log p, log p_data, β),
    starting from p_ref = π_ref."""
    logp = prob.ref_logp
    for _ in range(rounds):
        logp = ddo_formula(logp, data_logp, beta)
    return logp


def e1_data_logp(prob) -> torch.Tensor:
    return torch.log_softmax(prob.reward, -1)


# ------------------------------------------------------------------------------ SPPO
@claim("sppo.hedge_limit",
       citation="Wu et al., arXiv 2405.00675; derived here (E1: point mass on y₃)",
       assumptions=f"E1, η = 2, Hedge iterated {HEDGE_ROUNDS} times from π_ref (SPPO's ideal update, exact "
                   "P(y ≻ π_t))",
       tolerance=1e-9)
def sppo_hedge_limit() -> float:
    """Hedge on a BT preference game converges to the point mass on argmax r, the unregularised NE
    (1 − π_T(argmax r))."""
    prob = e1("uniform")
    logp = prob.ref_logp
    for _ in range(HEDGE_ROUNDS):
        logp = hedge_step(prob, logp, 2.0)
    return 1.0 - float(logp.exp()[0, int(prob.reward.argmax())])


@claim("sppo.ls_step_equals_hedge",
       citation="Wu et al., arXiv 2405.00675 (SPPO loss approximates the Hedge update); derived here (E1, π_ref "
                "sampling: log Z_t = 1.0625 ≠ η/2, so the step is not Hedge's; TV 0.0103 with self-pairs)",
       assumptions="E1, W_s (pairs ∝ π_t ⊗ π_t without self-pairs), π_t = π_ref, η = 2 (β = 0.5), soft mode "
                   "with exact P(y ≻ π_t); log Z_t = 1.0625 ≠ η/2 (the step equals Hedge only when "
                   "log Z_t = η/2)",
       tolerance=1e-6, expected="fails")
def sppo_ls_step() -> float:
    """One exact SPPO least-squares step equals Hedge's π_t·e^{ηP(y≻π_t)}/Z_t (TV; it does not unless
    log Z_t = η/2)."""
    prob = e1("ref")
    found = solve(losses.make("sppo", beta=0.5), with_win_probs(population(prob))).logp
    return tv(found, hedge_step(prob, prob.ref_logp, 2.0))


@claim("sppo.regularised_ne",
       citation="Wu et al., arXiv 2405.00675; derived here (residual ≤ 4e-16)",
       assumptions="tb.optima.nash (Newton in log space); E1 at τ ∈ {0.5, 1} and a "
                   "random 4-prompt, 6-response BT problem at τ = 1",
       tolerance=4e-16)
def sppo_regularised_ne() -> float:
    """The regularised game's equilibrium solves π = π_ref·exp(P(y ≻ π)/τ)/Z (max fixed-point residual)."""
    cases = [(e1("uniform"), 0.5), (e1("uniform"), 1.0),
             (Problem.random(FlatSpace(6), prompts=4, seed=2, reward_scale=1.0), 1.0)]
    return max(regularised_residual(prob, tau) for prob, tau in cases)


@claim("sppo.small_spread_approx",
       citation="derived here (small spread: π*_τ ≈ π*_{4τ}, TV ≤ 8.1e-4 for reward sd 0.3)",
       assumptions="random 4-prompt, 6-response BT problem, reward sd 0.3, τ = 0.5: regularised NE vs π*_{4τ}",
       tolerance=1e-3)
def sppo_small_spread() -> float:
    """For small reward spread the regularised NE is close to the reverse-KL optimum at 4τ (TV)."""
    prob = Problem.random(FlatSpace(6), prompts=4, seed=0, reward_scale=0.3)
    return tv(optima.nash(prob, 0.5), optima.reverse_kl(prob, 2.0))


@claim("sppo.small_spread_approx_e1",
       citation="derived here (E1 at τ = 0.2: TV 0.189)",
       assumptions="E1 (reward spread 3), τ = 0.2: regularised NE vs π*_{4τ}",
       tolerance=1e-3, expected="fails")
def sppo_small_spread_e1() -> float:
    """The approximation π*_τ ≈ π*_{4τ} holds on E1 (it does not: the spread is large; TV)."""
    prob = e1("uniform")
    return tv(optima.nash(prob, 0.2), optima.reverse_kl(prob, 0.8))


@claim("sppo.intransitive",
       citation="Wu et al., arXiv 2405.00675 (general preferences); derived here",
       assumptions="rock-paper-scissors with P(winner ≻ loser) ∈ {1, 0.8}; NE of the unregularised game by LP",
       tolerance=1e-9)
def sppo_intransitive() -> float:
    """The Nash equilibrium of rock-paper-scissors is uniform (max TV to uniform)."""
    worst = 0.0
    for win in (1.0, 0.8):
        strategy = unregularised_nash(rock_paper_scissors(win).preference_matrix()[0].numpy())
        worst = max(worst, 0.5 * float(np.abs(strategy - 1 / 3).sum()))
    return worst


@claim("sppo.hard",
       citation="TRL DPOTrainer sppo_hard (v1.9.0, v0.28.0); derived here (E1: TV 0.373)",
       assumptions="E1, W_u, β = 1, reference fixed at π_ref",
       tolerance=0.3, comparison=">=")
def sppo_hard() -> float:
    """SPPO-hard's population optimum differs from π*_β (TV)."""
    prob = e1("uniform")
    found = solve(losses.make("sppo", beta=1.0, mode="hard"), population(prob)).logp
    return tv(found, optima.reverse_kl(prob, 1.0))


# ------------------------------------------------------------------------------ DDO
@claim("ddo.alpha_beta_one",
       citation="Zheng et al., arXiv 2503.01103; derived here (E1: TV 7e-9)",
       assumptions="E1's π_ref as p_ref, p_data = softmax(r), α = β = 1, exact records (ddo_pairs)",
       tolerance=1e-8)
def ddo_alpha_beta_one() -> float:
    """At α = β = 1 DDO's tabular minimiser is p_data (TV)."""
    prob = e1("uniform")
    data = e1_data_logp(prob)
    return tv(solve(losses.make("ddo", alpha=1.0, beta=1.0), ddo_pairs(prob, data)).logp, data)


@claim("ddo.normalised_formula",
       citation="Zheng et al., arXiv 2503.01103; derived here (≤ 1e-8 at the matching α)",
       assumptions="E1, p_data = softmax(r), β ∈ {0.7, 2} with α = (Σ p_ref^{1−1/β} p_data^{1/β})^β",
       tolerance=1e-8)
def ddo_normalised_formula() -> float:
    """At the matching α DDO's minimiser is softmax((1 − 1/β)log p_ref + (1/β)log p_data) (max TV)."""
    prob = e1("uniform")
    data = e1_data_logp(prob)
    worst = 0.0
    for beta in (0.7, 2.0):
        alpha = float(ddo_matching_alpha(prob.ref_logp, data, beta)[0])
        found = solve(losses.make("ddo", alpha=alpha, beta=beta), ddo_pairs(prob, data)).logp
        worst = max(worst, tv(found, ddo_formula(prob.ref_logp, data, beta)))
    return worst


@claim("ddo.normalised_formula_other_alpha",
       citation="Zheng et al., arXiv 2503.01103; derived here (α = 2, β = 0.7: 0.027)",
       assumptions="E1, p_data = softmax(r), α = 2, β = 0.7 (the matching α is 1.586)",
       tolerance=1e-8, expected="fails")
def ddo_other_alpha() -> float:
    """DDO's minimiser is the normalised pointwise formula (TV; not away from the matching α)."""
    prob = e1("uniform")
    data = e1_data_logp(prob)
    found = solve(losses.make("ddo", alpha=2.0, beta=0.7), ddo_pairs(prob, data)).logp
    return tv(found, ddo_formula(prob.ref_logp, data, 0.7))


@claim("ddo.self_play",
       citation="Zheng et al., arXiv 2503.01103 (self-play rounds, p_ref ← p_θ); derived here",
       assumptions=f"E1, p_data = softmax(r), β ∈ {{0.6, 2}}, matching α each round, {SELF_PLAY_ROUNDS} rounds "
                   "from p_ref = π_ref; log p_{n+1} = (1 − 1/β)log p_n + (1/β)log p_data + c",
       tolerance=1e-8)
def ddo_self_play_converges() -> float:
    """DDO self-play converges to p_data for β > ½ (max TV after the rounds)."""
    prob = e1("uniform")
    data = e1_data_logp(prob)
    return max(tv(ddo_self_play(prob, data, beta, SELF_PLAY_ROUNDS), data) for beta in (0.6, 2.0))


@claim("ddo.self_play_beta_below_half",
       citation="Zheng et al., arXiv 2503.01103 (diffusion β ∈ [0.01, 0.1]); derived here (β = 0.4: TV 0.96 "
                "after 200 rounds) [derived]",
       assumptions=f"E1, p_data = softmax(r), β = 0.4 (|1 − 1/β| = 1.5 > 1), matching α each round, "
                   f"{SELF_PLAY_ROUNDS} rounds from π_ref",
       tolerance=1e-8, expected="fails")
def ddo_self_play_diverges() -> float:
    """DDO self-play converges to p_data at β = 0.4 (TV after the rounds; it does not for β < ½)."""
    prob = e1("uniform")
    data = e1_data_logp(prob)
    return tv(ddo_self_play(prob, data, 0.4, SELF_PLAY_ROUNDS), data)
