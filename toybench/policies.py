"""Policies: B independent copies of a model that gives the exact log-prob table ``[B, P, Y]``.

The protocol every policy follows (``Policy``): ``problem`` (the Problem it answers), ``runs`` (B),
``dtype``, ``device``, ``logp()`` (the exact table log π_θ(y|x), ``[B, P, Y]``) and
``parameters()`` (the tensors ``train`` optimises, each with requires_grad and a leading run
axis B, so that run b's parameters are slice b of each).

``Tabular`` is the simplest: one free logit s(b, x, y) per run, prompt and response,
π_θ(y|x) = softmax_y s(x, ·). It starts at π_ref (s = log π_ref) or at a given ``init``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from .problem import Problem


class Policy(ABC):
    """B independent policies over a Problem's responses; see the module docstring."""

    problem: Problem
    runs: int
    dtype: torch.dtype
    device: torch.device

    @abstractmethod
    def logp(self) -> torch.Tensor:
        """Exact log-prob table ``[B, P, Y]`` in the policy's dtype, on its device."""

    @abstractmethod
    def parameters(self) -> list[torch.Tensor]:
        """The trainable tensors (requires_grad), each with a leading run axis B."""


def log_normalize(logits: torch.Tensor) -> torch.Tensor:
    """log_softmax over the last axis as s − logsumexp(s): the same numbers to rounding, but
    without ``torch.log_softmax``'s CPU kernel, which opens a parallel region even for a few
    hundred elements and then waits ~10 ms per call whenever another process holds a core
    (measured, torch 2.13, 2 cores)."""
    return logits - torch.logsumexp(logits, dim=-1, keepdim=True)


def check_runs(runs) -> int:
    """``runs`` as a positive int; ValueError otherwise."""
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise ValueError(f"runs must be an integer >= 1 (the number of independent runs B), got {runs!r}")
    return runs


def check_dtype(dtype) -> torch.dtype:
    """``dtype`` as a floating torch dtype; ValueError otherwise."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point or dtype.is_complex:
        raise ValueError(f"dtype must be a real floating torch dtype (torch.float32, torch.float64, ...), "
                         f"got {dtype!r}")
    return dtype


class Tabular(Policy):
    """One logit per (run, prompt, response): log π_θ = log_softmax(s) over responses.

    ``init``: ``[P, Y]`` (copied to every run) or ``[B, P, Y]`` finite log-probs or logits
    (only differences within a prompt matter); default ``prob.ref_logp``. ``device`` defaults
    to ``init``'s device when ``init`` is a tensor, else the problem's. Float32 unless
    ``dtype`` says otherwise (docs/conventions.md, shapes and dtypes)."""

    def __init__(self, prob: Problem, runs: int = 1, init=None, dtype: torch.dtype = torch.float32, device=None):
        if not isinstance(prob, Problem):
            raise ValueError(f"Tabular needs a Problem, got {type(prob).__name__}")
        self.problem = prob
        self.runs = check_runs(runs)
        self.dtype = check_dtype(dtype)
        start = prob.ref_logp if init is None else init
        if device is None:
            device = start.device if isinstance(start, torch.Tensor) else prob.ref_logp.device
        try:
            self.device = torch.device(device)
        except (TypeError, RuntimeError) as err:
            raise ValueError(f"device must be a torch device or its name ('cpu', 'cuda:0', ...), "
                             f"got {device!r}") from err
        try:
            start = torch.as_tensor(start, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"init must be array-like numbers [P, Y] or [B, P, Y], got {type(init).__name__}") from err
        table = (prob.P, prob.Y)
        if start.shape not in (table, (self.runs, *table)):
            raise ValueError(f"init must have shape {list(table)} or {[self.runs, *table]} (runs, prompts, "
                             f"responses), got {list(start.shape)}")
        if not torch.isfinite(start).all():
            raise ValueError("init must be finite log-probs or logits (no -inf, NaN): a tabular logit at "
                             "-inf can never move")
        start = start.to(device=self.device, dtype=self.dtype).expand(self.runs, *table)
        self.logits = start.clone().requires_grad_(True)

    def logp(self) -> torch.Tensor:
        """log_softmax(s) ``[B, P, Y]``."""
        return log_normalize(self.logits)

    def parameters(self) -> list[torch.Tensor]:
        return [self.logits]

    def logit_grad(self, dlogp: torch.Tensor, runs: slice = slice(None), logp: torch.Tensor | None = None):
        """∂/∂s from ∂/∂log π through the softmax Jacobian: g_s = g − π·Σ_y g, per prompt.

        (∂ log π_y/∂s_k = 1[y = k] − π_k.) ``dlogp`` is ``[b, P, Y]`` for the runs ``runs``
        (default all), so ``train`` can work on a cache-sized block of runs at a time; ``logp``,
        those runs' current log-probs if the caller has them, saves recomputing them."""
        with torch.no_grad():
            prob = (log_normalize(self.logits[runs]) if logp is None else logp).exp()
            return dlogp - prob * dlogp.sum(-1, keepdim=True)

    def __repr__(self) -> str:
        return f"Tabular(P={self.problem.P}, Y={self.problem.Y}, runs={self.runs}, dtype={self.dtype})"
