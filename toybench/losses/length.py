"""Length-normalised, reference-free and odds-ratio losses (docs/losses.md).

``simpo``, ``sigmoid_norm``, ``r_dpo``, ``orpo``, ``cpo``, ``alpha_po``, ``alpha_dpo``, ``asft``.

Symbols: ℓ(y) = log π_θ(y|x) summed over tokens (``chosen_logp``); |y| its token length (a
``FlatSpace(K, lengths=...)`` gives each response one); ℓ̄ = ℓ/|y|; g = ℓ − ℓ_ref; Δ = g_w − g_l;
sp(t) = log(1 + e^t); σ the sigmoid. Every loss here reads lengths except ``cpo``'s preference
term, so all declare ``needs = ("chosen_len", "rejected_len")`` (``alpha_po`` only when its
options use them).

NLL convention (docs/losses.md): the NLL of the chosen response is TRL's token-mean
cross-entropy, per record −ℓ̄(y_w). TRL averages tokens over the whole batch; per record the two
agree when a batch holds one sequence (or equal lengths). ORPO, ASFT and AlphaPO's
length-normalised form use P = e^{ℓ̄}; CPO's and AlphaPO's default ``sigmoid`` score is ℓ summed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .._checks import check_positive, check_range, hyper_values
from .._numerics import Z_CAP, bisect, component_normalised, exp_difference, log1mexp, log_sigmoid, run_axis, softplus
from ..graph import component_labels
from ..pairs import population
from ._targets import is_zero, potential_target
from .base import LENGTH_INPUTS, Loss, MarginLoss, register


# ------------------------------------------------------------------------------ shared pieces
def _check_bool(value, name: str) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")


def _per_run(table: torch.Tensor, runs: int | None) -> torch.Tensor:
    """``[P, Y]`` → ``[B, P, Y]`` when the loss has ``[B]`` hyperparameters (docs/conventions.md, shapes and dtypes)."""
    if runs is not None and table.ndim == 2:
        return table.expand(runs, *table.shape).clone()
    return table


def _lengths(prob) -> torch.Tensor | None:
    """Per-response token lengths ``[Y]`` of the problem's space, or None."""
    return getattr(prob.space, "lengths", None)


def _component_normalised(prob, logp_of, inverse) -> torch.Tensor:
    """``component_normalised`` on the problem's comparison components."""
    return component_normalised(prob.ref_logp, component_labels(prob.pair_weights()), logp_of, inverse)


class _LogisticScaledMargin(MarginLoss):
    """φ(z) = sp(−z) on a margin whose chosen and rejected parts are divided by per-record
    divisors (token counts or 1): ``input_grads`` is the closed form (β·φ′(z)/d_w, −β·φ′(z)/d_l)."""

    def phi(self, z):
        return softplus(-z)

    def dphi(self, z):
        return -torch.sigmoid(-z)

    def divisors(self, inputs) -> tuple:
        """(d_w, d_l): what the chosen and rejected log-probs are divided by in the margin."""
        return inputs["chosen_len"], inputs["rejected_len"]

    def input_grads(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **inputs):
        delta = self.margin(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **inputs)
        beta = self.hp("beta", delta)
        slope = beta * self.dphi(beta * delta)
        chosen_div, rejected_div = self.divisors(inputs)
        return slope / chosen_div, -slope / rejected_div


# ------------------------------------------------------------------------------ margin losses
@register
@dataclass(frozen=True)
class SimPO(_LogisticScaledMargin):
    """SimPO: L = sp(−(β(ℓ̄_w − ℓ̄_l) − γ)), no reference model; ``gamma`` is γ itself
    (the authors' config stores γ/β = 0.25 with β = 2.0, so γ = 0.5; TRL's CPOTrainer
    ``simpo_gamma`` is γ itself too).

    Optimum (derived here, [derived]): γ = 0 is a logit link on S = ℓ̄, so
    log π(y) = |y|(r(y)/β + c), c the monotone root of Σ_y π(y) = 1: independent of π_ref and μ
    (equal lengths L: softmax(L·r/β)). γ > 0: per pair p·σ(γ − z) = (1 − p)·σ(γ + z),
    e^{z*} = [G(2p − 1) + √(G²(1 − 2p)² + 4p(1 − p))]/(2(1 − p)), G = e^γ: not potential
    differences, so a μ-dependent projection (``target`` is None). Convex in the normalised-score
    differences (a reparametrisation of the simplex, so every stationary point in the logits is
    the global minimum); convex in the logits themselves only at equal lengths.
    Source: Meng, Xia, Chen, arXiv 2405.14734 (SimPO objective); princeton-nlp/SimPO @ 1b3e8f35
    ``scripts/simpo_trainer.py``. Evidence: code, derived."""

    beta: float = 2.0
    gamma: float = 0.5

    name = "simpo"
    citation = "Meng, Xia, Chen, arXiv 2405.14734 (SimPO objective); princeton-nlp/SimPO simpo_trainer.py"
    evidence = "code, derived"
    target_kind = "projection"
    family = "non_proper"
    convex = False          # in the logits only at equal lengths; convex in Δ = ℓ_w/|y_w| − ℓ_l/|y_l|
    solver_case = "convex"
    falls_forever = True
    needs = LENGTH_INPUTS

    def validate(self):
        check_positive(self.beta, "beta")
        check_range(self.gamma, "gamma", low=0.0, allowed="gamma >= 0 (SimPO's target reward margin γ)")

    def margin_coefficients(self, inputs):
        chosen, rejected = 1 / inputs["chosen_len"], 1 / inputs["rejected_len"]
        return chosen, rejected, -self.hp("gamma", chosen) / self.hp("beta", chosen) + 0 * chosen

    def margin(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **inputs):
        normalised = chosen_logp / inputs["chosen_len"] - rejected_logp / inputs["rejected_len"]
        return normalised - self.hp("gamma", normalised) / self.hp("beta", normalised)

    def target(self, prob, noise=0.0):
        """γ = 0, BT, clean labels: log π = |y|(r/β + c) per comparison component; else None."""
        if prob.reward is None or not is_zero(noise) or not is_zero(self.gamma) or _lengths(prob) is None:
            return None
        scaled_reward = prob.reward / run_axis(self.beta, "beta")
        lengths = _lengths(prob)
        table = _component_normalised(prob, lambda c: lengths * (scaled_reward + c),
                                      lambda v: v / lengths - scaled_reward)
        return _per_run(table, self.runs)


@register
@dataclass(frozen=True)
class SigmoidNorm(_LogisticScaledMargin):
    """Length-normalised DPO: L = sp(−β(g_w/|y_w| − g_l/|y_l|)).

    A logit link on S = g/|y| (G1 in docs/losses.md): log π = log π_ref + |y|(r/β + c), c the monotone
    root of Σπ = 1 per comparison component, whatever μ ([derived]). TRL ≥ v0.29 DPOTrainer
    ``loss_type="sigmoid_norm"`` (n = completion tokens); "length-normalised DPO" of Tülu 3
    (Lambert et al., arXiv 2411.15124). β default 0.1 is TRL's (convention chosen here: the
    sources give none). Evidence: code, derived."""

    beta: float = 0.1

    name = "sigmoid_norm"
    citation = "TRL v1.9 DPOTrainer sigmoid_norm; Tülu 3 length-normalised DPO, arXiv 2411.15124"
    evidence = "code, derived"
    target_kind = "closed"
    family = "logit_link"
    convex = False          # in the logits only at equal lengths; convex in Δ
    solver_case = "convex"
    falls_forever = True
    needs = LENGTH_INPUTS

    def margin_coefficients(self, inputs):
        chosen, rejected = 1 / inputs["chosen_len"], 1 / inputs["rejected_len"]
        return chosen, rejected, rejected * inputs["ref_rejected_logp"] - chosen * inputs["ref_chosen_logp"]

    def margin(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **inputs):
        return ((chosen_logp - ref_chosen_logp) / inputs["chosen_len"]
                - (rejected_logp - ref_rejected_logp) / inputs["rejected_len"])

    def target(self, prob, noise=0.0):
        """BT, clean labels: log π = log π_ref + |y|(r/β + c) per component; else None."""
        if prob.reward is None or not is_zero(noise) or _lengths(prob) is None:
            return None
        scaled_reward = prob.reward / run_axis(self.beta, "beta")
        lengths, ref = _lengths(prob), prob.ref_logp
        table = _component_normalised(prob, lambda c: ref + lengths * (scaled_reward + c),
                                      lambda v: (v - ref) / lengths - scaled_reward)
        return _per_run(table, self.runs)


@register
@dataclass(frozen=True)
class LengthRegularizedDPO(_LogisticScaledMargin):
    """R-DPO (length-regularised DPO): L = sp(−(β·Δ + α(|y_w| − |y_l|))).

    From max_π E[r − α|y|] − β·KL(π ‖ π_ref): π* ∝ π_ref·e^{(r − α|y|)/β}, so
    r = βg + α|y| + β log Z and a longer chosen response gets less push. The printed form is
    [unverified]; the sign is [derived]. A logit link on S = g + α|y|/β: the target is
    π_ref·e^{(r − α|y|)/β}/Z for any connected μ. ``junkangwu/alpha-DPO``'s ``rDPO`` branch has
    the opposite sign and a zero length term: not used. Defaults: β = 0.1 (DPO's) and
    α = 0.3 (the E1 check): convention chosen here, no source gives one.
    Source: Park, Rafailov, Ermon, Finn, arXiv 2403.19159. Evidence: unverified, derived."""

    beta: float = 0.1
    alpha: float = 0.3

    name = "r_dpo"
    citation = "Park, Rafailov, Ermon, Finn, arXiv 2403.19159 (length-regularised objective)"
    evidence = "unverified, derived"
    target_kind = "closed"
    family = "logit_link"
    convex = True
    falls_forever = True
    needs = LENGTH_INPUTS

    def validate(self):
        check_positive(self.beta, "beta")
        check_range(self.alpha, "alpha", low=0.0, allowed="alpha >= 0 (a penalty per token; 0 is DPO)")

    def margin_coefficients(self, inputs):
        ones = torch.ones_like(inputs["chosen_logp"])
        gap = inputs["chosen_len"] - inputs["rejected_len"]
        offset = inputs["ref_rejected_logp"] - inputs["ref_chosen_logp"] + self.hp("alpha", ones) * gap / self.hp("beta", ones)
        return ones, ones, offset

    def margin(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **inputs):
        delta = (chosen_logp - ref_chosen_logp) - (rejected_logp - ref_rejected_logp)
        length_gap = inputs["chosen_len"] - inputs["rejected_len"]
        return delta + self.hp("alpha", delta) * length_gap / self.hp("beta", delta)

    def divisors(self, inputs):
        return 1.0, 1.0

    def target(self, prob, noise=0.0):
        """BT, clean labels: π_ref·e^{(r − α|y|)/β} per comparison component; else None."""
        if prob.reward is None or not is_zero(noise) or _lengths(prob) is None:
            return None
        log_ratio = (prob.reward - run_axis(self.alpha, "alpha") * _lengths(prob)) / run_axis(self.beta, "beta")
        return _per_run(potential_target(prob, log_ratio), self.runs)


# ------------------------------------------------------------------------------ reference-free
@register
@dataclass(frozen=True)
class ORPO(Loss):
    """ORPO: L = −ℓ̄_w + λ·sp(−[log odds(y_w) − log odds(y_l)]), odds = P/(1 − P), P = e^{ℓ̄}.

    log odds = ℓ̄ − log(1 − e^{ℓ̄}) (computed with ``log1mexp``); the NLL is TRL's token-mean
    cross-entropy of the chosen response, −ℓ̄_w per record. ``lam`` is λ = TRL ORPOTrainer's
    ``beta`` (0.1; paper 0.1 Mistral, 0.2 Llama-2, 0.25 Phi-2 [secondary]). Single-response NLL
    term (G3): the optimum is numeric, μ-dependent and not π*_β (E1, λ = 0.1: TV 0.078 under W_u,
    0.281 under W_s [derived]). Source: Hong, Lee, Thorne, arXiv 2403.07691; TRL
    ``trl/experimental/orpo`` (``odds_ratio_loss``). Evidence: code, derived."""

    lam: float = 0.1

    name = "orpo"
    citation = "Hong, Lee, Thorne, arXiv 2403.07691; TRL ORPOTrainer odds_ratio_loss"
    evidence = "code, derived"
    target_kind = "numeric"
    family = "single_response"
    convex = False
    needs = LENGTH_INPUTS

    def validate(self):
        check_range(self.lam, "lam", low=0.0, allowed="lam >= 0 (weight of the odds-ratio term)")

    def per_record(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **inputs):
        chosen_mean = chosen_logp / inputs["chosen_len"]
        rejected_mean = rejected_logp / inputs["rejected_len"]
        log_odds_gap = (chosen_mean - log1mexp(chosen_mean)) - (rejected_mean - log1mexp(rejected_mean))
        return -chosen_mean + self.hp("lam", chosen_mean) * softplus(-log_odds_gap)

    def input_grads(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **inputs):
        """With m = ℓ/|y|, G the log-odds gap and o′(m) = 1/(1 − e^m) = −1/expm1(m):
        ∂L/∂m_w = −1 − λ·σ(−G)·o′(m_w), ∂L/∂m_l = λ·σ(−G)·o′(m_l); ∂L/∂ℓ = (∂L/∂m)/|y|."""
        chosen_len, rejected_len = inputs["chosen_len"], inputs["rejected_len"]
        chosen_mean, rejected_mean = chosen_logp / chosen_len, rejected_logp / rejected_len
        log_odds_gap = (chosen_mean - log1mexp(chosen_mean)) - (rejected_mean - log1mexp(rejected_mean))
        pull = self.hp("lam", chosen_mean) * torch.sigmoid(-log_odds_gap)
        return ((-1 + pull / torch.expm1(chosen_mean)) / chosen_len,
                (-pull / torch.expm1(rejected_mean)) / rejected_len)


@register
@dataclass(frozen=True)
class CPO(Loss):
    """CPO: L = sp(−β(ℓ_w − ℓ_l)) + α·(−ℓ̄_w), ℓ summed (TRL CPOTrainer ``loss_type="sigmoid"``),
    the NLL TRL's token-mean cross-entropy of the chosen response (``cpo_alpha`` = α, 1.0).

    Convex in the logits (ℓ_w − ℓ_l is linear, −ℓ̄_w convex) but single-response (G3): numeric,
    μ-dependent, not π*_β (E1, β = 1: TV 0.041 under W_u, 0.218 under W_s [derived]). TRL's
    ``label_smoothing`` (cDPO smoothing) is not offered. Source: Xu et al., arXiv 2401.08417
    (Eq. 3 for the preference term, per TRL's comment); TRL ``trl/experimental/cpo``.
    Evidence: code, derived."""

    beta: float = 0.1
    alpha: float = 1.0

    name = "cpo"
    citation = "Xu et al., arXiv 2401.08417, Eq. 3 + NLL; TRL CPOTrainer sigmoid"
    evidence = "code, derived"
    target_kind = "numeric"
    family = "single_response"
    convex = True
    needs = LENGTH_INPUTS

    def validate(self):
        check_positive(self.beta, "beta")
        check_range(self.alpha, "alpha", low=0.0, allowed="alpha >= 0 (weight of the NLL term)")

    def per_record(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **inputs):
        beta = self.hp("beta", chosen_logp)
        return (softplus(-beta * (chosen_logp - rejected_logp))
                - self.hp("alpha", chosen_logp) * chosen_logp / inputs["chosen_len"])

    def input_grads(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **inputs):
        """With s = β·σ(−β(ℓ_w − ℓ_l)): ∂L/∂ℓ_w = −s − α/|y_w|, ∂L/∂ℓ_l = s."""
        beta = self.hp("beta", chosen_logp)
        slope = beta * torch.sigmoid(-beta * (chosen_logp - rejected_logp))
        return -slope - self.hp("alpha", chosen_logp) / inputs["chosen_len"], slope


def _alpha_margin(alpha, chosen_score, rejected_score, cap=math.inf):
    """a(S_w) − a(S_l) for AlphaPO's reward a(S) = (1 − e^{−α·S})/α = (1 − P^{−α})/α, P = e^S (its
    α → 0 limit is S): (e^{−α·S_l} − e^{−α·S_w})/α from ``exp_difference`` (no inf − inf), positive
    values capped at ``cap``. Runs with α = 0 take S_w − S_l exactly; their unused branch is
    evaluated at α = 1 on zero scores so it cannot overflow (and poison the gradient with 0·inf)."""
    plain = chosen_score - rejected_score
    if not isinstance(alpha, torch.Tensor) and alpha == 0:
        return plain
    alpha = torch.as_tensor(alpha, dtype=plain.dtype, device=plain.device)
    off = alpha == 0
    safe = torch.where(off, 1.0, alpha)
    chosen, rejected = torch.where(off, 0.0, -safe * chosen_score), torch.where(off, 0.0, -safe * rejected_score)
    first, second = torch.where(safe > 0, rejected, chosen), torch.where(safe > 0, chosen, rejected)  # (e^x − e^y)/|α|
    return torch.where(off, plain, exp_difference(first, second, -safe.abs().log(), cap))


@register
@dataclass(frozen=True)
class AlphaPO(Loss):
    """AlphaPO: the CPO/SimPO loss on the reward a(y) = (1 − P^{−α})/α, P = e^{S}.

    L = sp(−(β(a_w − a_l) − γ)) + w·(−ℓ̄_w). S = ℓ (summed; TRL CPOTrainer ``sigmoid``/``hinge``)
    or, with ``length_normalized=True``, S = ℓ̄ (TRL ``simpo``/``ipo``). α → 0 gives a = S
    (CPO/SimPO). ``gamma`` is γ itself; ``nll_weight`` w is TRL's ``cpo_alpha`` (TRL default 1.0;
    0 here, an explicit option).

    Optimum ([derived]): with γ = 0, w = 0, α ≥ 0 a logit link on S = a, so
    π(y) = (1 + α(λ − r(y))/β)^{−|y|/α} (|y| = 1 when summed), λ ≥ max r the monotone root of
    Σπ = 1 per comparison component: the f-DPO α-target with constant reference 1 (α → 0:
    log π = |y|(r − λ)/β). α < 0 (bounded reward), γ > 0 and the NLL variant are not analysed:
    ``target`` is None. Defaults: β 0.1, α 0 ("off") as TRL's CPOTrainer. Source: AlphaPO,
    arXiv 2501.03884 (id from TRL's docstring; paper not read); TRL CPOTrainer ``alpha``.
    Evidence: code, derived."""

    beta: float = 0.1
    alpha: float = 0.0
    gamma: float = 0.0
    length_normalized: bool = False
    nll_weight: float = 0.0

    name = "alpha_po"
    citation = "AlphaPO, arXiv 2501.03884; TRL CPOTrainer alpha"
    evidence = "code, derived"
    target_kind = "closed"
    family = "logit_link"
    convex = False

    @property
    def needs(self):
        uses_lengths = self.length_normalized or not is_zero(self.nll_weight)
        return LENGTH_INPUTS if uses_lengths else ()

    def validate(self):
        check_positive(self.beta, "beta")
        hyper_values(self.alpha, "alpha")
        check_range(self.gamma, "gamma", low=0.0, allowed="gamma >= 0 (target reward margin γ)")
        check_range(self.nll_weight, "nll_weight", low=0.0, allowed="nll_weight >= 0 (TRL's cpo_alpha)")
        _check_bool(self.length_normalized, "length_normalized")

    def per_record(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **inputs):
        chosen_score, rejected_score = chosen_logp, rejected_logp
        if self.length_normalized:
            chosen_score, rejected_score = chosen_logp / inputs["chosen_len"], rejected_logp / inputs["rejected_len"]
        alpha, beta, gamma = self.hp("alpha", chosen_logp), self.hp("beta", chosen_logp), self.hp("gamma", chosen_logp)
        margin = _alpha_margin(alpha, chosen_score, rejected_score, cap=(Z_CAP + gamma) / beta)
        loss = softplus(-(beta * margin - gamma))
        if not is_zero(self.nll_weight):
            loss = loss - self.hp("nll_weight", loss) * chosen_logp / inputs["chosen_len"]
        return loss

    def input_grads(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **inputs):
        """With a′(S) = e^{−α·S} (1 at α = 0), m = a(S_w) − a(S_l), s = β·σ(−(βm − γ)):
        ∂L/∂S_w = −s·a′(S_w), ∂L/∂S_l = s·a′(S_l); ∂S/∂ℓ = 1/|y| when length-normalised, else 1;
        the NLL adds −w/|y_w| to ∂L/∂ℓ_w."""
        chosen_scale = 1 / inputs["chosen_len"] if self.length_normalized else 1.0
        rejected_scale = 1 / inputs["rejected_len"] if self.length_normalized else 1.0
        chosen_score, rejected_score = chosen_logp * chosen_scale, rejected_logp * rejected_scale
        alpha, beta, gamma = self.hp("alpha", chosen_logp), self.hp("beta", chosen_logp), self.hp("gamma", chosen_logp)
        margin = _alpha_margin(alpha, chosen_score, rejected_score)
        log_pull = log_sigmoid(-(beta * margin - gamma))            # s = β·e^{log_pull}, times a′(S) = e^{−α·S}
        chosen_grad = -beta * torch.exp(log_pull - alpha * chosen_score) * chosen_scale
        rejected_grad = beta * torch.exp(log_pull - alpha * rejected_score) * rejected_scale
        if not is_zero(self.nll_weight):
            chosen_grad = chosen_grad - self.hp("nll_weight", chosen_grad) / inputs["chosen_len"]
        return chosen_grad, rejected_grad

    def target(self, prob, noise=0.0):
        """γ = 0, no NLL, α ≥ 0, BT, clean labels: the tempered α-target above; else None."""
        alpha_values = hyper_values(self.alpha, "alpha")
        if (prob.reward is None or not is_zero(noise) or not is_zero(self.gamma)
                or not is_zero(self.nll_weight) or bool((alpha_values < 0).any())):
            return None
        if self.length_normalized and _lengths(prob) is None:
            return None
        lengths = _lengths(prob) if self.length_normalized else 1.0
        alpha, beta, reward = run_axis(self.alpha, "alpha"), run_axis(self.beta, "beta"), prob.reward
        safe = torch.where(alpha == 0, torch.ones_like(alpha), alpha)

        def logp_of(c):  # c = −λ; t = (λ − r)/β ≥ 0 on the bracket
            t = (-c - reward) / beta
            return -lengths * torch.where(alpha == 0, t, torch.log1p(safe * t) / safe)

        def inverse(v):
            x = -v / lengths
            return -reward - beta * torch.where(alpha == 0, x, torch.expm1(safe * x) / safe)

        return _per_run(_component_normalised(prob, logp_of, inverse), self.runs)


@register
@dataclass(frozen=True)
class AlphaDPO(Loss):
    """α-DPO: L = sp(−(β·Δ̄_π − γ − αβ·sg(ζ))), a stateful loss with EMA statistics.

    Δ̄_π = ℓ̄_w − ℓ̄_l; M = Δ̄_π − Δ̄_ref (token-mean log-probs of policy and reference);
    ζ = (M − m̂)/ŝ with m̂, ŝ exponential moving averages (decay 0.9, initialised at 0, no bias
    correction) of the batch mean and standard deviation of M, updated before use and detached
    (sg). The authors' code computes Δ̄_π − sg(αζ + γ/β) inside −log σ(β·); α = 0 is SimPO.
    ``gamma`` is γ itself: the Llama-3-8B-Instruct config's β = 2.5, γ/β = 0.6 gives γ = 1.5,
    α = 0.2 (defaults here).

    Conventions chosen here: batch statistics are weighted by the record weights, and the std
    is the weighted population std (the code's ``torch.std`` is the unbiased std of the gathered
    batch, larger by √(n/(n−1)) on n records); where ŝ = 0 (e.g. at π_θ = π_ref, where M ≡ 0 and
    the code divides 0 by 0) ζ = 0. State protocol: ``init_state(runs, like)`` gives
    m̂ = ŝ = 0 ``[B]``; ``update_state`` applies one EMA step with the batch's statistics;
    ``population_state`` gives the full-population statistics, the EMA's fixed point under
    full-batch training, which ``tb.solve`` iterates to a fixed point (numeric, μ-dependent,
    ≠ π*_β). Source: Wu et al., arXiv 2410.10148; junkangwu/alpha-DPO @ fab3209
    ``scripts/dpo_trainer.py`` (``AlphaDPOTrainer.dpo_loss``). Evidence: code."""

    beta: float = 2.5
    gamma: float = 1.5
    alpha: float = 0.2
    ema_decay: float = 0.9

    name = "alpha_dpo"
    citation = "Wu et al., arXiv 2410.10148; junkangwu/alpha-DPO AlphaDPOTrainer.dpo_loss"
    evidence = "code"
    target_kind = "numeric"
    family = "non_proper"
    convex = True
    needs = LENGTH_INPUTS
    stateful = True

    def validate(self):
        check_positive(self.beta, "beta")
        check_range(self.gamma, "gamma", low=0.0, allowed="gamma >= 0 (target reward margin γ)")
        check_range(self.alpha, "alpha", low=0.0, allowed="alpha >= 0 (weight of the standardised margin)")
        check_range(self.ema_decay, "ema_decay", low=0.0, high=1.0, high_open=True,
                    allowed="0 <= ema_decay < 1")

    @staticmethod
    def normalised_margins(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, chosen_len, rejected_len):
        """(Δ̄_π, M = Δ̄_π − Δ̄_ref), each ``[B, N]``."""
        policy = chosen_logp / chosen_len - rejected_logp / rejected_len
        return policy, policy - (ref_chosen_logp / chosen_len - ref_rejected_logp / rejected_len)

    def init_state(self, runs: int, like: torch.Tensor) -> dict:
        """m̂ = ŝ = 0, one per run (the code's zero initialisation)."""
        zeros = torch.zeros(runs, dtype=like.dtype, device=like.device)
        return {"mean": zeros, "std": zeros.clone()}

    def population_state(self, inputs: dict, weight: torch.Tensor) -> dict:
        """Weighted mean and (population) std of M over the records, ``[B]`` each, detached."""
        _, gap = self.normalised_margins(*(inputs[k] for k in ("chosen_logp", "rejected_logp", "ref_chosen_logp",
                                                               "ref_rejected_logp", "chosen_len", "rejected_len")))
        gap = gap.detach()
        weight = weight.to(device=gap.device, dtype=gap.dtype).expand_as(gap)
        weight = weight / weight.sum(-1, keepdim=True)
        mean = (weight * gap).sum(-1)
        std = (weight * (gap - mean[:, None]) ** 2).sum(-1).sqrt()
        return {"mean": mean, "std": std}

    def update_state(self, state: dict, inputs: dict, weight: torch.Tensor) -> dict:
        """One EMA step: m̂ ← d·m̂ + (1 − d)·mean, ŝ ← d·ŝ + (1 − d)·std (d = ``ema_decay``)."""
        batch = self.population_state(inputs, weight)
        decay = self.hp("ema_decay", batch["mean"])
        return {key: decay * state[key] + (1 - decay) * batch[key] for key in ("mean", "std")}

    def per_record(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, *, chosen_len,
                   rejected_len, state):
        policy, gap = self.normalised_margins(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp,
                                              chosen_len, rejected_len)
        mean, std = state["mean"][:, None], state["std"][:, None]
        zeta = torch.where(std > 0, (gap.detach() - mean) / torch.where(std > 0, std, 1.0), 0.0)
        beta = self.hp("beta", policy)
        # softplus's linear cut-off at 40, not 20: float64-exact, so its slope is σ (as input_grads')
        return softplus(-self._scaled_margin(policy, zeta, beta))

    def _scaled_margin(self, policy, zeta, beta):
        """x = β·Δ̄_π − γ − α·β·ζ."""
        return beta * policy - self.hp("gamma", policy) - self.hp("alpha", policy) * beta * zeta

    def input_grads(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, *, chosen_len,
                    rejected_len, state):
        """ζ held fixed (detached): with s = β·σ(−x), ∂L/∂ℓ_w = −s/|y_w|, ∂L/∂ℓ_l = s/|y_l|."""
        policy, gap = self.normalised_margins(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp,
                                              chosen_len, rejected_len)
        mean, std = state["mean"][:, None], state["std"][:, None]
        zeta = torch.where(std > 0, (gap - mean) / torch.where(std > 0, std, 1.0), 0.0)
        beta = self.hp("beta", policy)
        slope = beta * torch.sigmoid(-self._scaled_margin(policy, zeta, beta))
        return -slope / chosen_len, slope / rejected_len


@register
@dataclass(frozen=True)
class ASFT(Loss):
    """ASFT: L = −(1 + λ)·log p_w − λ·log(1 − p_l), p = π^{1/|y|} = e^{ℓ̄}.

    Equivalently −log p(y_w) − λ[log σ(r_odds(y_w)) + log σ(−r_odds(y_l))], r_odds = log(p/(1−p));
    pointwise, reference-free; L_ORPO ≤ L_ASFT at equal λ. Target (|y| = 1, [derived]): with
    a_y = (1 + λ)n_w(y), b_y = λ·n_l(y) (rates as chosen / rejected), each π_y minimises
    −a_y log π − b_y log(1 − π) + ν·π on [0, 1]: in the interior νπ² − (ν + a + b)π + a = 0,
    π = 2a/(ν + a + b + √((ν − a + b)² + 4ab)); ν is the 1-D monotone root of Σπ = 1 per prompt.
    Independent of π_ref, μ-dependent (E1, λ = 1: TV 0.062 under W_u, 0.261 under W_s from π*_β).
    ``target`` is None when some length differs from 1 or a response is in no record.
    λ default 1.0: convention chosen here (no source gives one; the E1 check uses λ = 1).
    Source: Wang, Sun, Hua, Fang, arXiv 2409.10571 [paper: abstract]; formula from Gorbatovski
    et al., arXiv 2502.01237, §2.4, App. A.1 [secondary]. Evidence: secondary, derived."""

    lam: float = 1.0

    name = "asft"
    citation = "Wang et al., arXiv 2409.10571; formula Gorbatovski et al., arXiv 2502.01237 §2.4, App. A.1"
    evidence = "secondary, derived"
    target_kind = "closed"
    family = "single_response"
    convex = False
    needs = LENGTH_INPUTS

    def validate(self):
        check_range(self.lam, "lam", low=0.0, allowed="lam >= 0 (weight of the odds terms)")

    def per_record(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **inputs):
        lam = self.hp("lam", chosen_logp)
        return (-(1 + lam) * chosen_logp / inputs["chosen_len"]
                - lam * log1mexp(rejected_logp / inputs["rejected_len"]))

    def input_grads(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **inputs):
        """With m = ℓ_l/|y_l| and d/dm log(1 − e^m) = −1/expm1(−m):
        ∂L/∂ℓ_w = −(1 + λ)/|y_w|, ∂L/∂ℓ_l = λ/(expm1(−m)·|y_l|)."""
        lam = self.hp("lam", chosen_logp)
        rejected_mean = rejected_logp / inputs["rejected_len"]
        chosen_grad = (-(1 + lam) / inputs["chosen_len"]).expand_as(chosen_logp)
        return chosen_grad, lam / (torch.expm1(-rejected_mean) * inputs["rejected_len"])

    def target(self, prob, noise=0.0):
        """The KKT solution above (``[P, Y]`` or ``[B, P, Y]``), None outside |y| = 1 or with unseen responses."""
        lengths = _lengths(prob)
        if lengths is None or not bool((lengths == 1).all()):
            return None
        records = population(prob, noise).record_table()                      # [R, P, Y, Y]
        lam = run_axis(self.lam, "lam")
        chosen_rate, rejected_rate = (1 + lam) * records.sum(-1), lam * records.sum(-2)
        if not bool(((chosen_rate + rejected_rate) > 0).all()):
            return None
        a, b = chosen_rate, rejected_rate

        def prob_of(nu):
            interior = 2 * a / (nu + a + b + torch.sqrt((nu - a + b) ** 2 + 4 * a * b))
            never_chosen = torch.where(nu < 0, (1 + b / nu).clamp_min(0.0), torch.zeros_like(nu))
            return torch.where(a > 0, interior, never_chosen)

        hi = a.sum(-1, keepdim=True) + 1          # ν > Σa: every π_y ≤ a_y/ν, the sum is < 1
        lo = -(a.sum(-1, keepdim=True) + b.sum(-1, keepdim=True) + 1)   # every seen π_y ≥ 1 − b_y/|ν|
        nu = bisect(lambda nu: 1 - prob_of(nu).sum(-1, keepdim=True), lo, hi)   # Σπ decreases in ν
        table = prob_of(nu).log()
        if self.runs is None and hyper_values(noise, "noise").ndim == 0:
            table = table[0]
        return _per_run(table, self.runs)
