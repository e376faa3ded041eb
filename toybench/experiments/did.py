"""The DID sampler (Won, Lee, Hwang, Seo, arXiv 2505.23761): chosen y_w ~ π_ref, rejected y_l ~ π_l,
every record labelled "the π_ref draw wins".

DPO's population loss is then logistic regression in β·h with minimiser π ∝ π_ref·(π_ref/π_l)^{1/β}
(derived); with π_l ∝ π_ref·e^{−r} (``pair_dist="did"``) this is π*_β for every β, and
π_l = π_ref gives no signal (π = π_ref).
"""
from __future__ import annotations

import torch

from .. import optima
from ..claims.did import did_formula, did_records
from ..losses import make
from ..pairs import population
from ..problem import Problem
from ..solve import solve
from ..spaces import FlatSpace

BETAS = (0.1, 1.0, 10.0)


def instance(K: int = 6, seed: int = 0) -> Problem:
    """Dirichlet(1) π_ref and r ~ N(0, 1) on K responses, DID record law."""
    gen = torch.Generator().manual_seed(seed)
    ref = -torch.log(torch.rand(K, generator=gen, dtype=torch.float64))        # Exp(1) draws ...
    ref = ref / ref.sum()                                                       # ... normalised: Dirichlet(1)
    reward = torch.randn(1, K, generator=gen, dtype=torch.float64)
    return Problem(FlatSpace(K), ref_probs=ref[None], reward=reward, pair_dist="did")


def optimum(prob: Problem, beta: float, rejected_logp: torch.Tensor | None = None) -> torch.Tensor:
    """DPO's population optimum (``solve``) on DID records with rejected sampler π_l (default π_ref·e^{−r})."""
    pairs = population(prob) if rejected_logp is None else did_records(prob, rejected_logp)
    return solve(make("dpo", beta=beta), pairs).logp


def predicted(prob: Problem, beta: float, rejected_logp: torch.Tensor | None = None) -> torch.Tensor:
    """The closed forms: π*_β for π_l ∝ π_ref·e^{−r}, else π ∝ π_ref·(π_ref/π_l)^{1/β}."""
    if rejected_logp is None:
        return optima.reverse_kl(prob, beta)
    return did_formula(prob, rejected_logp, beta)
