"""Ranking accuracy vs DPO loss (Chen et al., arXiv 2405.19534, Thm. 4.1 and Prop. 2.6).

With c = log π_ref(l)/π_ref(w), a pair is ranked correctly (π(w) ≥ π(l)) **iff** its DPO loss
satisfies L ≤ −log σ(β·c): log π(w)/π(l) = Δ − c and −log σ is decreasing. So a pair whose
reference ranks it wrongly by a wide margin (c ≫ 0) needs a loss far below ln 2 before it flips,
and with c = 5, β = 0.1 every loss in (0.474, 0.693) has the implicit reward right but the ranking
wrong. Here: a random π_ref over K responses, exact BT population pairs, DPO by plain gradient
descent (``displacement.trajectory``), and every (better, worse) pair checked at every snapshot.
"""
from __future__ import annotations

import torch

from ..displacement import trajectory
from ..losses import make
from ..pairs import population
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
