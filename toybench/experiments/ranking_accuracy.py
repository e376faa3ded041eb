"""Ranking accuracy vs DPO loss (Chen et al., arXiv 2405.19534, Thm. 4.1 and Prop. 2.6).

With c = log π_ref(l)/π_ref(w), a pair is ranked correctly (π(w) ≥ π(l)) **iff** its DPO loss
satisfies L ≤ −log σ(β·c): log π(w)/π(l) = Δ − c and −log σ is decreasing. So a pair whose
reference ranks it wrongly by a wide margin (c ≫ 0) needs a loss far below ln 2 before it flips,
and with c = 5, β = 0.1 every loss in (0.474, 0.693) has the implicit reward right but the ranking
wrong. Here: a random π_ref over K responses, exact BT population pairs, DPO by plain gradient
descent (``displacement.trajectory``), and every (better, worse) pair checked at every snapshot.
``window`` places one such pair at chosen loss values and reads its ranking and implicit-reward
accuracies (``metrics.ranking_accuracy``, ``metrics.implicit_reward_accuracy``).
"""
from __future__ import annotations

import torch

from .. import metrics
from ..displacement import trajectory
from ..losses import make
from ..objective import objective
from ..pairs import Pairs, population
from ..policies import Tabular
from ..problem import Problem
from ..spaces import FlatSpace


def instance(K: int = 8, seed: int = 0, ref_scale: float = 2.0) -> Problem:
    """A random BT instance whose π_ref is spread (``ref_scale``) so that many pairs start mis-ranked."""
    return Problem.random(FlatSpace(K), seed=seed, reward_scale=1.0, ref_scale=ref_scale)


def run(beta: float = 0.1, K: int = 8, seed: int = 0, steps: int = 3000, lr: float = 1.0, every: int = 30) -> dict:
    """Per snapshot and (better w, worse l) pair: the DPO loss −log σ(βΔ), the threshold −log σ(βc)
    and whether π ranks the pair correctly. Tensors ``loss``/``correct`` ``[S, pairs]``, ``threshold`` ``[pairs]``."""
    prob = instance(K, seed)
    policy = Tabular(prob, dtype=torch.float64)
    snapshots, marks = trajectory(policy, make("dpo", beta=beta), population(prob), steps, lr=lr, every=every)
    logp, ref, reward = snapshots[:, 0, 0], prob.ref_logp[0], prob.reward[0]
    w, l_ = (reward[:, None] > reward[None, :]).nonzero(as_tuple=True)
    margin = (logp[:, w] - ref[w]) - (logp[:, l_] - ref[l_])
    c = ref[l_] - ref[w]
    return {"steps": marks, "loss": torch.nn.functional.softplus(-beta * margin),
            "threshold": torch.nn.functional.softplus(-beta * c), "correct": logp[:, w] >= logp[:, l_], "c": c}


def window(losses, c: float = 5.0, beta: float = 0.1) -> dict:
    """One pair w ≻ l on two responses with log π_ref(l)/π_ref(w) = c, placed at each DPO loss L of
    ``losses`` ``[G]`` (one run each): the implicit-reward margin is Δ = −log(e^L − 1)/β (L = −log σ(βΔ)
    inverted), put on h(w). Returns ``[G]`` tensors ``loss`` (the DPO objective re-evaluated there),
    ``ra`` (ranking accuracy, ties correct) and ``ia`` (implicit-reward accuracy, strict)."""
    target = torch.as_tensor(losses, dtype=torch.float64)
    ref = torch.log_softmax(torch.tensor([0.0, c], dtype=torch.float64), -1)
    prob = Problem(FlatSpace(2), ref_logp=ref[None], reward=torch.zeros(1, 2, dtype=torch.float64))
    margin = -torch.log(torch.expm1(target)) / beta
    logp = torch.log_softmax(ref + torch.stack([margin, torch.zeros_like(margin)], -1), -1)[:, None, :]
    pairs = Pairs.from_records(prob, [(0, 0, 1)])
    return {"loss": objective(make("dpo", beta=beta), logp, pairs), "ra": metrics.ranking_accuracy(logp, pairs),
            "ia": metrics.implicit_reward_accuracy(logp, prob.ref_logp, pairs)}
