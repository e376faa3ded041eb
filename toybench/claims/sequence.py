"""Claims on sequence spaces: the token-level (soft-Bellman) form of the reverse-KL optimum and the
token-level losses (``ld_dpo``, ``autoregressive_dpo``, ``token_dpo``, ``d3po``), and likelihood
displacement (tabular vs shared parameters, squeezing).

Distances are total variation (``tv``, prompt-averaged) or maxima of |log π − log π'|, in float64;
"certified best" is ``tb.fit_best`` over ``AutoregressiveTabular`` (gradient norm ≤ 1e-8).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .. import displacement, losses, optima
from ..autoregressive import AutoregressiveTabular
from ..fit_best import fit_best
from ..objective import call_loss, record_inputs
from ..pairs import Pairs, population
from ..policies import Tabular
from ..problem import Problem
from ..solve import solve
from ..spaces import FlatSpace, SequenceSpace
from .core import tv
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


# ------------------------------------------------------------------------------ token-level losses
def depth2_tree() -> Problem:
    """The fixed-length tree aa, ab, ba, bb (min_len = max_len = 2, EOS forced), uniform π_ref,
    r = (1, 0, 0.5, −1), uniform pair law, soft BT labels."""
    space = SequenceSpace(2, 2, min_len=2)
    ref = torch.full((1, 4), -math.log(4), dtype=torch.float64)
    reward = torch.tensor([[1.0, 0.0, 0.5, -1.0]], dtype=torch.float64)
    return Problem(space, ref, reward=reward, pair_dist="uniform")


def random_sequence_problem(vocab=2, max_len=3, seed=3) -> Problem:
    return Problem.random(SequenceSpace(vocab, max_len), seed=seed, pair_dist="uniform")


def random_policy_table(prob, seed=0) -> torch.Tensor:
    """A random float64 sequence table [1, P, Y] (N(0, 1) logits)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.log_softmax(torch.randn(1, prob.P, prob.Y, generator=gen, dtype=torch.float64), -1)


def per_record_gap(loss_a, loss_b, prob) -> float:
    """max |L_a − L_b| over every population record at a random policy table."""
    table, pairs = random_policy_table(prob), population(prob)
    first = call_loss(loss_a, record_inputs(loss_a, table, pairs))
    second = call_loss(loss_b, record_inputs(loss_b, table, pairs))
    return (first - second).abs().max().item()


def class_best(prob, loss) -> torch.Tensor:
    """The certified best AutoregressiveTabular policy (one start at π_ref), ``[P, Y]``."""
    fit = fit_best(AutoregressiveTabular(prob), loss, population(prob), starts=1, simplex=False)
    if not fit.certified:
        raise ValueError(f"fit_best did not certify its point (gradient norm {fit.grad_norm:.3g})")
    return fit.logp


@claim("autoregressive_dpo.m1_equals_dpo",
       citation="Oi et al., arXiv 2602.09533, Cor. 1 (one feedback segment is DPO)",
       assumptions="SequenceSpace(2, 3), random π_ref, reward and policy table, β = 0.5, every population record",
       tolerance=1e-12)
def adpo_m1_equals_dpo() -> float:
    """Autoregressive DPO with one segment per string equals DPO on every record (max |ΔL|)."""
    return per_record_gap(losses.make("autoregressive_dpo", beta=0.5, segments=1), losses.make("dpo", beta=0.5),
                          random_sequence_problem())


@claim("autoregressive_dpo.shared_prefix_inert",
       citation="Oi et al., arXiv 2602.09533, Table 1 (token-level loss); derived: a shared (context, token) "
                "step has δ_w = δ_l",
       assumptions="SequenceSpace(2, 3), random policy table, token granularity, every record whose strings "
                   "share a first token",
       tolerance=1e-14)
def adpo_shared_prefix_inert() -> float:
    """Every position inside a shared prefix contributes exactly log 2 whatever the policy (max |term − log 2|)."""
    prob = random_sequence_problem()
    loss = losses.make("autoregressive_dpo", beta=0.5)
    pairs = population(prob)
    terms = F.softplus(-0.5 * loss.segment_gaps(record_inputs(loss, random_policy_table(prob), pairs)))[0]
    space = prob.space
    chosen, rejected = space.tokens[pairs.chosen[0]], space.tokens[pairs.rejected[0]]
    shared = torch.cumprod((chosen == rejected).to(torch.int64), -1).bool()      # same tokens so far
    if not shared.any():
        raise ValueError("no record shares a prefix")
    return (terms[shared] - math.log(2)).abs().max().item()


@claim("autoregressive_dpo.token_level_not_pistar",
       citation="Oi et al., arXiv 2602.09533 (prefix-wise BT model, Prop. 1); derived: under response-level BT "
                "labels the token-level optimum is (0.45153, 0.20144, 0.29801, 0.04902), not π*",
       assumptions="depth-2 tree aa, ab, ba, bb, uniform π_ref, r = (1, 0, 0.5, −1), β = 1, uniform pair law, "
                   "soft BT labels; certified best AutoregressiveTabular policy",
       tolerance=0.01, comparison=">=")
def adpo_token_level_not_pistar() -> float:
    """Token-level autoregressive DPO trained on response-level BT preferences does not recover π*_β (TV)."""
    prob = depth2_tree()
    return tv(class_best(prob, losses.make("autoregressive_dpo", beta=1.0)), optima.reverse_kl(prob, 1.0))


@claim("ld_dpo.alpha1_equals_dpo",
       citation="Liu et al., arXiv 2409.06411 (α = 1 recovers DPO)",
       assumptions="SequenceSpace(2, 3), random π_ref, reward and policy table, β = 0.5, every population record",
       tolerance=1e-12)
def ld_dpo_alpha1_equals_dpo() -> float:
    """LD-DPO with α = 1 equals DPO on every record (max |ΔL|)."""
    return per_record_gap(losses.make("ld_dpo", beta=0.5, alpha=1.0), losses.make("dpo", beta=0.5),
                          random_sequence_problem())


@claim("ld_dpo.off_pistar_with_unequal_lengths",
       citation="Liu et al., arXiv 2409.06411; derived: the score depends on the pair's shared length",
       assumptions="SequenceSpace(2, 3) (lengths 1–3), random π_ref and reward (seed 3), uniform pair law, β = 1, "
                   "α = 0.5; certified best AutoregressiveTabular policy",
       tolerance=1e-3, comparison=">=")
def ld_dpo_off_pistar() -> float:
    """With α < 1 and strings of unequal length, LD-DPO's optimum is not π*_β (TV)."""
    prob = random_sequence_problem()
    return tv(class_best(prob, losses.make("ld_dpo", beta=1.0, alpha=0.5)), optima.reverse_kl(prob, 1.0))


@claim("token_dpo.equals_dpo",
       citation="Rafailov, Hejna, Park, Finn, arXiv 2404.12358, §4 (Σ_t δ_t = sequence log-ratio)",
       assumptions="SequenceSpace(2, 3), random π_ref, reward and policy table, β = 0.5, every population record",
       tolerance=1e-12)
def token_dpo_equals_dpo() -> float:
    """DPO written on token log-ratios is DPO, record by record (max |ΔL|)."""
    return per_record_gap(losses.make("token_dpo", beta=0.5), losses.make("dpo", beta=0.5), random_sequence_problem())


@claim("token_dpo.implicit_token_reward_is_advantage",
       citation="Rafailov, Hejna, Park, Finn, arXiv 2404.12358, §4–5 (β log π*/π_ref(a|s) = Q*(s, a) − V*(s))",
       assumptions="SequenceSpace(3, 3), per-token N(0, 1) rewards, random π_ref, 2 prompts, β = 0.7, π_ref ⊗ π_ref "
                   "pairs; the sequence-level DPO minimiser from tb.solve, factorised along the prefix tree",
       tolerance=1e-6)
def token_dpo_implicit_reward() -> float:
    """At DPO's population optimum each token's β·log-ratio is the soft advantage Q*(s, a) − V*(s) (max error)."""
    prob = random_token_problem(seed=4).replace(pair_dist="ref")
    beta = 0.7
    solved = solve(losses.make("dpo", beta=beta), population(prob)).logp
    space = prob.space
    implicit = beta * (space.token_logp(solved) - space.token_logp(prob.ref_logp))
    q, value = optima.soft_values(prob, beta)
    return (implicit - (q - value[..., None]))[:, space.allowed].abs().max().item()


@claim("d3po.one_token_reaches_pistar",
       citation="Yang et al., arXiv 2311.13231 (D3PO); derived: with one token per string only the token step "
                "carries a gradient (the forced EOS step is a constant log 2)",
       assumptions="SequenceSpace(3, 1), random π_ref and reward, uniform pair law, β = 1; certified best "
                   "AutoregressiveTabular policy",
       tolerance=1e-6)
def d3po_one_token() -> float:
    """Per-token DPO on one-token strings recovers π*_β (TV)."""
    prob = random_sequence_problem(vocab=3, max_len=1)
    return tv(class_best(prob, losses.make("d3po", beta=1.0)), optima.reverse_kl(prob, 1.0))


@claim("d3po.equal_lengths_match_token_adpo",
       citation="Yang et al., arXiv 2311.13231; Oi et al., arXiv 2602.09533; derived: at equal lengths d3po is "
                "token-level ADPO divided by the constant T",
       assumptions="depth-2 tree aa, ab, ba, bb (as autoregressive_dpo.token_level_not_pistar), β = 1",
       tolerance=1e-6)
def d3po_equal_lengths() -> float:
    """With strings of equal length, d3po and token-level ADPO have the same optimum (TV)."""
    prob = depth2_tree()
    return tv(class_best(prob, losses.make("d3po", beta=1.0)),
              class_best(prob, losses.make("autoregressive_dpo", beta=1.0)))


# ------------------------------------------------------------------------------ likelihood displacement
@claim("displacement.tabular_never_lowers_chosen",
       citation="Razin et al., arXiv 2410.08847 (displacement needs shared parameters); derived: with a free logit "
                "per response one DPO record moves the logits along e_w − e_l, which raises log π(w) at any step size",
       assumptions="Tabular policy, 5 responses, 3 prompts with random π_ref, one record per prompt, DPO β = 1, "
                   "float64; SGD lr ∈ {0.1, 1, 10} and Adam lr 0.1, 200 full-batch steps each",
       tolerance=-1e-12, comparison=">=")
def tabular_never_lowers_chosen() -> float:
    """On a tabular policy DPO raises the chosen response's log-prob at every step (min per-step change)."""
    prob = Problem.random(FlatSpace(5), prompts=3, seed=6)
    pairs = Pairs.from_records(prob, [(0, 1, 3), (1, 4, 0), (2, 2, 1)])
    worst = math.inf
    for optimizer, lr in (("sgd", 0.1), ("sgd", 1.0), ("sgd", 10.0), ("adam", 0.1)):
        policy = Tabular(prob, dtype=torch.float64)
        snapshots, _ = displacement.trajectory(policy, losses.make("dpo", beta=1.0), pairs, 200, lr, optimizer)
        chosen = snapshots[:, 0, pairs.prompt[0], pairs.chosen[0]]                 # [S, records]
        worst = min(worst, (chosen[1:] - chosen[:-1]).min().item())
    return worst


@claim("displacement.shared_parameters_lower_chosen",
       citation="Razin et al., arXiv 2410.08847, Thm. 2 (d/dt ln π(z) ∝ ⟨W_z, W_{y+} − W_{y−}⟩ + const)",
       assumptions="LogLinear: fixed unembeddings φ_w = (1, 0.1), φ_l = (1, −0.1), φ_z = (0, 1), trainable hidden "
                   "h = 0, base log(0.6, 0.3, 0.1) = log π_ref; one record w ≻ l; DPO β = 1, SGD lr 0.1, 500 steps",
       tolerance=0.1, comparison=">=")
def shared_parameters_lower_chosen() -> float:
    """With shared parameters DPO lowers the chosen response's probability (measured drop π_0(w) − π_500(w))."""
    policy, loss, pairs = displacement.razin_construction()
    snapshots, _ = displacement.trajectory(policy, loss, pairs, 500, lr=0.1)
    return (snapshots[0, 0, 0, 0].exp() - snapshots[-1, 0, 0, 0].exp()).item()


@claim("displacement.autoregressive_squeezing",
       citation="Ren & Sutherland, arXiv 2407.10490 (squeezing: a negative gradient raises the most likely other "
                "label); derived: at a context only the rejected string visits, DPO acts as a pure negative push",
       assumptions="AutoregressiveTabular on SequenceSpace(3, 2), random π_ref, one record ab ≻ cb, DPO β = 1, "
                   "SGD lr 0.5, 50 steps, float64; context 'c', token b pushed down",
       tolerance=0.0, comparison=">=")
def autoregressive_squeezing() -> float:
    """At a context only the rejected string visits, the most likely token other than the pushed one gains
    at every step (min per-step gain)."""
    space = SequenceSpace(3, 2)
    prob = Problem.random(space, seed=2)
    pairs = Pairs.from_records(prob, [(0, space.index([0, 1]), space.index([2, 1]))])
    policy = AutoregressiveTabular(prob, dtype=torch.float64)
    snapshots, _ = displacement.trajectory(policy, losses.make("dpo", beta=1.0), pairs, 50, lr=0.5)
    context = int(space.child[0, 2])
    others = space.token_logp(snapshots[:, 0, 0])[:, context].exp()              # [S, A]
    others[:, 1] = -1.0                                                          # the pushed token b
    top = others[:-1].argmax(-1)
    return (others[1:].gather(1, top[:, None]) - others[:-1].gather(1, top[:, None])).min().item()
