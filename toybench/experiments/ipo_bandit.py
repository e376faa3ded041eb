"""The IPO paper's sampled three-action bandit (Azar et al., arXiv 2310.12036, §5.1, Fig. 1).

Actions {a, b, c} = 0, 1, 2; a tabular softmax policy whose logits start at 0 (π_ref uniform);
DPO −log σ(τΔ) and IPO (Δ − 1/(2τ))², Adam (0.9, 0.999, 1e-8) at lr 0.01, mini-batches of 9
records drawn with replacement, 18,000 steps, 10 seeds, τ ∈ {0.1, 0.5, 1, 2} (the τ values appear
only in the paper's legends).

Data sets:
- ``D1`` = {(a,b), (b,c), (a,c)}: IPO's least-squares optimum is π = softmax((2, 1, 0)/(3τ));
  DPO drives π_a → 1 at every τ.
- ``D3_printed`` = {(a,b), (b,a)} as printed. The two records push θ_a − θ_b in opposite
  directions and θ_c gets no gradient, so nothing moves: the printed set cannot show the described
  effect ("IPO decreases the unobserved action's probability with τ"). Kept as a regression check.
- ``D3_resolved`` = {(a,b), (b,a), (a,c)} is the reading implemented here (an unverified
  resolution of the ambiguity): IPO gives π_c = 1/(1 + 2e^{1/(2τ)}); DPO drives π_c → 0.
"""
from __future__ import annotations

import torch

from ..losses import make
from ..pairs import Pairs
from ..policies import Tabular
from ..problem import Problem
from ..spaces import FlatSpace
from ..train import train

TAUS = (0.1, 0.5, 1.0, 2.0)
DATASETS = {
    "D1": [(0, 0, 1), (0, 1, 2), (0, 0, 2)],
    "D3_printed": [(0, 0, 1), (0, 1, 0)],
    "D3_resolved": [(0, 0, 1), (0, 1, 0), (0, 0, 2)],
}
ACTIONS = ("a", "b", "c")


def problem() -> Problem:
    """Three actions, uniform π_ref. The reward (2, 1, 0) only feeds logged metrics: training uses the records."""
    return Problem(FlatSpace(3), ref_probs=torch.full((1, 3), 1 / 3, dtype=torch.float64),
                   reward=torch.tensor([[2.0, 1.0, 0.0]], dtype=torch.float64))


def dataset(name: str) -> Pairs:
    """The records of data set ``name`` (one of ``DATASETS``), equal weights."""
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose from {sorted(DATASETS)}")
    return Pairs.from_records(problem(), DATASETS[name])


def run(data: str, loss: str, taus=TAUS, seeds: int = 10, steps: int = 18000, batch_size: int | None = 9,
        lr: float = 0.01, seed: int = 0, log_every: int | None = None, dtype=torch.float32):
    """Train ``loss`` ("dpo" or "ipo", τ = β) on data set ``data``: len(taus)·seeds runs in one program.

    Returns ``(probs, history)``: final π ``[len(taus), seeds, 3]`` (float64) and ``train``'s History
    (runs ordered τ-major). ``batch_size=None`` is full-batch Adam (then seeds are identical).
    An action in no record keeps its logit exactly in float32 too: the records' chosen and rejected
    derivatives cancel exactly (docs/conventions.md, "Adam and rounding"). Full-batch IPO sits on
    its closed form to ~1e-8 after 3000 steps, but later steps of Adam (ε = 1e-8) on a vanishing
    gradient can burst away and back: at 18,000 steps τ = 1 was 3e-4 off in float64 (not 5 decimals)."""
    tau = torch.tensor(taus, dtype=torch.float64).repeat_interleave(seeds)
    policy = Tabular(problem(), runs=len(tau), dtype=dtype)
    history = train(policy, make(loss, beta=tau), dataset(data), steps=steps, optimizer="adam", lr=lr,
                    batch_size=batch_size, seed=seed, log_every=log_every or steps)
    probs = policy.logp().detach().to(torch.float64).exp()[:, 0, :]
    return probs.reshape(len(taus), seeds, 3), history


def ipo_closed_form(data: str, tau: float) -> torch.Tensor:
    """IPO's published/derived optimum for ``D1`` or ``D3_resolved``: π ``[3]`` (float64)."""
    if data == "D1":
        return torch.softmax(torch.tensor([2.0, 1.0, 0.0], dtype=torch.float64) / (3 * tau), -1)
    if data == "D3_resolved":
        c = 1 / (1 + 2 * torch.tensor(1 / (2 * tau), dtype=torch.float64).exp())
        return torch.stack([(1 - c) / 2, (1 - c) / 2, c])
    raise ValueError(f"no IPO closed form for {data!r}; choose 'D1' or 'D3_resolved'")
