"""Claims on sequence spaces: the token-level (soft-Bellman) form of the reverse-KL optimum.

Distances are maxima of |log π − log π'| over every string and prompt, in float64.
"""
from __future__ import annotations

import torch

from .. import optima
from ..problem import Problem
from ..spaces import SequenceSpace
from .registry import claim


def random_token_problem(vocab=3, max_len=3, prompts=2, seed=0) -> Problem:
    """A random problem whose reward is paid per (prefix, token) step (N(0, 1) each)."""
    space = SequenceSpace(vocab, max_len)
    gen = torch.Generator().manual_seed(seed)
    token_reward = torch.randn(prompts, space.prefixes, space.actions, generator=gen, dtype=torch.float64)
    token_reward[:, ~space.allowed] = 0
    ref = torch.log_softmax(torch.randn(prompts, space.size, generator=gen, dtype=torch.float64), -1)
    return Problem(space, ref, reward=token_reward)


@claim("sequence.token_product_equals_target",
       citation="Rafailov, Hejna, Park, Finn, arXiv 2404.12358, §4 (soft Bellman recursion, Eq. 8–9)",
       assumptions="SequenceSpace(vocab=3, max_len=3), 2 prompts, random π_ref and per-token rewards, "
                   "β ∈ {0.1, 1, 10}; float64",
       tolerance=1e-10)
def token_product_equals_target() -> float:
    """The product of optimal next-token probabilities equals π_ref·e^{R/β}/Z_β on every string (max |Δ log π|)."""
    prob = random_token_problem()
    beta = torch.tensor([0.1, 1.0, 10.0])
    return (optima.token_target(prob, beta) - optima.reverse_kl(prob, beta)).abs().max().item()


@claim("sequence.root_value_is_log_partition",
       citation="Rafailov, Hejna, Park, Finn, arXiv 2404.12358, §4 (V*(s_0) = β log Z)",
       assumptions="SequenceSpace(vocab=3, max_len=3), 2 prompts, random π_ref and per-token rewards, β = 0.5",
       tolerance=1e-10)
def root_value_is_log_partition() -> float:
    """The soft value of the empty prefix is β·log Z_β (absolute error)."""
    prob = random_token_problem(seed=1)
    _, value = optima.soft_values(prob, 0.5)
    return (value[:, 0] - 0.5 * optima.log_partition(prob, 0.5)).abs().max().item()
