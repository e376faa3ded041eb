"""Label-noise robustness of DPO, cDPO and rDPO (Chowdhury, Kini, Natarajan, arXiv 2403.00409;
Mitchell's cDPO note, 2023).

Each label flips independently at rate ε < ½, so the observed win probability is
p̃ = (1 − ε)p + ε(1 − p). rDPO (known ε) is unbiased and its population minimiser is the clean
π*_β; DPO fits σ(z) = p̃ (a margin shrunk toward 0); cDPO with ε_s = ε fits
σ(z) = (1 − ε)p̃ + ε(1 − p̃), shrunk twice. On a finite sample rDPO has a finite minimiser only when
every pair's observed frequency p̂ lies in (ε, 1 − ε) (derived), so small samples can have none.
Once it exists, rDPO's estimation error shrinks like n^{−1/2}: the bound of arXiv 2403.00409, §4, is
of order √(d/n)/(1 − 2ε) (its exact constants are not used here), and the measured policy error,
TV to the clean π*_β, is first-order linear in the parameter error (``rdpo_error_by_n``).
"""
from __future__ import annotations

import dataclasses

import torch

from .. import metrics, optima
from ..losses import make
from ..pairs import population, sample_pairs
from ..problem import Problem
from ..solve import NoFiniteMinimum, solve
from ..spaces import FlatSpace

LOSSES = ("dpo", "cdpo", "rdpo")


def two_responses() -> Problem:
    """r₁ − r₂ = 2, uniform π_ref."""
    return Problem(FlatSpace(2), ref_probs=torch.full((1, 2), 0.5, dtype=torch.float64),
                   reward=torch.tensor([[2.0, 0.0]], dtype=torch.float64))


def _loss(name: str, beta: float, eps: float):
    return make(name, beta=beta) if name == "dpo" else make(name, beta=beta, eps=eps)


def optimum_margin(loss: str, eps: float, beta: float = 1.0) -> float:
    """β·Δ at the population optimum of ``loss`` on ε-flipped labels (two responses, r₁ − r₂ = 2)."""
    prob = two_responses()
    logp = solve(_loss(loss, beta, eps), population(prob, noise=eps)).logp
    return float(beta * (logp[0, 0] - logp[0, 1]))


def tv_to_clean(loss: str, eps: float, beta: float = 0.5, K: int = 5, seed: int = 0) -> float:
    """TV(π, clean π*_β) for ``loss``'s population optimum on ε-flipped labels, K random responses."""
    prob = Problem.random(FlatSpace(K), seed=seed, reward_scale=1.0)
    logp = solve(_loss(loss, beta, eps), population(prob, noise=eps)).logp
    return float(metrics.tv(logp, optima.reverse_kl(prob, beta)))


def rdpo_finite_sample(n: int, eps: float = 0.2, beta: float = 0.5, K: int = 3, seeds=range(10)) -> dict:
    """rDPO on n sampled, ε-flipped records: the fraction of seeds with a finite minimiser and the
    mean TV to the clean π*_β over those (NaN when none)."""
    prob = Problem.random(FlatSpace(K), seed=0, reward_scale=1.0)
    clean = optima.reverse_kl(prob, beta)
    errors = []
    for seed in seeds:   # solve is the float64 oracle: one run at a time
        try:
            logp = solve(make("rdpo", beta=beta, eps=eps), sample_pairs(prob, n, noise=eps, seed=seed)).logp
        except NoFiniteMinimum:
            continue
        errors.append(float(metrics.tv(logp, clean)))
    count = len(list(seeds))
    return {"finite": len(errors) / count, "tv": sum(errors) / len(errors) if errors else float("nan")}


def record_counts(prob: Problem, n: int, eps: float, seeds: int, seed: int = 0):
    """``seeds`` runs of n ε-flipped records, as the population's records with per-run weights
    count/n ``[seeds, N]``. n iid records (``sample_pairs``) have Multinomial(n, population weights)
    counts; they are drawn here as a chain of binomials (one CPU generator seeded by ``seed``), so the
    cost does not grow with n."""
    pairs = population(prob, noise=eps)
    gen = torch.Generator().manual_seed(seed)
    left = torch.full((seeds,), float(n), dtype=torch.float64)
    rest, counts = torch.ones((), dtype=torch.float64), []
    for weight in pairs.weight[0]:
        share = (weight / rest).clamp(0.0, 1.0) if rest > 0 else torch.ones((), dtype=torch.float64)
        drawn = torch.binomial(left, share.expand(seeds), generator=gen)
        counts.append(drawn)
        left, rest = left - drawn, rest - weight
    counts[-1] = counts[-1] + left
    return dataclasses.replace(pairs, weight=torch.stack(counts, -1) / n)


def rdpo_error_by_n(sizes=(3000, 30000, 300000), eps: float = 0.2, beta: float = 0.5, K: int = 3, seeds: int = 64,
                    seed: int = 0) -> torch.Tensor:
    """TV(rDPO's minimiser on n sampled ε-flipped records, clean π*_β) ``[len(sizes), seeds]``, K random
    responses (the ``rdpo_finite_sample`` instance); every run of every size must have a finite minimiser."""
    prob = Problem.random(FlatSpace(K), seed=0, reward_scale=1.0)
    clean = optima.reverse_kl(prob, beta)
    loss = make("rdpo", beta=beta, eps=eps)
    return torch.stack([metrics.tv(solve(loss, record_counts(prob, n, eps, seeds, seed + i)).logp, clean)
                        for i, n in enumerate(sizes)])
