"""Published toy experiments, reproduced (``toybench.experiments``) and registered with the printed numbers.

Ids start with ``repro.<experiment>``. Where a paper's printed set-up is ambiguous, the assumptions
say which resolution is implemented; where a result does not reproduce, the claim is registered
with ``expected="fails"`` and the measured number. Sizes are small so each claim runs in about a
second; the experiment functions take the full-size settings as defaults.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .. import losses, metrics, optima
from ..experiments import (
    density,
    did,
    displacement,
    granularity,
    ipo_bandit,
    label_noise,
    optimiser,
    ranking_accuracy,
    samplers,
    selfplay,
    three_d,
)
from ..pairs import population
from ..solve import solve
from .registry import claim

IPO_D1_PUBLISHED = {0.1: (0.96437, 0.03440, 0.00123), 0.5: (0.56274, 0.28892, 0.14834),
                    1.0: (0.44844, 0.32132, 0.23024), 2.0: (0.39017, 0.33027, 0.27957)}
"""IPO's D1 optimum softmax((2, 1, 0)/(3τ)) to 5 decimals, per τ (arXiv 2310.12036, Fig. 1 set-up)."""
IPO_D3_PUBLISHED_C = {0.1: 0.00336, 0.5: 0.15536, 1.0: 0.23270, 2.0: 0.28027}
"""IPO's π_c on D3_resolved = 1/(1 + 2e^{1/(2τ)}), 5 decimals."""
FIVE_DECIMALS = 5e-6 + 1e-12
"""Rounding half-width of a number printed to 5 decimals."""


@claim("repro.ipo_bandit.d1_ipo_closed_form",
       citation="Azar et al., arXiv 2310.12036, §5.1, Fig. 1 (D1)",
       assumptions="3 actions, uniform π_ref, D1 = {(a,b), (b,c), (a,c)} with equal weights, τ ∈ {0.1, 0.5, 1, 2}; "
                   "exact empirical minimiser (tb.solve) vs printed 5-decimal values",
       tolerance=FIVE_DECIMALS)
def ipo_d1_closed_form() -> float:
    """IPO's empirical optimum on D1 is softmax((2, 1, 0)/(3τ)) (max abs error vs the 5-decimal values)."""
    pairs = ipo_bandit.dataset("D1")
    return max(float((solve(losses.make("ipo", beta=tau), pairs).logp.exp()[0]
                      - torch.tensor(printed, dtype=torch.float64)).abs().max())
               for tau, printed in IPO_D1_PUBLISHED.items())


@claim("repro.ipo_bandit.d1_dpo_deterministic",
       citation="Azar et al., arXiv 2310.12036, §5.1, Fig. 1 (D1)",
       assumptions="D1; DPO, full-batch Adam (0.9, 0.999, 1e-8) lr 0.01, τ ∈ {0.1, 0.5}, 3000 steps (the paper runs "
                   "18,000; experiments.ipo_bandit.run has that default and reaches π_a ≥ 0.999 at every τ)",
       tolerance=0.999, comparison=">=")
def dpo_d1_deterministic() -> float:
    """DPO ignores the KL regulariser on D1: π_a → 1 (min π_a over τ)."""
    probs, _ = ipo_bandit.run("D1", "dpo", taus=(0.1, 0.5), seeds=1, steps=3000, batch_size=None)
    return float(probs[..., 0].min())


@claim("repro.ipo_bandit.d3_printed_nothing_moves",
       citation="Azar et al., arXiv 2310.12036, §5.1, Fig. 1 (D3 as printed)",
       assumptions="D3 printed as {(a,b), (b,a)} (ambiguous: D3_resolved is the reproduction target): θ_c gets no "
                   "gradient and θ_a + θ_b stays 0, so π_a·π_b = π_c² and π_c ≤ 1/3 throughout and the printed set "
                   "cannot show the described effect. IPO, mini-batch 9, Adam lr 0.01, 400 steps, 10 seeds × "
                   "τ ∈ {0.1, 0.5, 1, 2}; float64 training (Adam turns a rounding residue of θ_c's zero gradient above its ε into a full "
                   "step; docs/conventions.md, 'Adam and rounding'). Tolerance: "
                   "Adam moves θ_c by ≤ lr·steps·(residue/1e-8) with a float64 residue ≲ 1e-15, i.e. ≤ 4e-7",
       tolerance=1e-6)
def d3_printed_nothing_moves() -> float:
    """On D3 as printed the unobserved action is never pushed: max |log π_a + log π_b − 2 log π_c| (and π_c ≤ 1/3)."""
    probs, _ = ipo_bandit.run("D3_printed", "ipo", steps=400, dtype=torch.float64)
    logp = probs.log()
    if (probs[..., 2] > 1 / 3 + 1e-6).any():
        return math.inf
    return float((logp[..., 0] + logp[..., 1] - 2 * logp[..., 2]).abs().max())


@claim("repro.ipo_bandit.d3_resolved_ipo",
       citation="Azar et al., arXiv 2310.12036, §5.1, Fig. 1 (D3)",
       assumptions="D3 resolved as {(a,b), (b,a), (a,c)} (an unverified reading of the printed set); IPO's "
                   "exact empirical minimiser; τ ∈ {0.1, 0.5, 1, 2}; π_c = 1/(1 + 2e^{1/(2τ)}) to 5 decimals",
       tolerance=FIVE_DECIMALS)
def d3_resolved_ipo() -> float:
    """IPO keeps mass on the unobserved-as-winner action c, more as τ grows (max abs error on π_c)."""
    pairs = ipo_bandit.dataset("D3_resolved")
    return max(abs(float(solve(losses.make("ipo", beta=tau), pairs).logp.exp()[0, 2]) - printed)
               for tau, printed in IPO_D3_PUBLISHED_C.items())


@claim("repro.ipo_bandit.d3_resolved_dpo",
       citation="Azar et al., arXiv 2310.12036, §5.1, Fig. 1 (D3)",
       assumptions="D3_resolved; DPO, full-batch Adam lr 0.01, τ = 0.1, 2000 steps",
       tolerance=1e-3)
def d3_resolved_dpo() -> float:
    """DPO drives the never-winning action c to 0 on D3_resolved (π_c)."""
    probs, _ = ipo_bandit.run("D3_resolved", "dpo", taus=(0.1,), seeds=1, steps=2000, batch_size=None)
    return float(probs[..., 2].max())


MINIBATCH_SEED_MEAN = 0.015
"""Published tolerance for a 10-seed mean of mini-batch runs vs the limit (abs, on probabilities)."""


@claim("repro.ipo_bandit.d1_ipo_minibatch_seed_mean",
       citation="Azar et al., arXiv 2310.12036, §5.1, Fig. 1 (D1, sampled mini-batches)",
       assumptions="D1; IPO, Adam (0.9, 0.999, 1e-8) lr 0.01, mini-batches of 9 records drawn with replacement, "
                   "10 seeds × τ ∈ {0.1, 0.5, 1, 2} as 40 runs of one program, 3000 steps (the paper runs 18,000: IPO "
                   "has settled by 3000 and the slow test checks 18,000); max abs error of the seed mean vs "
                   "softmax((2, 1, 0)/(3τ)) over τ and actions",
       tolerance=MINIBATCH_SEED_MEAN)
def ipo_d1_minibatch() -> float:
    """IPO's mini-batch seed mean sits on its regularised closed form at every τ (max abs error)."""
    probs, _ = ipo_bandit.run("D1", "ipo", steps=3000)
    closed = torch.stack([ipo_bandit.ipo_closed_form("D1", tau) for tau in ipo_bandit.TAUS])
    return float((probs.mean(1) - closed).abs().max())


@claim("repro.ipo_bandit.d3_resolved_ipo_minibatch_seed_mean",
       citation="Azar et al., arXiv 2310.12036, §5.1, Fig. 1 (D3, sampled mini-batches)",
       assumptions="D3 resolved as {(a,b), (b,a), (a,c)} (an unverified reading); IPO, Adam lr 0.01, batch 9, 10 seeds "
                   "× τ ∈ {0.1, 0.5, 1, 2}, 3000 steps (paper: 18,000; slow test); abs error of the seed-mean π_c vs "
                   "1/(1 + 2e^{1/(2τ)}), and the seed mean of |π_a − π_b| must stay ≤ 0.05 (single seeds spread)",
       tolerance=MINIBATCH_SEED_MEAN)
def ipo_d3_minibatch() -> float:
    """IPO keeps the never-winning action's regularised mass in mini-batch runs (max abs error of the seed-mean π_c)."""
    probs, _ = ipo_bandit.run("D3_resolved", "ipo", steps=3000)
    if float((probs[..., 0] - probs[..., 1]).mean(1).abs().max()) > 0.05:
        return math.inf
    closed = torch.stack([ipo_bandit.ipo_closed_form("D3_resolved", tau)[2] for tau in ipo_bandit.TAUS])
    return float((probs[..., 2].mean(1) - closed).abs().max())


@claim("repro.ipo_bandit.d1_dpo_minibatch_deterministic",
       citation="Azar et al., arXiv 2310.12036, §5.1, Fig. 1 (D1, sampled mini-batches)",
       assumptions="D1; DPO, Adam lr 0.01, batch 9, 10 seeds × τ ∈ {0.1, 0.5, 1, 2} as 40 runs of one program, the "
                   "paper's 18,000 steps (τ = 2 only crosses 0.999 near the end, so no shorter run shows it; the "
                   "slowest claim: about 4 s on an idle 2-core machine): min π_a over seeds and τ",
       tolerance=0.999, comparison=">=")
def dpo_d1_minibatch() -> float:
    """DPO ignores the KL regulariser in mini-batch runs too: π_a ≥ 0.999 at every τ and seed (min π_a)."""
    probs, _ = ipo_bandit.run("D1", "dpo", steps=18000)
    return float(probs[..., 0].min())


@claim("repro.optimiser.dpo_sgd_gradient_flow",
       citation="Azar et al., arXiv 2310.12036, §4.2 (the point); derived closed form Δ + (e^{βΔ} − 1)/β = 2ηβt",
       assumptions="one pair always labelled w ≻ l, tabular logits from π_ref, plain SGD lr 0.01, 1000 steps, "
                   "β ∈ {0.1, 0.5, 1}; Euler steps vs gradient flow (relative error)",
       tolerance=1e-2)
def dpo_sgd_flow() -> float:
    """DPO's margin under SGD follows the gradient-flow law, Δ ~ (1/β)·log t (max relative error)."""
    _, margin = optimiser.margins("dpo", "sgd", steps=1000)
    flow = torch.tensor([optimiser.sgd_flow_margin(beta, 1000) for beta in optimiser.BETAS], dtype=torch.float64)
    return float(((margin[-1] - flow) / flow).abs().max())


@claim("repro.optimiser.adam_margin_larger",
       citation="Azar et al., arXiv 2310.12036, §4.2; derived (18k steps, β = 0.1: Adam 107.06 vs SGD 12.18)",
       assumptions="one deterministic pair, DPO β = 0.1, lr 0.01, 1000 steps of Adam (0.9, 0.999, 1e-8) vs plain SGD",
       tolerance=2.0, comparison=">=")
def adam_margin_larger() -> float:
    """How degenerate DPO looks is an optimiser artefact: Adam's margin / SGD's margin."""
    _, adam = optimiser.margins("dpo", "adam", betas=(0.1,), steps=1000)
    _, sgd = optimiser.margins("dpo", "sgd", betas=(0.1,), steps=1000)
    return float(adam[-1, 0] / sgd[-1, 0])


@claim("repro.optimiser.cdpo_fixed_point",
       citation="Mitchell, cDPO note (2023); derived fixed point logit(1 − ε)/β",
       assumptions="one deterministic pair, cDPO ε = 0.1, β ∈ {0.5, 1}, Adam lr 0.01, 1500 steps (abs error)",
       tolerance=1e-3)
def cdpo_fixed_point() -> float:
    """cDPO stops at Δ = logit(1 − ε)/β on a one-sided pair, whatever the optimiser."""
    betas = (0.5, 1.0)
    _, margin = optimiser.margins("cdpo", "adam", betas=betas, steps=1500)
    return max(abs(float(margin[-1, i]) - math.log(0.9 / 0.1) / beta) for i, beta in enumerate(betas))


def _luce_ipo_target(K: int, tau: float) -> np.ndarray:
    """π ∝ π_ref·exp(p(y ≻ π_ref)/τ) under Luce labels, in NumPy (independent of toybench's solver)."""
    ref, data = density.reference(K).numpy(), density.data_density(K).numpy()
    wins = (np.exp(ref)[None, :] / (1 + np.exp(data[None, :] - data[:, None]))).sum(1)
    logits = ref + wins / tau
    return np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()


@claim("repro.density.dpo_tempered_product",
       citation="Dumoulin et al., arXiv 2311.14115, §3 (Luce annotator)",
       assumptions="K = 64 bins on [−10, 10], π_ref ∝ TN(0, 5), p* = 0.4·TN(−2.5, 0.25) + 0.6·TN(2.5, 1), exact "
                   "π_ref ⊗ π_ref pairs with soft Luce labels; DPO β ∈ {1, 4, 16} solved (TV)",
       tolerance=1e-6)
def density_dpo() -> float:
    """DPO on Luce labels converges to π ∝ π_ref·p*^{1/β}, not to p* (max TV to the tempered product)."""
    prob = density.luce_problem(64)
    ref, data = density.reference(64), density.data_density(64)
    return max(float(metrics.tv(solve(losses.make("dpo", beta=beta), population(prob)).logp,
                                torch.log_softmax(ref + data / beta, -1)[None]))
               for beta in density.DPO_BETAS)


@claim("repro.density.ipo_closed_form",
       citation="Dumoulin et al., arXiv 2311.14115, §3; Azar et al., arXiv 2310.12036, Eq. 13",
       assumptions="K = 64 version of the 1-D canvas; IPO τ ∈ {0.1, 0.5, 1} solved; target computed in NumPy (TV)",
       tolerance=1e-6)
def density_ipo() -> float:
    """IPO on Luce labels converges to π ∝ π_ref·exp(p(y ≻ π_ref)/τ) (max TV)."""
    prob = density.luce_problem(64)
    return max(float(0.5 * np.abs(solve(losses.make("ipo", beta=tau), population(prob)).logp.exp()[0].numpy()
                                  - _luce_ipo_target(64, tau)).sum())
               for tau in density.IPO_TAUS)


@claim("repro.density.well_specified_annotator",
       citation="Dumoulin et al., arXiv 2311.14115, §3 (annotators following the DPO rule, β_a = 4)",
       assumptions="K = 64 canvas; labels P = σ(4[log(p*/π_ref)(a) − log(p*/π_ref)(b)]); DPO β = 4 solved (TV to p*)",
       tolerance=1e-6)
def density_well_specified() -> float:
    """A well-specified annotator makes DPO at β = β_a recover p* exactly (TV)."""
    prob = density.luce_problem(64, annotator_beta=4.0)
    return float(metrics.tv(solve(losses.make("dpo", beta=4.0), population(prob)).logp,
                            density.data_density(64)[None]))


@claim("repro.density.dpo_misses_pstar",
       citation="Dumoulin et al., arXiv 2311.14115, §3",
       assumptions="K = 1024 canvas, Luce labels, DPO β = 4: mass on x < 0 is 0.3280 against p*'s 0.4037 (abs gap)",
       tolerance=0.05, comparison=">=")
def density_misses() -> float:
    """Under Luce labels DPO's optimum is not the data density (gap in mass on x < 0)."""
    found = density.summary(density.targets(1024, betas=(4.0,), taus=())["dpo β=4"])
    return abs(found["mass_below_0"] - density.summary(density.data_density(1024))["mass_below_0"])


@claim("repro.density.mixture_not_bradley_terry",
       citation="Dumoulin et al., arXiv 2311.14115, §3 and PBDE notebook (several annotators)",
       assumptions="K = 64 canvas; P = 0.4·σ(log p₁(a) − log p₁(b)) + 0.6·σ(log p₂(a) − log p₂(b)), p₁ = TN(−2.5, 0.25), "
                   "p₂ = TN(2.5, 1); max over triples of |ℓ(a,b) + ℓ(b,c) + ℓ(c,a)| with ℓ = log P/(1 − P) in log "
                   "space, which is 0 for every Bradley–Terry (single Luce) annotator; threshold 1e-6, far above the "
                   "float64 round-off of the sums (~1e-13)",
       tolerance=1e-6, comparison=">=")
def density_mixture_not_bt() -> float:
    """Labels pooled from several Luce annotators are not Bradley–Terry: no single p* explains them (max 3-cycle log-odds)."""
    odds = density.mixture_log_odds(64)
    return float((odds[:, :, None] + odds[None, :, :] + odds.T[:, None, :]).abs().max())


@claim("repro.density.mixture_ipo_closed_form",
       citation="Azar et al., arXiv 2310.12036, Eq. 13; Dumoulin et al., arXiv 2311.14115 (several annotators)",
       assumptions="K = 64 canvas, the two-annotator preference P, π_ref ⊗ π_ref pairs; IPO τ ∈ {0.1, 0.5, 1} solved vs "
                   "π ∝ π_ref·exp(P(y ≻ π_ref)/τ) with P evaluated in NumPy/SciPy from the annotators' densities (TV)",
       tolerance=1e-6)
def density_mixture_ipo() -> float:
    """IPO's optimum under a non-BT multi-annotator preference is still π_ref·exp(P(y ≻ π_ref)/τ) (max TV)."""
    from scipy.special import expit
    from scipy.stats import truncnorm
    x, ref = density.centres(64).numpy(), density.reference(64).numpy()
    pref = 0.0
    for share, loc, scale in density.ANNOTATORS:
        logp = truncnorm.logpdf(x, (density.LOW - loc) / scale, (density.HIGH - loc) / scale, loc=loc, scale=scale)
        pref = pref + share * expit(logp[:, None] - logp[None, :])
    prob = density.mixture_problem(64)
    worst = 0.0
    for tau in density.IPO_TAUS:
        logits = ref + pref @ np.exp(ref) / tau
        expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        found = solve(losses.make("ipo", beta=tau), population(prob)).logp.exp()[0].numpy()
        worst = max(worst, 0.5 * float(np.abs(found - expected).sum()))
    return worst


@claim("repro.ranking_accuracy.flip_threshold",
       citation="Chen et al., arXiv 2405.19534, Thm. 4.1",
       assumptions="K = 8 random BT instance (seed 0, ref logits sd 2), exact population pairs, DPO β = 0.1 by "
                   "gradient descent lr 1, 1000 steps, every 10th step and every (better, worse) pair; ties correct",
       tolerance=0.0)
def ranking_threshold() -> float:
    """A pair is ranked correctly iff its DPO loss ≤ −log σ(β·c), c = log π_ref(l)/π_ref(w) (count of violations)."""
    run = ranking_accuracy.run(steps=1000, every=10)
    return float((run["correct"] != (run["loss"] <= run["threshold"])).sum())


@claim("repro.ranking_accuracy.low_loss_still_misranked",
       citation="Chen et al., arXiv 2405.19534, Thm. 4.1 and §4 (ranking accuracy stays low)",
       assumptions="the same run: fraction of (better, worse) pairs still mis-ranked after 1000 steps, although "
                   "every pair's loss fell below its start",
       tolerance=0.1, comparison=">=")
def ranking_still_wrong() -> float:
    """DPO training leaves many pairs mis-ranked that π_ref mis-ranked (fraction still wrong at the end)."""
    run = ranking_accuracy.run(steps=1000, every=1000)
    return float((~run["correct"][-1]).double().mean())


@claim("repro.ranking_accuracy.window_ia_right_ra_wrong",
       citation="Chen et al., arXiv 2405.19534, Thm. 4.1 and §2.5 (ranking vs implicit-reward accuracy)",
       assumptions="one pair w ≻ l with c = log π_ref(l)/π_ref(w) = 5, DPO β = 0.1, placed at 1001 loss values evenly "
                   "inside the open window (−log σ(βc), ln 2) = (0.47408, 0.69315); count of grid points where "
                   "not (IA = 1 and RA = 0)",
       tolerance=0.0)
def ranking_window() -> float:
    """Inside (−log σ(βc), ln 2) a pair's implicit reward is right (IA = 1) but its ranking wrong (RA = 0) (violations)."""
    low, high = math.log1p(math.exp(-0.1 * 5.0)), math.log(2.0)
    grid = low + (high - low) * torch.arange(1, 1002, dtype=torch.float64) / 1002
    found = ranking_accuracy.window(grid)
    if float((found["loss"] - grid).abs().max()) > 1e-12:
        return math.inf
    return float(((found["ia"] != 1) | (found["ra"] != 0)).sum())


LABEL_NOISE_MARGINS = {"dpo": 0.98692, "cdpo": 0.56274, "rdpo": 2.0}
"""βΔ at the optimum, two responses r₁ − r₂ = 2, ε = ε_s = 0.2, β = 1 (derived, 5 decimals)."""


@claim("repro.label_noise.two_response_margins",
       citation="Chowdhury, Kini, Natarajan, arXiv 2403.00409, §3; Mitchell, cDPO note (2023)",
       assumptions="two responses, r₁ − r₂ = 2, flip rate ε = 0.2 (and cDPO ε_s = 0.2), β = 1, exact population "
                   "(max abs error vs DPO 0.98692 = logit p̃, cDPO 0.56274, rDPO 2)",
       tolerance=FIVE_DECIMALS)
def noise_margins() -> float:
    """Under flips DPO shrinks the margin once, cDPO twice, rDPO not at all (max abs error on βΔ)."""
    return max(abs(label_noise.optimum_margin(name, 0.2) - value) for name, value in LABEL_NOISE_MARGINS.items())


@claim("repro.label_noise.rdpo_recovers_clean",
       citation="Chowdhury, Kini, Natarajan, arXiv 2403.00409, Lemma 3.1 (unbiasedness)",
       assumptions="K = 5 random BT instance (seed 0), ε = 0.2, β = 0.5, exact population (TV to the clean π*_β)",
       tolerance=1e-6)
def rdpo_clean() -> float:
    """rDPO's population minimiser under known-rate flips is the clean π*_β (TV)."""
    return label_noise.tv_to_clean("rdpo", 0.2)


@claim("repro.label_noise.rdpo_small_samples_unbounded",
       citation="Chowdhury, Kini, Natarajan, arXiv 2403.00409 (finite-sample guarantee); derived hazard",
       assumptions="K = 3 random instance, ε = 0.2, β = 0.5, n = 30 sampled flipped records, 10 seeds: the "
                   "fraction of seeds whose rDPO objective has a finite minimiser (needs ε < p̂ < 1 − ε per pair)",
       tolerance=0.9)
def rdpo_small_samples() -> float:
    """On small samples rDPO's objective is often unbounded below (fraction of seeds with a finite minimiser)."""
    return label_noise.rdpo_finite_sample(30)["finite"]


@claim("repro.label_noise.rdpo_error_rate",
       citation="Chowdhury, Kini, Natarajan, arXiv 2403.00409, §4 (estimation error of order √(d/n)/(1 − 2ε))",
       assumptions="K = 3 random instance (seed 0), ε = 0.2, β = 0.5; n ∈ {3000, 3,000,000} ε-flipped records, 48 seeds "
                   "per n as runs (record counts drawn as Multinomial(n, population weights)); exponent "
                   "log(mean TV ratio)/log(n ratio) of the TV to the clean π*_β, vs −1/2 (abs error). Tolerance "
                   "0.08: 4 standard errors √2·cv/(√48·ln 1000) ≈ 0.019 with the TV's coefficient of variation "
                   "cv ≈ 0.65 (a half-normal has 0.76)",
       tolerance=0.08)
def rdpo_error_rate() -> float:
    """rDPO's error to the clean π*_β shrinks like n^{−1/2}, the rate of the paper's bound (|exponent + ½|)."""
    sizes = (3000, 3_000_000)
    error = label_noise.rdpo_error_by_n(sizes=sizes, seeds=48).mean(1)
    return abs(math.log(float(error[1] / error[0])) / math.log(sizes[1] / sizes[0]) + 0.5)


@claim("repro.did.pistar_every_beta",
       citation="Won, Lee, Hwang, Seo, arXiv 2505.23761, Thm. 3.3",
       assumptions="K = 6, Dirichlet(1) π_ref, r ~ N(0, 1) (seed 0), π_l ∝ π_ref·e^{−r}, β ∈ {0.1, 1, 10}; "
                   "exact DID record law solved (max TV to π*_β)",
       tolerance=1e-6)
def did_pistar() -> float:
    """With π_l ∝ π_ref·e^{−r}, DPO on DID records lands on π*_β for every β (max TV)."""
    prob = did.instance()
    return max(float(metrics.tv(did.optimum(prob, beta), optima.reverse_kl(prob, beta))) for beta in did.BETAS)


@claim("repro.did.uniform_rejected_sampler",
       citation="Won et al., arXiv 2505.23761; derived π ∝ π_ref·(π_ref/π_l)^{1/β}",
       assumptions="the same K = 6 instance, uniform π_l, β ∈ {0.1, 1, 10} (max TV; formula evaluated in NumPy)",
       tolerance=1e-6)
def did_uniform() -> float:
    """With a uniform rejected sampler DPO converges to π ∝ π_ref·(π_ref/π_l)^{1/β} (max TV)."""
    prob = did.instance()
    uniform = torch.full((1, 6), -math.log(6), dtype=torch.float64)
    ref = prob.ref_logp[0].numpy()
    worst = 0.0
    for beta in did.BETAS:
        logits = ref + (ref + math.log(6)) / beta
        expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        worst = max(worst, 0.5 * float(np.abs(did.optimum(prob, beta, uniform).exp()[0].numpy() - expected).sum()))
    return worst


@claim("repro.did.reference_sampler_no_signal",
       citation="Won et al., arXiv 2505.23761; derived",
       assumptions="the same K = 6 instance with π_l = π_ref, β = 1 (TV to π_ref)",
       tolerance=1e-6)
def did_no_signal() -> float:
    """Rejected draws from π_ref itself carry no signal: DPO stays at π_ref (TV)."""
    prob = did.instance()
    return float(metrics.tv(did.optimum(prob, 1.0, prob.ref_logp), prob.ref_logp))


RAZIN_TABLE = {100: (0.5537, 0.2289, 0.2174), 500: (0.1405, 0.0318, 0.8277)}
"""π(y+), π(y−), π(z) of the LogLinear construction at steps 100 and 500 (derived, 4 decimals)."""


@claim("repro.displacement.razin_chosen_falls",
       citation="Razin et al., arXiv 2410.08847, Thm. 2 (construction derived here)",
       assumptions="LogLinear: W_{y+} = (1, 0.1), W_{y−} = (1, −0.1), W_z = (0, 1), base log(0.6, 0.3, 0.1), hidden h "
                   "from 0; DPO β = 1 on y+ ≻ y−, SGD lr 0.1, 500 steps (max abs error vs the 4-decimal table)",
       tolerance=5e-5 + 1e-9)
def razin_chosen_falls() -> float:
    """DPO lowers the chosen response's probability from the first step while its loss falls (table error)."""
    _, probs, loss = displacement.razin(500)
    if not bool((loss[1:] < loss[:-1]).all() and (probs[1:, 0] < probs[:-1, 0]).all()):
        return math.inf
    return max(float((probs[step] - torch.tensor(row, dtype=torch.float64)).abs().max())
               for step, row in RAZIN_TABLE.items())


@claim("repro.displacement.tabular_unseen_peak",
       citation="Razin et al., arXiv 2410.08847, §3 (why a logit table cannot displace); derived",
       assumptions="tabular logits, π_ref = (0.2, 0.5, 0.3), one pair 0 ≻ 1, DPO β = 1, SGD lr 0.01, 300 steps: the "
                   "unseen response peaks at 0.3217 at step 121, where π_0 ≈ π_1 (abs error of the peak, 4 decimals)",
       tolerance=5e-5 + 1e-9)
def tabular_unseen_peak() -> float:
    """With a logit table the unseen response rises only while π_l > π_w (error of its peak value)."""
    _, probs = displacement.tabular(300)
    peak = int(probs[:, 2].argmax())
    if peak != 121 or not bool((probs[1:, 0] > probs[:-1, 0]).all()):
        return math.inf
    return abs(float(probs[peak, 2]) - 0.3217)


@claim("repro.selfplay.hedge_average_converges",
       citation="Wu et al. (SPPO), arXiv 2405.00675, §3; Rosset et al. (DNO), arXiv 2404.03715",
       assumptions="skew 3-cycle P(1≻2) = 0.9, P(2≻3) = 0.7, P(3≻1) = 0.6; exact Hedge step η = 0.1, 20,000 steps "
                   "from uniform; running average vs the derived (0.2858, 0.1440, 0.5702) (abs error, 4 decimals)",
       tolerance=5e-5 + 1e-9)
def hedge_average() -> float:
    """Self-play's running average converges to the von Neumann winner (2/7, 1/7, 4/7) (error vs the table)."""
    _, _, average = selfplay.hedge(0.1, 20000, record_every=20000)
    return float((average[-1] - torch.tensor([0.2858, 0.1440, 0.5702], dtype=torch.float64)).abs().max())


@claim("repro.selfplay.hedge_last_iterate_cycles",
       citation="Wu et al. (SPPO), arXiv 2405.00675; Rosset et al. (DNO), arXiv 2404.03715 (last-iterate claims)",
       assumptions="the same run: TV between the last iterate and the winner (2/7, 1/7, 4/7) after 20,000 steps",
       tolerance=0.1, comparison=">=")
def hedge_last_iterate() -> float:
    """On an intransitive game the last self-play iterate does not converge (TV to the winner stays large)."""
    _, last, _ = selfplay.hedge(0.1, 20000, record_every=20000)
    return 0.5 * float((last[-1] - torch.tensor(selfplay.WINNER, dtype=torch.float64)).abs().sum())


NASH_TABLE = {1.0: (0.36592, 0.30814, 0.32594), 0.1: (0.43385, 0.14818, 0.41797), 0.01: (0.30611, 0.13424, 0.55965)}


@claim("repro.selfplay.regularised_equilibrium_path",
       citation="Munos et al. (Nash-MD), arXiv 2312.00886; Wu et al., arXiv 2405.00675",
       assumptions="skew 3-cycle, uniform π_ref, π*_τ ∝ π_ref·exp(Pπ*_τ/τ) at τ ∈ {1, 0.1, 0.01} (optima.nash) vs "
                   "the derived 5-decimal table; the path is non-monotone (action 1 leads at τ = 0.1)",
       tolerance=FIVE_DECIMALS)
def nash_path() -> float:
    """The regularised equilibrium moves non-monotonically towards the winner as τ → 0 (max abs error)."""
    found = selfplay.regularised_path(tuple(NASH_TABLE))
    return float((found - torch.tensor(list(NASH_TABLE.values()), dtype=torch.float64)).abs().max())


ADPO_TOKEN_LEVEL = (0.45153, 0.20144, 0.29801, 0.04902)
"""The token-level ADPO optimum on the depth-2 tree (derived, 5 decimals; π* is (0.47399, 0.17437, 0.28749, 0.06415))."""


@claim("repro.granularity.token_level_optimum",
       citation="Oi et al., arXiv 2602.09533, Table 1 and Prop. 1 (token vs feedback granularity)",
       assumptions="depth-2 tree aa, ab, ba, bb, uniform π_ref, r = (1, 0, 0.5, −1), β = 1, all ordered pairs with "
                   "soft BT labels; best AutoregressiveTabular policy (fit_best, 4 starts) at token granularity "
                   "(max abs error vs the 5-decimal values)",
       tolerance=FIVE_DECIMALS)
def granularity_token_level() -> float:
    """Token-level autoregressive DPO lands on a different policy from π*_β (error vs its derived optimum)."""
    return float((granularity.best_policy(0) - torch.tensor(ADPO_TOKEN_LEVEL, dtype=torch.float64)).abs().max())


@claim("repro.granularity.one_segment_is_dpo",
       citation="Oi et al., arXiv 2602.09533, Cor. 1",
       assumptions="the same tree; one feedback segment per response (m = 1); TV to π*_β",
       tolerance=1e-6)
def granularity_one_segment() -> float:
    """With one feedback segment autoregressive DPO is DPO and recovers π*_β (TV)."""
    return 0.5 * float((granularity.best_policy(1) - granularity.target()).abs().sum())


SAMPLER_TABLE = {"unif": {1: 0.6889, 2: 0.2671, 3: 0.1258, 4: 0.05439, 5: 0.02642, 10: 3.56e-3, 20: 3.34e-4},
                 "mix_r": {1: 2.730, 2: 2.126, 3: 1.611, 4: 1.187, 5: 0.8426, 10: 5.27e-2},
                 "mix_p": {1: 0.6889, 2: 0.2916, 3: 0.04870, 4: 8.99e-4, 5: 6.03e-6}}
"""Param Diff by iteration, exact mode, η = 10 (derived with the CPU reward draw, 3–4 significant digits)."""


@claim("repro.samplers.param_diff_table",
       citation="Shi, Zhou, Du, arXiv 2409.19605, §6 (tabular bandit, exact gradients)",
       assumptions="K = 20, β = 3, rewards torch.manual_seed(1234567) randn on CPU (a CUDA draw differs), logits from "
                   "0, exact soft-label population loss, SGD lr 10, 20 iterations; samplers Unif, Mix-R, Mix-P "
                   "(max relative error vs the table printed to 3–4 significant digits)",
       tolerance=2e-3)
def sampler_table() -> float:
    """Exact-gradient Param Diff under the three samplers follows the derived table (max relative error)."""
    worst = 0.0
    for sampler, rows in SAMPLER_TABLE.items():
        found = samplers.run(sampler, max(rows))
        worst = max(worst, max(abs(found[step] - value) / value for step, value in rows.items()))
    return worst


@claim("repro.samplers.mixed_converge_faster",
       citation="Shi, Zhou, Du, arXiv 2409.19605, abstract (uniform linear, mixed samplers quadratic)",
       assumptions="the same set-up; Param Diff after 20 iterations: Mix-R and Mix-P below 1e-14 while Unif is at "
                   "3.3e-4 (at lr 10 the mixed samplers contract by 0.00698 per step near the optimum; lr "
                   "Z*/(2Kβ²) = 9.9307 is Newton's step and quadratic) — measured: max mixed PD / Unif PD",
       tolerance=1e-9)
def mixed_faster() -> float:
    """Mixed samplers converge much faster than uniform sampling (ratio of Param Diff after 20 steps)."""
    return max(samplers.run("mix_r", 20)[-1], samplers.run("mix_p", 20)[-1]) / samplers.run("unif", 20)[-1]


@claim("repro.samplers.newton_lr_quadratic",
       citation="Shi, Zhou, Du, arXiv 2409.19605, abstract (mixed samplers converge quadratically)",
       assumptions="exact mode as above at η = Z*/(2Kβ²) = 9.93068 (Newton's step at π*_β for both mixed samplers; "
                   "derived), 16 iterations; order q fitted as the slope of log PD_{t+1} against log PD_t over the "
                   "steps with PD_t ≤ 0.1 and PD_{t+1} ≥ 1e-13 (float64 round-off of PD is ~5e-16); min q over Mix-R "
                   "and Mix-P. Threshold 1.5: midway between linear (q = 1) and quadratic (q = 2) order",
       tolerance=1.5, comparison=">=")
def sampler_newton_quadratic() -> float:
    """At Newton's learning rate the mixed samplers converge quadratically (fitted order of convergence)."""
    orders = []
    for sampler in ("mix_r", "mix_p"):
        found = np.array(samplers.run(sampler, 16, lr=samplers.newton_lr()))
        keep = (found[:-1] <= 0.1) & (found[1:] >= 1e-13)
        orders.append(np.polyfit(np.log(found[:-1][keep]), np.log(found[1:][keep]), 1)[0])
    return float(min(orders))


@claim("repro.samplers.mixed_linear_factor_lr10",
       citation="Shi, Zhou, Du, arXiv 2409.19605, §6 (exact gradients, lr 10); derived factor |1 − 2Kβ²η/Z*|",
       assumptions="exact mode, SGD lr 10, Mix-R (18 iterations) and Mix-P (10): the last one-step ratio "
                   "PD_{t+1}/PD_t with PD_t ≤ 1e-6 and PD_{t+1} ≥ 1e-12 vs |1 − 2Kβ²η/Z*| = 0.00698 (relative "
                   "error; the Hessian is a multiple of the complete-graph Laplacian near π*_β, so every mode "
                   "contracts alike, up to O(PD_t) and round-off ~1e-15/PD_{t+1})",
       tolerance=1e-3)
def sampler_linear_factor() -> float:
    """At lr 10 the mixed samplers contract linearly by |1 − 2Kβ²η/Z*| per step (max relative error)."""
    factor = abs(1 - 10.0 / samplers.newton_lr())
    worst = 0.0
    for sampler, iterations in (("mix_r", 18), ("mix_p", 10)):
        found = np.array(samplers.run(sampler, iterations))
        keep = np.flatnonzero((found[:-1] <= 1e-6) & (found[1:] >= 1e-12))
        worst = max(worst, abs(found[keep[-1] + 1] / found[keep[-1]] / factor - 1))
    return worst


def sgd_value_floor(sampler: str, pairs: int, lr: float) -> float:
    """β·E[KL(π‖π*_β)] of stationary constant-lr SGD on ``pairs`` sampled records per step, linearised at
    π*_β (derived): Σ = (η'/n)(2I − η'H)⁺ with η' = lr·(1 − Σ_i W_ii) and H the Hessian of the
    off-diagonal objective in the logits (the per-record gradient covariance there equals H);
    value gap β·½·tr(FΣ), F = diag(π*) − π*π*ᵀ. NumPy."""
    reward = samplers.rewards()[0].numpy()
    table = samplers.weights(sampler, torch.zeros(1, samplers.K, dtype=torch.float64), samplers.rewards())[0].numpy()
    step = lr * (1 - np.trace(table))
    table = table - np.diag(np.diag(table))
    gap = reward[:, None] - reward[None, :]
    edge = table / table.sum() * samplers.BETA ** 2 / (2 + 2 * np.cosh(gap))        # W̃·β²·σσ
    hessian = np.diag(edge.sum(0) + edge.sum(1)) - edge - edge.T
    values, vectors = np.linalg.eigh(hessian)
    inverse = sum(np.outer(v, v) / (2 - step * lam) for lam, v in zip(values, vectors.T, strict=True) if lam > 1e-12)
    star = np.exp(reward / samplers.BETA) / np.exp(reward / samplers.BETA).sum()
    return samplers.BETA * 0.5 * step / pairs * float(np.trace((np.diag(star) - np.outer(star, star)) @ inverse))


@claim("repro.samplers.empirical_noise_floor",
       citation="Shi, Zhou, Du, arXiv 2409.19605, §6 (empirical mode: linear convergence to a noise floor)",
       assumptions="empirical mode scaled to run in about a second (paper: 8192 pairs, lr 0.05, 3000 iterations): "
                   "512 sampled Bernoulli-labelled pairs per step, SGD lr 2, 150 iterations from π_ref, 16 seeds as "
                   "runs of one program, Unif and Mix-R; seed-and-step mean of the value gap β·KL(π‖π*_β) over steps "
                   "50–150 (the start's gap 0.208 has contracted by < 1e-5 there) vs the linearised SGD floor "
                   "(sgd_value_floor, derived); max relative error. Tolerance 0.1: the linearisation's relative error "
                   "O(tr Σ) ≈ 0.04 (measured bias +1% to +5%) plus 3 standard errors of the 16-seed mean (~1.6% each)",
       tolerance=0.1)
def sampler_empirical_floor() -> float:
    """Sampled-pair SGD converges linearly to a noise floor of the derived size (max relative error)."""
    worst = 0.0
    for sampler in ("unif", "mix_r"):
        steps, gap = samplers.empirical(sampler, pairs=512, iterations=150, lr=2.0, seeds=16, log_every=2)
        worst = max(worst, abs(float(gap[steps >= 50].mean()) / sgd_value_floor(sampler, 512, 2.0) - 1))
    return worst


@claim("repro.three_d.dispersion_to_unseen",
       citation="Yan et al., arXiv 2406.07327 (3D properties: dispersion of mass onto unseen responses)",
       assumptions="exploratory reconstruction (the paper's toy is unpublished): 4 prompts × 10 responses, π_ref = "
                   "softmax(2·N(0,1)), 4 BT-ordered pairs per prompt among 6 responses, MLP policy (hidden 64) "
                   "from π_ref, DPO β = 0.1, Adam lr 1e-3, 200 full-batch epochs, 5 seeds: mean gain of the mass on "
                   "never-seen responses. A finding: here the unseen mass falls (to ≈ 0 by epoch 500)",
       tolerance=0.0, comparison=">=", expected="fails")
def three_d_dispersion() -> float:
    """DPO disperses probability mass onto responses never seen in the data (mean unseen-mass gain)."""
    return float(three_d.run(epochs=200, every=200)["unseen_mass_gain"][-1].mean())


@claim("repro.three_d.rejected_drops",
       citation="Yan et al., arXiv 2406.07327 (3D properties: drastic drop of the rejected likelihood)",
       assumptions="the same reconstruction, 200 epochs: mean change of the rejected log-probability (nats)",
       tolerance=-5.0)
def three_d_rejected() -> float:
    """DPO drives the rejected responses' log-probability down drastically (mean change, nats)."""
    return float(three_d.run(epochs=200, every=200)["rejected_logp_change"][-1].mean())
