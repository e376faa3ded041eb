"""Likelihood displacement (Razin et al., arXiv 2410.08847) on exact toy instances.

- ``razin``: a LogLinear policy (fixed unembeddings W_{y+} = (1, 0.1), W_{y−} = (1, −0.1),
  W_z = (0, 1), base log(0.6, 0.3, 0.1), trainable hidden h = 0) trained by DPO (β = 1, SGD lr 0.1)
  on the single pair y+ ≻ y−: π(y+) falls from the first step while the loss falls and the mass
  moves to z, whose unembedding is least aligned with W_{y+} − W_{y−} (Thm. 2) [derived construction].
- ``tabular``: a per-response logit table cannot displace the chosen response on one pair; the
  unseen response rises while π_l > π_w and falls afterwards (π_ref = (0.2, 0.5, 0.3), pair 0 ≻ 1,
  β = 1, SGD lr 0.01) [derived].
- ``regularised``: the construction of ``razin`` trained with any registered loss (DPOP, RPO,
  Flex-DPO: the regularisers proposed against displacement), the chosen log-prob along the way.
- ``chosen_rate``: d/dt log π(y+) at the start of gradient flow on the construction, by autograd.
- ``ches_correlation``: per TinyTransformer, the Spearman correlation across random pairs between
  CHES (Razin et al., Thm. 3) at the start and the chosen log-prob change after a few DPO steps
  [exploratory].
"""
from __future__ import annotations

import torch

from ..displacement import ches, razin_construction, trajectory
from ..losses import make
from ..objective import objective
from ..pairs import Pairs
from ..policies import Tabular
from ..problem import Problem
from ..spaces import FlatSpace, SequenceSpace
from ..transformer import TinyTransformer


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


def regularised(loss, steps: int = 500, lr: float = 0.1):
    """log π(y+)_t − log π(y+)_0 ``[steps + 1]`` on the construction of ``razin`` trained with ``loss``
    (SGD, float64), and π over (y+, y−, z) at the end ``[3]``."""
    policy, loss, pairs = razin_construction(loss=loss)
    snapshots, _ = trajectory(policy, loss, pairs, steps, lr=lr, optimizer="sgd")
    logp = snapshots[:, 0, 0]
    return logp[:, 0] - logp[0, 0], logp[-1].exp()


def chosen_rate(loss) -> float:
    """d/dt log π(y+) at h = 0 under gradient flow on ``loss`` (the construction of ``razin``):
    −⟨∇_h log π(y+), ∇_h 𝓛⟩, both gradients by autograd."""
    policy, loss, pairs = razin_construction(loss=loss)
    [grad_loss] = torch.autograd.grad(objective(loss, policy.logp(), pairs).sum(), policy.parameters())
    [grad_chosen] = torch.autograd.grad(policy.logp()[0, 0, 0], policy.parameters())
    return -float((grad_loss * grad_chosen).sum())


def ches_correlation(models: int = 4, pairs_per_model: int = 64, vocab: int = 3, max_len: int = 2, width: int = 16,
                     steps: int = 5, lr: float = 0.1, beta: float = 1.0, seed: int = 0) -> list[float]:
    """Spearman correlation, per transformer, between CHES and the chosen log-prob change.

    ``models`` TinyTransformers (1 layer, weights from seed + m, float64) on one random prompt of
    ``SequenceSpace(vocab, max_len)`` (π_ref from ``seed``); each is copied to ``pairs_per_model``
    runs and run k trains on its own random pair (y+, y−), y+ ≠ y− uniform, by DPO (β, SGD ``lr``,
    ``steps`` steps). All runs are one program; the correlation is taken within each model."""
    from scipy.stats import spearmanr

    prob = Problem.random(SequenceSpace(vocab, max_len), prompts=1, seed=seed)
    runs = models * pairs_per_model
    group = torch.arange(runs) // pairs_per_model
    policy = TinyTransformer(prob, runs=runs, width=width, seed=seed, dtype=torch.float64)
    with torch.no_grad():
        for param in policy.parameters():
            param.copy_(param[group].clone())          # run m·K + k carries model m's weights
    gen = torch.Generator().manual_seed(seed)
    chosen = torch.randint(prob.Y, (runs, 1), generator=gen)
    rejected = (chosen + torch.randint(1, prob.Y, (runs, 1), generator=gen)) % prob.Y
    pairs = Pairs(torch.zeros(runs, 1, dtype=torch.int64), chosen, rejected,
                  torch.ones(runs, 1, dtype=torch.float64), prob)
    score = ches(policy, pairs).detach()[:, 0]
    snapshots, _ = trajectory(policy, make("dpo", beta=beta), pairs, steps, lr=lr)
    rows = torch.arange(runs)
    change = snapshots[-1, rows, 0, chosen[:, 0]] - snapshots[0, rows, 0, chosen[:, 0]]
    return [float(spearmanr(score[group == m], change[group == m]).statistic) for m in range(models)]
