"""List-wise and ranking losses: ``plackett_luce``, ``lipo``, ``rank_dpo``, ``tpo``, ``irpo``,
``anchored_dpo``, ``curry_dpo``.

A list loss maps a ranked list of k responses (best first) to one loss:
``loss.list_loss(logp, ref_logp, scores=None)`` with ``logp``, ``ref_logp`` ``[B, N, k]`` (sequence
log-probs of the listed responses under the policy and the reference) and optional labels
``scores`` ``[B, N, k]`` in [0, 1] (higher is better); without labels, ψ_i = (k − 1 − i)/(k − 1)
by position (convention chosen here). A pair is a list of two, so every list loss is also a
pair loss (``loss(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp)``) and trains
and solves on ``Pairs`` like the rest of the zoo. ``toybench.rankings`` builds ``Lists``;
``list_objective`` and ``solve_lists`` are the list population objective and its exact minimiser.

Symbols: g_i = ℓ(y_i) − ℓ_ref(y_i), s_i = β·g_i, sp(t) = log(1 + e^t).
"""
from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass

import torch

from .._checks import check_choice, check_positive
from .._numerics import flat_index, run_axis, softplus
from ._targets import is_zero, potential_target
from .base import Loss, register

RANK_SOURCES = ("predicted", "label")


@dataclass(frozen=True)
class ListLoss(Loss):
    """Base class: ``list_loss`` on ``[B, N, k]`` lists; ``per_record`` is the k = 2 list (chosen, rejected)."""

    beta: float = 0.1

    @abstractmethod
    def list_loss(self, logp, ref_logp, scores=None):
        """Per-list losses ``[B, N]``."""

    def per_record(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp):
        return self.list_loss(torch.stack([chosen_logp, rejected_logp], -1),
                              torch.stack([ref_chosen_logp, ref_rejected_logp], -1))

    def scaled(self, logp, ref_logp):
        """s = β·g ``[B, N, k]``."""
        gap = logp - ref_logp
        return self.hp("beta", gap) * gap


def labels(scores, like) -> torch.Tensor:
    """ψ ``[B, N, k]``: the given labels, or (k − 1 − i)/(k − 1) by position."""
    if scores is not None:
        return scores.to(like)
    k = like.shape[-1]
    return (torch.arange(k - 1, -1, -1, dtype=like.dtype, device=like.device) / (k - 1)).expand_as(like)


def lambda_weights(psi, rank) -> torch.Tensor:
    """LambdaLoss/DCG weights λ_ij = |G_i − G_j|·|1/D(τ_i) − 1/D(τ_j)| on ordered pairs with
    ψ_i > ψ_j (zero elsewhere), G = 2^ψ − 1, D(τ) = log(1 + τ) (τ a 1-based rank), ``[B, N, k, k]``.
    LiPO prints the discount ambiguously; this LambdaLoss form is assumed (arXiv 2402.01878, Eq. 9)."""
    gain = torch.exp2(psi) - 1
    discount = 1 / torch.log1p(rank)
    weight = (gain[..., :, None] - gain[..., None, :]).abs() * (discount[..., :, None] - discount[..., None, :]).abs()
    return torch.where(psi[..., :, None] > psi[..., None, :], weight, 0.0)


def predicted_rank(scores) -> torch.Tensor:
    """1-based rank of each item under ``scores`` (descending), detached, ``[..., k]``."""
    order = scores.detach().argsort(-1, descending=True)
    return order.argsort(-1).to(scores.dtype) + 1


def pairwise_logistic(s, weight) -> torch.Tensor:
    """Σ_{i,j} weight_ij·sp(−(s_i − s_j)) ``[B, N]``."""
    return (weight * softplus(s[..., None, :] - s[..., :, None])).sum((-1, -2))


def _bt_target(loss, prob, noise, beta):
    if prob.reward is None or not is_zero(noise):
        return None
    return potential_target(prob, prob.reward / run_axis(beta, "beta"))


@register
@dataclass(frozen=True)
class PlackettLuce(ListLoss):
    """List-wise DPO (Plackett–Luce / list-MLE): L = −Σ_{k} [s_{τ(k)} − log Σ_{j ≥ k} e^{s_{τ(j)}}],
    s = β·g, items in ranked order τ (best first). k = 2 is DPO's sp(−βΔ).

    Target: under PL rankings with reward r (any list size, any candidate-set law covering every
    pair), π*_β = π_ref·e^{r/β}/Z, as the per-position softmax is then matched exactly [derived].
    Source: Rafailov et al., arXiv 2305.18290, App. A.3, Eq. 20 (= LiPO, arXiv 2402.01878, Eq. 7;
    PRO). Evidence: paper, derived."""

    name = "plackett_luce"
    citation = "Rafailov et al., arXiv 2305.18290, App. A.3 Eq. 20; LiPO arXiv 2402.01878 Eq. 7"
    evidence = "paper, derived"
    target_kind = "closed"
    family = "logit_link"
    convex = True

    def list_loss(self, logp, ref_logp, scores=None):
        s = self.scaled(logp, ref_logp)
        return (torch.logcumsumexp(s.flip(-1), -1).flip(-1) - s).sum(-1)

    def target(self, prob, noise=0.0):
        return _bt_target(self, prob, noise, self.beta)


@register
@dataclass(frozen=True)
class LiPO(ListLoss):
    """LiPO-λ: L = Σ_{ψ_i > ψ_j} λ_ij·sp(−(s_i − s_j)), s = β·g, λ_ij = |G_i − G_j|·|1/D(τ_i) − 1/D(τ_j)|,
    G = 2^ψ − 1, D(τ) = log(1 + τ), τ_i the rank of item i under the model's current scores s
    (detached). The printed discount is ambiguous; the LambdaLoss/DCG form is assumed.
    k = 2 with hard labels is (1/ln 2 − 1/ln 3)·DPO. Hard label orderings on finite data have no
    finite optimum (G4); the dynamic weights make the population target non-stationary in general,
    so ``target`` is None. Defaults β = 0.05 (K = 8 lists in the paper).
    Source: Liu et al., arXiv 2402.01878 (NAACL 2025), Eqs. 7–9. Evidence: paper."""

    beta: float = 0.05

    name = "lipo"
    citation = "Liu et al., arXiv 2402.01878, Eqs. 7-9 (LiPO-λ)"
    evidence = "paper"
    target_kind = "none"
    family = "logit_link"
    convex = False

    def list_loss(self, logp, ref_logp, scores=None):
        s = self.scaled(logp, ref_logp)
        return pairwise_logistic(s, lambda_weights(labels(scores, s), predicted_rank(s)))


@register
@dataclass(frozen=True)
class RankDPO(ListLoss):
    """RankDPO: L = Σ_{i ≻ j} λ_ij·sp(−(s_i − s_j)) with LiPO's DCG weights λ_ij, s = β·g (the LLM
    analogue of the paper's diffusion score −(‖ε − ε_θ‖² − ‖ε − ε_ref‖²)); the ranks τ in the
    discount come from the model's current scores (``rank_source="predicted"``, the paper's Fig. 2,
    default) or from the labels (``"label"``, as the text reads). Labels: the paper's mean win
    probability over reward models; here the list's ``scores`` or positions. Target none (as LiPO).
    Source: Karthik et al., arXiv 2410.18013 (ICCV 2025), Eq. 6. Evidence: paper."""

    rank_source: str = "predicted"

    name = "rank_dpo"
    citation = "Karthik et al., arXiv 2410.18013, Eq. 6 (RankDPO)"
    evidence = "paper"
    target_kind = "none"
    family = "logit_link"
    convex = False

    def validate(self):
        check_positive(self.beta, "beta")
        check_choice(self.rank_source, "rank_source", RANK_SOURCES)

    def list_loss(self, logp, ref_logp, scores=None):
        s = self.scaled(logp, ref_logp)
        psi = labels(scores, s)
        rank = predicted_rank(s) if self.rank_source == "predicted" else predicted_rank(psi)
        return pairwise_logistic(s, lambda_weights(psi, rank))


@register
@dataclass(frozen=True)
class TPO(ListLoss):
    """Tree Preference Optimization's ranking term as in the authors' code, without its extra
    −log σ(β·loss) wrapper (a source error): L = mean over ordered pairs with ψ_i ≠ ψ_j of
    sp(−β·sign(ψ_i − ψ_j)·(g_i − g_j)). The code's step weights (1 + cos of hidden states) need
    per-step views and are 1 here (every step alike); the paper's Adaptive Step Reward is not
    implemented. k = 2 is DPO. Target: under PL lists with uniform pair counts the logistic terms
    are G1, so π*_β where every pair is compared. Defaults β = 0.5.
    Source: Liao, Chu, Wang, arXiv 2410.12854 (ICLR 2025); MrBlankness/TPO @ ba87a23 ``loss.py``.
    Evidence: code (paper unverified)."""

    beta: float = 0.5

    name = "tpo"
    citation = "Liao et al., arXiv 2410.12854; MrBlankness/TPO loss.py"
    evidence = "code"
    target_kind = "closed"
    family = "logit_link"
    convex = True

    def list_loss(self, logp, ref_logp, scores=None):
        s = self.scaled(logp, ref_logp)
        psi = labels(scores, s)
        sign = torch.sign(psi[..., :, None] - psi[..., None, :])
        terms = softplus(-sign * (s[..., :, None] - s[..., None, :]))
        count = (sign != 0).sum((-1, -2)).clamp_min(1)
        return torch.where(sign != 0, terms, 0.0).sum((-1, -2)) / count

    def target(self, prob, noise=0.0):
        return _bt_target(self, prob, noise, self.beta)


@register
@dataclass(frozen=True)
class IRPO(ListLoss):
    """In-context Ranking Preference Optimization (RECONSTRUCTION): a ranked list whose relevant
    items (label ψ > ½) should precede the rest; L = sp(−Σ_{i rel} Σ_{j not rel} disc(i)·β(g_i − g_j)),
    disc(i) = 1/log₂(1 + position of i) (1-based positions in the emitted list). The paper's
    importance-sampling gradient view and disagreement up-weighting are not reconstructed.
    k = 2 with hard labels is DPO. Target not derived. Source: Wu et al., arXiv 2504.15477 (COLM
    2025) [paper: abstract]."""

    name = "irpo"
    citation = "Wu et al., arXiv 2504.15477 (IRPO; reconstruction)"
    evidence = "paper: abstract"
    reconstruction = True
    target_kind = "none"
    family = "logit_link"
    convex = True

    def list_loss(self, logp, ref_logp, scores=None):
        s = self.scaled(logp, ref_logp)
        relevant = labels(scores, s) > 0.5
        position = torch.arange(1, s.shape[-1] + 1, dtype=s.dtype, device=s.device)
        disc = math.log(2) / torch.log1p(position)
        weight = (relevant * disc)[..., :, None] * (~relevant)[..., None, :]
        return softplus(-(weight * (s[..., :, None] - s[..., None, :])).sum((-1, -2)))


@register
@dataclass(frozen=True)
class AnchoredDPO(ListLoss):
    """Anchored DPO (ADPO-anchor), list form: L = KL(q ‖ p_θ(·|S)) with p_θ(i|S) = softmax_i(g_i/τ)
    (anchor = π_ref, fixed) and soft targets q = softmax_S(ψ/β_r) from the list's ``scores`` (pass
    rewards as scores); without scores, q is one-hot on the top item (hard label: the k = 2 case is
    DPO at β = 1/τ). ``beta`` is β_r. Target: q_S = softmax_S(r/β_r) on any candidate-set law gives
    π*_{β_r/τ}; pairwise hard labels give π*_{1/τ} under BT [derived]. Group standardisation of
    rewards, adaptive τ and the on-policy/EMA anchors of the code are not implemented.
    Defaults τ = 0.8, β_r = 0.5. Source: Wang, arXiv 2510.18913; wk222/verlm @ 25373b9
    ``verl/trainer/adpo/core_algos.py``. Evidence: paper: abstract, code, derived."""

    beta: float = 0.5
    tau: float = 0.8

    name = "anchored_dpo"
    citation = "Wang, arXiv 2510.18913 (ADPO-anchor); wk222/verlm adpo/core_algos.py"
    evidence = "paper: abstract, code, derived"
    target_kind = "closed"
    family = "logit_link"
    convex = True

    def validate(self):
        check_positive(self.beta, "beta")
        check_positive(self.tau, "tau")

    def list_loss(self, logp, ref_logp, scores=None):
        gap = logp - ref_logp
        log_model = torch.log_softmax(gap / self.hp("tau", gap), -1)
        if scores is None:
            return -log_model[..., 0]
        log_q = torch.log_softmax(scores.to(gap) / self.hp("beta", gap), -1)
        return (log_q.exp() * (log_q - log_model)).sum(-1)

    def target(self, prob, noise=0.0):
        """Pairs (hard labels, BT, clean): π*_{1/τ}."""
        return _bt_target(self, prob, noise, 1 / torch.as_tensor(self.tau, dtype=torch.float64))

    def list_target(self, prob):
        """Lists with reward scores: π*_{β_r/τ}."""
        beta = torch.as_tensor(self.beta, dtype=torch.float64) / torch.as_tensor(self.tau, dtype=torch.float64)
        return potential_target(prob, prob.reward / run_axis(beta, "beta"))


@register
@dataclass(frozen=True)
class CurryDPO(ListLoss):
    """Curriculum DPO: each stage is plain DPO, sp(−β·Δ), on ranked pairs ordered easy → hard by
    rating gap, and the reference is reset to the previous stage's policy (``stages`` K; the
    schedule itself is ``toybench.procedures.curry_dpo``). One stage's population target is π*_β;
    K full-coverage stages compound to π*_{β/K} [derived]. Source: Pattnaik et al., arXiv 2403.07230
    (EMNLP 2024 Findings). Evidence: secondary, derived."""

    stages: int = 3

    name = "curry_dpo"
    citation = "Pattnaik et al., arXiv 2403.07230 (Curry-DPO)"
    evidence = "secondary, derived"
    target_kind = "closed"
    family = "logit_link"
    convex = True

    def validate(self):
        check_positive(self.beta, "beta")
        if isinstance(self.stages, bool) or not isinstance(self.stages, int) or self.stages < 1:
            raise ValueError(f"stages must be a positive integer, got {self.stages!r}")

    def list_loss(self, logp, ref_logp, scores=None):
        """DPO on every (better, worse) pair of the list, averaged."""
        s = self.scaled(logp, ref_logp)
        k = s.shape[-1]
        upper = torch.ones(k, k, dtype=torch.bool, device=s.device).triu(1)
        return pairwise_logistic(s, upper.to(s.dtype)) / (k * (k - 1) / 2)

    def target(self, prob, noise=0.0):
        return _bt_target(self, prob, noise, self.beta)


# ------------------------------------------------------------------------------ list objective and oracle
def list_inputs(logp: torch.Tensor, lists) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(log π of the listed items ``[B, N, k]``, log π_ref of them, scores) for a policy table ``[B, P, Y]``."""
    prob = lists.problem
    runs = max(logp.shape[0], lists.runs)
    index = flat_index(lists.prompt[..., None], lists.items, prob.Y).to(logp.device)
    flat = lambda table: table.reshape(table.shape[0], -1)  # noqa: E731
    take = lambda table: flat(table).expand(max(table.shape[0], index.shape[0]), -1).gather(  # noqa: E731
        1, flat(index).expand(max(table.shape[0], index.shape[0]), -1)).reshape(-1, *index.shape[1:]).expand(
        runs, -1, -1)
    ref = prob.ref_logp.to(device=logp.device, dtype=logp.dtype)[None]
    scores = None if lists.scores is None else lists.scores.to(device=logp.device, dtype=logp.dtype).expand(runs, -1, -1)
    return take(logp), take(ref), scores


def list_objective(loss: ListLoss, logp: torch.Tensor, lists) -> torch.Tensor:
    """Σ_lists weight·loss, ``[B]``."""
    if not hasattr(loss, "list_loss"):
        raise ValueError(f"loss {loss.name!r} is not a list loss; list losses: plackett_luce, lipo, rank_dpo, "
                         "tpo, irpo, anchored_dpo, curry_dpo, and fpo/exo with reward scores")
    values = loss.list_loss(*list_inputs(logp, lists))
    return (lists.weight.to(values) * values).sum(-1)


@dataclass(frozen=True)
class ListSolution:
    """``logp`` ``[P, Y]`` (``[B, P, Y]`` for per-run lists), ``value`` ``[B]``, ``certificate``: the
    largest gradient norm of the objective w.r.t. the logits at the answer."""

    logp: torch.Tensor
    value: torch.Tensor
    certificate: float


def solve_lists(loss: ListLoss, lists, tol: float = 1e-10, max_iter: int = 100) -> ListSolution:
    """The exact float64 minimiser of a list loss's objective over tabular logits, by Newton's
    method with a backtracking line search (autograd Hessian, pseudo-inverse on the
    shift-invariant directions; a gradient step where the Newton direction does not descend),
    from π_ref; ValueError unless the gradient norm ends ≤ ``tol``. Convex losses give the global
    minimiser; for ``fpo``/``exo`` lists the answer is a certified stationary point. LiPO-style
    weights that follow the model's ranks have no fixed objective and are refused. Hard rankings
    with no finite minimiser raise ``tb.NoFiniteMinimum`` first. Responses in different components
    of the ranking graph (never compared, directly or through others) keep their π_ref masses:
    Newton's pseudo-inverse step never moves along those shifts."""
    if loss.name in ("lipo", "rank_dpo") and getattr(loss, "rank_source", "predicted") == "predicted":
        raise ValueError(f"solve_lists needs a fixed objective; {loss.name!r} weights move with the model's ranks")
    if lists.scores is None:
        _check_rankings_finite(lists)
    prob = lists.problem
    runs = lists.runs
    logits = prob.ref_logp.expand(runs, -1, -1).clone()
    objective = lambda z: list_objective(loss, torch.log_softmax(z, -1), lists).sum()  # noqa: E731
    for _ in range(max_iter):
        grad = _gradient(objective, logits)
        if grad.norm() <= tol:
            break
        hess = torch.autograd.functional.hessian(objective, logits).reshape(logits.numel(), logits.numel())
        step = -(torch.linalg.pinv(hess, hermitian=True) @ grad.reshape(-1)).reshape(logits.shape)
        if (grad * step).sum() >= 0:
            step = -grad
        value, size = objective(logits), 1.0
        slack = 1e-13 * value.abs()          # float64 rounding of the objective near the minimum
        while objective(logits + size * step) > value + 1e-4 * size * (grad * step).sum() + slack and size > 1e-12:
            size /= 2
        logits = logits + size * step
    grad = _gradient(objective, logits)
    certificate = float(grad.norm())
    if certificate > tol:
        raise ValueError(f"solve_lists did not reach gradient norm {tol:g} (got {certificate:.3g}); the lists may "
                         "rank some pair one way only (no finite minimiser)")
    logp = torch.log_softmax(logits, -1)
    return ListSolution(logp[0] if runs == 1 else logp, list_objective(loss, logp, lists).detach(), certificate)


def _check_rankings_finite(lists) -> None:
    """Hard rankings: a logit-link list loss has a finite minimiser only if every ranked pair (a above
    b in some list of positive weight) lies on a directed cycle of its prompt's ranking graph, i.e.
    inside one strongly connected component (for Plackett–Luce this is Ford's condition, Hunter,
    Ann. Statist. 32 (2004), Assumption 1); otherwise the infimum needs an infinite margin and
    ``tb.NoFiniteMinimum`` is raised, naming the prompt and the pair."""
    import numpy as np
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    from ..solve import NoFiniteMinimum

    prob = lists.problem
    k = lists.k
    upper = torch.ones(k, k, dtype=torch.bool).triu(1)
    first, second = upper.nonzero(as_tuple=True)
    keep = lists.weight > 0
    prompt = lists.prompt[keep]
    better, worse = lists.items[keep][:, first].reshape(-1), lists.items[keep][:, second].reshape(-1)
    prompt = prompt[:, None].expand(-1, len(first)).reshape(-1)
    for x in prompt.unique().tolist():
        mine = prompt == x
        a, b = better[mine].numpy(), worse[mine].numpy()
        graph = csr_matrix((np.ones(len(a)), (a, b)), shape=(prob.Y, prob.Y))
        _, component = connected_components(graph, directed=True, connection="strong")
        open_edges = component[a] != component[b]
        if open_edges.any():
            i = int(np.flatnonzero(open_edges)[0])
            raise NoFiniteMinimum(f"prompt {x}: response {a[i]} is ranked above {b[i]} but no chain of rankings leads "
                                  f"back from {b[i]} to {a[i]}, so the list loss has no finite minimiser (its infimum "
                                  "needs an infinite margin)")


def _gradient(objective, logits):
    with torch.enable_grad():
        point = logits.detach().requires_grad_(True)
        return torch.autograd.grad(objective(point), point)[0]
