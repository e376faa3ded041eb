"""The density-estimation view of DPO and IPO (Dumoulin et al., arXiv 2311.14115, §3 and PBDE notebook).

A Luce annotator P(a ≻ b) = p*(a)/(p*(a) + p*(b)) is Bradley–Terry with r = log p*, so DPO's
optimum is the tempered product π ∝ π_ref·p*^{1/β}, not p*; an annotator following the "DPO rule"
at β_a, P = σ(β_a[log(p*/π_ref)(a) − log(p*/π_ref)(b)]), is well specified and DPO at β = β_a
recovers p*. IPO's optimum on π_ref ⊗ π_ref pairs is π ∝ π_ref·exp(p(y ≻ π_ref)/τ).

The paper uses a 2¹⁶-point grid on [−10, 10] and an MLP energy model; here (an unverified but
exact discretisation) a ``FlatSpace`` of K bins with centres x_k = −10 + (k + ½)·20/K, π_ref ∝
TruncNormal(0, 5) and p* = 0.4·TN(−2.5, 0.25) + 0.6·TN(2.5, 1.0) (scales are standard deviations)
evaluated at the centres, and exact population pairs π_ref ⊗ π_ref with soft labels.

Several annotators (the PBDE notebook's multi-annotator set-up): 40% label as a Luce annotator of
p₁ = TN(−2.5, 0.25), 60% of p₂ = TN(2.5, 1), so P(a ≻ b) = 0.4·σ(log p₁(a) − log p₁(b)) +
0.6·σ(log p₂(a) − log p₂(b)). This mixture is not Bradley–Terry: its log-odds are not a difference
r_a − r_b (a nonzero 3-cycle sum), so no single Luce density describes it; DPO's optimum needs
``solve``, IPO's is still π ∝ π_ref·exp(P(y ≻ π_ref)/τ).
"""
from __future__ import annotations

import math

import torch

from .. import optima
from ..losses import make
from ..pairs import population
from ..problem import Problem
from ..solve import solve
from ..spaces import FlatSpace

LOW, HIGH = -10.0, 10.0
ANNOTATORS = ((0.4, -2.5, 0.25), (0.6, 2.5, 1.0))
"""The multi-annotator set-up: (share, mean, standard deviation) of each annotator's Luce density."""
DPO_BETAS = (1.0, 4.0, 16.0)
IPO_TAUS = (0.1, 0.5, 1.0)


def centres(K: int = 1024) -> torch.Tensor:
    """Bin centres x_k ``[K]`` (float64)."""
    return LOW + (torch.arange(K, dtype=torch.float64) + 0.5) * (HIGH - LOW) / K


def _truncnorm_logpdf(x, loc, scale):
    from scipy.stats import truncnorm
    a, b = (LOW - loc) / scale, (HIGH - loc) / scale
    return torch.as_tensor(truncnorm.logpdf(x.numpy(), a, b, loc=loc, scale=scale), dtype=torch.float64)


def log_normalise(values: torch.Tensor) -> torch.Tensor:
    return values - torch.logsumexp(values, -1, keepdim=True)


def reference(K: int = 1024) -> torch.Tensor:
    """log π_ref ``[K]``: TN(0, 5) at the bin centres, normalised (the bin width cancels)."""
    return log_normalise(_truncnorm_logpdf(centres(K), 0.0, 5.0))


def data_density(K: int = 1024) -> torch.Tensor:
    """log p* ``[K]``: 0.4·TN(−2.5, 0.25) + 0.6·TN(2.5, 1.0) at the centres, normalised."""
    x = centres(K)
    mixture = torch.logaddexp(torch.log(torch.tensor(0.4, dtype=torch.float64)) + _truncnorm_logpdf(x, -2.5, 0.25),
                              torch.log(torch.tensor(0.6, dtype=torch.float64)) + _truncnorm_logpdf(x, 2.5, 1.0))
    return log_normalise(mixture)


def luce_problem(K: int = 1024, annotator_beta: float | None = None) -> Problem:
    """Population pairs π_ref ⊗ π_ref labelled by a Luce annotator (BT with r = log p*), or, with
    ``annotator_beta`` β_a, by the "DPO rule" (BT with r = β_a·log(p*/π_ref))."""
    ref, target = reference(K), data_density(K)
    reward = target if annotator_beta is None else annotator_beta * (target - ref)
    return Problem(FlatSpace(K), ref_logp=ref[None], reward=reward[None], pair_dist="ref")


def targets(K: int = 1024, betas=DPO_BETAS, taus=IPO_TAUS) -> dict:
    """Population optima log π ``[K]`` keyed "dpo β=…" and "ipo τ=…" (``optima.reverse_kl``, ``optima.ipo``)."""
    prob = luce_problem(K)
    found = {f"dpo β={b:g}": optima.reverse_kl(prob, b)[0] for b in betas}
    found.update({f"ipo τ={t:g}": optima.ipo(prob, t)[0] for t in taus})
    return found


def summary(logp: torch.Tensor, K: int = 1024) -> dict:
    """Mass on x < 0, mean E[x] and mode of a density ``[K]`` over the bins."""
    x, prob = centres(K), logp.exp()
    return {"mass_below_0": float(prob[x < 0].sum()), "mean": float((prob * x).sum()), "mode": float(x[prob.argmax()])}


def mixture_log_odds(K: int = 1024) -> torch.Tensor:
    """log P(a ≻ b)/P(b ≻ a) ``[K, K]`` of the annotator mixture, in log space (exact where P is within
    round-off of 0 or 1)."""
    wins, losses = [], []
    for share, loc, scale in ANNOTATORS:
        logp = _truncnorm_logpdf(centres(K), loc, scale)
        gap = logp[:, None] - logp[None, :]
        wins.append(math.log(share) + torch.nn.functional.logsigmoid(gap))
        losses.append(math.log(share) + torch.nn.functional.logsigmoid(-gap))
    return torch.logsumexp(torch.stack(wins), 0) - torch.logsumexp(torch.stack(losses), 0)


def mixture_problem(K: int = 1024) -> Problem:
    """Population pairs π_ref ⊗ π_ref labelled by the annotator mixture (a general preference matrix)."""
    return Problem(FlatSpace(K), ref_logp=reference(K)[None], preference=torch.sigmoid(mixture_log_odds(K))[None],
                   pair_dist="ref")


def mixture_density(K: int = 1024) -> torch.Tensor:
    """log of the annotators' pooled density Σ share·p_i ``[K]`` (normalised; for display)."""
    x = centres(K)
    return log_normalise(torch.logsumexp(torch.stack([math.log(share) + _truncnorm_logpdf(x, loc, scale)
                                                      for share, loc, scale in ANNOTATORS]), 0))


def mixture_targets(K: int = 256, betas=DPO_BETAS, taus=IPO_TAUS) -> dict:
    """Population optima log π ``[K]`` under the annotator mixture: DPO by ``solve``, IPO by ``optima.ipo``."""
    prob = mixture_problem(K)
    found = {f"dpo β={b:g}": solve(make("dpo", beta=b), population(prob)).logp[0] for b in betas}
    found.update({f"ipo τ={t:g}": optima.ipo(prob, t)[0] for t in taus})
    return found
