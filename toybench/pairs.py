"""Preference records: the exact population, or a finite sample with hard labels.

A ``Pairs`` is a set of records (prompt x, chosen y_w, rejected y_l) with weights. Every field
has a leading axis of size 1 (shared by all runs) or B (per-run data). The population law
(docs/conventions.md, pair law): for a ≠ b the record (a, b) has weight ρ(x)·w_ab·p̃(a ≻ b) with
w_ab = μ̃(a,b) + μ̃(b,a) and p̃ = (1 − noise)·p + noise·(1 − p). Under ``pair_dist="did"`` the
record law is ρ(x)·[(1 − noise)·μ̃(a,b) + noise·μ̃(b,a)], chosen drawn from π_ref and rejected
from π_l ∝ π_ref·e^{−r} (the first draw wins).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from ._checks import check_probability_rate, hyper_values, run_count
from ._numerics import flat_index
from .problem import Problem


@dataclass(frozen=True, eq=False)
class Pairs:
    """Records with weights. ``prompt``, ``chosen``, ``rejected``: int64 ``[1 or B, N]``;
    ``weight``: float64 ``[1 or B, N]`` summing to one per run. ``noise`` is what the labels
    were flipped with (a float or a ``[B]`` tensor). Extra per-record inputs some losses need
    (a score gap for ``madpo``/``da_dpo``, P̂ for ``sppo``) live in ``fields`` by name."""

    prompt: torch.Tensor
    chosen: torch.Tensor
    rejected: torch.Tensor
    weight: torch.Tensor
    problem: Problem
    noise: float | torch.Tensor = 0.0
    fields: dict = dataclasses.field(default_factory=dict)

    @property
    def runs(self) -> int:
        """Size of the leading axis: 1 when every run shares the records."""
        return self.weight.shape[0]

    @property
    def size(self) -> int:
        return self.weight.shape[1]

    def with_fields(self, **fields) -> Pairs:
        """A copy carrying extra named per-record inputs (each ``[1 or B, N]``)."""
        for name, value in fields.items():
            if value.shape[-1] != self.size:
                raise ValueError(f"field {name!r} must have N={self.size} records on its last axis")
        return dataclasses.replace(self, fields={**self.fields, **fields})

    @classmethod
    def from_records(cls, prob: Problem, records, weights=None) -> Pairs:
        """A data set from explicit ``(prompt, chosen, rejected)`` triples (hard labels), weights
        ∝ ``weights`` (default equal) and normalised to one: e.g. the IPO paper's bandit
        D1 = [(0, 0, 1), (0, 1, 2), (0, 0, 2)]."""
        table = torch.as_tensor(records, dtype=torch.int64)
        if table.ndim != 2 or table.shape[1] != 3 or table.shape[0] == 0:
            raise ValueError("records must be a non-empty list of (prompt, chosen, rejected) triples")
        prompt, chosen, rejected = table.T
        if (prompt < 0).any() or (prompt >= prob.P).any():
            raise ValueError(f"record prompts must lie in 0..{prob.P - 1}")
        if (table[:, 1:] < 0).any() or (table[:, 1:] >= prob.Y).any():
            raise ValueError(f"record responses must lie in 0..{prob.Y - 1}")
        if (chosen == rejected).any():
            raise ValueError("a record needs two distinct responses (chosen != rejected)")
        weight = torch.ones(len(table), dtype=torch.float64) if weights is None else \
            torch.as_tensor(weights, dtype=torch.float64)
        if weight.shape != (len(table),) or (weight < 0).any() or weight.sum() <= 0:
            raise ValueError("weights must be one non-negative number per record with a positive sum")
        return cls(prompt[None], chosen[None], rejected[None], (weight / weight.sum())[None], prob)

    def record_table(self) -> torch.Tensor:
        """D(x, a, b) ``[R, P, Y, Y]``: the weight of each ordered record (R = runs)."""
        prob = self.problem
        table = torch.zeros(self.runs, prob.P, prob.Y, prob.Y, dtype=torch.float64, device=self.weight.device)
        flat = flat_index(flat_index(self.prompt, self.chosen, prob.Y), self.rejected, prob.Y)
        flat = flat.expand_as(self.weight)
        table.view(self.runs, -1).scatter_add_(1, flat, self.weight.to(torch.float64))
        return table


def _noise_rates(noise) -> torch.Tensor:
    check_probability_rate(noise, "noise")
    return hyper_values(noise, "noise")


def population(prob: Problem, noise=0.0) -> Pairs:
    """Every ordered record (x, a, b), a ≠ b, with its exact weight (docs/conventions.md, pair law).

    ``noise`` is a flip rate in [0, 1/2) or a ``[B]`` tensor of rates (then weights are
    ``[B, N]``; the records are the same for every run)."""
    if not isinstance(prob, Problem):
        raise ValueError(f"population() needs a Problem, got {type(prob).__name__}")
    rates = _noise_rates(noise)
    record_weights = _record_weights(prob, rates.reshape(-1, 1, 1, 1))          # [R, P, Y, Y]
    keep = (record_weights > 0).any(0)                                           # [P, Y, Y]
    x, a, b = keep.nonzero(as_tuple=True)
    weight = record_weights[:, x, a, b]
    as_row = lambda t: t.unsqueeze(0)  # noqa: E731
    return Pairs(as_row(x), as_row(a), as_row(b), weight, prob, noise)


def _record_weights(prob: Problem, rates: torch.Tensor) -> torch.Tensor:
    """D(a,b) = ρ·w_ab·p̃_ab (or the DID record law), ``[R, P, Y, Y]``, diagonal zero."""
    rho = prob.prompt_weights[:, None, None]
    if isinstance(prob.pair_dist, str) and prob.pair_dist == "did":
        mu = prob.pair_law()
        return rho * ((1 - rates) * mu + rates * mu.transpose(-1, -2))
    pref = prob.preference_matrix()
    noisy = (1 - rates) * pref + rates * (1 - pref)
    return rho * prob.pair_weights() * noisy


def sample_pairs(prob: Problem, n: int, noise=0.0, seed=0) -> Pairs:
    """A finite data set of ``n`` records with hard labels, weight 1/n each (docs/conventions.md, pairs).

    x ~ ρ, (y, y') ~ μ̃ (y ≠ y'), label y ≻ y' with probability p̃; under ``"did"`` a record is
    drawn from the DID law and its first element wins, flipped at rate ``noise``.
    ``seed`` is an int s (runs use s, s+1, …) or a list of B ints; ``noise`` a rate or ``[B]``.
    Run b equals the one-run call with seed s_b, whatever B is."""
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ValueError(f"n must be a positive integer number of records, got {n!r}")
    rates = _noise_rates(noise)
    seeds = _seeds(seed, run_count(rates if rates.ndim else None))
    if rates.ndim and len(seeds) != rates.shape[0]:
        raise ValueError(f"{len(seeds)} seeds but {rates.shape[0]} noise rates; give one per run")
    rates = rates.expand(len(seeds))
    mu = prob.pair_law()                                                          # [P, Y, Y]
    joint = (prob.prompt_weights[:, None, None] * mu).reshape(-1)
    did = isinstance(prob.pair_dist, str) and prob.pair_dist == "did"
    pref = None if did else prob.preference_matrix()
    Y = prob.Y
    rows = []
    for run_seed, rate in zip(seeds, rates.tolist(), strict=False):
        gen = torch.Generator().manual_seed(run_seed)
        flat = torch.multinomial(joint, n, replacement=True, generator=gen)
        x, first, second = flat // (Y * Y), (flat // Y) % Y, flat % Y
        p_first = torch.ones(n, dtype=torch.float64) if did else pref[x, first, second]
        p_first = (1 - rate) * p_first + rate * (1 - p_first)
        first_wins = torch.rand(n, generator=gen, dtype=torch.float64) < p_first
        rows.append((x, torch.where(first_wins, first, second), torch.where(first_wins, second, first)))
    prompt, chosen, rejected = (torch.stack(col) for col in zip(*rows, strict=False))
    weight = torch.full(prompt.shape, 1.0 / n, dtype=torch.float64)
    return Pairs(prompt, chosen, rejected, weight, prob, noise)


def _seeds(seed, runs: int | None) -> list[int]:
    if isinstance(seed, bool):
        raise ValueError("seed must be an int or a list of ints, got a bool")
    if isinstance(seed, int):
        return [seed + b for b in range(runs or 1)]
    seeds = [int(s) for s in (seed.tolist() if isinstance(seed, torch.Tensor) else seed)]
    if not seeds:
        raise ValueError("seed list is empty; give one seed per run")
    if runs is not None and len(seeds) != runs:
        raise ValueError(f"{len(seeds)} seeds but {runs} runs")
    return seeds
