"""Iterative preference procedures, each a loop of exact steps over all B runs at once.

Every procedure works on float64 log-prob tables ``[B, P, Y]`` (a ``[P, Y]`` start is shared by
``runs`` runs), takes scalar or ``[B]`` hyperparameters, and returns a ``Trajectory`` whose
iterates can each be compared with the procedure's oracle (``toybench.optima``):

- ``sppo``: the ideal SPPO/Hedge step π_{t+1} ∝ π_t^{1−ητ}·π_ref^{ητ}·exp(η·P(y ≻ π_t)) (τ = 0:
  SPPO's multiplicative weights, arXiv 2405.00675; τ > 0: mirror descent on the τ-regularised game,
  cf. Nash-MD, arXiv 2312.00886, whose fixed point is ``optima.nash(prob, τ)``);
- ``sppo_ls``: SPPO's practical least-squares step, solved exactly (arXiv 2405.00675);
- ``dno``: DNO's step, the exact minimiser of its soft-BT regression onto r_t(y) = P(y ≻ π_t) with
  reference π_t, π_{t+1} ∝ π_t·exp(r_t/η) (arXiv 2404.03715, from recollection [unverified]), optionally
  with the practical algorithm's margin filter (``margin``);
- ``online_dpo``: one exact population gradient step of DPO or IPO per iteration on pairs drawn
  from the current policy, μ = π_θ ⊗ π_θ (OAIF, arXiv 2402.04792; no gradient through sampling);
- ``ofs_dpo``: fast and slow DPO copies with a chasing term (RECONSTRUCTION of arXiv 2406.05534);
- ``iterative_dpo``: rounds of exactly solved DPO on pairs from the current policy labelled by a
  judge's value estimate, the reference reset to the last round or kept (MCTS-DPO's pattern,
  arXiv 2405.00451);
- ``curry_dpo``: K exactly solved DPO stages, each with the previous stage as reference
  (arXiv 2403.07230).

An iterative procedure asked for zero iterations raises ValueError.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ._checks import check_choice, check_positive, check_probability_rate, hyper_values
from ._numerics import run_axis, softplus
from .problem import Problem
from .train import _recycle_large_blocks

ONLINE_LOSSES = ("dpo", "ipo")
RUN_BLOCK = 64
"""Runs per block for the ``[B, P, Y, Y]`` pair-grid procedures, so temporaries stay in cache (B = 256,
P = 8, Y = 16 on 2 cores: blocks of 64 run 3.5× faster than one block of 256)."""
REFERENCES = ("previous", "initial")


@dataclass(frozen=True)
class Trajectory:
    """``logp``: the recorded iterates ``[T, B, P, Y]`` float64; ``steps``: their iteration numbers
    ``[T]`` (0 = the start); ``average``: for ``sppo``/``sppo_ls``/``dno``, the running average of the policies
    π̄_t = (1/t)·Σ_{s<t} π_s at the recorded steps (probabilities), else None; ``slow``: for
    ``ofs_dpo``, the slow copy's iterates."""

    logp: torch.Tensor
    steps: torch.Tensor
    average: torch.Tensor | None = None
    slow: torch.Tensor | None = None

    @property
    def final(self) -> torch.Tensor:
        """The last iterate ``[B, P, Y]``."""
        return self.logp[-1]


def _count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer (an iterative method needs at least one "
                         f"iteration), got {value!r}")
    return value


def _start(prob: Problem, init, runs: int | None, *hypers) -> torch.Tensor:
    """The starting table ``[B, P, Y]`` float64: π_ref or ``init``, B from init, ``runs`` or ``[B]`` hypers."""
    if not isinstance(prob, Problem):
        raise ValueError(f"need a Problem, got {type(prob).__name__}")
    table = prob.ref_logp if init is None else torch.as_tensor(init, dtype=torch.float64)
    if table.ndim not in (2, 3) or table.shape[-2:] != (prob.P, prob.Y):
        raise ValueError(f"init must be log-probs [P, Y] or [B, P, Y] with P={prob.P}, Y={prob.Y}, "
                         f"got {tuple(table.shape)}")
    if torch.isnan(table).any() or (torch.logsumexp(table, -1).abs() > 1e-6).any():
        raise ValueError("init rows must be normalised log-probabilities")
    sizes = {table.shape[0]} if table.ndim == 3 else set()
    sizes |= {int(h.shape[0]) for h in hypers if h.ndim == 1}
    if runs is not None:
        sizes.add(_count(runs, "runs"))
    if len(sizes) > 1:
        raise ValueError(f"init, runs and [B] hyperparameters disagree on the number of runs: {sorted(sizes)}")
    B = sizes.pop() if sizes else 1
    return table.reshape(-1, prob.P, prob.Y).expand(B, -1, -1).clone()


def _run_axis(value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A scalar or ``[B]`` hyperparameter as ``[]`` or ``[B, 1, 1]`` on ``like``'s device."""
    return run_axis(value).to(like.device)


def _blocks(runs: int) -> list[slice]:
    return [slice(start, min(start + RUN_BLOCK, runs)) for start in range(0, runs, RUN_BLOCK)]


def _cut(value: torch.Tensor, block: slice) -> torch.Tensor:
    """One block of a scalar or ``[B]`` hyperparameter."""
    return value[block] if value.ndim else value


def _every(value, iterations: int) -> int:
    value = _count(value, "record_every")
    return min(value, iterations)


class _Recorder:
    def __init__(self, iterations: int, every: int, average: bool = False):
        self.iterations, self.every, self.keep_average = iterations, every, average
        self.logp, self.steps, self.average, self.total = [], [], [], None

    def __call__(self, step: int, logp: torch.Tensor) -> None:
        if step % self.every == 0 or step == self.iterations:
            self.logp.append(logp.clone())
            self.steps.append(step)
            if self.keep_average:
                self.average.append(self.total / step if step else logp.exp())
        if self.keep_average:
            self.total = logp.exp() if self.total is None else self.total + logp.exp()

    def trajectory(self, **extra) -> Trajectory:
        average = torch.stack(self.average) if self.keep_average else None
        return Trajectory(torch.stack(self.logp), torch.tensor(self.steps), average, **extra)


def win_rates(prob: Problem, logp: torch.Tensor) -> torch.Tensor:
    """P(y ≻ π|x) = Σ_y′ π(y′|x)·M[x, y, y′] for a table ``[B, P, Y]``."""
    return torch.einsum("pab,...pb->...pa", prob.preference_matrix().to(logp.device), logp.exp())


# ------------------------------------------------------------------------------ self-play
def sppo(prob: Problem, eta, iterations: int, tau=0.0, init=None, runs: int | None = None,
         record_every: int = 1) -> Trajectory:
    """SPPO's ideal (exact) iteration: log π_{t+1} = (1 − ητ)·log π_t + ητ·log π_ref + η·P(y ≻ π_t) − log Z_t.

    τ = 0 is Hedge on the preference game (SPPO, Wu et al., arXiv 2405.00675, the update its loss
    regresses onto): under BT the last iterate tends to the point mass on argmax r; on an
    intransitive game it cycles while the running average (``average``) tends to the unregularised
    equilibrium (``optima.nash_unregularised``). τ > 0 with ητ ≤ 1 is mirror descent on the
    τ-regularised game (Nash-MD of Munos et al., arXiv 2312.00886, also plays against the geometric
    mixture π_t^{1−ητ}π_ref^{ητ}; here the opponent is π_t); its unique fixed point is
    ``optima.nash(prob, τ)``, and near it the error contracts by the spectral radius of
    (1 − ητ)I + ηA(diag π* − π*π*ᵀ), A = M − ½, which is < 1 iff η < 2τ/(τ² + ω²), ω the largest
    eigenvalue modulus of S^½AS^½ [derived; measured in the claim ``sppo.nash_md_rate``]."""
    eta_value, tau_value = hyper_values(eta, "eta"), hyper_values(tau, "tau")
    check_positive(eta, "eta")
    if (tau_value < 0).any() or (eta_value * tau_value > 1).any():
        raise ValueError("tau must be >= 0 with eta·tau <= 1 (a geometric mixture weight)")
    logp = _start(prob, init, runs, eta_value, tau_value)
    eta_b, mix, ref = _run_axis(eta_value, logp), _run_axis(eta_value * tau_value, logp), prob.ref_logp.to(logp.device)
    record = _Recorder(_count(iterations, "iterations"), _every(record_every, iterations), average=True)
    record(0, logp)
    for step in range(1, iterations + 1):
        logp = torch.log_softmax((1 - mix) * logp + mix * ref + eta_b * win_rates(prob, logp), -1)
        record(step, logp)
    return record.trajectory()


def sppo_ls(prob: Problem, eta, iterations: int, init=None, runs: int | None = None,
            record_every: int = 1) -> Trajectory:
    """SPPO's practical step, solved exactly: π_{t+1} minimises the least-squares regression
    E_{y∼π_t}[(log(π(y)/π_t(y)) − η(P(y ≻ π_t) − ½))²] over the simplex (Wu et al., arXiv 2405.00675, §3:
    the square loss with log Z_t replaced by η/2; the population form with y drawn from π_t; the
    equation number is not checked). With ρ = π/π_t, the Lagrange condition is π_t·(log ρ − e) = −μ·π_t·ρ,
    e = η(P(y ≻ π_t) − ½), so log ρ_y + μρ_y = e_y (ρ_y = W(μe^{e_y})/μ, W Lambert's) with one μ per
    prompt fixed by Σ π_t·ρ = 1. Since π_tᵀMπ_t = ½, Jensen gives Σ π_t·e^{e} ≥ 1, so μ ≥ 0 and the
    problem is convex (a quadratic over the convex set Σ π_t·e^{log ρ} ≤ 1, minimum on its boundary):
    the step is unique [derived]. To first order in η it is Hedge (``sppo`` with τ = 0); it differs
    at second order (−μρ_y damps the responses that grow). ``average`` holds the running average."""
    check_positive(eta, "eta")
    eta_value = hyper_values(eta, "eta")
    logp = _start(prob, init, runs, eta_value)
    eta_b = _run_axis(eta_value, logp)
    record = _Recorder(_count(iterations, "iterations"), _every(record_every, iterations), average=True)
    record(0, logp)
    for step in range(1, iterations + 1):
        logp = _normalised(logp + _ls_log_ratio(logp.exp(), eta_b * (win_rates(prob, logp) - 0.5)))
        record(step, logp)
    return record.trajectory()


def _normalised(logits: torch.Tensor) -> torch.Tensor:
    """log-softmax as logits − logsumexp: ``torch.log_softmax`` takes ~10 ms per call on small tensors when
    its intra-op threads are contended (measured on 2 busy cores, torch 2.13), logsumexp does not."""
    return logits - torch.logsumexp(logits, -1, keepdim=True)


def _ls_log_ratio(weight: torch.Tensor, target: torch.Tensor, tol: float = 1e-14, max_iter: int = 100) -> torch.Tensor:
    """log ρ minimising Σ w·(log ρ − e)² subject to Σ w·ρ = 1, given Σ w·e^{e} ≥ 1 (rows of ``[..., Y]``):
    log ρ_y + μρ_y = e_y, so μρ_y = W(μe^{e_y}), and μ > 0 is the positive root of the concave
    G(μ) = Σ w·W(μe^{e}) − μ (G(0) = 0, G′(0) = Σ w·e^{e} − 1 ≥ 0). W is concave, so (Jensen, Σ w = 1) the
    root has μ ≤ W(μ·Σ w·e^{e}), i.e. μ ≤ log Σ w·e^{e}, and Newton from there falls monotonically to the root
    (a concave function's tangents lie above it). Where Σ w·e^{e} = 1 (to rounding) μ = 0 and log ρ = e (Hedge)."""
    limit = tol * weight.shape[-1]                    # Y rounded terms in each sum
    mu = torch.logsumexp(weight.log() + target, -1, keepdim=True)
    hedge = mu.expm1() <= limit
    mu = mu.clamp_min(1e-300)
    for _ in range(max_iter):
        log_w = _log_lambert_w(mu.log() + target)
        ratio = (log_w - mu.log()).exp()
        excess = (weight * ratio).sum(-1, keepdim=True) - 1
        if bool((hedge | (excess.abs() <= limit)).all()):
            return torch.where(hedge, target, log_w - mu.log())
        slope = (weight * ratio / (1 + log_w.exp())).sum(-1, keepdim=True) - 1      # G′(μ) < 0 right of the root
        mu = torch.where(hedge, mu, mu - mu * excess / slope)
    raise ValueError("sppo_ls: the least-squares step did not converge (Newton on its Lagrange multiplier)")


def _log_lambert_w(log_x: torch.Tensor, max_iter: int = 100) -> torch.Tensor:
    """log W(x) from log x (W Lambert's principal branch, x > 0): the root t of e^t + t = log x, by Newton from
    t = log log(1 + x) ≥ t (W(x) ≤ log(1 + x)), which falls monotonically (the equation is convex in t)."""
    t = torch.where(log_x < -30, log_x, torch.log(softplus(log_x.clamp_min(-30))))
    for _ in range(max_iter):
        power = t.exp()
        step = (power + t - log_x) / (power + 1)
        t = t - step
        if bool((step.abs() <= 1e-15 * (1 + t.abs())).all()):
            return t
    raise ValueError("sppo_ls: Lambert W did not converge")


def dno(prob: Problem, eta, iterations: int, margin=0.0, init=None, runs: int | None = None,
        record_every: int = 1) -> Trajectory:
    """Direct Nash Optimization's exact iteration: each round minimises
    −E[σ(r_t(y₁) − r_t(y₂))·log σ(η(g(y₁) − g(y₂))) + mirror], g = log π/π_t, r_t(y) = P(y ≻ π_t),
    a logit-link loss whose minimiser on any connected pair law is π_{t+1} ∝ π_t·exp(r_t/η) (G1).
    With ``margin`` = 0 this is Hedge at step 1/η; the limit is as for ``sppo`` with τ = 0. Source:
    Rosset et al., arXiv 2404.03715 (Algorithm 1, from recollection [unverified]).

    ``margin`` δ > 0 adds the practical algorithm's filter (Algorithm 2: train only on pairs whose
    preference margin exceeds a threshold; here the margin is the score gap |r_t(a) − r_t(b)| of the
    pair, a RECONSTRUCTION: the paper scores sampled responses with a judge). Pairs with a gap below δ
    are dropped; the targets are differences of r_t/η, so the minimiser still fits every kept pair
    exactly, π ∝ π_t·e^{r_t/η} within each connected component of the kept pairs, and the loss leaves
    each component's total mass free: as in ``tb.solve`` it keeps its mass under the round's reference
    π_t [derived]. A response whose every gap is below δ stops moving."""
    check_positive(eta, "eta")
    margin_value = hyper_values(margin, "margin")
    if (margin_value < 0).any():
        raise ValueError(f"margin must be >= 0, got {margin!r}")
    if not bool((margin_value > 0).any()):
        return sppo(prob, 1 / hyper_values(eta, "eta"), iterations, init=init, runs=runs, record_every=record_every)
    eta_value = hyper_values(eta, "eta")
    logp = _start(prob, init, runs, eta_value, margin_value)
    eta_b, margin_b = _run_axis(eta_value, logp), _run_axis(margin_value, logp)
    record = _Recorder(_count(iterations, "iterations"), _every(record_every, iterations), average=True)
    record(0, logp)
    for step in range(1, iterations + 1):
        score = win_rates(prob, logp)
        kept = (score[..., :, None] - score[..., None, :]).abs() >= (margin_b if margin_b.ndim == 0 else margin_b[..., None])
        component = _components(kept)
        moved = logp + score / eta_b
        share = torch.logsumexp(moved[..., None, :].masked_fill(~component, -torch.inf), -1)
        mass = torch.logsumexp(logp[..., None, :].masked_fill(~component, -torch.inf), -1)
        logp = _normalised(moved - share + mass)
        record(step, logp)
    return record.trajectory()


def _components(edges: torch.Tensor) -> torch.Tensor:
    """Connected components of undirected graphs ``[..., Y, Y]`` (bool): C[a, b] = a and b are linked by a path
    (every vertex linked to itself), by ⌈log₂ Y⌉ squarings of the reachability matrix."""
    size = edges.shape[-1]
    reach = edges | torch.eye(size, dtype=torch.bool, device=edges.device)
    for _ in range(max(1, (size - 1).bit_length())):
        reach = (reach.to(torch.float64) @ reach.to(torch.float64)) > 0
    return reach


# ------------------------------------------------------------------------------ online DPO / IPO
def on_policy_records(prob: Problem, logp: torch.Tensor, noise=0.0) -> torch.Tensor:
    """D[b, x, a, c] = ρ(x)·w_ac(π_b)·p̃(a ≻ c): the record law when both responses come from π_b
    (μ = π_b ⊗ π_b, diagonal removed, renormalised per prompt), ``[B, P, Y, Y]``."""
    policy = logp.exp()
    mu = policy[..., :, None] * policy[..., None, :] * (1 - torch.eye(prob.Y, dtype=logp.dtype, device=logp.device))
    mu = mu / mu.sum((-1, -2), keepdim=True)
    rate = _run_axis(hyper_values(noise, "noise"), logp)
    rate = rate if rate.ndim == 0 else rate[..., None]
    pref, rho = prob.preference_matrix().to(logp.device), prob.prompt_weights.to(logp.device)
    return rho[:, None, None] * (mu + mu.transpose(-1, -2)) * ((1 - rate) * pref + rate * (1 - pref))


def population_logit_grad(records: torch.Tensor, logp: torch.Tensor, ref_logp: torch.Tensor, slope) -> torch.Tensor:
    """∂/∂s of Σ_{a,c} D[a,c]·φ(Δ_ac), Δ_ac = g_a − g_c, g = log π − log π_ref, π = softmax(s), given
    ``slope(Δ)`` = φ′(Δ) elementwise: with Q = D·φ′(Δ), ∂/∂g = Q·1 − Qᵀ·1, then the softmax Jacobian."""
    g = logp - ref_logp
    weighted = records * slope(g[..., :, None] - g[..., None, :])
    grad_g = weighted.sum(-1) - weighted.sum(-2)
    return grad_g - logp.exp() * grad_g.sum(-1, keepdim=True)


def _margin_slope(loss: str, beta: torch.Tensor):
    if loss == "dpo":
        return lambda delta: -beta[..., None] * torch.sigmoid(-beta[..., None] * delta)
    return lambda delta: 2 * (delta - 1 / (2 * beta[..., None]))


def online_dpo(prob: Problem, beta, iterations: int, lr=1.0, loss: str = "dpo", noise=0.0, init=None,
               runs: int | None = None, record_every: int = 1) -> Trajectory:
    """Online DPO/IPO with exact expectations: each iteration draws pairs from the current policy
    (μ = π_θ ⊗ π_θ, not differentiated), labels them with the problem's preference (flipped at
    rate ``noise``), and takes one gradient step s ← s − lr·∇_s of the population loss against
    the fixed π_ref (``loss="dpo"``: −log σ(βΔ); ``"ipo"``: (Δ − 1/(2β))², β = τ).

    Fixed points [derived]: DPO under BT, π*_β (G1: every pair's gradient vanishes, whatever μ);
    IPO, the product-μ optimum with μ = π, π ∝ π_ref·exp(P(y ≻ π)/τ): the regularised Nash
    equilibrium ``optima.nash(prob, τ)`` (removing self-pairs does not change it). Source: Guo et
    al. (OAIF), arXiv 2402.04792; TRL ``OnlineDPOTrainer`` (``loss_type`` sigmoid / ipo)."""
    check_choice(loss, "loss", ONLINE_LOSSES)
    check_positive(beta, "beta")
    check_positive(lr, "lr")
    check_probability_rate(noise, "noise")
    beta_value, lr_value = hyper_values(beta, "beta"), hyper_values(lr, "lr")
    noise_value = hyper_values(noise, "noise")
    logits = _start(prob, init, runs, beta_value, lr_value, noise_value)
    _recycle_large_blocks()
    if logits.shape[0] > RUN_BLOCK:
        parts = [online_dpo(prob, _cut(beta_value, block), iterations, _cut(lr_value, block), loss,
                            _cut(noise_value, block), logits[block], record_every=record_every)
                 for block in _blocks(logits.shape[0])]
        return Trajectory(torch.cat([part.logp for part in parts], 1), parts[0].steps)
    slope, lr_b = _margin_slope(loss, _run_axis(beta_value, logits)), _run_axis(lr_value, logits)
    ref = prob.ref_logp.to(logits.device)
    record = _Recorder(_count(iterations, "iterations"), _every(record_every, iterations))
    record(0, logits)
    for step in range(1, iterations + 1):
        records = on_policy_records(prob, logits, noise)
        logits = torch.log_softmax(logits - lr_b * population_logit_grad(records, logits, ref, slope), -1)
        record(step, logits)
    return record.trajectory()


def ofs_dpo(prob: Problem, beta, iterations: int, lr=1.0, slow_ratio=0.1, lam=1.0, init=None,
            runs: int | None = None, record_every: int = 1) -> Trajectory:
    """Online fast–slow DPO (RECONSTRUCTION: the chase term, the lr ratio and λ are not in any read
    source): a fast and a slow tabular copy take exact population gradient steps on the problem's
    pair law; the fast one on L_DPO(θ_f) + λ·E_D[−log σ(β(Δ_f − Δ_s))] (Δ_s detached), the slow
    one on L_DPO(θ_s) at lr·``slow_ratio``; after each step the copies swap roles where the slow
    copy's DPO loss is below the fast one's. ``logp`` holds the fast copy, ``slow`` the slow one.
    With λ = 0 both are plain DPO and tend to π*_β. Source: Qi et al., arXiv 2406.05534 [paper: abstract]."""
    check_positive(beta, "beta")
    check_positive(lr, "lr")
    check_positive(slow_ratio, "slow_ratio")
    beta_value, lr_value = hyper_values(beta, "beta"), hyper_values(lr, "lr")
    lam_value = hyper_values(lam, "lam")
    if (lam_value < 0).any():
        raise ValueError(f"lam must be >= 0, got {lam!r}")
    ratio_value = hyper_values(slow_ratio, "slow_ratio")
    fast = _start(prob, init, runs, beta_value, lr_value, lam_value, ratio_value)
    _recycle_large_blocks()
    if fast.shape[0] > RUN_BLOCK:
        parts = [ofs_dpo(prob, _cut(beta_value, block), iterations, _cut(lr_value, block), _cut(ratio_value, block),
                         _cut(lam_value, block), fast[block], record_every=record_every)
                 for block in _blocks(fast.shape[0])]
        return Trajectory(torch.cat([part.logp for part in parts], 1), parts[0].steps,
                          slow=torch.cat([part.slow for part in parts], 1))
    slow = fast.clone()
    beta_b, lr_b = _run_axis(beta_value, fast), _run_axis(lr_value, fast)
    slow_lr, lam_b = lr_b * _run_axis(ratio_value, fast), _run_axis(lam_value, fast)
    records = _fixed_records(prob).to(fast.device).expand(fast.shape[0], -1, -1, -1)
    ref = prob.ref_logp.to(fast.device)
    dpo_slope = _margin_slope("dpo", beta_b)
    record = _Recorder(_count(iterations, "iterations"), _every(record_every, iterations))
    slow_iterates = [slow.clone()]
    record(0, fast)
    for step in range(1, iterations + 1):
        fast_grad = population_logit_grad(records, fast, ref, _chasing_slope(dpo_slope, slow - ref, lam_b, beta_b))
        slow_grad = population_logit_grad(records, slow, ref, dpo_slope)
        fast = torch.log_softmax(fast - lr_b * fast_grad, -1)
        slow = torch.log_softmax(slow - slow_lr * slow_grad, -1)
        swap = _dpo_value(records, slow, ref, beta_b) < _dpo_value(records, fast, ref, beta_b)
        swap = swap[:, None, None]
        fast, slow = torch.where(swap, slow, fast), torch.where(swap, fast, slow)
        if step % record.every == 0 or step == iterations:
            slow_iterates.append(slow.clone())
        record(step, fast)
    return record.trajectory(slow=torch.stack(slow_iterates))


def _chasing_slope(dpo_slope, slow_log_ratio, lam, beta):
    """φ′ of the fast copy's per-pair loss: DPO's plus λ·∂/∂Δ_f of −log σ(β(Δ_f − Δ_s)), Δ_s detached."""
    lead = slow_log_ratio[..., :, None] - slow_log_ratio[..., None, :]
    return lambda delta: dpo_slope(delta) - lam[..., None] * beta[..., None] * torch.sigmoid(
        -beta[..., None] * (delta - lead))


def _fixed_records(prob: Problem) -> torch.Tensor:
    pref = prob.preference_matrix()
    return (prob.prompt_weights[:, None, None] * prob.pair_weights() * pref)[None]


def _dpo_value(records, logp, ref_logp, beta):
    g = logp - ref_logp
    delta = g[..., :, None] - g[..., None, :]
    return (records * torch.nn.functional.softplus(-beta[..., None] * delta)).sum((-1, -2, -3))


# ------------------------------------------------------------------------------ rounds of exactly solved DPO
def iterative_dpo(prob: Problem, beta, rounds: int, judge=None, reference: str = "previous", init=None,
                  runs: int | None = None) -> Trajectory:
    """Iterative DPO with a judge: each round draws pairs from the current policy (μ = π_t ⊗ π_t),
    labels them by a judge's value estimate v ``[P, Y]`` (P(a ≻ b) = σ(v(a) − v(b)); default v = the
    problem's reward), and solves DPO exactly against the reference (π_t for
    ``reference="previous"``, as in MCTS-based iterative preference learning, Xie et al., arXiv
    2405.00451; π_ref for ``"initial"``). DPO is a logit link, so on the connected on-policy pair
    law each round's minimiser is π_{t+1} ∝ ref_t·exp(v/β) [derived]: K rounds with resets give
    π_ref·exp(K·v/β)/Z (→ argmax v, the judge's choice, right or wrong); without resets π*_β for v
    after one round."""
    check_positive(beta, "beta")
    check_choice(reference, "reference", REFERENCES)
    beta_value = hyper_values(beta, "beta")
    logp = _start(prob, init, runs, beta_value)
    value = _judge(prob, judge).to(logp.device)
    anchor = logp.clone()
    record = _Recorder(_count(rounds, "rounds"), 1)
    record(0, logp)
    for step in range(1, rounds + 1):
        base = logp if reference == "previous" else anchor
        logp = torch.log_softmax(base + value / _run_axis(beta_value, logp), -1)
        record(step, logp)
    return record.trajectory()


def curry_dpo(prob: Problem, beta, stages: int, init=None, runs: int | None = None) -> Trajectory:
    """Curry-DPO's schedule: K stages of exactly solved DPO on the problem's pairs, each stage's
    reference the previous stage's policy (a stage's minimiser is ref·e^{r/β}/Z under BT, G1), so
    stage k is π*_{β/k} [derived]. Source: Pattnaik et al., arXiv 2403.07230."""
    if not prob.is_bradley_terry:
        raise ValueError("curry_dpo's closed-form stages need a Bradley–Terry reward")
    return iterative_dpo(prob, beta, _count(stages, "stages"), judge=prob.reward, init=init, runs=runs)


def _judge(prob: Problem, judge) -> torch.Tensor:
    if judge is None:
        if not prob.is_bradley_terry:
            raise ValueError("give a judge value table v [P, Y] (the problem has no Bradley–Terry reward)")
        return prob.reward
    value = torch.as_tensor(judge, dtype=torch.float64)
    if value.shape != (prob.P, prob.Y) or not torch.isfinite(value).all():
        raise ValueError(f"judge must be a finite value table [P, Y] = [{prob.P}, {prob.Y}]")
    return value
