"""Policies: B independent copies of a model that gives the exact log-prob table ``[B, P, Y]``.

**The policy protocol.** ``tb.train`` trains any object that has

- ``runs``: B, the number of independent copies;
- ``prob``: the ``Problem`` whose P prompts and Y responses it answers;
- ``logp()``: the exact table log π_θ(y|x) ``[B, P, Y]``, normalised over the Y responses, in
  the parameters' dtype and on their device;
- ``parameters()``: the tensors ``train`` optimises, a list of leaf tensors with
  ``requires_grad``, each with the run axis B first, so that run b's parameters are slice b of
  each (a ``[B]`` learning rate scales each run's slice);
- optionally ``vjp(grad_logp)``: the vector–Jacobian product, a list with one tensor per
  parameter: the gradient of Σ grad_logp·logp() (sum over every entry) with respect to
  ``parameters()`` at their current values, for ``grad_logp`` ``[B, P, Y]`` (∂L/∂log π).

``train`` splits at ∂L/∂log π: the loss side (``toybench.loss_grads``) turns records into
∂L/∂log π, and the policy side pulls it back to the parameters with the policy's own ``vjp``
or, when it has none, with one ``torch.autograd.grad`` through the graph of ``logp()``
(``logp_and_vjp``). A policy with a cheap closed-form Jacobian (``Tabular``) gives ``vjp``; any
other needs only ``logp()`` and ``parameters()``. ``Policy`` is an optional base class that
states the protocol; ``train`` does not ask for it.

``Tabular`` is the simplest: one free logit s(b, x, y) per run, prompt and response,
π_θ(y|x) = softmax_y s(x, ·). It starts at π_ref (s = log π_ref) or at a given ``init``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from .problem import Problem


class Policy(ABC):
    """B independent policies over a Problem's responses: the protocol of the module docstring
    (``vjp`` is optional and not declared here, so a subclass without one gets autograd)."""

    prob: Problem
    runs: int
    dtype: torch.dtype
    device: torch.device

    @abstractmethod
    def logp(self) -> torch.Tensor:
        """Exact log-prob table ``[B, P, Y]``, normalised over Y, in the policy's dtype, on its device."""

    @abstractmethod
    def parameters(self) -> list[torch.Tensor]:
        """The trainable leaf tensors (requires_grad), each with a leading run axis B."""


def logp_and_vjp(policy):
    """The policy's log-probs ``[B, P, Y]`` (detached) and the pull-back ``grad_logp ↦`` parameter
    gradients at them: the policy's own ``vjp`` when it has one (then ``logp()`` runs without a
    graph), else one ``torch.autograd.grad`` through the graph of this ``logp()`` call (one
    forward and one backward per step; a parameter that ``logp()`` does not use gets zeros)."""
    if callable(getattr(policy, "vjp", None)):
        with torch.no_grad():
            return policy.logp(), policy.vjp
    params = list(policy.parameters())
    with torch.enable_grad():
        logp = policy.logp()

    def vjp(grad_logp: torch.Tensor) -> list[torch.Tensor]:
        return list(torch.autograd.grad(logp, params, grad_logp, allow_unused=True, materialize_grads=True))

    return logp.detach(), vjp


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
        self.prob = prob
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
        logp = log_normalize(self.logits)
        if not logp.requires_grad:      # kept for ``vjp`` while neither tensor changes
            self._last = (self.logits._version, logp, logp._version)
        return logp

    def parameters(self) -> list[torch.Tensor]:
        return [self.logits]

    def vjp(self, grad_logp: torch.Tensor) -> list[torch.Tensor]:
        """[∂/∂s] from g = ∂/∂log π through the softmax Jacobian: g − π·Σ_y g, per prompt
        (∂ log π_y/∂s_k = 1[y = k] − π_k), without an autograd graph. Reuses the table of the
        last graph-free ``logp()`` call when neither it nor the logits changed since (a training
        step's forward pass), instead of normalising again."""
        with torch.no_grad():
            version, logp, logp_version = getattr(self, "_last", (None, None, None))
            fresh = version == self.logits._version and logp._version == logp_version
            prob = logp.exp() if fresh else self.logp().exp_()
            return [grad_logp - prob.mul_(grad_logp.sum(-1, keepdim=True))]

    def __repr__(self) -> str:
        return f"Tabular(P={self.prob.P}, Y={self.prob.Y}, runs={self.runs}, dtype={self.dtype})"
