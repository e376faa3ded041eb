"""SGD vs Adam on one deterministic pair: DPO's margin is an optimiser artefact.

One pair w ≻ l, always labelled the same way, tabular logits starting at π_ref (margin Δ = 0),
lr 0.01, 18,000 steps. Hard labels give DPO no finite optimum, so the margin it reaches is set by
the optimiser: under gradient flow Δ + (e^{βΔ} − 1)/β = 2ηβt (Δ ~ (1/β)·log t), while Adam's
normalised steps grow Δ about linearly. cDPO stops at logit(1 − ε)/β, rDPO's slope tends to the
constant −βε/(1 − 2ε) (linear growth under SGD), IPO stops at 1/(2τ). The general point is made in
Azar et al., arXiv 2310.12036, §4.2; the closed forms are derived. The gradient lies along
e_w − e_l, so the number of other responses does not matter: two responses are used.
"""
from __future__ import annotations

import torch

from ..displacement import trajectory
from ..losses import make
from ..pairs import Pairs
from ..policies import Tabular
from ..problem import Problem
from ..spaces import FlatSpace

BETAS = (0.1, 0.5, 1.0)
LOSSES = {"dpo": {}, "cdpo": {"eps": 0.1}, "rdpo": {"eps": 0.1}, "ipo": {}}
"""The losses compared, with their fixed hyperparameters (ε = 0.1 for cDPO and rDPO)."""


def one_pair() -> Pairs:
    """The single record (w, l) = (0, 1) on two responses with uniform π_ref."""
    prob = Problem(FlatSpace(2), ref_probs=torch.full((1, 2), 0.5, dtype=torch.float64),
                   reward=torch.tensor([[1.0, 0.0]], dtype=torch.float64))
    return Pairs.from_records(prob, [(0, 0, 1)])


def margins(loss: str, optimizer: str, betas=BETAS, steps: int = 18000, lr: float = 0.01, every: int | None = None):
    """Margin Δ = log π(w)/π(l) (π_ref uniform) along training: ``(steps [S], Δ [S, len(betas)])``, float64."""
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose from {sorted(LOSSES)}")
    pairs = one_pair()
    policy = Tabular(pairs.problem, runs=len(betas), dtype=torch.float64)
    beta = torch.tensor(betas, dtype=torch.float64)
    snapshots, marks = trajectory(policy, make(loss, beta=beta, **LOSSES[loss]), pairs, steps, lr=lr,
                                  optimizer=optimizer, every=every or steps)
    return marks, snapshots[:, :, 0, 0] - snapshots[:, :, 0, 1]


def sgd_flow_margin(beta: float, steps: int, lr: float = 0.01) -> float:
    """DPO's gradient-flow margin: the root Δ of Δ + (e^{βΔ} − 1)/β = 2ηβt (derived)."""
    import scipy.optimize
    rhs = 2 * lr * beta * steps
    return float(scipy.optimize.brentq(lambda d: d + torch.expm1(torch.tensor(beta * d)).item() / beta - rhs, 0, rhs))
