"""The loss side of training: records → ∂L/∂log π ``[B, P, Y]``, and the objective's value.

For run b's objective L_b = Σ_k ω_{b,k}·ℓ(record k), the derivative with respect to the policy's
log-prob table collects, over the records whose chosen (rejected) response is y at prompt x,
ω·∂ℓ/∂ℓ_w (ω·∂ℓ/∂ℓ_l). The per-record derivatives come from ``loss.input_grads`` (a closed form
for every registered loss; autograd of ``per_record`` for a loss that gives none), so no autograd
graph is built over the records. The policy side (``toybench.policies``: a vector–Jacobian
product) takes ∂L/∂log π on to the parameters, whatever the policy is.

Two layouts of the records:

- the **cell grid** ``[P, Y, Y]`` of (prompt, chosen, rejected) cells, for full-batch records of
  a stateless loss that fill it (the population does): inputs are broadcast views, the sums are
  row and column sums, no gathers or scatters. A plain margin loss φ(β·Δ) needs only φ′ on the
  grid (``margin_grid_grad``), and only on the Y(Y−1)/2 unordered pairs when φ′(z) + φ′(−z) is
  a constant κ (``pair_grid_grad``: DPO, IPO, cDPO, rDPO); any other loss gets its
  ``input_grads`` per cell (``loss_grid_grad``);
- the **record list**, for mini-batches, stateful losses (batch statistics over records) and
  data sets much smaller than the grid: the inputs that do not change between steps are gathered
  once, each step gathers the policy's log-probs and scatters the derivatives back.

The run axis is processed in blocks of runs so the ``[block, P, Y, Y]`` temporaries stay in cache:
``RUN_BLOCK`` runs, or fewer on the cell grid, where a block holds at most ``GRID_BLOCK_CELLS`` cells
(but at least one run).

A token-level loss (``loss.needs_table``: its per-record inputs are per-token views of the whole
table, ``toybench.losses.token``) has no per-record derivative in ℓ_w, ℓ_l alone: its ∂L/∂log π
is one ``torch.autograd.grad`` of ``toybench.objective`` with respect to the table.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from ._numerics import flat_index
from .losses.base import LENGTH_INPUTS, Loss
from .objective import objective, record_inputs
from .pairs import Pairs

RUN_BLOCK = 64
"""Runs per block: a P=8, Y=32 population block is ~2 MB per [block, P, Y, Y] float32 temporary
(margin grid path, measured on 2 cores: 64 runs best, 16 runs 40 % slower, 8 runs 2× slower)."""
GRID_BLOCK_CELLS = 1 << 19
"""Cells per block of runs on the grid (2 MiB per float32 temporary): a V=3, max_len 5 population
(Y = 363) then takes 3 runs per block; blocks of 64 runs (34 MB temporaries) measured ~5× slower
(2 cores, 64 runs, DPO; benchmarks/transformer_speed.py)."""
GRID_FILL = 4
"""Full-batch records are laid on the [P, Y, Y] cell grid when it has at most this many cells per
record (the population fills it; a small data set over many responses stays a record list)."""


class LossGrads:
    """∂L/∂log π and L for ``loss`` on ``pairs``, for ``runs`` runs, in ``like``'s dtype and device.

    ``grad(logp)`` is ∂L/∂log π ``[B, P, Y]`` at the normalised log-probs ``logp`` (detached), for
    the full objective or, with ``records``, for a mini-batch drawn from ``pairs``; a stateful loss
    updates its per-run statistics from those records first (``loss.update_state``), as a training
    step does. ``value(logp)`` is the full objective Σ_k ω_k·ℓ_k ``[B]`` (a stateful loss at its
    exact population statistics, ``loss.population_state``), and changes no state."""

    def __init__(self, loss: Loss, pairs: Pairs, runs: int, like: torch.Tensor):
        self.runs, self.problem, self.like, self.loss = runs, pairs.problem, like, loss
        self.table_loss = (loss, pairs) if getattr(loss, "needs_table", False) else None
        if self.table_loss:
            return
        self.grid = _RecordGrid.build(loss, pairs, like)
        size = RUN_BLOCK
        if self.grid is not None:
            size = max(1, min(RUN_BLOCK, GRID_BLOCK_CELLS // self.grid.weight[0].numel()))
        self.blocks = [slice(start, min(start + size, runs)) for start in range(0, runs, size)]
        self.losses = [_loss_block(loss, block, runs) for block in self.blocks]
        self.states = [loss.init_state(block.stop - block.start, like) if loss.stateful else None
                       for block in self.blocks]
        self.ref = self.problem.ref_logp.to(device=like.device, dtype=like.dtype)
        self.plain_margin = self.grid is not None and _plain_margin(loss)
        self.pairs = _PairGrid.build(self.grid.weight) \
            if self.plain_margin and loss.dphi_pair_sum(like) is not None else None
        if self.pairs is not None:      # κ·c + c′·spread (``pair_grid_grad``), fixed for the whole training
            self.pair_constant = (self.pairs.offset * loss.dphi_pair_sum(like)
                                  + self.pairs.spread * loss.dphi_shift(like)).to(like)
        shared = {}
        self.fixed = None if self.grid else [self.fixed_inputs(i, _pairs_block(pairs, block, runs), shared)
                                             for i, block in enumerate(self.blocks)]

    def grad(self, logp: torch.Tensor, records: Pairs | None = None) -> torch.Tensor:
        """∂L/∂log π ``[B, P, Y]`` at ``logp``; ``records``: this step's mini-batch (default all)."""
        if self.table_loss:
            loss, pairs = self.table_loss
            with torch.enable_grad():
                table = logp.detach().requires_grad_(True)
                (grad,) = torch.autograd.grad(objective(loss, table, pairs if records is None else records).sum(), table)
            return grad
        if records is None and self.pairs is not None:
            return self.pair_grid_grad(logp)
        out = torch.empty_like(logp)
        for i, block in enumerate(self.blocks):
            if records is not None:
                fixed = self.fixed_inputs(i, _pairs_block(records, block, self.runs))
                out[block] = self.records_grad(i, logp[block], *fixed)
            elif self.grid is None:
                out[block] = self.records_grad(i, logp[block], *self.fixed[i])
            elif self.plain_margin:
                out[block] = self.margin_grid_grad(i, block, logp[block])
            else:
                out[block] = self.loss_grid_grad(i, block, logp[block])
        return out

    def value(self, logp: torch.Tensor) -> torch.Tensor:
        """The full objective Σ_k ω_k·ℓ_k ``[B]`` at ``logp``, in ``logp``'s dtype."""
        if self.table_loss:
            loss, pairs = self.table_loss
            return objective(loss, logp, pairs).expand(logp.shape[0])
        out = logp.new_empty(logp.shape[0])
        for i, block in enumerate(self.blocks):
            if self.grid is None:
                out[block] = self.records_value(i, logp[block], *self.fixed[i])
            elif self.pairs is not None:
                out[block] = self.pair_grid_value(i, block, logp[block])
            elif self.plain_margin:
                out[block] = self.margin_grid_value(i, block, logp[block])
            else:
                out[block] = self.loss_grid_value(i, block, logp[block])
        return out

    # -------------------------------------------------------------------- cell grid
    def scaled_gaps(self, loss, logp):
        """β and β·(log π − log π_ref) ``[b, P, Y]`` (``loss`` holding the runs of ``logp``):
        z_ab = h_a − h_b is the margin loss's argument."""
        beta = loss.hp("beta", logp)
        return beta, (logp - self.ref).mul_(beta)

    def margin_grid_grad(self, i, block, logp) -> torch.Tensor:
        """∂L/∂log π for a plain margin loss φ(β·Δ) on the cell grid: with h = β·g (g = log π −
        log π_ref), z_ab = h_a − h_b, W = D ⊙ φ′(z) (D the record weights),
        ∂L/∂g_a = β·(Σ_b W_ab − Σ_b W_ba). β is applied to the ``[b, P, Y]`` tensors, so the
        ``[b, P, Y, Y]`` grid sees one subtraction, φ′, one product and two sums."""
        beta, scaled = self.scaled_gaps(self.losses[i], logp)
        weighted = self.losses[i].dphi(scaled[..., :, None] - scaled[..., None, :])
        weighted.mul_(self.grid.cut("weight", block, self.runs))
        return (weighted.sum(-1) - weighted.sum(-2)).mul_(beta)

    def pair_grid_grad(self, logp) -> torch.Tensor:
        """``margin_grid_grad`` with φ′ evaluated once per unordered pair {a, a + d mod Y},
        d = 1…⌊Y/2⌋ (``_PairGrid``), for a loss with φ′(z) + φ′(−z) = κ. With S = D + Dᵀ,
        ∂L/∂g_a = β·Σ_c [S_ac·φ′(z_ac) − κ·D_ca]; a pair's cell for its second response is
        S·φ′(z_ca) = κ·S − S·φ′(z_ac), so with u[d, a] = S_{a,a+d}·φ′(z_{a,a+d}):
        ∂L/∂g_a = β·(Σ_d u[d, a] − Σ_d u[d, a − d] + κ·c_a), c the constant ``_PairGrid.offset``.
        φ′ = ψ + c′ (``loss.dphi_kernel_``, ``loss.dphi_shift``; DPO: ψ = σ, c′ = −1): the grid
        holds S·ψ, and c′'s share, c′·``_PairGrid.spread``, joins the constant. Only the
        ``[block, P, H, Y]`` grid is cut into blocks of runs; the ``[B, P, Y]`` steps are done once."""
        grid, beta, scaled = self.pairs, *self.scaled_gaps(self.loss, logp)
        half, Y = grid.half, logp.shape[-1]
        partners = _PairGrid.partners(scaled, half)
        first, second = torch.empty_like(logp), torch.empty_like(logp)
        buffer = logp.new_empty(self.blocks[0].stop, logp.shape[1], half, half + Y)   # u, its last H columns copied in front
        for i, block in enumerate(self.blocks):
            wrapped = buffer[:block.stop - block.start]
            u = wrapped[..., half:]
            torch.sub(scaled[block, ..., None, :], partners[block], out=u)
            torch.mul(self.losses[i].dphi_kernel_(u), grid.cut("weight", block, self.runs), out=u)
            wrapped[..., :half] = u[..., Y - half:]
            torch.sum(u, -2, out=first[block])
            torch.sum(_PairGrid.second(wrapped), -2, out=second[block])
        return first.sub_(second).add_(self.pair_constant).mul_(beta)

    def pair_grid_value(self, i, block, logp) -> torch.Tensor:
        """``margin_grid_value`` with φ once per unordered pair: φ′(z) + φ′(−z) = κ and
        φ(0) − φ(−0) = 0 give φ(−z) = φ(z) − κ·z, so a pair's two cells hold
        D_ac·φ(z_ac) + D_ca·φ(z_ca) = S_ac·φ(z_ac) − κ·D_ca·z_ac. The linear part is
        Σ D_ca·z_ac = Σ_a h_a·``_PairGrid.reverse``_a, with no grid."""
        loss, grid = self.losses[i], self.pairs
        _, scaled = self.scaled_gaps(loss, logp)
        partners = _PairGrid.partners(scaled, grid.half)
        z = torch.sub(scaled[..., None, :], partners, out=scaled.new_empty(partners.shape))
        linear = _per_run_dot(scaled, grid.cut("reverse", block, self.runs))
        kappa = torch.as_tensor(loss.dphi_pair_sum(scaled), dtype=z.dtype, device=z.device).reshape(-1)
        return _per_run_dot(loss.phi(z), grid.cut("weight", block, self.runs)) - kappa * linear

    def margin_grid_value(self, i, block, logp) -> torch.Tensor:
        """Σ_ab D_ab·φ(z_ab) per run (cells without a record have D = 0)."""
        _, scaled = self.scaled_gaps(self.losses[i], logp)
        values = self.losses[i].phi(scaled[..., :, None] - scaled[..., None, :])
        return values.mul_(self.grid.cut("weight", block, self.runs)).sum((-3, -2, -1))

    def grid_inputs(self, block, logp) -> dict:
        """The loss inputs on the grid as broadcast views: chosen a along axis −2, rejected b along −1."""
        grid = self.grid
        shape = (logp.shape[0], *grid.weight.shape[1:])
        return {"chosen_logp": logp[..., :, None].expand(shape), "rejected_logp": logp[..., None, :].expand(shape),
                "ref_chosen_logp": self.ref[None, :, :, None].expand(shape),
                "ref_rejected_logp": self.ref[None, :, None, :].expand(shape),
                **{name: grid.cut(name, block, self.runs).expand(shape) for name in grid.extras}}

    def loss_grid_grad(self, i, block, logp) -> torch.Tensor:
        """∂L/∂log π for any stateless loss on the cell grid: ``input_grads`` per cell, cells
        without a record zeroed (their inputs may be meaningless, e.g. a = b), and
        ∂L/∂g_a = Σ_b D_ab·∂ℓ_ab/∂ℓ_w + Σ_b D_ba·∂ℓ_ba/∂ℓ_l."""
        chosen_grad, rejected_grad = self.losses[i].input_grads(**self.grid_inputs(block, logp))
        weight, present = self.grid.cut("weight", block, self.runs), self.grid.cut("present", block, self.runs)
        chosen = torch.where(present, chosen_grad, 0.0).mul_(weight).sum(-1)
        rejected = torch.where(present, rejected_grad, 0.0).mul_(weight).sum(-2)
        return chosen.add_(rejected)

    def loss_grid_value(self, i, block, logp) -> torch.Tensor:
        """Σ_ab D_ab·ℓ_ab per run over the cells holding a record."""
        values = self.losses[i](**self.grid_inputs(block, logp))
        weight, present = self.grid.cut("weight", block, self.runs), self.grid.cut("present", block, self.runs)
        return torch.where(present, values, 0.0).mul_(weight).sum((-3, -2, -1))

    # -------------------------------------------------------------------- record list
    def fixed_inputs(self, i: int, pairs: Pairs, shared: dict | None = None) -> tuple:
        """(constant loss inputs, chosen and rejected flat indices ``[1 or b, N]``, weights).

        Records shared by the runs get their inputs stored records-major (strides (1, b)), so
        every operand of a step has the same layout (mixed layouts measured 2× slower); an input
        that is the same for all runs is stored once per block size in ``shared`` (full batch)."""
        b, (P, Y) = self.blocks[i].stop - self.blocks[i].start, (self.problem.P, self.problem.Y)
        inputs = record_inputs(self.losses[i], self.like.new_zeros(1, P, Y), pairs)
        del inputs["chosen_logp"], inputs["rejected_logp"]
        inputs["weight"] = pairs.weight.to(device=self.like.device, dtype=self.like.dtype)
        chosen = flat_index(pairs.prompt, pairs.chosen, Y).to(self.like.device)
        rejected = flat_index(pairs.prompt, pairs.rejected, Y).to(self.like.device)
        if chosen.shape[0] == 1:
            inputs = {name: _records_major(name, value, b, shared) for name, value in inputs.items()}
        weight = inputs.pop("weight")
        return inputs, chosen, rejected, weight

    @staticmethod
    def gathered(logp, inputs, chosen_idx, rejected_idx):
        """The loss inputs with the policy's record log-probs, and the table they were read from.

        Records shared by every run are read from a ``[P·Y, b]`` table of rows of runs (whole-row
        ``index_select``, measured 2–3× faster than per-element ``gather``), viewed as ``[b, N]``."""
        table = logp.reshape(logp.shape[0], -1)
        if chosen_idx.shape[0] == 1:
            table = table.T.contiguous()
            gather = lambda idx: table.index_select(0, idx[0]).T  # noqa: E731
        else:
            gather = lambda idx: table.gather(1, idx)  # noqa: E731
        return {**inputs, "chosen_logp": gather(chosen_idx), "rejected_logp": gather(rejected_idx)}, table

    def records_grad(self, i, logp, inputs, chosen_idx, rejected_idx, weight) -> torch.Tensor:
        """∂L/∂log π ``[b, P, Y]`` from the record list: per-record derivatives scattered back
        (``index_add_`` of whole rows for shared records, ``scatter_add_`` for per-run ones).

        The chosen and the rejected derivatives are summed in separate tables and added last, as
        autograd's two gather backwards do: then a record's ±d cancel exactly against its mirror
        (y_w, y_l swapped) on the CPU, where the sums run in record order. One shared table would
        leave a rounding residue in Σ_y ∂L/∂log π_y that the softmax Jacobian hands to responses in
        no record, and Adam turns a float32 residue above its ε into a full step
        (docs/conventions.md, "Adam and rounding")."""
        inputs, table = self.gathered(logp, inputs, chosen_idx, rejected_idx)
        state = {}
        if self.states[i] is not None:
            self.states[i] = self.losses[i].update_state(self.states[i], inputs, weight)
            state = {"state": self.states[i]}
        chosen_grad, rejected_grad = self.losses[i].input_grads(**inputs, **state)
        b = logp.shape[0]
        chosen_grad, rejected_grad = (weight * chosen_grad).expand(b, -1), (weight * rejected_grad).expand(b, -1)
        dlogp, rejected_part = torch.zeros_like(table), torch.zeros_like(table)
        if chosen_idx.shape[0] == 1:
            dlogp.index_add_(0, chosen_idx[0], chosen_grad.T)
            dlogp = dlogp.add_(rejected_part.index_add_(0, rejected_idx[0], rejected_grad.T)).T
        else:
            dlogp.scatter_add_(1, chosen_idx, chosen_grad).add_(rejected_part.scatter_add_(1, rejected_idx, rejected_grad))
        return dlogp.reshape(logp.shape)

    def records_value(self, i, logp, inputs, chosen_idx, rejected_idx, weight) -> torch.Tensor:
        """Σ_k ω_k·ℓ_k ``[b]`` from the record list (a stateful loss at its population statistics)."""
        inputs, _ = self.gathered(logp, inputs, chosen_idx, rejected_idx)
        loss = self.losses[i]
        state = {"state": loss.population_state(inputs, weight)} if loss.stateful else {}
        return (weight * loss(**inputs, **state)).sum(-1).expand(logp.shape[0])


def _per_run_dot(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Σ values·weight over every axis but the first ``[b]``; ``weight`` shared (``[1, ...]``, one
    matrix–vector product) or per run."""
    if weight.shape[0] == 1:
        return values.flatten(1) @ weight.flatten()
    return torch.linalg.vecdot(values.flatten(1), weight.flatten(1))


def _plain_margin(loss) -> bool:
    """Whether ``loss`` declares itself φ(β·Δ) of the reference margin (``loss.plain_margin``), with
    no per-record inputs beyond the log-probs (a length-normalised IPO has some)."""
    return bool(loss.plain_margin) and not loss.needs


# ------------------------------------------------------------------------ blocks of runs
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


def _records_major(name: str, value: torch.Tensor, b: int, shared: dict | None) -> torch.Tensor:
    """``value`` ``[1 or b, N]`` as ``[b, N]`` with strides (1, b); a ``[1, N]`` value is laid
    out once per block size when ``shared`` is a dict."""
    if shared is None or value.shape[0] != 1:
        return value.expand(b, -1).T.contiguous().T
    if (name, b) not in shared:
        shared[name, b] = value.expand(b, -1).T.contiguous().T
    return shared[name, b]


@dataclass
class _PairGrid:
    """The unordered pairs of the ``[P, Y, Y]`` grid in a circulant layout: row d = 1…H = ⌊Y/2⌋,
    column a holds the pair {a, a + d mod Y} (each pair once; for even Y the row d = Y/2 holds each
    pair twice, at half weight). ``weight`` ``[1 or B, P, H, Y]``: S = D + Dᵀ on that layout;
    ``offset`` ``[1 or B, P, Y]``: c_a = Σ_d S_{a−d,a} − Σ_c D_ca, so that κ·c_a collects the
    constant parts of the cells where a is the second response and of −κ·D_ca; ``spread``
    ``[1 or B, P, Y]``: Σ_d S_{a,a+d} − Σ_d S_{a−d,a}, what a constant φ′ = 1 adds to ∂L/∂g_a;
    ``reverse`` ``[1 or B, P, Y]``: Σ_d D_{a+d,a} − Σ_d D_{a,a−d}, the coefficient of h_a in
    Σ_pairs D_{a+d,a}·(h_a − h_{a+d}) (for the value)."""

    weight: torch.Tensor
    offset: torch.Tensor
    spread: torch.Tensor
    reverse: torch.Tensor
    half: int

    @classmethod
    def build(cls, table: torch.Tensor):
        Y = table.shape[-1]
        half = Y // 2
        first = torch.arange(Y, device=table.device).expand(half, Y)
        second = (first + torch.arange(1, half + 1, device=table.device)[:, None]) % Y
        weight, reverse = (table + table.transpose(-1, -2))[..., first, second], table[..., second, first]
        if Y % 2 == 0:
            weight[..., -1, :] *= 0.5
            reverse[..., -1, :] *= 0.5
        at_second = cls.second_sums(weight)
        reverse = reverse.sum(-2) - cls.second_sums(reverse)
        return cls(weight, at_second - table.sum(-2), weight.sum(-2) - at_second, reverse, half)

    @staticmethod
    def partners(scaled: torch.Tensor, half: int) -> torch.Tensor:
        """The view ``[..., H, Y]`` of g_{(a + d) mod Y} at row d − 1, column a, of ``scaled`` ``[..., Y]``."""
        return torch.cat([scaled, scaled], -1).unfold(-1, scaled.shape[-1], 1)[..., 1:half + 1, :]

    @staticmethod
    def second(wrapped: torch.Tensor) -> torch.Tensor:
        """The view ``[..., H, Y]`` of u[..., d, (a − d) mod Y] at row d − 1, column a (each pair's value at
        its second response) from ``wrapped`` = u ``[..., H, Y]`` with its last H columns copied in
        front (``[..., H, H + Y]``, contiguous), read with a stride of H + Y − 1 over d."""
        half = wrapped.shape[-2]
        Y = wrapped.shape[-1] - half
        return wrapped.as_strided((*wrapped.shape[:-2], half, Y), (*wrapped.stride()[:-2], half + Y - 1, 1),
                                  wrapped.storage_offset() + half - 1)

    @classmethod
    def second_sums(cls, u: torch.Tensor) -> torch.Tensor:
        """Σ_d u[..., d, (a − d) mod Y] ``[..., Y]`` of a ``[..., H, Y]`` layout: each pair's value summed
        at its second response (``second`` on a wrapped copy)."""
        return cls.second(torch.cat([u[..., u.shape[-1] - u.shape[-2]:], u], -1)).sum(-2)

    def cut(self, name: str, block: slice, runs: int) -> torch.Tensor:
        return _block_of(getattr(self, name), block, runs)


@dataclass
class _RecordGrid:
    """Full-batch records on the ``[P, Y, Y]`` grid of (prompt, chosen, rejected) cells.

    ``weight``: D, the summed record weights per cell ``[1 or B, P, Y, Y]``; ``present``: cells
    holding at least one record; ``extras``: the loss's extra inputs per cell (lengths as
    ``[1, 1, Y, 1]``/``[1, 1, 1, Y]`` views, named fields ``[1 or B, P, Y, Y]``, cells without a
    record holding the run's first record's value, so input checks such as a nonzero reward gap
    pass). Every tensor is in ``like``'s dtype and device."""

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
        cells = flat_index(flat_index(pairs.prompt, pairs.chosen, prob.Y), pairs.rejected, prob.Y).to(like.device)
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
