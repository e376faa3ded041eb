"""Claims about general (intransitive) preferences and the Nash equilibria self-play targets.

The skew 3-cycle: P(0 ≻ 1) = 0.9, P(1 ≻ 2) = 0.7, P(2 ≻ 0) = 0.6; its unregularised equilibrium is
(2/7, 1/7, 4/7) (A = P − ½ gives π ∝ (0.2, 0.1, 0.4)). The regularised equilibrium π*_τ solves
π = π_ref·exp(P(y ≻ π)/τ)/Z (``optima.nash``). Distances are total variation in float64.
"""
from __future__ import annotations

import numpy as np
import torch

from .. import losses, optima, procedures
from ..pairs import population
from ..problem import Problem
from ..solve import solve
from ..spaces import FlatSpace
from .core import e1, tv
from .registry import claim

SKEW = ((0.5, 0.9, 0.4), (0.1, 0.5, 0.7), (0.6, 0.3, 0.5))
SKEW_NASH = (2 / 7, 1 / 7, 4 / 7)
SKEWED_REF = (0.5, 0.3, 0.2)


def skew_cycle(ref=SKEWED_REF) -> Problem:
    """The skew 3-cycle with reference ``ref`` (one prompt)."""
    return Problem(FlatSpace(3), torch.tensor([ref], dtype=torch.float64).log(),
                   preference=torch.tensor([SKEW], dtype=torch.float64))


def nash_md_spectral_radius(prob: Problem, eta: float, tau: float) -> float:
    """Spectral radius of the linearised Nash-MD map at π*_τ in log space,
    J = (1 − ητ)·I + η·A·(diag π* − π*π*ᵀ), A = M − ½ (NumPy eigenvalues) [derived]."""
    star = optima.nash(prob, tau).exp()[0].numpy()
    antisym = prob.preference_matrix()[0].numpy() - 0.5
    jacobian = (1 - eta * tau) * np.eye(len(star)) + eta * antisym @ (np.diag(star) - np.outer(star, star))
    return float(np.abs(np.linalg.eigvals(jacobian)).max())


@claim("nash.oracle_certified",
       citation="Munos et al., arXiv 2312.00886 (regularised Nash equilibrium, unique)",
       assumptions="skew 3-cycle with π_ref = (0.5, 0.3, 0.2) at τ ∈ {1, 0.1, 0.01, 0.001} (the damped "
                   "iteration failed at 0.1), and random intransitive problems (P = 4, Y = 16, entries σ(N(0, 9))) "
                   "at τ ∈ {1, 0.05}; certificate TV bound √(KL(π‖BR(π))/2)",
       tolerance=1e-9)
def nash_oracle_certified() -> float:
    """tb.optima.nash returns a certified equilibrium: the largest TV bound of its certificate."""
    cases = [(skew_cycle(), tau) for tau in (1.0, 0.1, 0.01, 0.001)]
    cases += [(Problem.random(FlatSpace(16), prompts=4, seed=seed, preference="general", reward_scale=3.0), tau)
              for seed in (0, 1) for tau in (1.0, 0.05)]
    return max(float(optima.nash(prob, tau, return_certificate=True)[1].tv_bound.max()) for prob, tau in cases)


@claim("dpo.intransitive_not_nash",
       citation="Munos et al., arXiv 2312.00886 (preference models beyond BT); Azar et al., arXiv 2310.12036 [derived]",
       assumptions="skew 3-cycle, π_ref = (0.5, 0.3, 0.2), pairs from π_ref ⊗ π_ref, β = τ = 0.5: DPO's exact "
                   "population minimiser vs the regularised equilibrium π*_τ",
       tolerance=0.1, comparison=">=")
def dpo_intransitive() -> float:
    """On an intransitive preference DPO's minimiser is not the regularised Nash equilibrium (TV)."""
    prob = skew_cycle()
    return tv(solve(losses.make("dpo", beta=0.5), population(prob)).logp, optima.nash(prob, 0.5))


@claim("ipo.offline_intransitive_not_nash",
       citation="Azar et al., arXiv 2310.12036, Prop. 3; Calandriello et al., arXiv 2403.08635 [derived]",
       assumptions="skew 3-cycle, π_ref = (0.5, 0.3, 0.2), fixed pairs from π_ref ⊗ π_ref, τ = 0.5: IPO's optimum "
                   "π_ref·exp(P(y ≻ π_ref)/τ) vs π*_τ",
       tolerance=0.01, comparison=">=")
def ipo_offline_intransitive() -> float:
    """Offline IPO (pairs from π_ref) does not reach the regularised Nash equilibrium (TV)."""
    prob = skew_cycle()
    return tv(optima.ipo(prob, 0.5), optima.nash(prob, 0.5))


@claim("online_ipo.fixed_point_is_nash",
       citation="Calandriello et al., arXiv 2403.08635 (online IPO and Nash-MD); Guo et al., arXiv 2402.04792 [derived]",
       assumptions="skew 3-cycle, π_ref = (0.5, 0.3, 0.2), τ = 0.5, 400 exact population gradient steps (lr 0.3) on "
                   "pairs from the current policy (self-pairs removed)",
       tolerance=1e-10)
def online_ipo_fixed_point() -> float:
    """Online IPO converges to the regularised Nash equilibrium π*_τ (TV of the last iterate)."""
    prob = skew_cycle()
    run = procedures.online_dpo(prob, 0.5, 400, lr=0.3, loss="ipo", record_every=400)
    return tv(run.final, optima.nash(prob, 0.5)[None])


@claim("online_dpo.fixed_point_bt",
       citation="Guo et al. (OAIF), arXiv 2402.04792 [derived: G1, every pair's gradient vanishes at π*_β]",
       assumptions="E1 (BT), β = 1, 300 exact population gradient steps (lr 5) on pairs from the current policy",
       tolerance=1e-10)
def online_dpo_fixed_point() -> float:
    """Online DPO under Bradley–Terry converges to π*_β (TV of the last iterate)."""
    prob = e1()
    run = procedures.online_dpo(prob, 1.0, 300, lr=5.0, record_every=300)
    return tv(run.final, optima.reverse_kl(prob, 1.0)[None])


@claim("online_dpo.intransitive_not_nash",
       citation="Guo et al., arXiv 2402.04792; Munos et al., arXiv 2312.00886 [derived]",
       assumptions="skew 3-cycle, π_ref = (0.5, 0.3, 0.2), β = 0.5, 1000 exact steps (lr 2) on on-policy pairs",
       tolerance=0.05, comparison=">=")
def online_dpo_intransitive() -> float:
    """Online DPO on an intransitive preference settles away from the regularised equilibrium (TV)."""
    prob = skew_cycle()
    run = procedures.online_dpo(prob, 0.5, 1000, lr=2.0, record_every=1000)
    return tv(run.final, optima.nash(prob, 0.5)[None])


@claim("sppo.hedge_average_converges",
       citation="Wu et al., arXiv 2405.00675 (SPPO's Hedge update; averaged iterates) [derived: η = 0.1, "
                "20,000 steps give (0.2858, 0.1440, 0.5702)]",
       assumptions="skew 3-cycle, uniform start, τ = 0 (no regularisation), η = 0.1, 5000 Hedge steps; running "
                   "average of the iterates vs the LP equilibrium (2/7, 1/7, 4/7)",
       tolerance=0.01)
def sppo_average() -> float:
    """The running average of Hedge iterates approaches the unregularised equilibrium (TV)."""
    run = procedures.sppo(skew_cycle((1 / 3, 1 / 3, 1 / 3)), 0.1, 5000, record_every=5000)
    return 0.5 * float((run.average[-1, 0, 0] - torch.tensor(SKEW_NASH, dtype=torch.float64)).abs().sum())


@claim("sppo.hedge_last_iterate_converges",
       citation="Wu et al., arXiv 2405.00675 (last-iterate use of the Hedge update) [derived: the linearised map "
                "has eigenvalues 1 ± iηω of modulus > 1]",
       assumptions="skew 3-cycle, uniform start, τ = 0, η = 0.1, 5000 Hedge steps; last iterate vs (2/7, 1/7, 4/7)",
       tolerance=0.01, expected="fails")
def sppo_last_iterate() -> float:
    """Hedge's last iterate converges to the equilibrium of an intransitive game (TV; it cycles)."""
    run = procedures.sppo(skew_cycle((1 / 3, 1 / 3, 1 / 3)), 0.1, 5000, record_every=5000)
    return tv(run.final, optima.nash_unregularised(skew_cycle())[None])


@claim("sppo.nash_md_rate",
       citation="Munos et al., arXiv 2312.00886 (mirror descent on the regularised game) [derived: linearisation at π*_τ]",
       assumptions="skew 3-cycle, π_ref = (0.5, 0.3, 0.2), τ = 0.1, η ∈ {0.5, 1, 2} (ητ < 1 and "
                   "η < 2τ/(τ² + ω²), ω the largest eigenvalue modulus of S^½AS^½ at π*_τ); measured per-step "
                   "contraction exp(slope of log TV(π_t, π*_τ)) fitted over the window where TV falls from ~1e-4 to "
                   "~1e-10, vs the spectral radius ρ of (1 − ητ)I + ηAS",
       tolerance=2e-3)
def sppo_nash_md_rate() -> float:
    """Regularised self-play iterates approach π*_τ linearly at the linearised map's spectral radius (max
    |measured − predicted| rate)."""
    prob = skew_cycle()
    star = optima.nash(prob, 0.1).exp()
    worst = 0.0
    for eta in (0.5, 1.0, 2.0):
        radius = nash_md_spectral_radius(prob, eta, 0.1)
        first, last = (int(np.ceil(np.log(level) / np.log(radius))) for level in (1e-4, 1e-10))
        logp = procedures.sppo(prob, eta, last, tau=0.1).logp[first:]
        distance = 0.5 * (logp.exp() - star).abs().sum(-1).reshape(-1).numpy()
        slope = np.polyfit(np.arange(len(distance)), np.log(distance), 1)[0]
        worst = max(worst, abs(float(np.exp(slope)) - radius))
    return worst


@claim("dno.step_is_exact_minimiser",
       citation="Rosset et al., arXiv 2404.03715 (DNO's regression onto P(y ≻ π_t)) [unverified form; derived]",
       assumptions="skew 3-cycle, π_t = π_ref = (0.5, 0.3, 0.2), η = 0.5: the closed-form step π_t·e^{r_t/η} vs "
                   "tb.solve of the soft-label logistic regression (DPO at β = η, labels σ(r_t(a) − r_t(b)))",
       tolerance=1e-8)
def dno_step() -> float:
    """One exact DNO step is π_{t+1} ∝ π_t·exp(P(y ≻ π_t)/η) (TV to the numeric minimiser)."""
    prob = skew_cycle()
    step = procedures.dno(prob, 0.5, 1).final
    win = procedures.win_rates(prob, prob.ref_logp)
    regression = Problem(FlatSpace(3), prob.ref_logp, reward=win)
    return tv(step, solve(losses.make("dpo", beta=0.5), population(regression)).logp[None])


@claim("dno.bt_limit_argmax",
       citation="Rosset et al., arXiv 2404.03715 [derived: under BT the limit is the point mass on argmax r]",
       assumptions="E1 (BT), η = 0.5, 300 exact DNO rounds from π_ref",
       tolerance=1e-9)
def dno_limit() -> float:
    """DNO iterates under Bradley–Terry converge to the point mass on argmax r (1 − π_T(argmax r))."""
    prob = e1()
    final = procedures.dno(prob, 0.5, 300, record_every=300).final
    return 1.0 - float(final.exp()[0, 0, int(prob.reward.argmax())])
