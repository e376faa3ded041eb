"""Single-response and anchoring losses (docs/losses.md): ``kto``, ``apo_zero``, ``apo_down``,
``nca``, ``bco``, ``cal_dpo``, ``dpop``, ``minor_dpo``, ``rpo``, ``spo``, ``flex_dpo``.

Symbols: ℓ = summed sequence log-prob (``chosen_logp``), g = ℓ − ℓ_ref the log-ratio (g_w, g_l
for chosen, rejected), Δ = g_w − g_l, σ the sigmoid, sp(t) = log(1 + e^t) = −log σ(−t),
n_w(y), n_l(y) the rates at which y is chosen / rejected in the records.

Every loss here has a term in one response's g (or ℓ) alone, so normalisation Σπ = 1 binds
(G3 in docs/losses.md): the tabular optimum is numeric, depends on the pair law μ through n_w and n_l
(and on toybench's no-self-pairs convention), is not π*_β, and may sit on the simplex boundary.
``target`` is None except for ``bco(delta="free")`` on one prompt. Stateful losses (``kto``,
``bco`` with ``delta="running"`` or ``"free"``) follow the protocol of ``base.py``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .._checks import check_choice, check_positive, check_range, hyper_values
from .._numerics import bisect, run_axis, softplus
from ..pairs import population
from .base import LENGTH_INPUTS, Loss, register

BCO_DELTA_MODES = ("running", "free")
RPO_VARIANTS = ("pang", "liu")
SPO_READINGS = ("hinge", "vf")
PROFILE_STEPS = 100
"""Bisection halvings for BCO's profiled δ: the bracket is at most a few hundred wide, so 100
halvings reach float64 resolution."""
PROFILE_MARGIN = 50.0
"""How far the δ bracket reaches past the extreme finite rewards: σ(±50) is 1 to 2e-22."""


def _logratios(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp):
    return chosen_logp - ref_chosen_logp, rejected_logp - ref_rejected_logp


def _sigmoid_slope(x: torch.Tensor) -> torch.Tensor:
    """σ′(x) = σ(x)·(1 − σ(x)), as torch's sigmoid backward computes it."""
    value = torch.sigmoid(x)
    return value * (1 - value)


def _normalised_weight(weight: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Record weights ``[1 or B, N]`` as ``[B, N]`` in ``like``'s dtype, summing to one per run."""
    weight = weight.to(device=like.device, dtype=like.dtype).expand_as(like)
    return weight / weight.sum(-1, keepdim=True)


def _weighted_mean(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Σ w·v per run ``[B]``; records of zero weight count as 0 even where v = −inf."""
    return torch.where(weight > 0, weight * values, torch.zeros_like(values)).sum(-1)


def _check_string_choice(value, name: str, choices) -> None:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    check_choice(value, name, choices)


def _completion_mean(inputs: dict, weight: torch.Tensor) -> torch.Tensor:
    """Data-weighted mean of g over the records' completions, chosen and rejected counted
    equally: Σ_i w_i·(g_w,i + g_l,i)/2 ``[B]``, detached."""
    chosen, rejected = _logratios(*(inputs[k].detach() for k in ("chosen_logp", "rejected_logp",
                                                                  "ref_chosen_logp", "ref_rejected_logp")))
    weight = _normalised_weight(weight, chosen)
    return (_weighted_mean(chosen, weight) + _weighted_mean(rejected, weight)) / 2


# ------------------------------------------------------------------------------ KTO
@register
@dataclass(frozen=True)
class KTO(Loss):
    """KTO on paired data: each record (y_w, y_l) is a desirable and an undesirable example,
    L = λ_D·(1 − σ(β(g_w − z₀))) + λ_U·(1 − σ(β(z₀ − g_l))).

    z₀ is a detached batch statistic, clamped at 0: TRL (KTOTrainer) and HALOs take the mean
    of g over *mismatched* pairs, each prompt with a completion cycled from another example, so
    with one prompt z₀ estimates E_data[g], not E_π[g]. **Flat-space population estimator
    (convention chosen here):** z₀ = max(0, Σ_i w_i·(g_w,i + g_l,i)/2), the data-weighted mean
    of g over the records' completions (each record gives one desirable and one undesirable
    completion, so both count equally). With one prompt this is exactly the expectation of
    TRL's estimator; with several prompts TRL's pairs evaluate g(x, y′) on another prompt's
    completion, which the records do not carry, and here each completion stays at its own prompt.

    State protocol: ``init_state(runs, like)`` gives z₀ = 0 ``[B]``; ``update_state`` recomputes
    z₀ from the current batch (TRL keeps no running average: z₀ is fresh every step);
    ``population_state`` is the same statistic over the full population, which ``tb.solve``
    iterates to a fixed point. TRL averages the 2N unpaired terms, half of the per-record sum
    here (a constant factor). With z₀ = 0 and λ_D = λ_U = 1 the loss is exactly ``apo_zero``'s
    (1 − σ(t) = σ(−t)) [derived]. Per response the population objective is
    const + (λ_U n_l − λ_D n_w)·σ(β(g − z₀)), so every response with λ_U n_l > λ_D n_w is driven
    to π = 0; when one exists (always for λ_D ≤ λ_U unless every n_w = n_l) the data mean of g is
    −∞ at the optimum and the fixed point has z₀ = 0 [derived here]. On E1 KTO = APO-zero:
    (0, 0, 0.2985, 0.7015) under W_u, TV 0.2355 from π*_β (0.236 to three decimals).
    λ_D n_D/(λ_U n_U) ∈ [1, 3/2] per the
    paper's summaries, [1, 4/3] per TRL's docs (uncertain). Defaults β 0.1, λ_D = λ_U = 1.
    Source: Ethayarajh et al., arXiv 2402.01306 (KTO loss, equation number not read); TRL
    ``trl/trainer/kto_trainer.py`` (``kto``); HALOs @ 48319886 ``KTOTrainer``. Evidence: code, derived."""

    beta: float = 0.1
    lam_desirable: float = 1.0
    lam_undesirable: float = 1.0

    name = "kto"
    citation = "Ethayarajh et al., arXiv 2402.01306 (KTO loss); TRL KTOTrainer kto"
    evidence = "code, derived"
    target_kind = "numeric"
    family = "single_response"
    convex = False
    stateful = True

    def validate(self):
        check_positive(self.beta, "beta")
        check_range(self.lam_desirable, "lam_desirable", low=0.0, allowed="lam_desirable >= 0 (λ_D)")
        check_range(self.lam_undesirable, "lam_undesirable", low=0.0, allowed="lam_undesirable >= 0 (λ_U)")

    def init_state(self, runs: int, like: torch.Tensor) -> dict:
        """z₀ = 0 for every run."""
        return {"z0": torch.zeros(runs, dtype=like.dtype, device=like.device)}

    def population_state(self, inputs: dict, weight: torch.Tensor) -> dict:
        """z₀ = max(0, data-weighted mean of g over the completions) ``[B]``, detached."""
        return {"z0": _completion_mean(inputs, weight).clamp_min(0.0)}

    def update_state(self, state: dict, inputs: dict, weight: torch.Tensor) -> dict:
        """z₀ from this batch alone (the previous state is not used, as in TRL)."""
        return self.population_state(inputs, weight)

    def per_record(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, *, state):
        chosen, rejected = _logratios(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp)
        z0, beta = state["z0"][:, None], self.hp("beta", chosen)
        return (self.hp("lam_desirable", chosen) * (1 - torch.sigmoid(beta * (chosen - z0)))
                + self.hp("lam_undesirable", chosen) * (1 - torch.sigmoid(beta * (z0 - rejected))))

    def input_grads(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, *, state):
        """z₀ held fixed, σ′ = σ·(1 − σ): ∂L/∂g_w = −λ_D·β·σ′(β(g_w − z₀)), ∂L/∂g_l = λ_U·β·σ′(β(z₀ − g_l))."""
        chosen, rejected = _logratios(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp)
        z0, beta = state["z0"][:, None], self.hp("beta", chosen)
        return (-self.hp("lam_desirable", chosen) * beta * _sigmoid_slope(beta * (chosen - z0)),
                self.hp("lam_undesirable", chosen) * beta * _sigmoid_slope(beta * (z0 - rejected)))


# ------------------------------------------------------------------------------ APO
@register
@dataclass(frozen=True)
class APOZero(Loss):
    """APO-zero (anchored preference optimisation): L = (1 − σ(βg_w)) + σ(βg_l).

    Pushes every chosen log-ratio up and every rejected one down, each against the anchor 0;
    the paper's form drops the constant 1 (TRL keeps it). Per response the population objective
    is const + (n_l − n_w)·σ(βg), so every net loser (n_l > n_w) is driven to π = 0 [derived
    here]. Bounded, non-convex; the optimum sits on the simplex boundary and depends on μ:
    E1 (β = 1) (0, 0, 0.2985, 0.7015) under W_u, (0, 0, 0.542, 0.458) under W_s, infimum 0.6055
    under W_u [derived]. The unpaired variant of
    TRL's KTOTrainer (1 − σ(βg), σ(βg)) is this loss split in two. Defaults: β 0.1.
    Source: D'Oosterlinck et al., arXiv 2408.06266 (TACL 2025), Eq. 7; TRL DPOTrainer
    ``apo_zero``. Evidence: code, derived."""

    beta: float = 0.1

    name = "apo_zero"
    citation = "D'Oosterlinck et al., arXiv 2408.06266, Eq. 7; TRL DPOTrainer apo_zero"
    evidence = "code, derived"
    target_kind = "numeric"
    family = "single_response"
    convex = False

    def per_record(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp):
        chosen, rejected = _logratios(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp)
        beta = self.hp("beta", chosen)
        return 1 - torch.sigmoid(beta * chosen) + torch.sigmoid(beta * rejected)

    def input_grads(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp):
        """∂L/∂g_w = −β·σ′(βg_w), ∂L/∂g_l = β·σ′(βg_l)."""
        chosen, rejected = _logratios(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp)
        beta = self.hp("beta", chosen)
        return -beta * _sigmoid_slope(beta * chosen), beta * _sigmoid_slope(beta * rejected)


@register
@dataclass(frozen=True)
class APODown(Loss):
    """APO-down: L = σ(βg_w) + 1 − σ(β(g_w − g_l)).

    Pushes the chosen log-ratio *down* while keeping the margin: for data whose chosen answers
    are worse than the policy's. Bounded, non-convex, boundary optima that depend on μ: on E1
    (β = 1) all mass on y₁ under W_u and on y₃ under W_s, infimum 0.5315 under W_u [derived].
    TRL v1.9 forms the second term on the f-score difference (raw g_w in the first); with the
    default ``reverse_kl`` scores that is Δ, as here. Defaults: β 0.1.
    Source: D'Oosterlinck et al., arXiv 2408.06266 (TACL 2025), Eq. 8; TRL DPOTrainer
    ``apo_down``. Evidence: code, derived."""

    beta: float = 0.1

    name = "apo_down"
    citation = "D'Oosterlinck et al., arXiv 2408.06266, Eq. 8; TRL DPOTrainer apo_down"
    evidence = "code, derived"
    target_kind = "numeric"
    family = "single_response"
    convex = False

    def per_record(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp):
        chosen, rejected = _logratios(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp)
        beta = self.hp("beta", chosen)
        return torch.sigmoid(beta * chosen) + 1 - torch.sigmoid(beta * (chosen - rejected))

    def input_grads(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp):
        """With s = β·σ′(β(g_w − g_l)): ∂L/∂g_w = β·σ′(βg_w) − s, ∂L/∂g_l = s."""
        chosen, rejected = _logratios(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp)
        beta = self.hp("beta", chosen)
        margin_slope = beta * _sigmoid_slope(beta * (chosen - rejected))
        return beta * _sigmoid_slope(beta * chosen) - margin_slope, margin_slope


# ------------------------------------------------------------------------------ NCA
@register
@dataclass(frozen=True)
class NCA(Loss):
    """NCA, pairwise form: with ρ = βg, L = sp(−ρ_w) + ½·sp(ρ_w) + ½·sp(ρ_l)
    (= −log σ(ρ_w) − ½ log σ(−ρ_w) − ½ log σ(−ρ_l)).

    Per response the population objective is n_w·sp(−ρ) + ½(n_w + n_l)·sp(ρ), minimised without
    the normalisation at e^{ρ(y)} = 2n_w/(n_w + n_l) [derived, exact]; the tabular policy must
    normalise, so the optimum is numeric (E1, β = 1: TV 0.319 from π*_β, TV(W_u, W_s) = 0.024
    [derived]). The paper's reward-data target (K responses, softlabels softmax(r/α),
    π ∝ π_ref·e^{r/α} as K → ∞) is a different setting and is not verified here. Defaults: β 0.1
    (TRL's paper setting 0.01). Source: Chen et al., arXiv 2402.05369 (NeurIPS 2024);
    ``thu-ml/Noise-Contrastive-Alignment`` @ cbb9248b ``NCATrainer_pairwise``; TRL DPOTrainer
    ``nca_pair``. Evidence: code, derived."""

    beta: float = 0.1

    name = "nca"
    citation = "Chen et al., arXiv 2402.05369 (pairwise NCA); TRL DPOTrainer nca_pair"
    evidence = "code, derived"
    target_kind = "numeric"
    family = "single_response"
    convex = False

    def per_record(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp):
        chosen, rejected = _logratios(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp)
        beta = self.hp("beta", chosen)
        return softplus(-beta * chosen) + 0.5 * softplus(beta * chosen) + 0.5 * softplus(beta * rejected)

    def input_grads(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp):
        """∂L/∂g_w = β·(½σ(βg_w) − σ(−βg_w)), ∂L/∂g_l = ½β·σ(βg_l)."""
        chosen, rejected = _logratios(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp)
        beta = self.hp("beta", chosen)
        return (beta * (0.5 * torch.sigmoid(beta * chosen) - torch.sigmoid(-beta * chosen)),
                0.5 * beta * torch.sigmoid(beta * rejected))


# ------------------------------------------------------------------------------ BCO
def _profile_delta(chosen_reward, rejected_reward, weight):
    """argmin_δ Σ w·[sp(δ − a) + sp(b − δ)] ``[B]`` (a = βg_w, b = βg_l): the root of the
    increasing derivative Σ w·[σ(δ − a) − σ(b − δ)], by bisection on a bracket around the finite rewards."""
    both = torch.cat([chosen_reward, rejected_reward], -1)
    finite = torch.isfinite(both)
    low = torch.where(finite, both, torch.inf).amin(-1, keepdim=True)
    high = torch.where(finite, both, -torch.inf).amax(-1, keepdim=True)
    low = torch.where(torch.isfinite(low), low, 0.0) - PROFILE_MARGIN
    high = torch.where(torch.isfinite(high), high, 0.0) + PROFILE_MARGIN
    def slope(delta):
        return _weighted_mean(torch.sigmoid(delta - chosen_reward) - torch.sigmoid(rejected_reward - delta), weight)[:, None]

    return bisect(slope, low, high, steps=PROFILE_STEPS)[:, 0]


@register
@dataclass(frozen=True)
class BCO(Loss):
    """BCO (binary classifier optimisation), paired form:
    L = −log σ(βg_w − δ) − log σ(−(βg_l − δ)) = sp(δ − βg_w) + sp(βg_l − δ).

    ``delta`` chooses the reward shift δ:

    - ``"running"`` (default): BCO's reward shift as TRL's BCOTrainer (``trl/experimental/bco``)
      and TRL v0.28 ``bco_pair`` compute it: δ is a detached running mean (``RunningMoments``)
      of the per-step batch means of the rewards βg, chosen and rejected pooled. State {"delta", "steps"}:
      ``update_state`` does δ ← δ + (m − δ)/(steps + 1) with m the batch's weighted mean (TRL
      starts from count 1e-24, so its first step is m; here the count starts at 0, giving m
      exactly). ``population_state`` is δ = the population mean of βg, the running mean's fixed
      point under full-batch training; that optimum is numeric and not analysed in closed form;
    - a number (or ``[B]`` tensor), e.g. 0: a fixed δ; δ = 0 is TRL v1.9 DPOTrainer ``bco_pair``
      (a TRL convention, so an explicit option). Numeric and μ-dependent: E1 (β = 1, δ = 0)
      TV 0.012 (W_u), 0.193 (W_s) from π*_β [derived];
    - ``"free"``: δ minimised jointly with the policy, profiled out: the state is
      δ*(π) = argmin_δ of the weighted objective at the current policy (a 1-D convex root), in
      ``update_state`` and ``population_state`` alike, so training follows the gradient of
      min_δ L (envelope theorem) and ``tb.solve``'s fixed point is the joint minimiser
      (convention chosen here: neither TRL nor the paper offers it). With one prompt every
      t_y = βg_y − δ is free, so π ∝ π_ref·(n_w/n_l)^{1/β}, n_w(y) and n_l(y) the record weight
      with y chosen and rejected [derived]: ``target`` returns it (None with several prompts, where
      one shared δ cannot absorb every prompt's normaliser, or when some response has n_w = 0 or
      n_l = 0). For a product law μ⊗μ a pair is two distinct responses (self-pairs dropped), so
      n_w/n_l = (p − μ_y/2)/(1 − p − μ_y/2) with p = p(y ≻ μ) = Σ_b μ_b·p(y ≻ b) (p(y ≻ y) = ½),
      not p/(1 − p).

    The unpaired BCOTrainer's UDM density-ratio weights (clamped to [0.5, 10]) are not included.
    Defaults: β 0.1, δ running. Source: Jung et al., arXiv 2404.04656; TRL DPOTrainer ``bco_pair``
    (v1.9: δ = 0; v0.28: running mean), ``trl/experimental/bco``. Evidence: code, derived."""

    beta: float = 0.1
    delta: float | str = "running"

    name = "bco"
    citation = "Jung et al., arXiv 2404.04656; TRL DPOTrainer bco_pair (v1.9: δ = 0; v0.28: running mean)"
    evidence = "code, derived"
    target_kind = "numeric"
    family = "single_response"
    convex = False

    @property
    def stateful(self) -> bool:
        return isinstance(self.delta, str)

    @property
    def mode(self) -> str:
        """``"fixed"``, ``"running"`` or ``"free"``."""
        return self.delta if isinstance(self.delta, str) else "fixed"

    def validate(self):
        check_positive(self.beta, "beta")
        allowed = f"use a finite number, a [B] tensor, or one of {list(BCO_DELTA_MODES)}"
        if isinstance(self.delta, str):
            if self.delta not in BCO_DELTA_MODES:
                raise ValueError(f"delta={self.delta!r} is not allowed; {allowed}")
            return
        try:
            hyper_values(self.delta, "delta")
        except ValueError as err:
            raise ValueError(f"delta={self.delta!r} is not allowed; {allowed}") from err

    def _rewards(self, inputs: dict):
        chosen, rejected = _logratios(*(inputs[k].detach() for k in ("chosen_logp", "rejected_logp",
                                                                      "ref_chosen_logp", "ref_rejected_logp")))
        beta = self.hp("beta", chosen)
        return beta * chosen, beta * rejected

    def init_state(self, runs: int, like: torch.Tensor) -> dict:
        """δ = 0 and no steps seen, for every run."""
        zeros = torch.zeros(runs, dtype=like.dtype, device=like.device)
        return {"delta": zeros, "steps": zeros.clone()}

    def population_state(self, inputs: dict, weight: torch.Tensor) -> dict:
        """``"running"``: δ = Σ w·β(g_w + g_l)/2; ``"free"``: δ = argmin_δ Σ w·L. ``[B]``, detached."""
        chosen_reward, rejected_reward = self._rewards(inputs)
        weight = _normalised_weight(weight, chosen_reward)
        if self.mode == "free":
            delta = _profile_delta(chosen_reward, rejected_reward, weight)
        else:
            delta = (_weighted_mean(chosen_reward, weight) + _weighted_mean(rejected_reward, weight)) / 2
        return {"delta": delta, "steps": torch.ones_like(delta)}

    def update_state(self, state: dict, inputs: dict, weight: torch.Tensor) -> dict:
        """``"running"``: one running-mean step with the batch mean; ``"free"``: δ*(π) on the batch."""
        batch = self.population_state(inputs, weight)
        if self.mode == "free":
            return {"delta": batch["delta"], "steps": state["steps"] + 1}
        steps = state["steps"] + 1
        return {"delta": state["delta"] + (batch["delta"] - state["delta"]) / steps, "steps": steps}

    def per_record(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, *, state=None):
        chosen, rejected = _logratios(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp)
        beta = self.hp("beta", chosen)
        delta = state["delta"][:, None] if self.stateful else self.hp("delta", chosen)
        return softplus(delta - beta * chosen) + softplus(beta * rejected - delta)

    def input_grads(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, *, state=None):
        """δ held fixed: ∂L/∂g_w = −β·σ(δ − βg_w), ∂L/∂g_l = β·σ(βg_l − δ)."""
        chosen, rejected = _logratios(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp)
        beta = self.hp("beta", chosen)
        delta = state["delta"][:, None] if self.stateful else self.hp("delta", chosen)
        return -beta * torch.sigmoid(delta - beta * chosen), beta * torch.sigmoid(beta * rejected - delta)

    def target(self, prob, noise=0.0):
        """``delta="free"``, one prompt: log π = log softmax(log π_ref + (log n_w − log n_l)/β); else None."""
        if self.mode != "free" or prob.P != 1:
            return None
        records = population(prob, noise).record_table()                       # [R, 1, Y, Y]
        chosen_rate, rejected_rate = records.sum(-1), records.sum(-2)
        if not bool(((chosen_rate > 0) & (rejected_rate > 0)).all()):
            return None
        beta = run_axis(self.beta, "beta")
        table = torch.log_softmax(prob.ref_logp + (chosen_rate.log() - rejected_rate.log()) / beta, -1)
        if self.runs is None and hyper_values(noise, "noise").ndim == 0:
            return table[0]
        return table.expand(self.runs or table.shape[0], *table.shape[1:]).clone()


# ------------------------------------------------------------------------------ Cal-DPO
@register
@dataclass(frozen=True)
class CalDPO(Loss):
    """Cal-DPO (calibrated DPO), the authors' code:
    L = −log σ(g_w − g_l) + c·[(g_w − 1/(2β))² + (g_l + 1/(2β))²].

    The DPO term is **not** scaled by β; the bracket calibrates the implicit rewards to ±1/(2β)
    (it is TRL's ``sppo_hard``). ``calib_weight`` c = ½ is the code's; the paper reportedly has
    no ½ (c = 1) [secondary; uncertain]. Numeric, μ-dependent: E1 (β = 1, c = ½) TV 0.327 from
    π*_β [derived]. Defaults: β 0.001 (the code uses 0.001–0.002), c = ½.
    Source: Xiao et al., arXiv 2412.14516 (NeurIPS 2024); ``tengxiao1/Cal-DPO`` @ 7d16b466
    ``scripts/dpo_trainer.py``. Evidence: code."""

    beta: float = 0.001
    calib_weight: float = 0.5

    name = "cal_dpo"
    citation = "Xiao et al., arXiv 2412.14516; tengxiao1/Cal-DPO scripts/dpo_trainer.py"
    evidence = "code"
    target_kind = "numeric"
    family = "single_response"
    convex = False

    def validate(self):
        check_positive(self.beta, "beta")
        check_range(self.calib_weight, "calib_weight", low=0.0,
                    allowed="calib_weight >= 0 (0.5 = the authors' code, 1 = the paper per summaries)")

    def per_record(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp):
        chosen, rejected = _logratios(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp)
        half_inverse_beta = 0.5 / self.hp("beta", chosen)
        calibration = (chosen - half_inverse_beta) ** 2 + (rejected + half_inverse_beta) ** 2
        return softplus(-(chosen - rejected)) + self.hp("calib_weight", chosen) * calibration

    def input_grads(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp):
        """With s = σ(−(g_w − g_l)), c the calibration weight:
        ∂L/∂g_w = −s + 2c·(g_w − 1/(2β)), ∂L/∂g_l = s + 2c·(g_l + 1/(2β))."""
        chosen, rejected = _logratios(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp)
        half_inverse_beta = 0.5 / self.hp("beta", chosen)
        slope, weight = torch.sigmoid(-(chosen - rejected)), 2 * self.hp("calib_weight", chosen)
        return -slope + weight * (chosen - half_inverse_beta), slope + weight * (rejected + half_inverse_beta)


# ------------------------------------------------------------------------------ DPOP
@register
@dataclass(frozen=True)
class DPOP(Loss):
    """DPO-Positive (Smaug): L = −log σ(β·[Δ − λ·max(0, −g_w)]).

    The penalty λ·max(0, log π_ref(y_w) − log π_θ(y_w)) acts once the chosen response falls
    below its reference probability. Convex in the logits (Δ is linear, −max(0, −g_w) concave).
    With full-coverage soft labels every response is chosen somewhere, so a large λ forces
    g ≥ 0 everywhere and Σπ = 1 then gives **π = π_ref** (E1, β = 1, λ = 50: exactly π_ref, loss
    log 2 per record); λ = 5 stops short of it (E1 W_u: TV 0.0607 from π_ref, the optimum on the
    kinks g(y₁) = g(y₂) = 0 [derived here; 0.062 by a kink-blind search]). λ = 50 is the
    community's value, reportedly the paper's (unconfirmed); 5 appears elsewhere. β default 0.1
    (DPO's): convention chosen here.
    Source: Pal et al., arXiv 2402.13228, Eq. 3 [secondary: blog transcriptions]; no code.
    Evidence: secondary, derived."""

    beta: float = 0.1
    lam: float = 50.0

    name = "dpop"
    citation = "Pal et al. (Smaug), arXiv 2402.13228, Eq. 3 (secondary transcriptions)"
    evidence = "secondary, derived"
    target_kind = "numeric"
    family = "single_response"
    convex = True
    kink = ("chosen", -1)

    def validate(self):
        check_positive(self.beta, "beta")
        check_range(self.lam, "lam", low=0.0, allowed="lam >= 0 (weight of the chosen-drop penalty)")

    def relaxed(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, slack):
        """The loss with max(0, −g_w) replaced by ``slack`` (nondecreasing in it)."""
        chosen, rejected = _logratios(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp)
        return softplus(-self.hp("beta", chosen) * (chosen - rejected - self.hp("lam", chosen) * slack))

    def per_record(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp):
        chosen, rejected = _logratios(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp)
        margin = chosen - rejected - self.hp("lam", chosen) * torch.relu(-chosen)
        return softplus(-self.hp("beta", chosen) * margin)

    def input_grads(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp):
        """With s = β·σ(−βm): ∂L/∂g_w = −s·(1 + λ·1[g_w < 0]), ∂L/∂g_l = s (relu′(0) = 0, as autograd)."""
        chosen, rejected = _logratios(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp)
        beta, lam = self.hp("beta", chosen), self.hp("lam", chosen)
        slope = beta * torch.sigmoid(-beta * (chosen - rejected - lam * torch.relu(-chosen)))
        return -slope * (1 + lam * (chosen < 0).to(chosen.dtype)), slope


# ------------------------------------------------------------------------------ Minor-DPO
@register
@dataclass(frozen=True)
class MinorDPO(Loss):
    """RECONSTRUCTION of Minor DPO: L = −log σ(β·(g_w − max(0, g_l))).

    The rejected response is only pushed down while it is above its reference probability.
    The form rests on secondary summaries; no read source states it in full, so no paper claim
    is registered against it. At π(y_w) = 1 the loss keeps a floor −log σ(−β log π_ref(y_w)) > 0
    [derived]. Numeric, μ-dependent: E1 (β = 1) TV 0.273 from π*_β, TV(W_u, W_s) = 0.090
    [derived]. β default 0.1 (DPO's): convention chosen here. Source: Xie et al., arXiv
    2408.09834; no code. Evidence: secondary, derived."""

    beta: float = 0.1

    name = "minor_dpo"
    citation = "Xie et al., arXiv 2408.09834 (RECONSTRUCTION from secondary summaries)"
    evidence = "secondary, derived"
    reconstruction = True
    target_kind = "numeric"
    family = "single_response"
    convex = False
    kink = ("rejected", 1)

    def per_record(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp):
        chosen, rejected = _logratios(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp)
        return softplus(-self.hp("beta", chosen) * (chosen - torch.relu(rejected)))

    def relaxed(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, slack):
        """The loss with max(0, g_l) replaced by ``slack`` (nondecreasing in it)."""
        chosen = chosen_logp - ref_chosen_logp
        return softplus(-self.hp("beta", chosen) * (chosen - slack))

    def input_grads(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp):
        """With s = β·σ(−β(g_w − max(0, g_l))): ∂L/∂g_w = −s, ∂L/∂g_l = s·1[g_l > 0] (relu′(0) = 0)."""
        chosen, rejected = _logratios(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp)
        beta = self.hp("beta", chosen)
        slope = beta * torch.sigmoid(-beta * (chosen - torch.relu(rejected)))
        return -slope, slope * (rejected > 0).to(rejected.dtype)


# ------------------------------------------------------------------------------ RPO
@register
@dataclass(frozen=True)
class RPO(Loss):
    """RPO = DPO + NLL of the chosen response: L = sp(−βΔ) + α·NLL(y_w).

    ``variant="pang"`` (default): Pang et al., arXiv 2404.19733 (iterative RPO), NLL
    length-normalised, −ℓ_w/|y_w| (needs ``FlatSpace(K, lengths=...)``), α = 1; TRL ≤ v0.28
    ``rpo_alpha``, ≥ v0.29 ``loss_type=["sigmoid", "sft"]`` with ``loss_weights=[1, α]``. TRL's
    NLL is a token mean over the whole batch; per record the two agree for one sequence (or
    equal lengths). ``variant="liu"``: Liu et al., arXiv 2405.16436, DPO + η·SFT with the SFT
    term the summed NLL −ℓ_w (summed: convention chosen here; the paper's scaling of η was not
    read), their setting η = ``alpha`` = 0.005 with β = 0.01 [secondary]. Convex in the logits,
    but the NLL is a single-response term (G3): numeric, μ-dependent, not π*_β (E1, α = 1,
    β = 1: TV 0.066 (W_u), 0.260 (W_s) [derived]). Other methods named "RPO" exist; ``rpo``
    means DPO + NLL only. Defaults: β 0.1, α 1, ``variant="pang"``. Evidence: secondary, code, derived."""

    beta: float = 0.1
    alpha: float = 1.0
    variant: str = "pang"

    name = "rpo"
    citation = "Pang et al., arXiv 2404.19733 (DPO + NLL); Liu et al., arXiv 2405.16436; TRL rpo_alpha / sft"
    evidence = "secondary, code, derived"
    target_kind = "numeric"
    family = "single_response"
    convex = True

    @property
    def needs(self):
        return LENGTH_INPUTS if self.variant == "pang" else ()

    def validate(self):
        check_positive(self.beta, "beta")
        check_range(self.alpha, "alpha", low=0.0, allowed="alpha >= 0 (weight of the NLL term)")
        _check_string_choice(self.variant, "variant", RPO_VARIANTS)

    def per_record(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **inputs):
        chosen, rejected = _logratios(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp)
        nll = -chosen_logp / inputs["chosen_len"] if self.variant == "pang" else -chosen_logp
        return softplus(-self.hp("beta", chosen) * (chosen - rejected)) + self.hp("alpha", chosen) * nll

    def input_grads(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **inputs):
        """With s = β·σ(−β(g_w − g_l)): ∂L/∂ℓ_w = −s − α/|y_w| (``"pang"``; −s − α otherwise), ∂L/∂ℓ_l = s."""
        chosen, rejected = _logratios(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp)
        beta = self.hp("beta", chosen)
        slope = beta * torch.sigmoid(-beta * (chosen - rejected))
        alpha = self.hp("alpha", chosen)
        nll_slope = alpha / inputs["chosen_len"] if self.variant == "pang" else alpha
        return -slope - nll_slope, slope


# ------------------------------------------------------------------------------ SPO
@register
@dataclass(frozen=True)
class SPO(Loss):
    """RECONSTRUCTIONS of SPO (stable preference optimisation, bilevel): DPO plus a penalty
    that keeps the chosen responses from losing likelihood, L = sp(−βΔ) + λ·penalty.

    Only the abstract and summaries were read (upper level "enhanced DPO", lower level SFT, a
    regulariser for absolute improvement of the preferred outputs; v2 folds the lower-level
    value constraint into a penalty), so both readings are guesses:

    - ``reading="hinge"`` (default): penalty max(0, −g_w);
    - ``reading="vf"`` (value-function penalty): max(0, L_SFT(θ) − L_SFT(θ₀)) with θ₀ the
      reference (assumption) and L_SFT the token-mean NLL of the chosen response (TRL's SFT
      convention): per record max(0, −g_w/|y_w|), needing ``FlatSpace(K, lengths=...)``. The
      paper's constraint is on the *expected* SFT loss (the max outside the expectation), a
      batch-level term that cannot be written per record and is not implemented; per record the
      two readings coincide when |y| = 1.

    Hinge reading, full-coverage soft labels: π = π_ref for λ ≥ 10 on E1 (β = 1); λ = 1 gives
    TV 0.177 from π_ref [derived]. Convex in the logits (−g_w is convex). No default λ or β was
    found: β 0.1 (DPO's) and λ 1 are conventions chosen here. Source: Jian, Yang, Ouyang, Ye,
    arXiv 2507.07723 v1/v2; no code. Evidence: paper: abstract, derived."""

    beta: float = 0.1
    lam: float = 1.0
    reading: str = "hinge"

    name = "spo"
    citation = "Jian, Yang, Ouyang, Ye, arXiv 2507.07723 (RECONSTRUCTIONS: hinge / value-function penalty)"
    evidence = "paper: abstract, derived"
    reconstruction = True
    target_kind = "numeric"
    family = "single_response"
    convex = True

    @property
    def needs(self):
        return LENGTH_INPUTS if self.reading == "vf" else ()

    def validate(self):
        check_positive(self.beta, "beta")
        check_range(self.lam, "lam", low=0.0, allowed="lam >= 0 (penalty weight λ)")
        _check_string_choice(self.reading, "reading", SPO_READINGS)

    kink = ("chosen", -1)

    def per_record(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **inputs):
        chosen, rejected = _logratios(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp)
        drop = -chosen / inputs["chosen_len"] if self.reading == "vf" else -chosen
        return softplus(-self.hp("beta", chosen) * (chosen - rejected)) + self.hp("lam", chosen) * torch.relu(drop)

    def relaxed(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, slack, **inputs):
        """The loss with max(0, −g_w) replaced by ``slack`` (nondecreasing in it)."""
        chosen, rejected = _logratios(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp)
        penalty = slack / inputs["chosen_len"] if self.reading == "vf" else slack
        return softplus(-self.hp("beta", chosen) * (chosen - rejected)) + self.hp("lam", chosen) * penalty

    def input_grads(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **inputs):
        """With s = β·σ(−β(g_w − g_l)) and d = ∂drop/∂g_w (−1/|y_w| for ``"vf"``, −1 for ``"hinge"``):
        ∂L/∂g_w = −s + λ·d·1[drop > 0], ∂L/∂g_l = s (relu′(0) = 0)."""
        chosen, rejected = _logratios(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp)
        beta = self.hp("beta", chosen)
        slope = beta * torch.sigmoid(-beta * (chosen - rejected))
        drop_slope = -1 / inputs["chosen_len"] if self.reading == "vf" else -1.0
        return -slope + self.hp("lam", chosen) * drop_slope * (chosen < 0).to(chosen.dtype), slope


# ------------------------------------------------------------------------------ FlexDPO
@register
@dataclass(frozen=True)
class FlexDPO(Loss):
    """Flex-DPO: L = −log σ(β⁺g_w − β⁻g_l), β⁻ ≤ β⁺.

    β⁺a − β⁻b = β⁻(a − b) + (β⁺ − β⁻)a: DPO(β⁻) plus a bonus on the chosen log-ratio, so it is
    not shift-invariant and the normalisation binds (G3): numeric, μ-dependent, not π*_β (E1,
    β⁺ = 1, β⁻ = 0.8: TV 0.074 [derived]). Convex in the logits when β⁻ ≤ β⁺ (the argument is
    then concave), which ``validate`` requires; β⁺ = β⁻ is DPO. The reviews put the best β⁻
    near β⁺ − 0.02 (0.08 vs 0.1; non-monotone). The paper's Cor. 1 gradient ratio −π⁺/π⁻ is at
    the probability level (ignores softmax Jacobians). The reference names the two temperatures
    β⁺, β⁻, so this loss has no single ``beta`` field. Defaults: β⁺ 0.1, β⁻ 0.08.
    Source: Yan et al., arXiv 2406.07327 (ICLR 2025) [secondary: reviews]; no code.
    Evidence: secondary, derived."""

    beta_plus: float = 0.1
    beta_minus: float = 0.08

    name = "flex_dpo"
    citation = "Yan et al., arXiv 2406.07327 (ICLR 2025; secondary reviews)"
    evidence = "secondary, derived"
    target_kind = "numeric"
    family = "single_response"
    convex = True

    def validate(self):
        check_positive(self.beta_plus, "beta_plus")
        check_positive(self.beta_minus, "beta_minus")
        if bool((hyper_values(self.beta_minus, "beta_minus") > hyper_values(self.beta_plus, "beta_plus")).any()):
            raise ValueError(f"beta_minus={self.beta_minus!r} exceeds beta_plus={self.beta_plus!r}; "
                             "need 0 < beta_minus <= beta_plus (β⁻ ≤ β⁺)")

    def per_record(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp):
        chosen, rejected = _logratios(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp)
        return softplus(-(self.hp("beta_plus", chosen) * chosen - self.hp("beta_minus", chosen) * rejected))

    def input_grads(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp):
        """With z = β⁺g_w − β⁻g_l: ∂L/∂g_w = −β⁺·σ(−z), ∂L/∂g_l = β⁻·σ(−z)."""
        chosen, rejected = _logratios(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp)
        beta_plus, beta_minus = self.hp("beta_plus", chosen), self.hp("beta_minus", chosen)
        slope = torch.sigmoid(-(beta_plus * chosen - beta_minus * rejected))
        return -beta_plus * slope, beta_minus * slope
