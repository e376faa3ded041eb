"""Adaptive weights and temperatures: ``beta_dpo``, ``madpo``, ``da_dpo`` (docs/losses.md).

Symbols: g = ℓ − ℓ_ref (sequence log-ratio), Δ = g_w − g_l, z = β·Δ, sp(t) = log(1 + e^t).
``madpo`` and ``da_dpo`` read a per-record score gap ĥ = s(y_w) − s(y_l) from the ``Pairs`` field
``score_gap`` (``with_score_gap`` attaches it). Both are G1′ losses (docs/losses.md): a
direction-dependent weight or a per-pair temperature makes the per-pair targets non-potential, so
their optimum is a numeric, μ-dependent projection, not π*_β.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .._checks import check_positive, check_range, hyper_values
from .._numerics import log_sigmoid, run_axis, softplus
from ._targets import is_zero, potential_target
from .base import MarginLoss, register

SCORE_GAP = "score_gap"
BETA_FLOOR = 1e-3
"""β-DPO clamps β_batch at this value (authors' code)."""


def with_score_gap(pairs, score=None, noise=0.0, seed=0):
    """``pairs`` with the field ``score_gap`` = s(x, y_w) − s(x, y_l), ``[R, N]`` float64.

    ``score`` is a ``[P, Y]`` table (a reward model's scores); None uses the problem's
    Bradley–Terry reward r. ``noise`` > 0 adds N(0, noise²) to every score s(x, y) once
    (a fixed, noisy reward model), drawn from ``torch.Generator().manual_seed(seed)``."""
    prob = pairs.problem
    if score is None:
        if prob.reward is None:
            raise ValueError("with_score_gap needs score= ([P, Y]) when the problem has no Bradley–Terry reward")
        score = prob.reward
    table = torch.as_tensor(score, dtype=torch.float64)
    if table.shape != (prob.P, prob.Y) or not torch.isfinite(table).all():
        raise ValueError(f"score must be a finite [P, Y] = [{prob.P}, {prob.Y}] table, got shape {tuple(table.shape)}")
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0 <= noise < math.inf:
        raise ValueError(f"noise must be a finite number >= 0 (standard deviation of the score noise), got {noise!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    if noise > 0:
        gen = torch.Generator().manual_seed(seed)
        table = table + noise * torch.randn(table.shape, generator=gen, dtype=torch.float64)
    table = table.to(pairs.prompt.device)
    gap = table[pairs.prompt, pairs.chosen] - table[pairs.prompt, pairs.rejected]
    return pairs.with_fields(**{SCORE_GAP: gap})


def _weighted_stats(values: torch.Tensor, weight: torch.Tensor):
    """Weighted mean and reliability-weighted (unbiased) std of ``values`` ``[B, N]`` per run:
    var = Σw(x − m)²/(1 − Σw²) with Σw = 1, which is ``torch.std`` for equal weights; 0 for one record."""
    weight = weight.to(device=values.device, dtype=values.dtype).expand_as(values)
    weight = weight / weight.sum(-1, keepdim=True)
    mean = (weight * values).sum(-1)
    spread = 1 - (weight ** 2).sum(-1)
    var = (weight * (values - mean[:, None]) ** 2).sum(-1) / torch.where(spread > 0, spread, 1.0)
    return weight, mean, torch.where(spread > 0, var, 0.0).sqrt()


@register
@dataclass(frozen=True)
class BetaDPO(MarginLoss):
    """β-DPO: DPO with a batch-adaptive β and a Gaussian data filter (stateful).

    Per step, on the batch's detached margins Δ_i [code]: (1) EMAs (decay ``ema_decay`` 0.9,
    initialised at 0, updated before use) M₀ ← d·M₀ + (1 − d)·mean(Δ), σ_M ← d·σ_M + (1 − d)·std(Δ);
    (2) filter weights exp(−(Δ_i − M₀)²/(2σ_M²)); keep k = max(1, ⌊N(1 − ρ)⌋) records drawn without
    replacement ∝ weight; (3) β_batch = max(1e-3, β₀[1 + a(mean_kept Δ − M₀)]), detached;
    (4) loss = mean over kept records of sp(−β_batch·Δ_i). Per record this is
    ``record_scale``_i·sp(−β_batch·Δ_i) with record_scale = keep_i/Σ_j w_j keep_j, so the
    weighted sum over records is the weighted mean over the kept ones.

    Conventions chosen here: batch statistics use the record weights w (equal weights reproduce
    the code: mean, ``torch.std``); a weighted record's draw propensity is w_i × filter weight_i;
    where σ_M = 0 (e.g. at π = π_ref) the filter is uniform (the code divides 0 by 0); the draw is
    Gumbel-top-k with keys log(propensity) + Gumbel, equal in law to ``torch.multinomial(...,
    replacement=False)``, from one generator kept in the state (seeded by ``seed``), so run b's
    draws depend on the number of runs drawn together. The paper's α equals the code's a/β₀
    [unverified]. Defaults β₀ 0.1, a 0.6, ρ 0.2.

    State protocol: ``init_state`` gives M₀ = σ_M = 0, β_batch = β₀ and the generator;
    ``update_state`` runs steps (1)-(3) on a batch; ``population_state`` is the full-batch state
    with converged EMAs and nothing dropped: M₀ = mean(Δ), so β_batch = β₀ and the loss is
    DPO(β₀), whose minimiser is π*_{β₀} for any connected pair law (G1) [derived].
    Source: Wu et al., arXiv 2407.08639 (NeurIPS 2024); junkangwu/beta-DPO @ 1629047
    ``trainers.py`` (``preference_loss``, ``update_and_sync_tensor_mean``). Evidence: code, derived."""

    a: float = 0.6
    rho: float = 0.2
    ema_decay: float = 0.9
    seed: int = 0

    name = "beta_dpo"
    citation = "Wu et al., arXiv 2407.08639; junkangwu/beta-DPO trainers.py preference_loss"
    evidence = "code, derived"
    target_kind = "closed"
    family = "logit_link"
    convex = True
    falls_forever = True
    stateful = True

    def validate(self):
        check_positive(self.beta, "beta")
        check_range(self.a, "a", low=0.0, allowed="a >= 0 (β adaptation rate)")
        check_range(self.rho, "rho", low=0.0, high=1.0, high_open=True, allowed="0 <= rho < 1 (fraction filtered out)")
        check_range(self.ema_decay, "ema_decay", low=0.0, high=1.0, high_open=True, allowed="0 <= ema_decay < 1")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative int (seeds the filter's draws), got {self.seed!r}")

    def phi(self, z):
        return softplus(-z)

    def dphi(self, z):
        return -torch.sigmoid(-z)

    def _beta0(self, like: torch.Tensor) -> torch.Tensor:
        """β₀ as a ``[B]`` tensor shaped like ``like``."""
        beta = self.hp("beta", like[:, None])
        return beta[:, 0].expand_as(like).clone() if isinstance(beta, torch.Tensor) else torch.full_like(like, beta)

    def init_state(self, runs: int, like: torch.Tensor) -> dict:
        """M₀ = σ_M = 0 and β_batch = β₀ per run, plus the filter's seeded generator."""
        zeros = torch.zeros(runs, dtype=like.dtype, device=like.device)
        return {"mean": zeros, "std": zeros.clone(), "beta_batch": self._beta0(zeros),
                "generator": torch.Generator(device=like.device).manual_seed(self.seed)}

    def population_state(self, inputs: dict, weight: torch.Tensor) -> dict:
        """Full batch, converged EMAs, nothing dropped: M₀ = mean(Δ), σ_M = std(Δ), β_batch = β₀."""
        delta = self.margin(*(inputs[k] for k in ("chosen_logp", "rejected_logp", "ref_chosen_logp",
                                                  "ref_rejected_logp"))).detach()
        _, mean, std = _weighted_stats(delta, weight)
        return {"mean": mean, "std": std, "beta_batch": self._beta0(mean)}

    def update_state(self, state: dict, inputs: dict, weight: torch.Tensor) -> dict:
        """One β-DPO step on this batch: EMA update, filter draw, β_batch, record scales."""
        delta = self.margin(*(inputs[k] for k in ("chosen_logp", "rejected_logp", "ref_chosen_logp",
                                                  "ref_rejected_logp"))).detach()
        weight, batch_mean, batch_std = _weighted_stats(delta, weight)
        decay = self.hp("ema_decay", batch_mean)
        mean = decay * state["mean"] + (1 - decay) * batch_mean
        std = decay * state["std"] + (1 - decay) * batch_std
        safe_std = torch.where(std > 0, std, 1.0)[:, None]
        log_filter = torch.where(std[:, None] > 0, -0.5 * ((delta - mean[:, None]) / safe_std) ** 2, 0.0)
        generator = state["generator"]
        uniform = torch.rand(delta.shape, generator=generator, dtype=delta.dtype, device=delta.device)
        keys = weight.log() + log_filter - torch.log(-torch.log(uniform))
        rho = hyper_values(self.rho, "rho").to(delta.device)
        count = torch.floor(delta.shape[-1] * (1 - rho)).clamp_min(1).to(torch.int64)
        count = count.reshape(-1, 1).expand(delta.shape[0], 1)
        threshold = keys.sort(-1, descending=True).values.gather(1, count - 1)
        keep = (keys >= threshold).to(delta.dtype)
        kept_weight = (weight * keep).sum(-1)
        kept_mean = (weight * keep * delta).sum(-1) / kept_weight
        beta_batch = (self._beta0(mean) * (1 + self.hp("a", mean) * (kept_mean - mean))).clamp_min(BETA_FLOOR)
        return {"mean": mean, "std": std, "beta_batch": beta_batch,
                "record_scale": keep / kept_weight[:, None], "generator": generator}

    def _slopes(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, state):
        delta = self.margin(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp)
        beta = state["beta_batch"].to(device=delta.device, dtype=delta.dtype)[:, None]
        scale = state.get("record_scale")
        scale = 1.0 if scale is None else scale.to(device=delta.device, dtype=delta.dtype)
        return delta, beta, scale

    def per_record(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, *, state):
        delta, beta, scale = self._slopes(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, state)
        return scale * self.phi(beta * delta)

    def input_grads(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, *, state):
        delta, beta, scale = self._slopes(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, state)
        slope = scale * beta * self.dphi(beta * delta)
        return slope, -slope

    def target(self, prob, noise=0.0):
        """π*_{β₀} (the full-batch population state's DPO(β₀) minimiser): BT, clean labels."""
        if prob.reward is None or not is_zero(noise):
            return None
        return potential_target(prob, prob.reward / run_axis(self.beta, "beta"))


@register
@dataclass(frozen=True)
class MADPO(MarginLoss):
    """Margin-adaptive DPO: L = −w(ĥ)·log σ(β·Δ) = w(ĥ)·sp(−z), a weighted logit link.

    ĥ = r_φ(y_w) − r_φ(y_l) (Pairs field ``score_gap``), c(a) = c_min + (c_max − c_min)/
    (1 + ((c_max − 1)/(1 − c_min))·e^{λ(a − τ)}), so c(τ) = 1; w(ĥ) = σ(c(|ĥ|)ĥ)/σ(ĥ) for
    ĥ > −τ, else 1 [code]. With p = σ(ĥ) (the scorer is the true BT reward) each pair's
    optimum is βΔ* = c(|ĥ|)ĥ for |ĥ| < τ and log σ(cĥ) − log σ(−ĥ) for ĥ ≥ τ (G1′): not potential
    differences, so the population optimum is numeric, μ-dependent and ≠ π*_β [derived].
    Defaults (class): β 0.1, c_max 2, c_min 0.5, λ 1, τ 2 (the notebook uses τ = log(999) ≈ 6.907).
    Source: Rho, arXiv 2510.05342; sirano1004/Margin-Apative-Direct-Preference-Optimization @ 306779b
    ``utils/loss_functions.py`` (``MADPOLoss``). Evidence: code, derived."""

    c_max: float = 2.0
    c_min: float = 0.5
    lam: float = 1.0
    tau: float = 2.0

    name = "madpo"
    citation = "Rho, arXiv 2510.05342; MADPOLoss in utils/loss_functions.py"
    evidence = "code, derived"
    target_kind = "numeric"
    family = "non_proper"
    convex = True
    falls_forever = True
    needs = (SCORE_GAP,)

    def validate(self):
        check_positive(self.beta, "beta")
        check_range(self.c_max, "c_max", low=1.0, low_open=True, allowed="c_max > 1")
        check_range(self.c_min, "c_min", low=0.0, high=1.0, high_open=True, allowed="0 <= c_min < 1")
        check_range(self.lam, "lam", low=0.0, allowed="lam >= 0 (λ, steepness of c)")
        check_range(self.tau, "tau", low=0.0, allowed="tau >= 0 (τ, margin where c = 1)")

    def phi(self, z):
        return softplus(-z)

    def dphi(self, z):
        return -torch.sigmoid(-z)

    def coefficient(self, gap_size: torch.Tensor) -> torch.Tensor:
        """c(a) at a = |ĥ| (``[B, N]``); e^{λ(a − τ)} may overflow to inf, giving the limit c_min."""
        c_max, c_min = self.hp("c_max", gap_size), self.hp("c_min", gap_size)
        rate = (c_max - 1) / (1 - c_min)
        growth = torch.exp(self.hp("lam", gap_size) * (gap_size - self.hp("tau", gap_size)))
        return c_min + (c_max - c_min) / (1 + rate * growth)

    def weight(self, score_gap: torch.Tensor) -> torch.Tensor:
        """w(ĥ) = σ(c(|ĥ|)ĥ)/σ(ĥ) where ĥ > −τ, else 1 (log space)."""
        ratio = torch.exp(log_sigmoid(self.coefficient(score_gap.abs()) * score_gap) - log_sigmoid(score_gap))
        return torch.where(score_gap > -self.hp("tau", score_gap), ratio, torch.ones_like(ratio))

    def per_record(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, *, score_gap):
        delta = self.margin(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp)
        return self.weight(score_gap) * self.phi(self.hp("beta", delta) * delta)

    def input_grads(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, *, score_gap):
        delta = self.margin(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp)
        beta = self.hp("beta", delta)
        slope = self.weight(score_gap) * beta * self.dphi(beta * delta)
        return slope, -slope


@register
@dataclass(frozen=True)
class DADPO(MarginLoss):
    """Difficulty-aware DPO: L = −log σ(β·c_i·Δ), c_i = α_db·(1 + |s(y_w) − s(y_l)|).

    s is an offline score (fused VLM scorers in the paper; here any fixed table, e.g. a noisy r,
    through the Pairs field ``score_gap``). A per-pair temperature (G1′): with p = σ(r_a − r_b)
    each pair's optimum is Δ* = (r_a − r_b)/(βc_ab), not potential differences unless c is
    constant, so the optimum is numeric and μ-dependent; a constant c gives π*_{βc} [derived].
    Whether a large gap marks easy or hard pairs in the code is unconfirmed (docs/losses.md); the
    optional gap-grouped/curriculum sampler is not modelled. Defaults β 0.1, α_db 1.
    Source: Qiu et al., arXiv 2601.00623 (TMLR); Artanic30/DA-DPO @ dfac1b3 ``llava/train/da_dpo.py``
    (``dpo_loss``: clip_weight = (|Δs| + 1)·db_alpha). Evidence: code."""

    alpha_db: float = 1.0

    name = "da_dpo"
    citation = "Qiu et al., arXiv 2601.00623; Artanic30/DA-DPO llava/train/da_dpo.py dpo_loss"
    evidence = "code"
    target_kind = "numeric"
    family = "non_proper"
    convex = True
    falls_forever = True
    needs = (SCORE_GAP,)

    def validate(self):
        check_positive(self.beta, "beta")
        check_positive(self.alpha_db, "alpha_db")

    def phi(self, z):
        return softplus(-z)

    def dphi(self, z):
        return -torch.sigmoid(-z)

    def temperature(self, score_gap: torch.Tensor) -> torch.Tensor:
        """β·c_i per record, ``[B, N]``."""
        return self.hp("beta", score_gap) * self.hp("alpha_db", score_gap) * (1 + score_gap.abs())

    def per_record(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, *, score_gap):
        delta = self.margin(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp)
        return self.phi(self.temperature(score_gap) * delta)

    def input_grads(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, *, score_gap):
        delta = self.margin(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp)
        scale = self.temperature(score_gap)
        slope = scale * self.dphi(scale * delta)
        return slope, -slope
