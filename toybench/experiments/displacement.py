"""Likelihood displacement (Razin et al., arXiv 2410.08847) on exact toy instances.

- ``razin``: a LogLinear policy (fixed unembeddings W_{y+} = (1, 0.1), W_{y−} = (1, −0.1),
  W_z = (0, 1), base log(0.6, 0.3, 0.1), trainable hidden h = 0) trained by DPO (β = 1, SGD lr 0.1)
  on the single pair y+ ≻ y−: π(y+) falls from the first step while the loss falls and the mass
  moves to z, whose unembedding is least aligned with W_{y+} − W_{y−} (Thm. 2) [derived construction].
- ``tabular``: a per-response logit table cannot displace the chosen response on one pair; the
  unseen response rises while π_l > π_w and falls afterwards (π_ref = (0.2, 0.5, 0.3), pair 0 ≻ 1,
  β = 1, SGD lr 0.01) [derived].
"""
from __future__ import annotations

import torch

from ..displacement import razin_construction, trajectory
from ..losses import make
from ..pairs import Pairs
from ..policies import Tabular
from ..problem import Problem
from ..spaces import FlatSpace


def razin(steps: int = 2000, every: int = 1):
    """π over (y+, y−, z) along DPO training of the construction: ``(steps [S], probs [S, 3], loss [S])``."""
    policy, loss, pairs = razin_construction()
    snapshots, marks = trajectory(policy, loss, pairs, steps, lr=0.1, optimizer="sgd", every=every)
    logp = snapshots[:, 0, 0]
    return marks, logp.exp(), torch.nn.functional.softplus(-(logp[:, 0] - logp[:, 1] - (logp[0, 0] - logp[0, 1])))


def tabular(steps: int = 20000, every: int = 1, ref=(0.2, 0.5, 0.3)):
    """π over three responses along tabular DPO (β = 1, SGD lr 0.01) on the pair 0 ≻ 1: ``(steps, probs [S, 3])``."""
    prob = Problem(FlatSpace(3), ref_probs=torch.tensor([ref], dtype=torch.float64),
                   reward=torch.zeros(1, 3, dtype=torch.float64))
    pairs = Pairs.from_records(prob, [(0, 0, 1)])
    snapshots, marks = trajectory(Tabular(prob, dtype=torch.float64), make("dpo", beta=1.0), pairs, steps, lr=0.01,
                                  optimizer="sgd", every=every)
    return marks, snapshots[:, 0, 0].exp()
