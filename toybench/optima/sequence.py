"""Token-level form of the reverse-KL optimum on a ``SequenceSpace``: soft values by backward recursion.

The token MDP (Rafailov, Hejna, Park, Finn, arXiv 2404.12358, §4): the state is a prefix s, an
action a is a token (or EOS, which ends the string), the step reward is r(s, a) (the problem's
``token_reward``; a sequence-level reward is paid on the EOS step) and the reference policy is
π_ref(a|s) (the unique per-step factorisation of the problem's π_ref over whole strings). With
terminal value 0 after EOS:

    Q*(s, a) = r(s, a) + V*(s·a),      V*(s) = β·log Σ_a π_ref(a|s)·e^{Q*(s, a)/β},
    π*(a|s)  = π_ref(a|s)·e^{(Q*(s, a) − V*(s))/β}.

Along any string the per-step log-ratios telescope: β·Σ_t log π*/π_ref(a_t|s_t) = R(y) − V*(root),
and V*(root) = β·log Z_β, so the product of optimal token probabilities is the sequence-level
optimum π_ref·e^{R/β}/Z_β exactly (``tb.claims``: ``sequence.token_product_equals_target``).
Every function returns ``[P, …]`` for scalar β and ``[B, P, …]`` for ``[B]`` β, float64; actions
the tree does not allow hold −inf (log-probs, Q).
"""
from __future__ import annotations

import math

import torch

from .reverse_kl import _beta_axis, _needs_reward


def _sequence_space(prob):
    space = prob.space
    if not hasattr(space, "prefixes"):
        raise ValueError(f"token-level optima need a SequenceSpace; the problem's space is {space!r}")
    return space


def step_rewards(prob) -> torch.Tensor:
    """r(s, a) ``[P, N, A]``: the problem's ``token_reward``, or its sequence reward R(y) paid on
    each string's EOS step (0 elsewhere); −inf where the tree forbids the action."""
    space = _sequence_space(prob)
    reward = _needs_reward(prob)
    if prob.token_reward is not None:
        table = prob.token_reward.clone()
    else:
        table = torch.zeros(prob.P, space.prefixes, space.actions, dtype=torch.float64)
        table[:, space.response_prefix, space.eos] = reward
    return table.masked_fill(~space.allowed, -math.inf)


def soft_values(prob, beta) -> tuple[torch.Tensor, torch.Tensor]:
    """(Q*, V*): ``[P, N, A]`` and ``[P, N]`` (``[B, …]`` for ``[B]`` β), by backward recursion
    over depth, in log space (V*/β is a logsumexp)."""
    space = _sequence_space(prob)
    beta = _beta_axis(beta)                                              # [] or [B, 1, 1]
    ref_token = space.token_logp(prob.ref_logp)                          # [P, N, A]
    reward = step_rewards(prob)
    runs = () if beta.ndim == 0 else (beta.shape[0],)
    value = torch.zeros(*runs, prob.P, space.prefixes, dtype=torch.float64)
    q = torch.full((*runs, prob.P, space.prefixes, space.actions), -math.inf, dtype=torch.float64)
    child = space.child
    for depth in range(space.max_len, -1, -1):
        level = slice(space.offsets[depth], space.offsets[depth + 1])
        q_level = reward[:, level].expand(*runs, -1, -1, -1).clone()
        if depth < space.max_len:
            q_level[..., : space.vocab] = q_level[..., : space.vocab] + value[..., child[level]]
        q[..., level, :] = q_level
        scaled = torch.logsumexp(ref_token[:, level] + q_level / beta[..., None], -1)
        value[..., level] = beta * scaled
    return q, value


def token_policy(prob, beta) -> torch.Tensor:
    """log π*(a|s) = log π_ref(a|s) + (Q*(s,a) − V*(s))/β, ``[P, N, A]``; −inf on forbidden actions."""
    space = _sequence_space(prob)
    q, value = soft_values(prob, beta)
    beta = _beta_axis(beta)
    logp = space.token_logp(prob.ref_logp) + (q - value[..., None]) / beta[..., None]
    return logp.masked_fill(~space.allowed, -math.inf)


def token_target(prob, beta) -> torch.Tensor:
    """The sequence table Σ_t log π*(a_t|s_t) ``[P, Y]``: equal to ``reverse_kl(prob, beta)``."""
    return _sequence_space(prob).sequence_sum(token_policy(prob, beta))
