"""Claims about the practical forms of self-play and fast–slow procedures: SPPO's least-squares step
(``procedures.sppo_ls``), DNO's margin filter (``procedures.dno(margin=…)``) and the OFS-DPO
reconstruction (``procedures.ofs_dpo``). Distances are total variation in float64; the exploitability
of π is max_y P(y ≻ π) − ½ (zero exactly at a von Neumann winner)."""
from __future__ import annotations

import math

import numpy as np
import torch

from .. import optima, procedures
from ..problem import Problem
from ..spaces import FlatSpace
from .core import e1, tv
from .nash import SKEW_NASH, skew_cycle
from .registry import claim

GAP_HORIZONS = (64, 256, 1024)
CLOSE_REWARDS = (0.0, 0.1, 0.2, 0.3)


def exploitability(prob: Problem, policy: torch.Tensor) -> float:
    """max_y P(y ≻ π) − ½ for probabilities ``[..., P, Y]``, the worst prompt and run."""
    return float((procedures.win_rates(prob, policy.log()).amax(-1) - 0.5).max())


def close_rewards() -> Problem:
    """Bradley–Terry with rewards (0, 0.1, 0.2, 0.3) and a uniform reference (one prompt)."""
    return Problem(FlatSpace(4), torch.full((1, 4), 0.25, dtype=torch.float64).log(),
                   reward=torch.tensor([CLOSE_REWARDS], dtype=torch.float64))


# ------------------------------------------------------------------------------ SPPO's least-squares step
@claim("sppo_ls.average_gap_within_hedge_bound",
       citation="Wu et al., arXiv 2405.00675 (Thm. 4.1 as recalled: the average iterate is an O(1/√T)-approximate "
                "Nash equilibrium for η = Θ(1/√T)) [derived: Hedge's regret bound log|Y|/η + ηT/8 on payoffs in [0, 1]]",
       assumptions="skew 3-cycle, uniform start, exact least-squares steps (sppo_ls), η = 1/√T for T ∈ {64, 256, 1024} "
                   "(one run each, one program); exploitability of the running average over the bound "
                   "log 3/(ηT) + η/8 (a theorem for Hedge, measured here for the least-squares step)",
       tolerance=1.0)
def sppo_ls_average_gap() -> float:
    """The running average of SPPO's least-squares iterates is within Hedge's O(1/√T) regret bound of the
    equilibrium (largest ratio of its exploitability to the bound)."""
    prob = skew_cycle((1 / 3, 1 / 3, 1 / 3))
    horizons = torch.tensor(GAP_HORIZONS, dtype=torch.float64)
    run = procedures.sppo_ls(prob, horizons.rsqrt(), GAP_HORIZONS[-1], record_every=GAP_HORIZONS[0])
    worst = 0.0
    for b, horizon in enumerate(GAP_HORIZONS):
        eta = horizon ** -0.5
        average = run.average[int((run.steps == horizon).nonzero()), b]
        worst = max(worst, exploitability(prob, average) / (math.log(3) / (eta * horizon) + eta / 8))
    return worst


@claim("sppo_ls.last_iterate_converges",
       citation="Wu et al., arXiv 2405.00675 (the last iterate is the model used) [derived: to first order in η the "
                "step is Hedge, whose linearisation at an interior equilibrium has eigenvalues 1 ± iηω]",
       assumptions="skew 3-cycle, uniform start, η = 0.5, 500 exact least-squares steps; last iterate vs (2/7, 1/7, 4/7)",
       tolerance=0.01, expected="fails")
def sppo_ls_last_iterate() -> float:
    """SPPO's least-squares last iterate converges to the equilibrium of an intransitive game (TV; it cycles)."""
    run = procedures.sppo_ls(skew_cycle((1 / 3, 1 / 3, 1 / 3)), 0.5, 500, record_every=500)
    return tv(run.final, torch.tensor([[SKEW_NASH]], dtype=torch.float64).log())


@claim("sppo_ls.bt_limit_argmax",
       citation="Wu et al., arXiv 2405.00675 [derived for Hedge (the first-order form of the step): under BT the "
                "limit is the point mass on argmax r; measured here for the least-squares step]",
       assumptions="E1 (BT), η = 0.5, 300 exact least-squares steps from π_ref",
       tolerance=1e-9)
def sppo_ls_bt_limit() -> float:
    """SPPO's least-squares iterates under Bradley–Terry converge to the point mass on argmax r (1 − π_T(argmax r))."""
    prob = e1()
    final = procedures.sppo_ls(prob, 0.5, 300, record_every=300).final
    return 1.0 - float(final.exp()[0, 0, int(prob.reward.argmax())])


# ------------------------------------------------------------------------------ DNO's margin filter
@claim("dno.margin_filter_freezes_mass",
       citation="Rosset et al., arXiv 2404.03715 (Alg. 2's margin filter; RECONSTRUCTION: the margin is the score gap "
                "|r_t(a) − r_t(b)|, r_t(y) = P(y ≻ π_t)) [derived: only the pair {0, 3} has a gap ≥ 0.06 (≈ 0.0746; the "
                "others ≤ 0.0500 whatever π_t), so mass moves only inside it: the limit is (0, ¼, ¼, ½)]",
       assumptions="BT rewards (0, 0.1, 0.2, 0.3), uniform π_ref, η = 0.05, margin δ = 0.06, 300 exact filtered DNO "
                   "rounds; each component of the kept pairs keeps its mass under π_t (the loss leaves it free)",
       tolerance=1e-9)
def dno_filter_freezes() -> float:
    """With the margin filter, DNO's iterates converge to (0, ¼, ¼, ½), not to argmax r (TV)."""
    final = procedures.dno(close_rewards(), 0.05, 300, margin=0.06, record_every=300).final
    return tv(final, torch.tensor([[[1e-300, 0.25, 0.25, 0.5]]], dtype=torch.float64).log())


@claim("dno.margin_filter_bt_limit_argmax",
       citation="Rosset et al., arXiv 2404.03715 (Alg. 2 with its margin filter; RECONSTRUCTION of the margin) "
                "[derived: without the filter the limit is the point mass on argmax r]",
       assumptions="BT rewards (0, 0.1, 0.2, 0.3), uniform π_ref, η = 0.05, 300 rounds; margin δ = 0.06 vs δ = 0 "
                   "(no filter): 1 − π_T(argmax r) with the filter",
       tolerance=1e-9, expected="fails")
def dno_filter_argmax() -> float:
    """Filtered DNO still converges to the point mass on argmax r (1 − π_T(argmax r); it keeps ½ elsewhere)."""
    prob = close_rewards()
    run = procedures.dno(prob, 0.05, 300, margin=torch.tensor([0.0, 0.06], dtype=torch.float64), record_every=300)
    unfiltered, filtered = 1.0 - run.final.exp()[:, 0, 3]
    if unfiltered > 1e-9:
        raise AssertionError(f"unfiltered DNO should reach argmax r, 1 − π(argmax) = {float(unfiltered):.3g}")
    return float(filtered)


@claim("dno.margin_filter_average_is_nash",
       citation="Rosset et al., arXiv 2404.03715 (Alg. 2; RECONSTRUCTION of the margin) [derived: without the filter "
                "the average of Hedge iterates tends to the von Neumann winner]",
       assumptions="skew 3-cycle, uniform start, η = 0.1 (Hedge step 10), margin δ = 0.1, 1000 rounds; running average "
                   "vs (2/7, 1/7, 4/7)",
       tolerance=0.05, expected="fails")
def dno_filter_average() -> float:
    """The running average of filtered DNO iterates approaches the von Neumann winner (TV; the filter freezes the
    iterates at a point that is not an equilibrium)."""
    run = procedures.dno(skew_cycle((1 / 3, 1 / 3, 1 / 3)), 0.1, 1000, margin=0.1, record_every=1000)
    return tv(run.average[-1].log(), torch.tensor([[SKEW_NASH]], dtype=torch.float64).log())


# ------------------------------------------------------------------------------ OFS-DPO (reconstruction)
def _ofs_distance_to_pistar(lam: float, steps: int) -> float:
    """OFS-DPO on E1 (W_u, β = 1, lr 2, slow lr ratio 0.1): max TV of the fast and slow copies to π*_β."""
    prob = e1("uniform")
    run = procedures.ofs_dpo(prob, 1.0, steps, lr=2.0, slow_ratio=0.1, lam=lam, record_every=steps)
    star = optima.reverse_kl(prob, 1.0)[None]
    return max(tv(run.final, star), tv(run.slow[-1], star))


@claim("ofs_dpo.no_chase_reaches_pistar",
       citation="Qi et al., arXiv 2406.05534 (fast and slow modules; RECONSTRUCTION of the chase term, lr ratio and "
                "role swap) [derived: with λ = 0 both copies are DPO gradient descent, G1]",
       assumptions="E1, W_u, β = 1, lr 2, slow lr ratio 0.1, λ = 0, 2000 exact population steps: max TV of the fast "
                   "and slow copies to π*_β",
       tolerance=1e-9)
def ofs_no_chase() -> float:
    """Without the chase term both OFS-DPO copies converge to π*_β (max TV)."""
    return _ofs_distance_to_pistar(lam=0.0, steps=2000)


@claim("ofs_dpo.reaches_pistar",
       citation="Qi et al., arXiv 2406.05534 (OFS-DPO; RECONSTRUCTION: the chase term −λ·log σ(β(Δ_f − Δ_s)), the lr "
                "ratio and the swap rule are guesses) [derived: at Δ_f = Δ_s the chase slope is λβ(½ − p) ≠ 0, and "
                "the swap keeps the copy with the lower DPO loss fast, so no finite point is fixed]",
       assumptions="E1, W_u, β = 1, lr 2, slow lr ratio 0.1, λ = 0.5, 1000 exact population steps: max TV of the fast "
                   "and slow copies to π*_β",
       tolerance=1e-6, expected="fails")
def ofs_reaches_pistar() -> float:
    """The reconstructed OFS-DPO's fast and slow copies converge to π*_β (max TV; both run off to argmax r)."""
    return _ofs_distance_to_pistar(lam=0.5, steps=1000)


@claim("ofs_dpo.chase_margin_grows_linearly",
       citation="Qi et al., arXiv 2406.05534 (RECONSTRUCTION, see ofs_dpo.reaches_pistar) [derived: no fixed point]",
       assumptions="E1, W_u, β = 1, lr 2, slow lr ratio 0.1, λ = 0.5: growth per step of the fast copy's "
                   "log π(y₃)/π(y₂), fitted over steps 300–600 (the copies approach the point mass on argmax r)",
       tolerance=0.01, comparison=">=")
def ofs_margin_growth() -> float:
    """With the chase term the reconstructed OFS-DPO's margin grows without bound (slope per step of log π(y₃)/π(y₂))."""
    run = procedures.ofs_dpo(e1("uniform"), 1.0, 600, lr=2.0, slow_ratio=0.1, lam=0.5, record_every=100)
    margin = (run.logp[:, 0, 0, 3] - run.logp[:, 0, 0, 2]).numpy()
    return float(np.polyfit(run.steps.numpy()[3:], margin[3:], 1)[0])
