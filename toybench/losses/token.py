"""Token-level and length-aware losses on a ``SequenceSpace``: ``ld_dpo``, ``autoregressive_dpo``,
``token_dpo``, ``d3po``.

Symbols: a string y has T(y) = |y| + 1 steps (its ordinary tokens, then EOS); step t has context
s_t and token a_t; δ_t(y) = log π_θ(a_t|s_t) − log π_ref(a_t|s_t) is the token log-ratio
(δ = 0 on padding after EOS, a design choice for comparing strings of unequal length);
g(y) = Σ_t δ_t(y) the sequence log-ratio; sp(t) = log(1 + e^t).

**Token views.** These losses read ``chosen_token_logratio`` / ``rejected_token_logratio``
(``[B, N, T]``, δ per step) and ``chosen_steps`` / ``rejected_steps`` (``[B, N]``, T(y)).
``toybench.objective`` builds them from the policy's table ``[B, P, Y]`` through the exact
factorisation of any distribution over strings along the prefix tree
(``SequenceSpace.token_logp``), so every policy, tabular or not, gets the same views and the
gradient flows through the whole table (train these losses by autograd through
``objective``; ``input_grads`` raises, since ∂L/∂ℓ_w alone would miss the token terms).
A flat space has no tokens: ``required_inputs`` raises a ValueError saying a ``SequenceSpace``
is needed.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .._checks import check_positive, check_range
from .._numerics import run_axis, softplus
from ..spaces import SequenceSpace
from ._targets import is_zero, potential_target
from .base import Loss, register

TOKEN_INPUTS = ("chosen_token_logratio", "rejected_token_logratio", "chosen_steps", "rejected_steps")


def token_inputs(pairs, runs: int, logp: torch.Tensor) -> dict:
    """The four token views of every record (see the module docstring), from the policy table."""
    prob = pairs.problem
    space = prob.space
    device = logp.device
    policy_token = space.token_logp(logp)                                          # [B, P, N, A]
    ref_token = space.token_logp(prob.ref_logp.to(device=device, dtype=logp.dtype))[None]
    mask = space.step_mask.to(device)
    index = (space.step_prefix * space.actions + space.tokens).to(device)         # [Y, T]
    views = {}
    for side, responses in (("chosen", pairs.chosen), ("rejected", pairs.rejected)):
        responses = responses.to(device)
        prompts = pairs.prompt.to(device)
        flat = (prompts[..., None] * (space.prefixes * space.actions) + index[responses])   # [R, N, T]

        def gather(table, flat=flat):
            rows = max(table.shape[0], flat.shape[0])
            taken = table.reshape(table.shape[0], -1).expand(rows, -1).gather(1, flat.reshape(flat.shape[0], -1)
                                                                              .expand(rows, -1))
            return taken.reshape(rows, *flat.shape[1:])

        step_mask = mask[responses]
        delta = torch.where(step_mask, gather(policy_token) - gather(ref_token), 0.0)
        views[f"{side}_token_logratio"] = delta.expand(runs, -1, -1)
        views[f"{side}_steps"] = space.steps.to(device=device, dtype=logp.dtype)[responses].expand(runs, -1)
    return views


class TokenLoss(Loss):
    """Shared protocol of the token-level losses (see the module docstring). ``needs_table``: the
    per-record inputs depend on the whole table ``[B, P, Y]``, so a trainer takes ∂L/∂log π by
    autograd of ``toybench.objective`` rather than from ``input_grads``."""

    needs = TOKEN_INPUTS
    needs_table = True

    def required_inputs(self, space):
        if not isinstance(space, SequenceSpace):
            raise ValueError(f"loss {self.name!r} is token-level and needs a SequenceSpace (per-token views); "
                             f"got {space!r}")
        return self.needs

    def input_grads(self, *args, **inputs):
        raise ValueError(f"loss {self.name!r} is token-level: its gradient flows through the per-token views of "
                         "the whole table; differentiate toybench.objective with autograd")


def _segment_sums(delta: torch.Tensor, steps: torch.Tensor, segments: int) -> torch.Tensor:
    """S_i = Σ of δ_t over the i-th of ``segments`` near-equal parts of each string's T steps:
    step t belongs to segment ⌊t·m/T⌋ (parts of ⌊T/m⌋ or ⌈T/m⌉ steps; empty parts when T < m)."""
    T = delta.shape[-1]
    position = torch.arange(T, device=delta.device, dtype=delta.dtype)
    segment = torch.floor(position * segments / steps[..., None]).clamp_max(segments - 1)   # [B, N, T]
    members = segment[..., None] == torch.arange(segments, device=delta.device, dtype=delta.dtype)
    return (delta[..., None] * members).sum(-2)                                            # [B, N, m]


@register
@dataclass(frozen=True)
class LDDPO(TokenLoss):
    """LD-DPO (length-desensitised DPO): DPO on ℓ̃, the log-prob with the tail beyond the shared
    length down-weighted by α:

        l_p = min(T(y_w), T(y_l)),  g̃(y) = Σ_{t < l_p} δ_t(y) + α·Σ_{t ≥ l_p} δ_t(y),
        L = sp(−β(g̃(y_w) − g̃(y_l))).

    α = 1 is DPO, α = 0 masks the longer string's tail. ℓ̃ is applied to policy and reference
    alike (TRL v1.9 ``ld_alpha`` with the reference included; v0.28 applied it to the policy
    only — not offered). Steps count EOS (TRL's completion tokens). A pair-dependent score:
    the optimum is numeric and, for α < 1 with unequal lengths, not π*_β (measured in the claims).
    α default 0.5: convention chosen here (the paper's default was not found).
    Source: Liu et al., arXiv 2409.06411 (LD-DPO); TRL DPOTrainer ``ld_alpha``. Evidence: code."""

    beta: float = 0.1
    alpha: float = 0.5

    name = "ld_dpo"
    citation = "Liu et al., arXiv 2409.06411 (LD-DPO); TRL DPOTrainer ld_alpha"
    evidence = "code"
    target_kind = "numeric"
    family = "non_proper"
    convex = False

    def validate(self):
        check_positive(self.beta, "beta")
        check_range(self.alpha, "alpha", low=0.0, high=1.0, allowed="0 <= alpha <= 1 (1 is DPO)")

    def per_record(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **inputs):
        chosen, rejected = inputs["chosen_token_logratio"], inputs["rejected_token_logratio"]
        shared = torch.minimum(inputs["chosen_steps"], inputs["rejected_steps"])[..., None]
        position = torch.arange(chosen.shape[-1], device=chosen.device, dtype=chosen.dtype)
        alpha = self.hp("alpha", shared)
        weight = torch.where(position < shared, torch.ones_like(position), alpha)
        margin = (weight * (chosen - rejected)).sum(-1)
        return softplus(-self.hp("beta", margin) * margin)

    def target(self, prob, noise=0.0):
        """α = 1 (DPO) with BT, clean labels: π*_β; else None (numeric)."""
        if prob.reward is None or not is_zero(noise) or not bool((torch.as_tensor(self.alpha) == 1).all()):
            return None
        return potential_target(prob, prob.reward / run_axis(self.beta, "beta"))


@register
@dataclass(frozen=True)
class AutoregressiveDPO(TokenLoss):
    """Autoregressive DPO (ADPO-AR): a Bradley–Terry comparison per feedback segment,

        L = −Σ_{i=1}^{m} log σ(β(S_i(y_w) − S_i(y_l))),   S_i = Σ_{t in segment i} δ_t.

    ``segments`` = m ≥ 1: the adaptive family, m near-equal segments per string (``_segment_sums``),
    segment i of y_w against segment i of y_l; m = 1 is DPO. ``segments = 0``: token granularity,
    one term per position t < max(T(y_w), T(y_l)), the shorter string padded with δ = 0 (the
    static family with windows of one token). Positions in a shared prefix compare the same token
    in the same context: each such term is exactly log 2 with zero gradient. Under response-level
    BT labels the optimum is numeric and not π*_β for token granularity (a depth-2 instance in
    the claims). The segment conventions (near-equal parts, padding with δ = 0) are choices made
    here; the paper's formulas are known from summaries only.
    Source: Oi, Ukai, Kaneko, Okazaki, Inoue, arXiv 2602.09533 (Table 1, Prop. 1, Cor. 1).
    Evidence: secondary, derived."""

    beta: float = 0.1
    segments: int = 0

    name = "autoregressive_dpo"
    citation = "Oi et al., arXiv 2602.09533 (Table 1; Prop. 1; Cor. 1)"
    evidence = "secondary, derived"
    target_kind = "numeric"
    family = "non_proper"
    convex = False

    def validate(self):
        check_positive(self.beta, "beta")
        if isinstance(self.segments, bool) or not isinstance(self.segments, int) or self.segments < 0:
            raise ValueError(f"segments must be an integer >= 0 (0 = one term per token, m >= 1 = m segments), "
                             f"got {self.segments!r}")

    def segment_gaps(self, inputs) -> torch.Tensor:
        """S_i(y_w) − S_i(y_l) ``[B, N, m]`` (m = T for token granularity)."""
        chosen, rejected = inputs["chosen_token_logratio"], inputs["rejected_token_logratio"]
        if self.segments == 0:
            return chosen - rejected
        return (_segment_sums(chosen, inputs["chosen_steps"], self.segments)
                - _segment_sums(rejected, inputs["rejected_steps"], self.segments))

    def per_record(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **inputs):
        gaps = self.segment_gaps(inputs)
        if self.segments == 0:     # only positions where some string still has a step
            live = torch.arange(gaps.shape[-1], device=gaps.device) < torch.maximum(
                inputs["chosen_steps"], inputs["rejected_steps"])[..., None]
            return torch.where(live, softplus(-self.hp("beta", gaps) * gaps), 0.0).sum(-1)
        return softplus(-self.hp("beta", gaps) * gaps).sum(-1)

    def target(self, prob, noise=0.0):
        """m = 1 (DPO) with BT, clean labels: π*_β; else None (numeric)."""
        if self.segments != 1 or prob.reward is None or not is_zero(noise):
            return None
        return potential_target(prob, prob.reward / run_axis(self.beta, "beta"))


@register
@dataclass(frozen=True)
class TokenDPO(TokenLoss):
    """DPO as token-level soft Q-learning ("from r to Q*"): the DPO loss written on token log-ratios,

        L = sp(−β Σ_t (δ_t(y_w) − δ_t(y_l))),

    identical per record to DPO (Σ_t δ_t = g). In the token MDP with soft-Bellman values
    (``tb.optima.soft_values``), its optimum π*_β has per-token implicit rewards
    β·δ_t = r(s_t, a_t) + V*(s_{t+1}) − V*(s_t) = Q*(s_t, a_t) − V*(s_t) (claims
    ``token_dpo.*``). Target: π*_β (a logit link on g). Source: Rafailov, Hejna, Park, Finn,
    arXiv 2404.12358 (§4, Eq. 8–11). Evidence: unverified (paper), derived."""

    beta: float = 0.1

    name = "token_dpo"
    citation = "Rafailov, Hejna, Park, Finn, arXiv 2404.12358 (§4, Eq. 8-11)"
    evidence = "unverified, derived"
    target_kind = "closed"
    family = "logit_link"
    convex = True

    def per_record(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **inputs):
        margin = (inputs["chosen_token_logratio"] - inputs["rejected_token_logratio"]).sum(-1)
        return softplus(-self.hp("beta", margin) * margin)

    def target(self, prob, noise=0.0):
        """BT, clean labels: π*_β per comparison component; else None."""
        if prob.reward is None or not is_zero(noise):
            return None
        return potential_target(prob, prob.reward / run_axis(self.beta, "beta"))


@register
@dataclass(frozen=True)
class D3PO(TokenLoss):
    """D3PO's per-step DPO with each step a token: the mean over the steps of the longer string of
    a DPO term on the step's token log-ratios,

        L = (1/T') Σ_{t < T'} sp(−β(δ_t(y_w) − δ_t(y_l))),   T' = max(T(y_w), T(y_l)),

    (D3PO draws the step t uniformly from a denoising chain; here the chain is the string, the
    shorter one padded with δ = 0). Equal lengths: token-level ADPO divided by T', the same
    minimiser; one-token strings: DPO with a constant log 2 EOS term, minimiser π*_β.
    Otherwise numeric. Source: Yang et al., arXiv 2311.13231 (D3PO, Eq. 11); the token reading
    is a transcription made here. Evidence: paper: abstract, derived."""

    beta: float = 0.1

    name = "d3po"
    citation = "Yang et al., arXiv 2311.13231 (D3PO, per-step DPO loss); tokens as steps"
    evidence = "paper: abstract, derived"
    target_kind = "numeric"
    family = "non_proper"
    convex = False
    reconstruction = True

    def per_record(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **inputs):
        gaps = inputs["chosen_token_logratio"] - inputs["rejected_token_logratio"]
        horizon = torch.maximum(inputs["chosen_steps"], inputs["rejected_steps"])
        live = torch.arange(gaps.shape[-1], device=gaps.device) < horizon[..., None]
        terms = torch.where(live, softplus(-self.hp("beta", gaps) * gaps), 0.0)
        return terms.sum(-1) / horizon

    def target(self, prob, noise=0.0):
        """One-token strings (max_len 1), BT, clean labels: π*_β; else None."""
        if prob.reward is None or not is_zero(noise) or getattr(prob.space, "max_len", None) != 1:
            return None
        return potential_target(prob, prob.reward / run_axis(self.beta, "beta"))

