"""Claims for DID's rejected sampler (a record law, not a loss; derived here).

DID records: chosen y_w ~ π_ref, rejected y_l ~ π_l, the first draw wins (``pair_dist="did"`` uses
π_l ∝ π_ref·e^{−r}; docs/conventions.md, pair law: a = b draws are dropped). Both orientations of every pair occur, so
DPO has the finite optimum π ∝ π_ref·(π_ref/π_l)^{1/β} [derived]. E1 is defined in docs/conventions.md.
"""
from __future__ import annotations

import torch

from .. import losses, optima
from ..pairs import Pairs, population
from ..solve import solve
from .core import e1, tv
from .registry import claim

BETAS = (0.5, 1.0, 2.0)


def random_rejected_sampler(seed: int = 0) -> torch.Tensor:
    """A random full-support π_l on E1's four responses, log-probs ``[1, 4]``."""
    gen = torch.Generator().manual_seed(seed)
    return torch.log_softmax(torch.randn(1, 4, generator=gen, dtype=torch.float64), -1)


def did_records(prob, rejected_logp: torch.Tensor) -> Pairs:
    """Records (a, b), a ≠ b, with weight ∝ π_ref(a)·π_l(b): the DID law for any π_l."""
    weight = prob.ref_logp.exp()[0, :, None] * rejected_logp.exp()[0, None, :]
    triples = [(0, a, b) for a in range(prob.Y) for b in range(prob.Y) if a != b]
    return Pairs.from_records(prob, triples, [float(weight[a, b]) for _, a, b in triples])


def did_formula(prob, rejected_logp: torch.Tensor, beta: float) -> torch.Tensor:
    """log of π ∝ π_ref·(π_ref/π_l)^{1/β}."""
    return torch.log_softmax(prob.ref_logp + (prob.ref_logp - rejected_logp) / beta, -1)


@claim("did.optimal_rejected_sampler",
       citation="Won, Lee, Hwang, Seo, arXiv 2505.23761, Thm. 3.3 (v1); derived here (E1: TV ≤ 1.5e-7)",
       assumptions="E1; DID records with π_l ∝ π_ref·e^{−r} (pair_dist='did'), first draw wins, a = b draws "
                   "dropped; DPO with β ∈ {0.5, 1, 2}",
       tolerance=1e-8)
def did_optimal_sampler() -> float:
    """DPO on DID records with π_l ∝ π_ref·e^{−r} recovers π*_β for every β (max TV)."""
    prob = e1("did")
    pairs = population(prob)
    return max(tv(solve(losses.make("dpo", beta=beta), pairs).logp, optima.reverse_kl(prob, beta)) for beta in BETAS)


@claim("did.general_rejected_sampler",
       citation="Won et al., arXiv 2505.23761; derived here (general π_l: 5e-9)",
       assumptions="E1's π_ref; a random full-support π_l (seed 0); records (a, b), a ≠ b, weight ∝ "
                   "π_ref(a)π_l(b); DPO with β ∈ {0.5, 1, 2}",
       tolerance=1e-8)
def did_general_sampler() -> float:
    """DPO on DID records with any π_l converges to π ∝ π_ref·(π_ref/π_l)^{1/β} (max TV)."""
    prob = e1("uniform")
    rejected = random_rejected_sampler()
    pairs = did_records(prob, rejected)
    return max(tv(solve(losses.make("dpo", beta=beta), pairs).logp, did_formula(prob, rejected, beta))
               for beta in BETAS)


@claim("did.random_sampler_not_pistar",
       citation="Won et al., arXiv 2505.23761; derived here (a random π_l: TV 0.65 from π*_β)",
       assumptions="E1, β = 1; a random full-support π_l (seed 0) instead of π_l ∝ π_ref·e^{−r}",
       tolerance=0.1, comparison=">=")
def did_random_sampler() -> float:
    """With a π_l other than π_ref·e^{−r}, DPO on DID records lands away from π*_β (TV)."""
    prob = e1("uniform")
    pairs = did_records(prob, random_rejected_sampler())
    return tv(solve(losses.make("dpo", beta=1.0), pairs).logp, optima.reverse_kl(prob, 1.0))
