"""Batched training: B independent runs of one loss as a single tensor program.

``train`` minimises, for every run b separately, the weighted objective
L_b(θ_b) = Σ_k ω_{b,k}·ℓ(record k; π_{θ_b}) over the records of ``pairs`` (the exact population
or a finite data set; ``toybench.objective``), or with ``batch_size`` its mini-batch estimate
(1/n)·Σ_{j ≤ n} ℓ(record k_j), k_j drawn with probability ∝ ω_{b,k}. Runs share nothing but the
program: hyperparameters, learning rates and data may differ per run (``[B]`` tensors, per-run
``Pairs``), and one run trained alone gives the same numbers as the same run inside a batch.

One step, for any policy (the protocol in ``toybench.policies``):

1. log π_θ ``[B, P, Y]`` from ``policy.logp()``;
2. the loss side, records → ∂L/∂log π ``[B, P, Y]`` (``toybench.loss_grads``: closed-form
   per-record derivatives on the cell grid or the record list, no autograd graph over records);
3. the policy side, ∂L/∂log π → ∂L/∂θ: the policy's own ``vjp`` (``Tabular``: the softmax
   Jacobian) or one ``torch.autograd.grad`` of ``logp()`` (``policies.logp_and_vjp``);
4. the optimiser. Both are elementwise, so one ``[B, ...]`` tensor is B independent optimisers and
   ``lr`` may be ``[B]``: ``"adam"`` is torch.optim.Adam's update with its defaults (β₁ 0.9,
   β₂ 0.999, ε 1e-8, bias-corrected; Kingma & Ba, arXiv 1412.6980, Algorithm 1), run by
   ``torch.optim.Adam(fused=True)`` (one pass over the parameters) when lr is one number, the
   policy has several parameter tensors or at least ``FUSED_ADAM_MIN`` numbers, and the device has
   the fused kernel, else in place tensor by tensor; ``"sgd"`` is θ ← θ − lr·∇L.

The history is off the hot path: see ``History``.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from ._checks import check_positive, hyper_values
from ._numerics import counter_uniform
from .loss_grads import LossGrads
from .losses.base import Loss
from .metrics import NORMALISATION_TOL, summary
from .pairs import Pairs
from .policies import log_normalize, logp_and_vjp

OPTIMIZERS = ("adam", "sgd")
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
TARGET_METRICS = ("kl_to_target", "kl_from_target", "tv_to_target")
METRICS = ("loss", *TARGET_METRICS, "kl_to_ref", "entropy", "win_rate", "expected_reward", "mass_on_best")
DEFAULT_METRICS = METRICS[1:]
"""What a logged step records unless ``metrics=`` says otherwise: every metric of the log-prob
table (O(B·P·Y) work, a fraction of a step), not ``loss``, a sum over every record that costs as
much as a training step: ask for it with ``metrics=``, or read it at the first and last step."""
PENDING_ELEMENTS = 1 << 20
"""The history computes its quick records once this many log-prob entries are kept (4 MiB in float32, so
the batch stays in cache: P=8, Y=32, B=256, 100 records, 2 cores: the default history cost 1.6× the
fastest call with 64 MiB batches, 1.25–1.35× with these)."""
MALLOC_PRIMER_BYTES = 24 << 20
"""Size of the buffer ``_recycle_large_blocks`` allocates and frees (below glibc's 32 MiB cap)."""


@dataclass
class History:
    """What ``train`` recorded. ``steps``: the logged step numbers (0 = before training, then
    every ``log_every`` and the last); ``records``: one dict per logged step with ``step`` and
    ``[B]`` float64 tensors:

    - ``loss``: the full objective Σ ω·ℓ (a stateful loss at its exact population statistics);
    - ``kl_to_target`` = KL(π_θ‖π_tgt), ``kl_from_target`` = KL(π_tgt‖π_θ), ``tv_to_target``
      (NaN when no target is known);
    - ``kl_to_ref`` = KL(π_θ‖π_ref), ``entropy``, ``win_rate`` vs π_ref under the problem's
      preferences, and under BT ``expected_reward`` and ``mass_on_best`` (as
      ``toybench.metrics.summary``; all ρ-averaged over prompts).

    Where float64 is kept: step 0 and the last step hold every metric, computed in float64 by
    ``toybench.metrics`` (and the loss in float64) from the policy's table renormalised in
    float64: the numbers to compare with exact targets. The steps in between hold the ``metrics``
    asked of ``train`` (default ``DEFAULT_METRICS``: not ``loss``), computed from that step's
    own forward pass, batched over runs in the policy's dtype and on its device (for float32,
    rounding ~1e-6 relative), stored as float64."""

    steps: list[int]
    records: list[dict]

    @property
    def final(self) -> dict:
        """The last record's metrics, each ``[B]``."""
        return {key: value for key, value in self.records[-1].items() if key != "step"}

    @property
    def runs(self) -> int:
        return len(self.records[-1]["loss"])

    def column(self, metric: str) -> tuple[list[int], torch.Tensor]:
        """(the steps where ``metric`` was recorded, its values there ``[steps, B]``, on the CPU)."""
        if metric not in self.final:
            raise ValueError(f"no metric {metric!r} in this history; recorded: {list(self.final)}")
        rows = [record for record in self.records if metric in record]
        return [r["step"] for r in rows], torch.stack([r[metric].detach().cpu() for r in rows])

    def to_frame(self):
        """A long pandas DataFrame: one row per (logged step, run); columns ``step``, ``run``,
        then one per metric (NaN at steps that did not record it)."""
        import pandas as pd

        runs = self.runs
        columns = {"step": [s for s in self.steps for _ in range(runs)],
                   "run": [b for _ in self.steps for b in range(runs)]}
        nan = torch.full((runs,), math.nan, dtype=torch.float64)
        for key in self.final:
            columns[key] = torch.cat([record.get(key, nan).detach().cpu() for record in self.records]).tolist()
        return pd.DataFrame(columns)

    def plot(self, metric: str = "loss", ax=None, max_lines: int = 8, logy: bool = False):
        """Draw ``metric`` against the step on ``ax`` (a new figure when None) and return the Axes.

        Up to ``max_lines`` runs get one line each; more runs are drawn as their median and the
        band between the 10th and 90th percentiles. Only the steps that recorded ``metric`` are
        drawn (with markers when they are just the first and last). Title, axis labels and a legend are set;
        ``logy`` puts the metric on a log scale. Needs matplotlib (imported here)."""
        import matplotlib.pyplot as plt

        if isinstance(max_lines, bool) or not isinstance(max_lines, int) or max_lines < 1:
            raise ValueError(f"max_lines must be an integer >= 1, got {max_lines!r}")
        steps, values = self.column(metric)
        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.2))
        marker = "o" if len(steps) < 3 else None     # e.g. the loss, by default only at the first and last step
        if values.shape[1] <= max_lines:
            for b in range(values.shape[1]):
                ax.plot(steps, values[:, b].numpy(), lw=1, marker=marker, label=f"run {b}")
        else:
            low, mid, high = torch.nanquantile(values, torch.tensor([0.1, 0.5, 0.9], dtype=values.dtype), dim=1)
            ax.fill_between(steps, low.numpy(), high.numpy(), alpha=0.3, label="10th–90th percentile of runs")
            ax.plot(steps, mid.numpy(), lw=1.5, marker=marker, label=f"median of {values.shape[1]} runs")
        if logy:
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(metric)
        ax.set_title(f"{metric} during training ({values.shape[1]} run{'s' * (values.shape[1] > 1)})")
        ax.legend(fontsize="small")
        return ax

    def __repr__(self) -> str:
        loss = self.final["loss"]
        return (f"History(runs={self.runs}, steps={self.steps[0]}..{self.steps[-1]}, {len(self.steps)} records, "
                f"metrics={list(self.final)}, final loss mean={loss.mean().item():.6g})")


def train(policy, loss: Loss, pairs: Pairs, steps: int, optimizer: str = "adam", lr=0.05,
          batch_size: int | None = None, seed=0, log_every: int | None = None, target=None,
          metrics=None, progress: bool = False) -> History:
    """Fit ``policy``'s B runs to ``loss`` on ``pairs`` in place; return the ``History``.

    ``policy``: any object of the protocol in ``toybench.policies`` (``tb.Tabular``, or one with
    ``runs``, ``logp()``, ``parameters()`` and optionally ``vjp``). ``pairs.runs`` must be 1 or B
    and ``loss.runs`` None or B; ``lr`` a positive number or a ``[B]`` tensor; ``batch_size`` None
    (full objective) or a positive int (each step each run draws that many records ∝ weight, with
    replacement, from a counter-based generator keyed by its seed: ``seed`` an int s, runs s, s + 1,
    …, or B ints; run b draws the same records whatever else is in the batch). A stateful loss (``loss.stateful``) updates
    its per-run statistics from each step's records before the loss is evaluated.

    History: ``log_every`` (default ``steps // 100``, at least 1) steps between records;
    ``metrics``: the names recorded at those steps, from ``METRICS`` (default ``DEFAULT_METRICS``;
    ``"all"`` for every one); step 0 and the last step always record every metric in float64.
    ``target`` (``[P, Y]`` or ``[B, P, Y]`` log-probs) defaults to ``loss.target(problem, noise)``.
    ``progress=True`` shows a tqdm bar on stderr."""
    runs, lr_values, logp, seeds = _check_arguments(policy, loss, pairs, steps, optimizer, lr, batch_size, seed,
                                                    log_every, progress)
    names = _check_metrics(metrics)
    log_every = log_every or max(1, steps // 100)
    _recycle_large_blocks()
    grads = LossGrads(loss, pairs, runs, like=logp)
    sampler = None if batch_size is None else _Sampler(pairs, runs, batch_size, seeds)
    optim = _Optimizer(optimizer, list(policy.parameters()), lr_values)
    history = History([], [])
    recorder = _Recorder(history, loss, pairs, grads, _target(loss, pairs, target, runs), names, like=logp)
    recorder.exact(0, policy)
    bar = _progress_bar(steps) if progress else None
    for step in range(1, steps + 1):
        logp, vjp = logp_and_vjp(policy)          # log π after step − 1 updates
        if step > 1 and (step - 1) % log_every == 0:
            recorder.quick(step - 1, logp)            # the history reuses this forward pass
        records = None if sampler is None else sampler.draw()
        optim.step(vjp(grads.grad(logp, records)))
        if bar is not None:
            bar.update(1)
    recorder.exact(steps, policy)
    if bar is not None:
        bar.close()
    return history


def _recycle_large_blocks() -> None:
    """Allocate and free one untouched 24 MiB CPU buffer so glibc keeps the ~1 MB per-block
    temporaries of a step on its heap instead of returning them to the OS after every block.

    glibc serves allocations above its mmap threshold (128 KiB at start) with fresh mmaps and
    trims the heap top beyond twice that threshold, so every temporary is page-faulted in again
    on each use; freeing an mmapped chunk raises the threshold to its size (glibc's documented
    dynamic threshold, capped at 32 MiB), and trimming then starts at 48 MiB. Measured on the
    2-core development machine (one thread, B=256): 4× more run-steps/s. Elsewhere (other
    allocators, GPU tensors) it changes nothing."""
    primer = torch.empty(MALLOC_PRIMER_BYTES, dtype=torch.uint8)
    del primer


# ------------------------------------------------------------------------ validation
def _check_arguments(policy, loss, pairs, steps, optimizer, lr, batch_size, seed, log_every, progress):
    """(B, lr as a tensor, the policy's first log-probs) after checking every argument."""
    if not (callable(getattr(policy, "logp", None)) and callable(getattr(policy, "parameters", None))):
        raise ValueError(f"policy must have logp() -> [B, P, Y] and parameters() (e.g. tb.Tabular; the protocol "
                         f"is in toybench.policies), got {type(policy).__name__}")
    if not isinstance(loss, Loss):
        raise ValueError(f"loss must be a toybench loss (tb.losses.make(name, ...)), got {type(loss).__name__}")
    if not isinstance(pairs, Pairs):
        raise ValueError(f"pairs must be Pairs (tb.population or tb.sample_pairs), got {type(pairs).__name__}")
    runs = getattr(policy, "runs", None)
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise ValueError(f"policy.runs must be an integer >= 1 (the number of runs B), got {runs!r}")
    logp = _check_policy(policy, runs, pairs.problem)
    if pairs.runs not in (1, runs):
        raise ValueError(f"pairs have {pairs.runs} runs of data but the policy has {runs} runs; "
                         f"give shared data (1) or one data set per run ({runs})")
    if loss.runs not in (None, runs):
        raise ValueError(f"the loss has [{loss.runs}] hyperparameters but the policy has {runs} runs; "
                         f"use scalars or [{runs}] tensors")
    if isinstance(steps, bool) or not isinstance(steps, int):
        raise ValueError(f"steps must be an int, got {steps!r}")
    seeds = _check_seeds(seed, runs)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer={optimizer!r} is not allowed; use one of {list(OPTIMIZERS)}")
    check_positive(lr, "lr")
    lr_values = hyper_values(lr, "lr")
    if lr_values.ndim == 1 and lr_values.shape[0] != runs:
        raise ValueError(f"lr has {lr_values.shape[0]} values but the policy has {runs} runs; give a number "
                         f"or a [{runs}] tensor")
    for name, value in (("batch_size", batch_size), ("log_every", log_every)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be None or an integer >= 1, got {value!r}")
    if not isinstance(progress, bool):
        raise ValueError(f"progress must be True or False, got {progress!r}")
    return runs, lr_values, logp, seeds


def _check_seeds(seed, runs: int) -> torch.Tensor:
    """The mini-batch seeds ``[B]`` int64: an int s gives s, s + 1, …, s + B − 1; else B ints."""
    if isinstance(seed, int) and not isinstance(seed, bool):
        return torch.arange(runs, dtype=torch.int64) + seed
    values = seed.tolist() if isinstance(seed, torch.Tensor) else seed
    if not isinstance(values, (list, tuple)) or len(values) != runs or any(
            isinstance(v, bool) or not isinstance(v, int) for v in values):
        raise ValueError(f"seed must be an int or {runs} ints (one per run), got {seed!r}")
    return torch.tensor(values, dtype=torch.int64)


def _check_policy(policy, runs, prob) -> torch.Tensor:
    """The policy's log-probs, detached, after checking the protocol: a floating ``[B, P, Y]``
    table whose rows normalise, and trainable leaf parameters."""
    params = policy.parameters()
    if not isinstance(params, (list, tuple)) or not params or not all(
            isinstance(p, torch.Tensor) and p.is_leaf and p.requires_grad for p in params):
        raise ValueError("policy.parameters() must return a non-empty list of leaf tensors with requires_grad")
    with torch.no_grad():
        logp = policy.logp()
    shape = (runs, prob.P, prob.Y)
    if not isinstance(logp, torch.Tensor) or not logp.is_floating_point() or logp.shape != shape:
        got = list(logp.shape) if isinstance(logp, torch.Tensor) else type(logp).__name__
        raise ValueError(f"policy.logp() must be a float tensor [B, P, Y] = {list(shape)} for these pairs, got {got}")
    error = torch.logsumexp(logp.double(), dim=-1).abs().max().item()
    if not error <= NORMALISATION_TOL:
        raise ValueError(f"policy.logp() must be normalised log-probs (logsumexp over Y = 0 within "
                         f"{NORMALISATION_TOL}); the worst row is off by {error:.3g}")
    return logp.detach()


def _check_metrics(metrics) -> tuple[str, ...]:
    """``metrics`` as a tuple of names from ``METRICS``."""
    if metrics is None:
        return DEFAULT_METRICS
    if isinstance(metrics, str):
        metrics = METRICS if metrics == "all" else (metrics,)
    try:
        names = tuple(metrics)
    except TypeError:
        names = (metrics,)
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; allowed: 'all' or names from {list(METRICS)}")
    return tuple(name for name in METRICS if name in names)


def _target(loss, pairs, target, runs):
    """The reference log-probs for the KL columns: ``target`` or the loss's closed form (or None)."""
    if target is None:
        return loss.target(pairs.problem, pairs.noise)
    try:
        table = torch.as_tensor(target, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"target must be log-probs [P, Y] or [B, P, Y], got {type(target).__name__}") from err
    shape = (pairs.problem.P, pairs.problem.Y)
    if table.shape not in (shape, (runs, *shape)):
        raise ValueError(f"target must have shape {list(shape)} or {[runs, *shape]}, got {list(table.shape)}")
    return table


# ------------------------------------------------------------------------ history
class _Recorder:
    """Writes ``History`` records: ``exact`` (every metric, float64, ``toybench.metrics``) and
    ``quick`` (the asked metrics in the policy's dtype on its device). ``quick`` only keeps a copy
    of the step's log-probs (and its loss, when asked); ``flush`` computes the metrics of all kept
    steps at once, batched over steps and runs, with no validation and no host sync. The
    problem's tables are converted once, here."""

    def __init__(self, history, loss, pairs, grads, target, names, like):
        prob = pairs.problem
        self.history, self.prob, self.names, self.grads, self.target = history, prob, names, grads, target
        self.loss, self.pairs, self.pending = loss, pairs, []
        self.exact_grads = grads if like.dtype == torch.float64 else None
        to = {"device": like.device, "dtype": like.dtype}
        self.rho = prob.prompt_weights.to(**to)
        self.nan = torch.full((like.shape[0],), math.nan, dtype=torch.float64, device=like.device)
        # Σ_y π(y|x)·c(x, y) for each column c: log π_ref, w = Σ_z P(y ≻ z|x)·π_ref(z|x) (win rate),
        # then under BT the reward r and 1[y is a best response]
        columns = [prob.ref_logp, torch.einsum("pyz,pz->py", prob.preference_matrix(), prob.ref_logp.exp())]
        if prob.reward is not None:
            columns += [prob.reward, (prob.reward == prob.reward.amax(-1, keepdim=True)).to(torch.float64)]
        self.columns = torch.stack(columns, -1).to(**to)
        if target is not None:
            target = target.to(**to)
            self.target_p, self.target_dropped = target.exp(), target == -math.inf
            self.target_finite = target.masked_fill(self.target_dropped, 0.0)
            self.target_plogp = torch.special.xlogy(self.target_p, self.target_p).sum(-1)   # Σ π_tgt log π_tgt
            self.target_kept = self.target_p > 0

    def exact(self, step, policy):
        """Every metric in float64, from the policy's table renormalised in float64."""
        self.flush()
        with torch.no_grad():
            logp = log_normalize(policy.logp().detach().to(torch.float64))
            if self.exact_grads is None:
                self.exact_grads = LossGrads(self.loss, self.pairs, logp.shape[0], like=logp)
            record = {"step": step, "loss": self.exact_grads.value(logp)}
            target = None if self.target is None else self.target.to(logp.device)
            metrics = summary(logp, self.prob, target)
            record.update({key: metrics.get(key, self.nan) for key in TARGET_METRICS})
            record.update({key: value for key, value in metrics.items() if key not in TARGET_METRICS})
            record = {key: value if key == "step" else value.expand_as(record["loss"])
                      for key, value in record.items()}
        self.history.steps.append(step)
        self.history.records.append(record)

    def quick(self, step, logp):
        """Keep step ``step``'s log-probs ``logp`` (detached) for ``flush``; the loss now, if asked."""
        with torch.no_grad():
            loss = self.grads.value(logp).double() if "loss" in self.names else None
            self.pending.append((step, logp.clone(), loss))
        if len(self.pending) * logp.numel() >= PENDING_ELEMENTS:
            self.flush()

    def flush(self):
        """The asked metrics of every kept step, per prompt then ρ-averaged, over ``[S, B, P, Y]``.

        KL(π‖q) = Σ π log π − Σ π log q, with 0·log 0 = 0 (log π = −∞ is clamped to the dtype's
        lowest number, so its term is 0·finite) and +∞ where q drops a response π keeps;
        KL(π_tgt‖π) = Σ π_tgt log π_tgt − Σ π_tgt log π (+∞ where π drops a response π_tgt keeps)."""
        if not self.pending:
            return
        with torch.no_grad():
            logp = torch.stack([logp for _, logp, _ in self.pending])                   # [S, B, P, Y]
            p = logp.exp()
            plogp = (p * logp.clamp_min(torch.finfo(logp.dtype).min)).sum(-1)
            linear = torch.einsum("sbpy,pyk->sbpk", p, self.columns)
            per_prompt = {"kl_to_ref": plogp - linear[..., 0], "entropy": -plogp, "win_rate": linear[..., 1]}
            if self.columns.shape[-1] > 2:
                per_prompt.update(expected_reward=linear[..., 2], mass_on_best=linear[..., 3])
            if self.target is not None:
                outside = (p * self.target_dropped).sum(-1) > 0
                per_prompt["kl_to_target"] = (plogp - (p * self.target_finite).sum(-1)).masked_fill_(outside, math.inf)
                cross = torch.where(self.target_kept, self.target_p * logp, 0.0).sum(-1)     # Σ π_tgt log π
                per_prompt["kl_from_target"] = self.target_plogp - cross
                per_prompt["tv_to_target"] = 0.5 * (p - self.target_p).abs().sum(-1)
            asked = [name for name in self.names if name in per_prompt]
            values = (torch.stack([per_prompt[name] for name in asked] or [plogp]) * self.rho).sum(-1).double()
        for index, (step, _, loss) in enumerate(self.pending):
            found = {"loss": loss, **{name: values[m, index] for m, name in enumerate(asked)}}
            self.history.steps.append(step)
            self.history.records.append({"step": step, **{name: found.get(name, self.nan) for name in self.names
                                                          if name in found or name in TARGET_METRICS}})
        self.pending = []


def _progress_bar(steps):
    from tqdm.auto import tqdm

    return tqdm(total=steps, desc="train", unit="step")


# ------------------------------------------------------------------------ data and optimiser
class _Sampler:
    """Each step, ``batch_size`` records per run drawn ∝ weight with replacement, as per-run
    ``Pairs`` with weight 1/batch_size each: the batch loss is the mean over the draws.

    Draw j of run b at step t inverts the run's cumulative record weights at
    ``counter_uniform(seed_b, t, j)``: a function of the run's seed, its weights, t and j alone,
    so a run draws the same records in any batch, chunk or shard, on any device. The draws of
    up to ``BLOCK_DRAWS`` records are made together, a block of steps at a time (the same numbers)."""

    BLOCK_DRAWS = 1 << 20

    def __init__(self, pairs: Pairs, runs: int, batch_size: int, seeds: torch.Tensor):
        self.pairs, self.runs, self.batch_size, self.step = pairs, runs, batch_size, 0
        self.seeds = seeds.to(pairs.weight.device)
        cumulative = pairs.weight.to(torch.float64).cumsum(-1)                       # [1 or B, N]
        self.total = cumulative[:, -1:]
        self.cumulative = cumulative[0] if cumulative.shape[0] == 1 else cumulative
        self.block_steps = max(1, self.BLOCK_DRAWS // (runs * batch_size))
        self.weight = torch.full((runs, batch_size), 1.0 / batch_size, dtype=torch.float64, device=self.seeds.device)
        self.block, self.offset = None, 0

    def _next_block(self) -> None:
        steps = torch.arange(self.step + 1, self.step + 1 + self.block_steps, device=self.seeds.device)
        level = counter_uniform(self.seeds, steps, self.batch_size).reshape(self.runs, -1) * self.total
        draws = torch.searchsorted(self.cumulative, level, right=True).clamp_(max=self.pairs.size - 1)
        pick = lambda t: t.expand(self.runs, -1).gather(1, draws.to(t.device)).reshape(  # noqa: E731
            self.runs, self.block_steps, self.batch_size)
        self.block = {"prompt": pick(self.pairs.prompt), "chosen": pick(self.pairs.chosen),
                      "rejected": pick(self.pairs.rejected), "fields": {k: pick(v) for k, v in self.pairs.fields.items()}}
        self.offset = 0

    def draw(self) -> Pairs:
        if self.block is None or self.offset == self.block_steps:
            self._next_block()
        k, block = self.offset, self.block
        self.step, self.offset = self.step + 1, k + 1
        return dataclasses.replace(self.pairs, prompt=block["prompt"][:, k], chosen=block["chosen"][:, k],
                                   rejected=block["rejected"][:, k], weight=self.weight,
                                   fields={name: v[:, k] for name, v in block["fields"].items()})


FUSED_ADAM_MIN = 1 << 15
"""Below this many parameters (one table) the fused Adam call costs more than it saves (~50 µs)."""


class _Optimizer:
    """Adam or SGD on a list of ``[B, ...]`` parameters (elementwise: B independent optimisers)."""

    def __init__(self, kind: str, params: list[torch.Tensor], lr: torch.Tensor):
        self.kind, self.params, self.count = kind, params, 0
        self.lr = [lr.to(device=p.device, dtype=p.dtype).reshape(-1, *([1] * (p.ndim - 1))) if lr.ndim else float(lr)
                   for p in params]
        if lr.ndim and any(p.ndim == 0 or p.shape[0] != lr.shape[0] for p in params):
            raise ValueError("a [B] lr needs every policy parameter to have the run axis B first")
        self.fused = None
        # one shared lr: torch's fused Adam kernel, one pass over every parameter; a single small
        # table (a tiny tabular problem) runs faster through the in-place loop below
        many = len(params) > 1 or sum(p.numel() for p in params) >= FUSED_ADAM_MIN
        if kind == "adam" and not lr.ndim and many:
            try:
                self.fused = torch.optim.Adam(params, lr=float(lr), betas=ADAM_BETAS, eps=ADAM_EPS, fused=True)
            except (RuntimeError, ValueError):      # a torch build or device without it: the loop below
                self.fused = None
        loop_adam = kind == "adam" and self.fused is None      # the fused optimiser keeps its own moments
        self.moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params] if loop_adam else None

    def step(self, grads: list[torch.Tensor]) -> None:
        """One update of every parameter from its gradient."""
        self.count += 1
        if self.fused is not None:
            for param, grad in zip(self.params, grads, strict=True):
                param.grad = grad
            self.fused.step()
            for param in self.params:
                param.grad = None
            return
        beta1, beta2 = ADAM_BETAS
        with torch.no_grad():
            for index, (param, grad, lr) in enumerate(zip(self.params, grads, self.lr, strict=True)):
                if self.kind == "sgd":
                    param.sub_(lr * grad)
                    continue
                exp_avg, exp_avg_sq = self.moments[index]
                exp_avg.lerp_(grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                denom = exp_avg_sq.sqrt().div_(math.sqrt(1 - beta2**self.count)).add_(ADAM_EPS)
                if isinstance(lr, float):
                    param.addcdiv_(exp_avg, denom, value=-lr / (1 - beta1**self.count))
                else:
                    param.sub_(torch.div(exp_avg, denom, out=denom).mul_(lr / (1 - beta1**self.count)))
