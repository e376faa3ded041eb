"""Batched training: B independent runs of one loss as a single tensor program.

``train`` minimises, for every run b separately, the weighted objective
L_b(θ_b) = Σ_k ω_{b,k}·ℓ(record k; π_{θ_b}) over the records of ``pairs`` (the exact population
or a finite data set; ``toybench.objective``), or with ``batch_size`` its mini-batch estimate
(1/n)·Σ_{j ≤ n} ℓ(record k_j), k_j drawn with probability ∝ ω_{b,k}. Runs share nothing but the
program: hyperparameters, learning rates and data may differ per run (``[B]`` tensors, per-run
``Pairs``), and one run trained alone gives the same numbers as the same run inside a batch.

Gradients. For a ``Tabular`` policy the gradient is assembled without an autograd graph over the
records: per record (∂ℓ/∂ℓ_w, ∂ℓ/∂ℓ_l) from ``loss.input_grads`` (a closed form for most losses),
times ω, summed into ∂L/∂log π ``[b, P, Y]``, then through the softmax Jacobian
(``Tabular.logit_grad``). Full-batch records of a stateless loss are laid on the ``[P, Y, Y]`` grid
of (prompt, chosen, rejected) cells, where inputs are broadcast views and the sums are row and
column sums (no gathers or scatters; plain margin losses φ(β·Δ) need only φ′ on the grid);
mini-batches, stateful losses and data sets much smaller than the grid stay a record list. The run
axis is processed in blocks of ``RUN_BLOCK`` runs so the temporaries stay in cache (docs/conventions.md,
speed). Any other ``Policy`` is differentiated with autograd through ``logp()``.

Optimisers (elementwise, so one ``[B, ...]`` tensor is B independent optimisers, and ``lr`` may
be ``[B]``): ``"adam"`` is torch.optim.Adam's update with its defaults (β₁ 0.9, β₂ 0.999, ε 1e-8,
bias-corrected; Kingma & Ba, arXiv 1412.6980, Algorithm 1); ``"sgd"`` is θ ← θ − lr·∇L.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from ._checks import check_positive, hyper_values
from .losses.base import LENGTH_INPUTS, Loss, MarginLoss
from .metrics import summary
from .objective import record_inputs
from .pairs import Pairs
from .policies import Policy, Tabular, log_normalize

OPTIMIZERS = ("adam", "sgd")
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
RUN_BLOCK = 64
"""Runs per block on the fast path: a P=8, Y=32 population block is ~2 MB per [block, P, Y, Y] float32
temporary (margin grid path, measured on 2 cores: 64 runs best, 16 runs 40 % slower, 8 runs 2× slower)."""
GRID_FILL = 4
"""Full-batch records are laid on the [P, Y, Y] cell grid when it has at most this many cells per record
(the population fills it; a small data set over many responses stays a record list)."""
TARGET_METRICS = ("kl_to_target", "kl_from_target", "tv_to_target")
MALLOC_PRIMER_BYTES = 24 << 20
"""Size of the buffer ``_recycle_large_blocks`` allocates and frees (below glibc's 32 MiB cap)."""


@dataclass
class History:
    """What ``train`` recorded. ``steps``: the logged step numbers (0 = before training, then
    every ``log_every`` and the last); ``records``: one dict per logged step with ``step`` and
    ``[B]`` float64 tensors: ``loss`` (the full objective Σ ω·ℓ; a stateful loss evaluated at its
    exact population statistics), ``kl_to_target`` = KL(π_θ‖π_tgt), ``kl_from_target`` =
    KL(π_tgt‖π_θ), ``tv_to_target`` (NaN when no target is known), and ``toybench.metrics.summary``'s
    ``kl_to_ref``, ``entropy``, ``win_rate`` vs π_ref (under BT also ``expected_reward``,
    ``mass_on_best``)."""

    steps: list[int]
    records: list[dict]

    @property
    def final(self) -> dict:
        """The last record's metrics, each ``[B]``."""
        return {key: value for key, value in self.records[-1].items() if key != "step"}

    def to_frame(self):
        """A long pandas DataFrame: one row per (logged step, run); columns ``step``, ``run``,
        then one per metric."""
        import pandas as pd

        runs = len(self.records[0]["loss"])
        columns = {"step": [s for s in self.steps for _ in range(runs)],
                   "run": [b for _ in self.steps for b in range(runs)]}
        for key in self.final:
            columns[key] = torch.cat([record[key].detach().cpu() for record in self.records]).tolist()
        return pd.DataFrame(columns)


def train(policy: Policy, loss: Loss, pairs: Pairs, steps: int, optimizer: str = "adam", lr=0.05,
          batch_size: int | None = None, seed: int = 0, log_every: int | None = None, target=None,
          progress: bool = False) -> History:
    """Fit ``policy``'s B runs to ``loss`` on ``pairs`` in place; return the ``History``.

    ``pairs.runs`` must be 1 or B and ``loss.runs`` None or B; ``lr`` a positive number or a
    ``[B]`` tensor; ``batch_size`` None (full objective) or a positive int (each step each run
    draws that many records ∝ weight, with replacement, from a generator seeded by ``seed``).
    ``target`` (``[P, Y]`` or ``[B, P, Y]`` log-probs) defaults to ``loss.target(problem, noise)``.
    A stateful loss (``loss.stateful``) updates its per-run statistics from each step's records
    before the loss is evaluated (``loss.update_state``)."""
    runs, lr_values = _check_arguments(policy, loss, pairs, steps, optimizer, lr, batch_size, seed, log_every,
                                       progress)
    target_logp = _target(loss, pairs, target, runs)
    log_every = log_every or max(1, steps // 100)
    _recycle_large_blocks()
    trainer = (_TabularTrainer if isinstance(policy, Tabular) else _AutogradTrainer)(
        policy, loss, pairs, optimizer, lr_values, batch_size, seed)
    history = History([], [])
    bar = _progress_bar(steps) if progress else None
    _log(history, 0, policy, loss, pairs, target_logp)
    for step in range(1, steps + 1):
        trainer.step()
        if step % log_every == 0 or step == steps:
            _log(history, step, policy, loss, pairs, target_logp)
        if bar is not None:
            bar.update(1)
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
    if not isinstance(policy, Policy):
        raise ValueError(f"policy must be a toybench Policy (e.g. tb.Tabular), got {type(policy).__name__}")
    if not isinstance(loss, Loss):
        raise ValueError(f"loss must be a toybench loss (tb.losses.make(name, ...)), got {type(loss).__name__}")
    if not isinstance(pairs, Pairs):
        raise ValueError(f"pairs must be Pairs (tb.population or tb.sample_pairs), got {type(pairs).__name__}")
    runs = policy.runs
    if pairs.runs not in (1, runs):
        raise ValueError(f"pairs have {pairs.runs} runs of data but the policy has {runs} runs; "
                         f"give shared data (1) or one data set per run ({runs})")
    if loss.runs not in (None, runs):
        raise ValueError(f"the loss has [{loss.runs}] hyperparameters but the policy has {runs} runs; "
                         f"use scalars or [{runs}] tensors")
    if (pairs.problem.P, pairs.problem.Y) != (policy.problem.P, policy.problem.Y):
        raise ValueError(f"pairs are for P={pairs.problem.P}, Y={pairs.problem.Y} but the policy has "
                         f"P={policy.problem.P}, Y={policy.problem.Y}")
    for name, value in (("steps", steps), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an int, got {value!r}")
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
    return runs, lr_values


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
def _log(history, step, policy, loss, pairs, target_logp):
    """One history record, in float64, outside the training step."""
    with torch.no_grad():
        logp = log_normalize(policy.logp().detach().to(torch.float64))   # a float32 policy, renormalised in float64
        inputs = record_inputs(loss, logp, pairs)
        weight = pairs.weight.to(logp.device)
        state = {"state": loss.population_state(inputs, weight)} if loss.stateful else {}
        record = {"step": step, "loss": (weight * loss(**inputs, **state)).sum(-1)}
        target = None if target_logp is None else target_logp.to(logp.device)
        metrics = summary(logp, pairs.problem, target)
        nan = torch.full_like(record["loss"], math.nan)
        record.update({key: metrics.get(key, nan) for key in TARGET_METRICS})
        record.update({key: value for key, value in metrics.items() if key not in TARGET_METRICS})
        record = {key: value if key == "step" else value.expand_as(record["loss"]) for key, value in record.items()}
    history.steps.append(step)
    history.records.append(record)


def _progress_bar(steps):
    from tqdm.auto import tqdm

    return tqdm(total=steps, desc="train", unit="step")


# ------------------------------------------------------------------------ records and blocks
def _block_of(value, block: slice, runs: int):
    """Rows ``block`` of a run-axis tensor (shared size-1 axes and scalars are kept)."""
    if isinstance(value, torch.Tensor) and value.ndim >= 1 and value.shape[0] == runs and runs > 1:
        return value[block]
    return value


def _loss_block(loss: Loss, block: slice, runs: int) -> Loss:
    """The loss with its ``[B]`` hyperparameters cut to the runs in ``block``."""
    if loss.runs is None:
        return loss
    return dataclasses.replace(loss, **{f.name: _block_of(getattr(loss, f.name), block, runs)
                                        for f in dataclasses.fields(loss)})


def _pairs_block(pairs: Pairs, block: slice, runs: int) -> Pairs:
    """The records of the runs in ``block`` (shared records are kept)."""
    if pairs.runs == 1:
        return pairs
    cut = lambda t: _block_of(t, block, runs)  # noqa: E731
    return dataclasses.replace(pairs, prompt=cut(pairs.prompt), chosen=cut(pairs.chosen),
                               rejected=cut(pairs.rejected), weight=cut(pairs.weight),
                               noise=cut(pairs.noise), fields={k: cut(v) for k, v in pairs.fields.items()})


class _Sampler:
    """Each step, ``batch_size`` records per run drawn ∝ weight with replacement (one CPU
    generator seeded by ``seed``, so draws do not depend on the device), as per-run ``Pairs``
    with weight 1/batch_size each: the batch loss is the mean over the draws."""

    def __init__(self, pairs: Pairs, runs: int, batch_size: int, seed: int):
        self.pairs, self.runs, self.batch_size = pairs, runs, batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.probs = pairs.weight.cpu().expand(runs, -1).contiguous()

    def draw(self) -> Pairs:
        draws = torch.multinomial(self.probs, self.batch_size, replacement=True, generator=self.generator)
        pick = lambda t: t.expand(self.runs, -1).gather(1, draws.to(t.device))  # noqa: E731
        weight = torch.full(draws.shape, 1.0 / self.batch_size, dtype=torch.float64)
        return dataclasses.replace(self.pairs, prompt=pick(self.pairs.prompt), chosen=pick(self.pairs.chosen),
                                   rejected=pick(self.pairs.rejected), weight=weight,
                                   fields={k: pick(v) for k, v in self.pairs.fields.items()})


def _loss_kwargs(loss, state, inputs, weight):
    """``{"state": updated state}`` for a stateful loss (statistics of this step's records), else {}."""
    if not loss.stateful:
        return {}, state
    state = loss.update_state(state, inputs, weight)
    return {"state": state}, state


# ------------------------------------------------------------------------ optimiser
class _Optimizer:
    """Adam or SGD on a list of ``[B, ...]`` parameters, updatable a block of runs at a time."""

    def __init__(self, kind: str, params: list[torch.Tensor], lr: torch.Tensor):
        self.kind, self.params, self.count = kind, params, 0
        self.lr = [lr.to(device=p.device, dtype=p.dtype).reshape(-1, *([1] * (p.ndim - 1))) if lr.ndim else float(lr)
                   for p in params]
        if lr.ndim and any(p.shape[0] != lr.shape[0] for p in params):
            raise ValueError("a [B] lr needs every policy parameter to have the run axis B first")
        self.moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params] if kind == "adam" else None

    def tick(self) -> None:
        """Start a step (Adam's bias correction counts steps)."""
        self.count += 1

    def update(self, index: int, grad: torch.Tensor, block: slice = slice(None)) -> None:
        """Apply this step's update to rows ``block`` of parameter ``index``."""
        param, lr = self.params[index], self.lr[index]
        lr = lr[block] if isinstance(lr, torch.Tensor) else lr
        with torch.no_grad():
            if self.kind == "sgd":
                param[block].sub_(lr * grad)
                return
            beta1, beta2 = ADAM_BETAS
            exp_avg, exp_avg_sq = (moment[block] for moment in self.moments[index])
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            denom = (exp_avg_sq.sqrt() / math.sqrt(1 - beta2**self.count)).add_(ADAM_EPS)
            param[block].sub_(exp_avg / denom * (lr / (1 - beta1**self.count)))


# ------------------------------------------------------------------------ trainers
class _TabularTrainer:
    """Closed-form gradient path for ``Tabular``, in blocks of ``RUN_BLOCK`` runs: on the cell grid
    (``margin_grid_grad``, ``loss_grid_grad``) or on the record list (``block_grad``).

    On the record list, loss inputs that do not change between steps (reference log-probs, lengths, named fields,
    record indices, weights) are gathered once per block with ``record_inputs``; each step only
    gathers the policy's log-probs. Records shared by every run are gathered and scattered in a
    records-major layout (``index_select``/``index_add_`` of whole rows of runs; measured 2–3×
    faster than per-element ``gather``/``scatter_add_``); per-run records use the latter."""

    def __init__(self, policy, loss, pairs, optimizer, lr, batch_size, seed):
        runs = policy.runs
        self.policy, self.runs, self.problem = policy, runs, pairs.problem
        self.optimizer = _Optimizer(optimizer, policy.parameters(), lr)
        self.sampler = None if batch_size is None else _Sampler(pairs, runs, batch_size, seed)
        self.blocks = [slice(start, min(start + RUN_BLOCK, runs)) for start in range(0, runs, RUN_BLOCK)]
        self.losses = [_loss_block(loss, block, runs) for block in self.blocks]
        self.states = [loss.init_state(block.stop - block.start, policy.logits) if loss.stateful else None
                       for block in self.blocks]
        self.ref = pairs.problem.ref_logp.to(device=policy.logits.device, dtype=policy.logits.dtype)
        self.grid = None if self.sampler else _RecordGrid.build(loss, pairs, policy.logits)
        self.grid_grad = None if self.grid is None else (
            self.margin_grid_grad if _plain_margin(loss) else self.loss_grid_grad)
        shared = {}
        self.fixed = None if self.sampler or self.grid else [
            self.fixed_inputs(i, _pairs_block(pairs, block, runs), shared) for i, block in enumerate(self.blocks)]

    def fixed_inputs(self, i: int, pairs: Pairs, shared: dict | None = None) -> tuple:
        """(constant loss inputs, chosen and rejected flat indices ``[1 or b, N]``, weights).

        Records shared by the runs get their inputs stored records-major (strides (1, b)), so
        every operand of a step has the same layout (mixed layouts measured 2× slower); an input
        that is the same for all runs is stored once per block size in ``shared`` (full batch)."""
        logp = self.policy.logits.detach()[self.blocks[i]]
        inputs = record_inputs(self.losses[i], logp[:1] if pairs.runs == 1 else logp, pairs)
        del inputs["chosen_logp"], inputs["rejected_logp"]
        inputs["weight"] = pairs.weight.to(device=logp.device, dtype=logp.dtype)
        Y = self.problem.Y
        chosen = (pairs.prompt * Y + pairs.chosen).to(logp.device)
        rejected = (pairs.prompt * Y + pairs.rejected).to(logp.device)
        if chosen.shape[0] == 1:
            inputs = {name: _records_major(name, value, logp.shape[0], shared) for name, value in inputs.items()}
        weight = inputs.pop("weight")
        return inputs, chosen, rejected, weight

    def step(self) -> None:
        self.optimizer.tick()
        drawn = None if self.sampler is None else self.sampler.draw()
        for i, block in enumerate(self.blocks):
            if self.grid is not None:
                self.optimizer.update(0, self.grid_grad(i, block), block)
                continue
            fixed = self.fixed[i] if drawn is None else self.fixed_inputs(i, _pairs_block(drawn, block, self.runs))
            self.optimizer.update(0, self.block_grad(i, block, *fixed), block)

    def margin_grid_grad(self, i, block) -> torch.Tensor:
        """∂L/∂s for a plain margin loss φ(β·Δ) on the cell grid: with h = β·g (g = log π − log π_ref,
        ``[b, P, Y]``), z_ab = h_a − h_b, W = D ⊙ φ′(z) (D the record weights),
        ∂L/∂g_a = β·(Σ_b W_ab − Σ_b W_ba). β is applied to the ``[b, P, Y]`` tensors, so the
        ``[b, P, Y, Y]`` grid sees one subtraction, φ′, one product and two sums."""
        loss = self.losses[i]
        logp = log_normalize(self.policy.logits.detach()[block])
        beta = loss.hp("beta", logp)
        scaled = (logp - self.ref).mul_(beta)
        weighted = loss.dphi(scaled[..., :, None] - scaled[..., None, :])
        weighted.mul_(self.grid.cut("weight", block, self.runs))
        return self.policy.logit_grad((weighted.sum(-1) - weighted.sum(-2)).mul_(beta), block, logp)

    def loss_grid_grad(self, i, block) -> torch.Tensor:
        """∂L/∂s for any stateless loss on the cell grid: the loss inputs are broadcast views
        (chosen a along axis −2, rejected b along axis −1, no gathers), ``input_grads`` gives the
        per-cell derivatives, cells without a record are zeroed (their inputs may be
        meaningless, e.g. a = b), and ∂L/∂g_a = Σ_b D_ab·∂ℓ_ab/∂ℓ_w + Σ_b D_ba·∂ℓ_ba/∂ℓ_l."""
        grid = self.grid
        logp = log_normalize(self.policy.logits.detach()[block])
        shape = (logp.shape[0], *grid.weight.shape[1:])
        inputs = {"chosen_logp": logp[..., :, None].expand(shape), "rejected_logp": logp[..., None, :].expand(shape),
                  "ref_chosen_logp": self.ref[None, :, :, None].expand(shape),
                  "ref_rejected_logp": self.ref[None, :, None, :].expand(shape),
                  **{name: grid.cut(name, block, self.runs).expand(shape) for name in grid.extras}}
        chosen_grad, rejected_grad = self.losses[i].input_grads(**inputs)
        weight, present = grid.cut("weight", block, self.runs), grid.cut("present", block, self.runs)
        chosen = torch.where(present, chosen_grad, 0.0).mul_(weight).sum(-1)
        rejected = torch.where(present, rejected_grad, 0.0).mul_(weight).sum(-2)
        return self.policy.logit_grad(chosen.add_(rejected), block, logp)

    def block_grad(self, i, block, inputs, chosen_idx, rejected_idx, weight) -> torch.Tensor:
        """∂L/∂s ``[b, P, Y]`` for the runs in ``block``."""
        logp = log_normalize(self.policy.logits.detach()[block])
        b, table = logp.shape[0], logp.reshape(logp.shape[0], -1)
        shared = chosen_idx.shape[0] == 1
        if shared:   # [P·Y, b] rows of runs: gather whole rows, results viewed as [b, N]
            by_response = table.T.contiguous()
            gather = lambda idx: by_response.index_select(0, idx[0]).T  # noqa: E731
        else:
            gather = lambda idx: table.gather(1, idx)  # noqa: E731
        inputs = {**inputs, "chosen_logp": gather(chosen_idx), "rejected_logp": gather(rejected_idx)}
        extra, self.states[i] = _loss_kwargs(self.losses[i], self.states[i], inputs, weight)
        chosen_grad, rejected_grad = self.losses[i].input_grads(**inputs, **extra)
        chosen_grad, rejected_grad = (weight * chosen_grad).expand(b, -1), (weight * rejected_grad).expand(b, -1)
        if shared:
            dlogp = torch.zeros_like(by_response)
            dlogp.index_add_(0, chosen_idx[0], chosen_grad.T).index_add_(0, rejected_idx[0], rejected_grad.T)
            dlogp = dlogp.T
        else:
            dlogp = torch.zeros_like(table)
            dlogp.scatter_add_(1, chosen_idx, chosen_grad).scatter_add_(1, rejected_idx, rejected_grad)
        return self.policy.logit_grad(dlogp.reshape(logp.shape), block, logp)


def _plain_margin(loss) -> bool:
    """Whether ``loss`` is a ``MarginLoss`` φ(β·Δ) of the plain margin Δ = g_w − g_l whose gradient is
    β·φ′(β·Δ) (``input_grads`` and ``margin_slope`` not overridden, no extra inputs)."""
    if not isinstance(loss, MarginLoss) or loss.needs or type(loss).input_grads is not MarginLoss.input_grads \
            or type(loss).margin_slope is not MarginLoss.margin_slope:
        return False
    probe = torch.randn(4, 1, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return torch.allclose(loss.margin(*probe), (probe[0] - probe[2]) - (probe[1] - probe[3]), rtol=0, atol=1e-12)


@dataclass
class _RecordGrid:
    """Full-batch records on the ``[P, Y, Y]`` grid of (prompt, chosen, rejected) cells.

    ``weight``: D, the summed record weights per cell ``[1 or B, P, Y, Y]``; ``present``: cells
    holding at least one record; ``extras``: the loss's extra inputs per cell (lengths as
    ``[1, 1, Y, 1]``/``[1, 1, 1, Y]`` views, named fields ``[1 or B, P, Y, Y]``, cells without a
    record holding the run's first record's value, so input checks such as a nonzero reward gap
    pass). Every tensor is in the policy's dtype and device."""

    weight: torch.Tensor
    present: torch.Tensor
    extras: dict

    @classmethod
    def build(cls, loss, pairs: Pairs, like: torch.Tensor):
        """The grid, or None where it does not apply: a stateful loss (its batch statistics are over
        records), more than ``GRID_FILL`` cells per record, or records of one cell whose named
        fields differ."""
        prob = pairs.problem
        if loss.stateful or prob.P * prob.Y * prob.Y > GRID_FILL * pairs.size:
            return None
        cells = ((pairs.prompt * prob.Y + pairs.chosen) * prob.Y + pairs.rejected).to(like.device)
        counts = torch.zeros(cells.shape[0], prob.P * prob.Y * prob.Y, device=like.device)
        counts.scatter_add_(1, cells, torch.ones(cells.shape, device=like.device))
        extras = {}
        for name in loss.required_inputs(prob.space):
            if name in LENGTH_INPUTS:
                lengths = prob.space.lengths.to(device=like.device, dtype=like.dtype)
                extras[name] = lengths.view(1, 1, -1, 1) if name == "chosen_len" else lengths.view(1, 1, 1, -1)
                continue
            if name not in pairs.fields:
                raise ValueError(f"this loss needs the per-record input {name!r}; add it with "
                                 f"pairs.with_fields({name}=...)")
            values = pairs.fields[name].to(device=like.device, dtype=like.dtype)
            where = cells.expand(max(values.shape[0], cells.shape[0]), -1)
            values = values.expand_as(where)    # cells without a record get a value from the data (masked later)
            table = values[:, :1].expand(-1, counts.shape[1]).clone().scatter_(1, where, values)
            if not torch.equal(table.gather(1, where), values):
                return None
            extras[name] = table.view(-1, prob.P, prob.Y, prob.Y)
        grid_shape = (-1, prob.P, prob.Y, prob.Y)
        return cls(pairs.record_table().to(device=like.device, dtype=like.dtype),
                   (counts > 0).view(grid_shape), extras)

    def cut(self, name: str, block: slice, runs: int) -> torch.Tensor:
        """``weight``, ``present`` or an extra input for the runs in ``block``."""
        value = getattr(self, name) if name in ("weight", "present") else self.extras[name]
        return _block_of(value, block, runs)


def _records_major(name: str, value: torch.Tensor, b: int, shared: dict | None) -> torch.Tensor:
    """``value`` ``[1 or b, N]`` as ``[b, N]`` with strides (1, b); a ``[1, N]`` value is laid
    out once per block size when ``shared`` is a dict."""
    if shared is None or value.shape[0] != 1:
        return value.expand(b, -1).T.contiguous().T
    if (name, b) not in shared:
        shared[name, b] = value.expand(b, -1).T.contiguous().T
    return shared[name, b]


class _AutogradTrainer:
    """Any other Policy: autograd of Σ_b L_b through ``policy.logp()`` (runs share no parameters,
    so each run's gradient is its own)."""

    def __init__(self, policy, loss, pairs, optimizer, lr, batch_size, seed):
        self.policy, self.loss, self.pairs = policy, loss, pairs
        self.params = policy.parameters()
        self.optimizer = _Optimizer(optimizer, self.params, lr)
        self.sampler = None if batch_size is None else _Sampler(pairs, policy.runs, batch_size, seed)
        self.state = None
        if loss.stateful:
            self.state = loss.init_state(policy.runs, self.params[0])

    def step(self) -> None:
        self.optimizer.tick()
        pairs = self.pairs if self.sampler is None else self.sampler.draw()
        with torch.enable_grad():
            logp = self.policy.logp()
            inputs = record_inputs(self.loss, logp, pairs)
            weight = pairs.weight.to(device=logp.device, dtype=logp.dtype)
            extra, self.state = _loss_kwargs(self.loss, self.state, inputs, weight)
            total = (weight * self.loss(**inputs, **extra)).sum()
            grads = torch.autograd.grad(total, self.params)
        for index, grad in enumerate(grads):
            self.optimizer.update(index, grad)
