"""The "3D properties" toy (Yan et al., arXiv 2406.07327): does DPO show a **d**rastic drop of the
rejected likelihood, **d**egradation of the chosen one, and **d**ispersion of mass onto unseen
responses?

The paper's toy (a 3-layer MLP over 4 prompts × 10 single-token responses, about 500 epochs) has
no published architecture, data or code; this is an exploratory reconstruction [unverified]:
4 prompts × 10 responses, π_ref = softmax(2·N(0, 1)) per prompt (set directly instead of the SFT
pre-training step), r ~ N(0, 1), 4 Bradley–Terry-ordered pairs per prompt among 6 of the 10
responses (the other 4 are never seen), an ``MLP`` policy (hidden width 64, starting at π_ref),
DPO β = 0.1, full-batch Adam lr 1e-3, 500 epochs, 5 seeds on the run axis. The curves are
``displacement.curves``: exact sums over the table.
"""
from __future__ import annotations

import functools

import torch

from ..displacement import curves, trajectory
from ..losses import make
from ..pairs import Pairs
from ..problem import Problem
from ..shared_policies import MLP
from ..spaces import FlatSpace

PROMPTS, RESPONSES, SEEN, PAIRS_PER_PROMPT = 4, 10, 6, 4


def data(seed: int = 0):
    """(problem, pairs): the random instance and its preference records (chosen = higher reward)."""
    gen = torch.Generator().manual_seed(seed)
    ref = torch.log_softmax(2 * torch.randn(PROMPTS, RESPONSES, generator=gen, dtype=torch.float64), -1)
    reward = torch.randn(PROMPTS, RESPONSES, generator=gen, dtype=torch.float64)
    prob = Problem(FlatSpace(RESPONSES), ref, reward=reward)
    records = []
    for x in range(PROMPTS):
        seen = torch.randperm(RESPONSES, generator=gen)[:SEEN].tolist()
        for k in range(PAIRS_PER_PROMPT):
            a, b = seen[k], seen[(k + 1) % SEEN]
            records.append((x, a, b) if reward[x, a] > reward[x, b] else (x, b, a))
    return prob, Pairs.from_records(prob, records)


def run(seeds: int = 5, epochs: int = 500, lr: float = 1e-3, beta: float = 0.1, every: int = 10) -> dict:
    """``displacement.curves`` ``[S, seeds]`` (plus ``steps``) of DPO on the toy, seeds batched as runs.
    Seeded and pure, so cached (two claims read one trajectory); each call gets its own copies."""
    return {name: value.clone() for name, value in _run(seeds, epochs, lr, beta, every).items()}


@functools.lru_cache(maxsize=4)
def _run(seeds: int, epochs: int, lr: float, beta: float, every: int) -> dict:
    prob, pairs = data()
    policy = MLP(prob, runs=seeds, embed=8, hidden=64, seed=0)
    snapshots, marks = trajectory(policy, make("dpo", beta=beta), pairs, epochs, lr=lr, optimizer="adam", every=every)
    found = curves(snapshots, pairs)
    found["steps"] = marks
    found["chosen_mass"] = _mass(snapshots, pairs, pairs.chosen)
    return found


def _mass(snapshots, pairs, responses):
    """Record-mean probability of ``responses`` ``[S, B]``."""
    probs = snapshots.exp()[:, :, pairs.prompt[0], responses[0]]      # [S, B, N]
    return (probs * pairs.weight[0]).sum(-1) / pairs.weight[0].sum()
