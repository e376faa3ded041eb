"""Self-play and iterative losses: ``sppo``, ``ddo``, ``disco`` (docs/losses.md).

Symbols: g = ℓ − ℓ_ref, where the "reference" passed to the loss is whatever the method compares
against in the current round (SPPO: the previous iterate π_t; DDO: p_ref, the previous round's
model under self-play); sp(t) = log(1 + e^t); M[x, y, y′] = P(y ≻ y′|x) with M[y, y] = ½.
Also here: the pieces these methods iterate (``with_win_probs``, ``hedge_step``,
``ddo_pairs``, ``ddo_formula``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .._checks import check_choice, check_positive
from .._numerics import flat_index, softplus
from ..pairs import Pairs
from .base import LENGTH_INPUTS, Loss, register

SPPO_MODES = ("soft", "single", "hard")
SPPO_FIELDS = {"soft": ("chosen_win_prob", "rejected_win_prob"), "single": ("pair_win_prob",), "hard": ()}
LOG_NORMALISATION_TOL = 1e-6
"""|logsumexp − 0| allowed for a given log-prob table (rounded float32 inputs)."""


def _log_table(logp, prob, name: str) -> torch.Tensor:
    """A float64 log-prob table ``[P, Y]`` or ``[B, P, Y]`` matching ``prob``; rows normalised."""
    table = torch.as_tensor(logp, dtype=torch.float64)
    if table.ndim not in (2, 3) or table.shape[-2:] != (prob.P, prob.Y):
        raise ValueError(f"{name} must be log-probs [P, Y] or [B, P, Y] with P={prob.P}, Y={prob.Y}, "
                         f"got shape {tuple(table.shape)}")
    if torch.isnan(table).any() or torch.isposinf(table).any():
        raise ValueError(f"{name} must be log-probabilities (no NaN or +inf)")
    error = torch.logsumexp(table, -1).abs().max().item()
    if error > LOG_NORMALISATION_TOL:
        raise ValueError(f"{name} rows must normalise (logsumexp = 0); the worst row is off by {error:.3g}")
    return table


def win_probability(prob, policy_logp) -> torch.Tensor:
    """P(y ≻ π|x) = Σ_y′ π(y′|x)·M[x, y, y′] (self term ½·π(y) included), ``[P, Y]`` or ``[B, P, Y]``."""
    policy = _log_table(policy_logp, prob, "policy_logp").exp()
    return torch.einsum("pab,...pb->...pa", prob.preference_matrix(), policy)


def with_win_probs(pairs: Pairs, policy_logp=None) -> Pairs:
    """``pairs`` with SPPO's fields: ``chosen_win_prob`` = P(y_w ≻ π_t), ``rejected_win_prob`` =
    P(y_l ≻ π_t) and ``pair_win_prob`` = P(y_w ≻ y_l), exact under the problem's preference.

    π_t defaults to the problem's π_ref (the loss's reference is π_t). The authors estimate
    P(y ≻ π_t) from K = 5 PairRM-scored samples, (1/K)Σ_j σ(s(y) − s(y_j)); here it is exact (K → ∞).
    A ``[B, P, Y]`` π_t gives per-run fields ``[B, N]``."""
    prob = pairs.problem
    win = win_probability(prob, prob.ref_logp if policy_logp is None else policy_logp)
    win = win.reshape(-1, prob.P * prob.Y).to(pairs.prompt.device)
    runs = max(win.shape[0], pairs.runs)
    flat = win.expand(runs, -1)
    chosen = flat.gather(1, flat_index(pairs.prompt, pairs.chosen, prob.Y).expand(runs, -1))
    rejected = flat.gather(1, flat_index(pairs.prompt, pairs.rejected, prob.Y).expand(runs, -1))
    pair = prob.preference_matrix().to(pairs.prompt.device)[pairs.prompt, pairs.chosen, pairs.rejected]
    return pairs.with_fields(chosen_win_prob=chosen, rejected_win_prob=rejected, pair_win_prob=pair)


def hedge_step(prob, policy_logp, eta: float) -> torch.Tensor:
    """One multiplicative-weights (Hedge) step of the preference game, SPPO's ideal update:
    π_{t+1}(y|x) ∝ π_t(y|x)·exp(η·P(y ≻ π_t|x)) (log-probs, float64). Source: Wu et al.,
    arXiv 2405.00675, the exponential update behind the SPPO loss."""
    check_positive(eta, "eta")
    policy = _log_table(policy_logp, prob, "policy_logp")
    return torch.log_softmax(policy + eta * win_probability(prob, policy), -1)


@register
@dataclass(frozen=True)
class SPPO(Loss):
    """Self-Play Preference Optimization: square loss of g_t = log π/π_t onto Hedge's log-ratio.

    ``mode="soft"`` (paper and code default): L = ½[(g_w − η(P̂_w − ½))² + (g_l − η(P̂_l − ½))²],
    η = 1/β, P̂ = P(y ≻ π_t) from the Pairs fields ``chosen_win_prob``/``rejected_win_prob``;
    ``"single"`` (code ``sppo_single``): ½[(g_w − η(P − ½))² + (g_l + η(P − ½))²], P = P(y_w ≻ y_l)
    from ``pair_win_prob``; ``"hard"`` (TRL ``sppo_hard``, every version on reverse-KL scores):
    (g_w − η/2)² + (g_l + η/2)², no fields. The loss's reference log-probs are π_t's.

    One step minimises a weighted least squares of g onto t(y) = η(P(y ≻ π_t) − ½); its minimiser
    is Hedge's π_t·e^{ηP(y≻π_t)}/Z_t only when log Z_t = η/2 (Σπ_t e^{t} = 1), which fails unless
    P(y ≻ π_t) is constant on the support; the iterates' limit is the unregularised game's Nash
    equilibrium (under BT a point mass on argmax r) [derived]. Numeric (G3), μ-dependent.
    Defaults β = 0.001 (η = 1000), K = 5 samples (not a field here: P̂ is given).
    Source: Wu et al., arXiv 2405.00675 (ICLR 2025); uclaml/SPPO @ 5e61c4e9 ``sppo/trainer.py``,
    ``scripts/compute_prob.py``; TRL v1.9.0 / v0.28.0 DPOTrainer ``sppo_hard``. Evidence: code, derived."""

    beta: float = 0.001
    mode: str = "soft"

    name = "sppo"
    citation = "Wu et al., arXiv 2405.00675; uclaml/SPPO sppo/trainer.py; TRL sppo_hard"
    evidence = "code, derived"
    target_kind = "numeric"
    family = "single_response"
    convex = False

    @property
    def needs(self):
        return SPPO_FIELDS.get(self.mode, ())

    def validate(self):
        check_positive(self.beta, "beta")
        check_choice(self.mode, "mode", SPPO_MODES)

    def residuals(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **fields):
        """(g_w − t_w, g_l − t_l), the two regression residuals ``[B, N]``."""
        chosen, rejected = chosen_logp - ref_chosen_logp, rejected_logp - ref_rejected_logp
        eta = 1 / self.hp("beta", chosen)
        if self.mode == "soft":
            return (chosen - eta * (fields["chosen_win_prob"] - 0.5),
                    rejected - eta * (fields["rejected_win_prob"] - 0.5))
        if self.mode == "single":
            shift = eta * (fields["pair_win_prob"] - 0.5)
            return chosen - shift, rejected + shift
        return chosen - eta / 2, rejected + eta / 2

    def per_record(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **fields):
        chosen, rejected = self.residuals(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **fields)
        scale = 1.0 if self.mode == "hard" else 0.5
        return scale * (chosen ** 2 + rejected ** 2)

    def input_grads(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **fields):
        chosen, rejected = self.residuals(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **fields)
        scale = 2.0 if self.mode == "hard" else 1.0
        return scale * chosen, scale * rejected


@register
@dataclass(frozen=True)
class DDO(Loss):
    """Direct Discriminative Optimization (unpaired): with d = log p_θ/p_ref,
    L = −E_{p_data} log σ(β·d) − α·E_{p_ref} log σ(−β·d). A record (chosen y ~ p_data,
    rejected y′ ~ p_ref, built by ``ddo_pairs``) costs sp(−β·d(y)) + α·sp(β·d(y′)).

    Pointwise optimum p_θ = α^{−1/β}·p_ref^{1−1/β}·p_data^{1/β}; over normalised tabular policies
    (Σp = 1 binds) it is the minimiser only at α = (Σ_y p_ref^{1−1/β}p_data^{1/β})^β, where it is
    ``ddo_formula``; α = β = 1 gives p_data; otherwise numeric (G3). Self-play (p_ref ← p_θ each
    round) maps log p_{n+1} = (1 − 1/β)·log p_n + (1/β)·log p_data + c, converging iff β > ½
    [derived]. ``target`` is None: the records are not ``population(prob)`` but ``ddo_pairs``.
    Defaults α = β = 1 (convention chosen here: the source's ranges are diffusion α ∈ [0.5, 6],
    β ∈ [0.01, 0.1], VAR α ∈ [10, 100], β = 0.02). Source: Zheng et al., arXiv 2503.01103
    (ICML 2025) [secondary]; NVlabs/DDO @ d7b366b has inference code only. Evidence: secondary, derived."""

    beta: float = 1.0
    alpha: float = 1.0

    name = "ddo"
    citation = "Zheng et al., arXiv 2503.01103 (DDO objective)"
    evidence = "secondary, derived"
    target_kind = "numeric"
    family = "single_response"
    convex = False

    def validate(self):
        check_positive(self.beta, "beta")
        check_positive(self.alpha, "alpha")

    def per_record(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp):
        beta = self.hp("beta", chosen_logp)
        return (softplus(-beta * (chosen_logp - ref_chosen_logp))
                + self.hp("alpha", chosen_logp) * softplus(beta * (rejected_logp - ref_rejected_logp)))

    def input_grads(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp):
        beta = self.hp("beta", chosen_logp)
        return (-beta * torch.sigmoid(-beta * (chosen_logp - ref_chosen_logp)),
                self.hp("alpha", chosen_logp) * beta * torch.sigmoid(beta * (rejected_logp - ref_rejected_logp)))


def ddo_pairs(prob, data_logp, n: int | None = None, seed: int = 0) -> Pairs:
    """DDO's records as ``Pairs``: chosen y ~ p_data(·|x), rejected y′ ~ p_ref(·|x) = the problem's π_ref.

    ``n=None``: the exact population, every (x, y, y′) (y = y′ included: the two draws are
    independent) with weight ρ(x)·p_data(y|x)·p_ref(y′|x), zero-weight records dropped; an int n:
    n records x ~ ρ, y ~ p_data, y′ ~ p_ref drawn from ``torch.Generator().manual_seed(seed)``,
    weight 1/n each. ``data_logp`` is ``[P, Y]``."""
    data = _log_table(data_logp, prob, "data_logp")
    if data.ndim != 2:
        raise ValueError("data_logp must be one [P, Y] table (p_data is shared by all runs)")
    rho, ref = prob.prompt_weights, prob.ref_logp.exp()
    if n is None:
        weight = rho[:, None, None] * data.exp()[:, :, None] * ref[:, None, :]
        x, chosen, rejected = (weight > 0).nonzero(as_tuple=True)
        return Pairs(x[None], chosen[None], rejected[None], weight[x, chosen, rejected][None], prob)
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ValueError(f"n must be None (exact population) or a positive integer, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    gen = torch.Generator().manual_seed(seed)
    x = torch.multinomial(rho, n, replacement=True, generator=gen)
    chosen = torch.multinomial(data.exp()[x], 1, generator=gen)[:, 0]
    rejected = torch.multinomial(ref[x], 1, generator=gen)[:, 0]
    weight = torch.full((1, n), 1.0 / n, dtype=torch.float64)
    return Pairs(x[None], chosen[None], rejected[None], weight, prob)


def ddo_formula(ref_logp, data_logp, beta) -> torch.Tensor:
    """log of the normalised pointwise DDO optimum, softmax((1 − 1/β)·log p_ref + (1/β)·log p_data)
    per prompt: DDO's exact tabular minimiser when α = ``ddo_matching_alpha``."""
    check_positive(beta, "beta")
    return torch.log_softmax((1 - 1 / beta) * ref_logp + data_logp / beta, -1)


def ddo_matching_alpha(ref_logp, data_logp, beta) -> torch.Tensor:
    """α = (Σ_y p_ref^{1−1/β}·p_data^{1/β})^β per prompt ``[P]``: the α at which the pointwise
    optimum is already normalised (1 at β = 1)."""
    check_positive(beta, "beta")
    return torch.exp(beta * torch.logsumexp((1 - 1 / beta) * ref_logp + data_logp / beta, -1))


@register
@dataclass(frozen=True)
class DisCO(Loss):
    """DisCO's per-record discriminative term: L = −(s(y_w) − s(y_l)), y_w a positive (reward 1) and
    y_l a negative (reward 0) rollout of the same question.

    s is the log-L score mean_t log π_θ(o_t|·) = ℓ/|y| (``length_normalized=True``, the code's token
    mean; needs ``FlatSpace(K, lengths=...)``) or ℓ (False). With one negative per record, DisCO's
    τ-log-sum-exp over negatives, τ·log e^{s_l/τ} = s_l, equals DisCO-b's mean, so this is both
    methods' per-record form. **Left out** (group- or policy-level, not per record): the τ-LSE over
    several negatives (τ = 10); the L-ratio score mean_t π_θ/π_old (needs per-token views); the
    constraint penalty β[KL − δ]_+·KL with a detached coefficient, KL to the previous step's policy
    (δ 1e-4, β 1e3); dropping all-correct/all-wrong groups while dividing by the full count; the
    code's S/sg(S) form (equal in gradient only); the ``disco_Lratio`` dispatch bug. The per-record
    loss is linear and unbounded below, so there is no stationary target (target "none"): mass
    concentrates on the positives. Source: Li et al., arXiv 2505.12366; Optimization-AI/DisCO @ bd2b078
    ``verl/verl/trainer/ppo/core_algos.py``. Evidence: code."""

    length_normalized: bool = True

    name = "disco"
    citation = "Li et al., arXiv 2505.12366; Optimization-AI/DisCO core_algos.py"
    evidence = "code"
    target_kind = "none"
    family = "non_proper"
    convex = False

    @property
    def needs(self):
        return LENGTH_INPUTS if self.length_normalized else ()

    def validate(self):
        if not isinstance(self.length_normalized, bool):
            raise ValueError(f"length_normalized must be True or False, got {self.length_normalized!r}")

    def _scales(self, like, **lengths):
        if not self.length_normalized:
            return 1.0, 1.0
        return 1 / lengths["chosen_len"].to(like.dtype), 1 / lengths["rejected_len"].to(like.dtype)

    def per_record(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **lengths):
        chosen_scale, rejected_scale = self._scales(chosen_logp, **lengths)
        return rejected_scale * rejected_logp - chosen_scale * chosen_logp

    def input_grads(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **lengths):
        chosen_scale, rejected_scale = self._scales(chosen_logp, **lengths)
        ones = torch.ones_like(chosen_logp)
        return -chosen_scale * ones, rejected_scale * ones

    def group_loss(self, positive_logp, negative_logp, positive_len=None, negative_len=None, tau: float = 10.0):
        """DisCO's group objective with several positives and negatives per question (the multi-
        negative form the per-record loss leaves out): −[mean_pos s − τ·log Σ_neg e^{s/τ}] (DisCO,
        ``tau`` = τ, default 10) per group, ``positive_logp`` ``[B, N, m]``, ``negative_logp``
        ``[B, N, n]``, lengths alike when ``length_normalized``. τ·LSE over one negative is that
        negative's score, so one positive and one negative give the per-record loss. Without
        the KL penalty. Source: Li et al., arXiv 2505.12366 (DisCO objective)."""
        check_positive(tau, "tau")
        if self.length_normalized:
            if positive_len is None or negative_len is None:
                raise ValueError("length_normalized DisCO needs positive_len and negative_len")
            positive_logp, negative_logp = positive_logp / positive_len, negative_logp / negative_len
        return tau * torch.logsumexp(negative_logp / tau, -1) - positive_logp.mean(-1)
