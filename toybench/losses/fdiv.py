"""f-divergence losses (docs/losses.md): ``fdpo``, ``fpo``, ``exo``.

Two different uses of an f-divergence. In **f-DPO** it is the regulariser D_f(π ‖ π_ref) and
reverse KL gives DPO. In **f-PO / EXO** it matches the model's distribution q over a list of
responses to a target t, D_f(q ‖ t) = Σ_i t_i·f(q_i/t_i): forward KL (cross-entropy) gives DPO,
reverse KL gives EXO.

Symbols: g = ℓ − ℓ_ref (sequence log-ratio), u = e^g = π/π_ref, Δ = g_w − g_l, z = β·Δ,
sp(t) = log(1 + e^t), σ the sigmoid. For a pair, q = (σ(z), σ(−z)) = softmax(β·(g_w, g_l)).

List modes (``fpo(mode="exact")``, ``exo(mode="list")``), convention chosen here: the authors'
K-response estimator with true-reward targets t = softmax(r/β_r), applied to each record's two
responses (K = 2), because a record holds one pair. The rewards come from the per-record inputs
``chosen_reward``/``rejected_reward`` (``with_rewards(pairs)`` adds them from the problem's BT
reward). The loss is symmetric in the two responses, so labels do not matter, and per pair it is
minimised at q = t, i.e. β·Δ = (r_w − r_l)/β_r: the population minimiser is
π_ref·e^{r/(β·β_r)}/Z for any connected pair law, the same as with K = |Y|.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from .._checks import check_choice, check_positive, check_range
from .._numerics import Z_CAP, exp_difference, log_sigmoid, per_component, run_axis, softplus
from ..graph import component_labels
from ..optima.fdiv import DIVERGENCES, target_within
from ._targets import is_zero, potential_target
from .base import Loss, register
from .bregman import by_fields

MATCHING_DIVERGENCES = ("alpha", "reverse_kl", "forward_kl", "js", "jeffreys", "hellinger")
REWARD_INPUTS = ("chosen_reward", "rejected_reward")


def with_rewards(pairs):
    """``pairs`` plus the per-record inputs ``chosen_reward``/``rejected_reward`` (r of each record's
    two responses, from the problem's BT reward) that the list modes of ``fpo``/``exo`` read."""
    reward = pairs.problem.reward
    if reward is None:
        raise ValueError("with_rewards needs a Bradley–Terry reward; the problem has a general preference matrix")
    return pairs.with_fields(chosen_reward=reward[pairs.prompt, pairs.chosen],
                             rejected_reward=reward[pairs.prompt, pairs.rejected])


# ------------------------------------------------------------------------------ f-DPO
def _score(g, divergence: str, alpha):
    """f-DPO's per-response score S = f′(u) with constants dropped (authors' code and TRL v1.9);
    for forward_kl and alpha S = −e^{−a·g}/a (a = 1, α), which ``_scaled_score_gap`` never forms."""
    if divergence == "reverse_kl":
        return g
    return log_sigmoid(g)


def _log_score_slope(g, divergence: str, alpha):
    """log dS/dg: 0, −g, −α·g, log σ(−g) for reverse_kl, forward_kl, alpha, js."""
    if divergence == "reverse_kl":
        return torch.zeros_like(g)
    if divergence == "forward_kl":
        return -g
    if divergence == "alpha":
        return -alpha * g
    return log_sigmoid(-g)


def _scaled_score_gap(chosen_g, rejected_g, beta, divergence: str, alpha, cap=Z_CAP):
    """z = β·(S(g_w) − S(g_l)). For the exponential scores, z = (β/a)·(e^{−a·g_l} − e^{−a·g_w})
    from ``exp_difference`` (no inf − inf), positive values capped at ``cap`` (the value path caps
    at ``Z_CAP``; the closed-form gradient needs the uncapped z)."""
    if divergence in ("reverse_kl", "js"):
        return beta * (_score(chosen_g, divergence, alpha) - _score(rejected_g, divergence, alpha))
    rate = alpha if divergence == "alpha" else 1.0
    log_scale = torch.log(torch.as_tensor(beta / rate, dtype=chosen_g.dtype, device=chosen_g.device))
    return exp_difference(-rate * rejected_g, -rate * chosen_g, log_scale, cap)


@register
@dataclass(frozen=True)
class FDPO(Loss):
    """f-DPO: L = sp(−β·[f′(u_w) − f′(u_l)]), the DPO loss on the score S = f′(u):

    | divergence  | S(g) (constant dropped) |
    |-------------|-------------------------|
    | reverse_kl  | g        (= DPO)        |
    | forward_kl  | −e^{−g}                 |
    | alpha       | −e^{−αg}/α, 0 < α < 1   |
    | js          | log σ(g)                |

    ``alpha`` is the paper's α (α → 0 reverse KL, α → 1 forward KL) and is read only by
    ``divergence="alpha"``. TRL ≥ v0.29 (``f_alpha_divergence_coef`` a, score e^{(a−1)g}/(a−1))
    uses a = 1 − α; TRL v0.28 used a = α. A logit link on S (G1 in docs/losses.md): the minimiser is the
    f-regularised optimum π_ref·(f′)⁻¹((r − λ)/β) (``toybench.optima.fdiv.fdpo_target``), for any
    connected pair law, and differs from π*_β except for reverse KL. Defaults: β 0.1, reverse_kl
    (TRL's defaults), α 0.5 (TRL's self-dual default). Source: Wang, Jiang, Yang, Liu, Chen,
    arXiv 2309.16240 (paper not read; formula from ``alecwangcq/f-divergence-dpo`` @ 07d9369f
    ``trainers.py`` and TRL). Evidence: code, derived."""

    beta: float = 0.1
    divergence: str = "reverse_kl"
    alpha: float = 0.5

    name = "fdpo"
    citation = "Wang et al., arXiv 2309.16240 (f-DPO); alecwangcq/f-divergence-dpo trainers.py"
    evidence = "code, derived"
    target_kind = "closed"
    family = "logit_link"
    convex = by_fields(True, lambda loss: loss.divergence == "reverse_kl")

    def validate(self):
        check_positive(self.beta, "beta")
        check_choice(self.divergence, "divergence", DIVERGENCES)
        check_range(self.alpha, "alpha", low=0.0, high=1.0, low_open=True, high_open=True,
                    allowed="0 < alpha < 1 (the paper's α; TRL >= v0.29's coefficient is 1 - alpha)")

    def _margin(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, cap=Z_CAP):
        alpha = self.hp("alpha", chosen_logp)
        chosen_g, rejected_g = chosen_logp - ref_chosen_logp, rejected_logp - ref_rejected_logp
        z = _scaled_score_gap(chosen_g, rejected_g, self.hp("beta", chosen_logp), self.divergence, alpha, cap)
        return chosen_g, rejected_g, z

    def per_record(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp):
        *_, z = self._margin(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp)
        return softplus(-z)

    def input_grads(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp):
        """(−β·σ(−z)·S′(g_w), β·σ(−z)·S′(g_l)), closed form, each product formed as one
        exponential of log σ(−z) + log S′(g) (finite where S′ alone would overflow)."""
        chosen_g, rejected_g, z = self._margin(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp,
                                               cap=math.inf)
        alpha, beta = self.hp("alpha", chosen_logp), self.hp("beta", chosen_logp)
        log_pull = log_sigmoid(-z)
        return (-beta * torch.exp(log_pull + _log_score_slope(chosen_g, self.divergence, alpha)),
                beta * torch.exp(log_pull + _log_score_slope(rejected_g, self.divergence, alpha)))

    def target(self, prob, noise=0.0):
        """π_ref·(f′)⁻¹((r − λ_C)/β) on each comparison component C, λ_C giving C its π_ref mass
        (one component: ``fdpo_target``). BT reward and clean labels (or the DID record law); else None."""
        if prob.reward is None or not is_zero(noise):
            return None
        alpha = run_axis(self.alpha, "alpha") if self.divergence == "alpha" else torch.tensor(1.0, dtype=torch.float64)
        value = prob.reward / run_axis(self.beta, "beta")
        def solve(inside, log_mass):
            weight = torch.where(inside, prob.ref_logp, -torch.inf)
            weight = torch.where(inside.any(-1, keepdim=True), weight, prob.ref_logp)  # placeholder rows, unused
            return target_within(weight, value, log_mass, self.divergence, alpha)

        return per_component(prob.ref_logp, component_labels(prob.pair_weights()), solve)


# ------------------------------------------------------------------------------ f-PO and EXO
def _matching_term(log_q, log_t, divergence: str, alpha):
    """t·f(q/t) for one response, from log q and log t (the f's of ``MATCHING_DIVERGENCES``)."""
    q, t = log_q.exp(), log_t.exp()
    if divergence == "alpha":      # f(u) = (u^{1−α} − (1−α)u − α)/(α(α−1))
        return (torch.exp((1 - alpha) * log_q + alpha * log_t) - (1 - alpha) * q - alpha * t) / (alpha * (alpha - 1))
    if divergence == "reverse_kl":  # f(u) = u log u − u + 1: KL(q ‖ t)
        return q * (log_q - log_t) - q + t
    if divergence == "forward_kl":  # f(u) = u − 1 − log u: KL(t ‖ q)
        return q - t - t * (log_q - log_t)
    if divergence == "js":          # f(u) = ½u log u − ((1+u)/2) log((1+u)/2)
        log_mix = torch.logaddexp(log_q, log_t) - math.log(2.0)
        return 0.5 * q * (log_q - log_t) - log_mix.exp() * (log_mix - log_t)
    if divergence == "jeffreys":    # f(u) = (u − 1) log u
        return (q - t) * (log_q - log_t)
    return q + t - 2 * torch.exp(0.5 * (log_q + log_t))  # hellinger: f(u) = (√u − 1)²


def _mass_times_slope(log_q, log_t, divergence: str, alpha):
    """q·f′(q/t) for one response, from log q and log t. f′ alone overflows as q/t → 0 (e.g.
    1 − t/q for forward_kl); times q every form is a difference of terms bounded by q and t."""
    q, t = log_q.exp(), log_t.exp()
    if divergence == "alpha":       # q·(1 − u^{−α})/α
        return (q - torch.exp((1 - alpha) * log_q + alpha * log_t)) / alpha
    if divergence == "reverse_kl":  # q·log u
        return q * (log_q - log_t)
    if divergence == "forward_kl":  # q·(1 − 1/u)
        return q - t
    if divergence == "js":          # q·½·(log u − log((1 + u)/2))
        return 0.5 * q * (log_q - (torch.logaddexp(log_q, log_t) - math.log(2.0)))
    if divergence == "jeffreys":    # q·(log u + 1 − 1/u)
        return q * (log_q - log_t) + q - t
    return q - torch.exp(0.5 * (log_q + log_t))  # hellinger: q·(1 − u^{−1/2})


@dataclass(frozen=True)
class _PairMatching(Loss):
    """Shared parts of ``fpo`` and ``exo``: q = (σ(z), σ(−z)), targets from ``eps`` or rewards.
    ``LIST_MODE`` names the subclass's list mode."""

    LIST_MODE: ClassVar[str] = ""

    @property
    def list_mode(self) -> bool:
        return self.mode == self.LIST_MODE

    def _z(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp):
        delta = (chosen_logp - ref_chosen_logp) - (rejected_logp - ref_rejected_logp)
        return self.hp("beta", delta) * delta

    def _log_targets(self, like, inputs):
        """(log t_w, log t_l): (log(1 − ε), log ε) in the pair mode, log σ(±(r_w − r_l)/β_r) in a list mode."""
        if self.list_mode:
            scaled = (inputs["chosen_reward"] - inputs["rejected_reward"]) / self.hp("beta_reward", like)
            return log_sigmoid(scaled), log_sigmoid(-scaled)
        eps = torch.as_tensor(self.hp("eps", like), dtype=like.dtype, device=like.device)
        return torch.log1p(-eps), torch.log(eps)

    def _validate_common(self, modes):
        check_positive(self.beta, "beta")
        check_positive(self.beta_reward, "beta_reward")
        check_choice(self.mode, "mode", modes)
        check_range(self.eps, "eps", low=0.0, high=0.5, low_open=True, high_open=True,
                    allowed="0 < eps < 0.5 (the pair target (1 - eps, eps); eps = 0 makes log eps = -inf)")

    def list_loss(self, logp, ref_logp, scores=None):
        """The list form for k ≥ 2 responses (the source's general case; a record is k = 2):
        q = softmax_i(β·g_i) over the list, t = softmax_i(ψ_i/β_r) from ``scores`` ψ (pass the true
        rewards, as the list modes do), L = Σ_i t_i·f(q_i/t_i) (``fpo``) or KL(q ‖ t) (``exo``),
        ``[B, N]`` from ``[B, N, k]``. Minimised on every list by q = t, i.e. π_ref·e^{r/(β·β_r)}/Z."""
        if scores is None:
            raise ValueError(f"{self.name}'s list form needs reward scores (Lists with scores)")
        gap = logp - ref_logp
        log_q = torch.log_softmax(self.hp("beta", gap) * gap, -1)
        log_t = torch.log_softmax(scores.to(gap) / self.hp("beta_reward", gap), -1)
        if self.name == "exo":
            return (log_q.exp() * (log_q - log_t)).sum(-1)
        return _matching_term(log_q, log_t, self.divergence, self.hp("alpha", gap)).sum(-1)

    def target(self, prob, noise=0.0):
        """List mode: π_ref·e^{r/(β·β_r)}/Z for any connected pair law and any label noise (the loss
        ignores labels; the reward inputs must be the problem's reward). Pair mode: None (a
        μ-dependent projection, G2)."""
        if not self.list_mode or prob.reward is None:
            return None
        return potential_target(prob, prob.reward / (run_axis(self.beta, "beta") * run_axis(self.beta_reward, "beta_reward")))


@register
@dataclass(frozen=True)
class FPO(_PairMatching):
    """f-PO: L = D_f(q ‖ t) = Σ_i t_i·f(q_i/t_i) over the record's two responses, q = (σ(z), σ(−z)).

    ``mode="pair"``: t = (1 − ε, ε) (the authors' code uses the unnormalised log-target (0, −10);
    here normalised, ε = ``eps``, default e^{−10}). ``mode="exact"``: t = softmax((r_w, r_l)/β_r)
    from true rewards (module docstring; the code also clamps log t ≥ −10, not applied here).
    Generators f (``divergence``): alpha (u^{1−α} − (1−α)u − α)/(α(α−1)), 0 < α < 1 (f-PO's
    "alphapo"; α → 1 forward KL / cross-entropy = DPO, α → 0 reverse KL = EXO); reverse_kl
    u log u − u + 1; forward_kl u − 1 − log u; js ½u log u − ((1+u)/2) log((1+u)/2) (mixture ½);
    jeffreys (u − 1) log u; hellinger (√u − 1)². ``alpha`` is read only by "alpha", ``eps`` only by
    the pair mode, ``beta_reward`` (β_r) only by the exact mode; ``beta`` is β_π (the code's
    ``beta_model``).

    Optima ([derived]): exact mode π_ref·e^{r/(β·β_r)}/Z for every f, μ-free. Pair mode, alpha:
    per pair z* = (1/α)·log(A/B), A = p(1−ε)^α + (1−p)ε^α, B = pε^α + (1−p)(1−ε)^α; ε → 0 gives
    logit(p)/α, i.e. π*_{αβ}; for ε > 0 a μ-dependent projection (not convex: ``solve``
    multi-starts). At the scripts' α = 0.1, ε = e^{−10}, ε^α = e^{−1} is not small (claim
    ``fpo.code_eps_not_negligible``). Defaults β = β_r = 0.5, α = 0.1 (``MinkaiXu/fPO``
    ``run/hh_pref.sh``). Source: Han, Jiang, Song, Ermon, Xu, arXiv 2410.21662 (AISTATS 2025;
    paper not read); ``MinkaiXu/fPO`` @ 1a356159 ``src/align_stage/loss.py`` ``fpo_loss``.
    Evidence: code, secondary, derived."""

    beta: float = 0.5
    divergence: str = "alpha"
    alpha: float = 0.1
    beta_reward: float = 0.5
    mode: str = "pair"
    eps: float = math.exp(-10.0)

    name = "fpo"
    citation = "Han et al., arXiv 2410.21662 (f-PO); MinkaiXu/fPO src/align_stage/loss.py fpo_loss"
    evidence = "code, secondary, derived"
    target_kind = by_fields("projection", lambda loss: "closed" if loss.mode == "exact" else "projection")
    family = by_fields("non_proper", lambda loss: "logit_link" if loss.mode == "exact" else "non_proper")
    convex = False
    needs = by_fields((), lambda loss: REWARD_INPUTS if loss.mode == "exact" else ())

    LIST_MODE = "exact"

    def validate(self):
        self._validate_common(("pair", "exact"))
        check_choice(self.divergence, "divergence", MATCHING_DIVERGENCES)
        check_range(self.alpha, "alpha", low=0.0, high=1.0, low_open=True, high_open=True, allowed="0 < alpha < 1")

    def per_record(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **inputs):
        z = self._z(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp)
        log_t_chosen, log_t_rejected = self._log_targets(z, inputs)
        alpha = self.hp("alpha", z)
        return (_matching_term(log_sigmoid(z), log_t_chosen, self.divergence, alpha)
                + _matching_term(log_sigmoid(-z), log_t_rejected, self.divergence, alpha))

    def input_grads(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **inputs):
        """dq_w/dz = −dq_l/dz = σ(z)σ(−z) = q_w·q_l, so ∂L/∂Δ = β·q_w·q_l·(f′(q_w/t_w) − f′(q_l/t_l))
        = β·(q_l·[q_w f′(q_w/t_w)] − q_w·[q_l f′(q_l/t_l)]) (each bracket finite); (s, −s)."""
        z = self._z(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp)
        log_t_chosen, log_t_rejected = self._log_targets(z, inputs)
        alpha = self.hp("alpha", z)
        log_q_chosen, log_q_rejected = log_sigmoid(z), log_sigmoid(-z)
        chosen_part = _mass_times_slope(log_q_chosen, log_t_chosen, self.divergence, alpha)
        rejected_part = _mass_times_slope(log_q_rejected, log_t_rejected, self.divergence, alpha)
        slope = self.hp("beta", z) * (log_q_rejected.exp() * chosen_part - log_q_chosen.exp() * rejected_part)
        return slope, -slope


@register
@dataclass(frozen=True)
class EXO(_PairMatching):
    """EXO (efficient exact optimisation): L = KL(q ‖ t) over the record's two responses.

    ``mode="pair"`` (TRL ``exo_pair``, v1.9): t = (1 − ε, ε),
    L = σ(z)[log σ(z) − log(1 − ε)] + σ(−z)[log σ(−z) − log ε], ε = ``eps`` > 0 (TRL's
    ``label_smoothing``; v1.9 raises at 0, v0.28 silently used 1e-3; default 1e-3 here; the
    authors' code uses log t = (0, −10), i.e. ε = e^{−10}/(1 + e^{−10})). ``mode="list"``:
    t = softmax((r_w, r_l)/β_r) from true rewards (module docstring). ∂L/∂z = σ(z)σ(−z)·(z − log(t_w/t_l)).

    Optima ([derived]): pair mode per pair z* = (2p − 1)·log((1 − ε)/ε) (a unique stationary
    point of a non-convex function), so the population optimum is a μ-dependent projection (G2),
    not π*_β; list mode π_ref·e^{r/(β·β_r)}/Z. Defaults β = β_r = 0.5 (authors' scripts).
    Source: Ji et al., arXiv 2402.00856 (ICML 2024), Eq. 16 (TRL's citation); code
    ``haozheji/exact-optimization`` @ a8ab3601 ``src/align_stage/loss.py`` ``exact_loss``.
    Evidence: code, derived."""

    beta: float = 0.5
    beta_reward: float = 0.5
    mode: str = "pair"
    eps: float = 1e-3

    name = "exo"
    citation = "Ji et al., arXiv 2402.00856, Eq. 16; TRL DPOTrainer exo_pair"
    evidence = "code, derived"
    target_kind = by_fields("projection", lambda loss: "closed" if loss.mode == "list" else "projection")
    family = by_fields("non_proper", lambda loss: "logit_link" if loss.mode == "list" else "non_proper")
    convex = False
    needs = by_fields((), lambda loss: REWARD_INPUTS if loss.mode == "list" else ())

    LIST_MODE = "list"

    def validate(self):
        self._validate_common(("pair", "list"))

    def per_record(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **inputs):
        z = self._z(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp)
        log_t_chosen, log_t_rejected = self._log_targets(z, inputs)
        log_q_chosen, log_q_rejected = log_sigmoid(z), log_sigmoid(-z)
        return (log_q_chosen.exp() * (log_q_chosen - log_t_chosen)
                + log_q_rejected.exp() * (log_q_rejected - log_t_rejected))

    def input_grads(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **inputs):
        """β·σ(z)σ(−z)·(z − log(t_w/t_l)) and its negative, closed form."""
        z = self._z(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp)
        log_t_chosen, log_t_rejected = self._log_targets(z, inputs)
        slope = self.hp("beta", z) * torch.sigmoid(z) * torch.sigmoid(-z) * (z - (log_t_chosen - log_t_rejected))
        return slope, -slope
