"""Pair samplers in online DPO (Shi, Zhou, Du, arXiv 2409.19605): exact-gradient convergence rates.

One prompt, K = 20 actions, β = 3, logits from 0 (π_ref uniform), rewards
``torch.manual_seed(1234567); torch.randn(1, 20)`` (CPU float32 draw, cast to float64; the
authors' script draws on CUDA when available, so their curves may use other rewards
[unverified]: match rates, not curves). Exact mode: the population DPO loss with soft BT labels
−Σ_{i,j} W_ij[p_ij log σ(βΔ_ij) + (1 − p_ij) log σ(−βΔ_ij)], Σ W = 1 over all K² ordered pairs,
plain SGD lr 10, with pair weights
- ``unif``: W_ij = 1/K²;
- ``mix_r``: W ∝ 2 + 2cosh(r_i − r_j) = 1/(σ(r_i − r_j)σ(r_j − r_i));
- ``mix_p``: W ∝ 1/(σ(βΔ_ij)σ(−βΔ_ij)) at the current (detached) policy.

toybench's pair law drops the diagonal and renormalises (``Problem.pair_law``), so the paper's step
lr equals toybench's lr·(1 − Σ_i W_ii) on the same objective. Metric: the reward-consistency gap
("Param Diff") PD = K⁻² Σ_{y,y'} |g(y) − g(y')| with g = r − β·log(π/π_ref), zero iff π = π*_β.
Near the optimum both mixed samplers contract by |1 − 2Kβ²η/Z*| per step, Z* = Σ_{i,j}(2 + 2cosh(r_i − r_j)):
0.00698 at η = 10, and η = Z*/(2Kβ²) is Newton's step (quadratic convergence) [derived].

Empirical mode (``empirical``): each SGD step draws n ordered pairs per run from the sampler's law
with Bernoulli BT labels (the paper: 8192 pairs, lr 0.05, 3000 iterations; seeds are runs of one
``train`` call). Linearised at π*_β, the per-pair gradient's covariance equals the Hessian H of the
objective, so constant-lr SGD settles at Σ = (η/n)(2I − ηH)⁻¹ in the logits and the value gap
β·KL(π‖π*_β) at a floor of about β·(η/2n)·tr(F(2I − ηH)⁻¹), F = diag(π*) − π*π*ᵀ, i.e.
β·η·(1 − Σπ*²)/(4n) for small η [derived]. Mix-P* (Mix-P clipped at 2 + e^M + e^{−M}, M = max r −
min r) re-weights from the current policy at every step; at π*_β its weights are Mix-R's (the clip
is inactive there), so it settles at Mix-R's floor to first order.
"""
from __future__ import annotations

import dataclasses

import torch

from .. import metrics, optima
from ..losses import make
from ..pairs import population
from ..policies import Tabular
from ..problem import Problem
from ..spaces import FlatSpace
from ..train import train

K, BETA = 20, 3.0
SAMPLERS = ("unif", "mix_r", "mix_p")


def newton_lr() -> float:
    """η = Z*/(2Kβ²), Z* = Σ_{i,j}(2 + 2cosh(r_i − r_j)): the mixed samplers' step that is Newton's at π*_β."""
    reward = rewards()[0]
    return float((2 + 2 * torch.cosh(reward[:, None] - reward[None, :])).sum()) / (2 * K * BETA ** 2)


def rewards() -> torch.Tensor:
    """The published reward draw ``[1, 20]`` (float32 CPU generator seeded 1234567, as float64)."""
    gen = torch.Generator().manual_seed(1234567)
    return torch.randn(1, K, generator=gen).to(torch.float64)


def weights(sampler: str, logp: torch.Tensor, reward: torch.Tensor, clip: bool = False) -> torch.Tensor:
    """The sampler's pair weights W ``[R, K, K]`` over all ordered pairs (diagonal included), Σ W = 1 per
    row of ``logp`` ``[R, K]``. ``clip=True`` caps Mix-P at 2 + e^M + e^{−M}, M = max r − min r (the
    paper's Mix-P*, empirical mode)."""
    if sampler == "unif":
        table = torch.ones(logp.shape[0], K, K, dtype=torch.float64)
    elif sampler == "mix_r":
        table = (2 + 2 * torch.cosh(reward[:, :, None] - reward[:, None, :])).expand(logp.shape[0], K, K)
    elif sampler == "mix_p":
        table = 2 + 2 * torch.cosh(BETA * (logp[:, :, None] - logp[:, None, :]))
        if clip:
            spread = reward.max() - reward.min()
            table = table.clamp(max=float(2 + torch.exp(spread) + torch.exp(-spread)))
    else:
        raise ValueError(f"unknown sampler {sampler!r}; choose from {SAMPLERS}")
    return table / table.sum((-2, -1), keepdim=True)


def param_diff(logp: torch.Tensor, reward: torch.Tensor, ref_logp: torch.Tensor) -> float:
    """PD = K⁻² Σ_{y,y'} |g(y) − g(y')|, g = r − β·log(π/π_ref)."""
    g = (reward - BETA * (logp - ref_logp))[0]
    return float((g[:, None] - g[None, :]).abs().mean())


def run(sampler: str, iterations: int = 20, lr: float = 10.0) -> list[float]:
    """PD before each of ``iterations`` exact SGD steps (and after the last): ``iterations + 1`` values."""
    reward = rewards()
    ref = torch.full((1, K), -torch.log(torch.tensor(float(K))).item(), dtype=torch.float64)
    logp = ref.clone()
    found = [param_diff(logp, reward, ref)]
    for _ in range(iterations):
        table = weights(sampler, logp, reward)
        prob = Problem(FlatSpace(K), ref, reward=reward, pair_dist=table)
        policy = Tabular(prob, init=logp, dtype=torch.float64)
        step = lr * (1 - float(table[0].diagonal().sum()))
        train(policy, make("dpo", beta=BETA), population(prob), steps=1, optimizer="sgd", lr=step)
        logp = policy.logp().detach()[0]
        found.append(param_diff(logp, reward, ref))
    return found


def empirical(sampler: str, pairs: int = 8192, iterations: int = 3000, lr: float = 0.05, seeds: int = 10,
              seed: int = 0, log_every: int = 1):
    """Empirical mode: SGD on ``pairs`` sampled, Bernoulli-labelled pairs per step and run, ``seeds``
    runs of one program (``"mix_p"`` is the paper's clipped Mix-P*, re-weighted from each run's own
    detached policy every step). Returns ``(steps [S], value gap β·KL(π‖π*_β) [S, seeds])`` (float64).

    Each step draws records of the uniform population re-weighted by the run's table W (record a ≻ b
    has weight ∝ W_ab·p(a ≻ b)). The paper's mean runs over all K² ordered pairs, i = j draws
    contributing nothing; here the draws are off-diagonal and the lr is scaled by 1 − Σ_i W_ii, the
    same expected step (with n off-diagonal draws instead of about n(1 − Σ_i W_ii))."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose from {SAMPLERS}")
    reward = rewards()
    ref = torch.full((1, K), -torch.log(torch.tensor(float(K))).item(), dtype=torch.float64)
    prob = Problem(FlatSpace(K), ref, reward=reward, pair_dist="uniform")
    base, star = population(prob), optima.reverse_kl(prob, BETA)
    policy = Tabular(prob, runs=seeds, dtype=torch.float64)
    loss, marks, gaps = make("dpo", beta=BETA), [], []
    fixed = sampler != "mix_p"
    for step in range(0, iterations, iterations if fixed else 1):
        logp = policy.logp().detach()
        if step % log_every == 0:
            marks.append(step)
            gaps.append(BETA * metrics.kl(logp, star))
        table = weights(sampler, logp[:, 0], reward, clip=True)
        record = table[:, base.chosen[0], base.rejected[0]] * base.weight
        data = dataclasses.replace(base, weight=record / record.sum(-1, keepdim=True))
        history = train(policy, loss, data, steps=iterations if fixed else 1, optimizer="sgd",
                        lr=lr * (1 - table.diagonal(dim1=-2, dim2=-1).sum(-1)), batch_size=pairs,
                        seed=seed * iterations + step, log_every=log_every, metrics=("kl_to_target",), target=star)
    if fixed:
        marks = history.steps
        gaps = [BETA * record["kl_to_target"] for record in history.records]
    else:
        marks.append(iterations)
        gaps.append(BETA * metrics.kl(policy.logp().detach(), star))
    return torch.tensor(marks), torch.stack(gaps)
