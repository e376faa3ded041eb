"""Token-factorised policies: the shared protocol and ``AutoregressiveTabular``.

Every policy here follows ``tb.policies.Policy`` (``problem``, ``runs``, ``dtype``, ``device``,
``logp() -> [B, P, Y]``, ``parameters()``, each parameter with a leading run axis B) and adds
``token_logp() -> [B, P, N, A]``: log π(a | s) for every prefix s and action a (ordinary tokens,
then EOS) of the space's prefix tree, −inf where the tree forbids the action. On a ``FlatSpace(K)``
the tree is one step: K tokens at the empty prefix (``token_tree``). ``logp()`` is always the sum
of the per-step log-probs along each string (``SequenceSpace.sequence_sum``), so the table
normalises exactly over the enumerated space.

Random initialisations draw run b's numbers from ``torch.Generator().manual_seed(seed + b)``,
so run b of a B-run policy equals the one-run policy built with seed ``seed + b``.
"""
from __future__ import annotations

import math

import torch

from .policies import Policy, check_dtype, check_runs, log_normalize
from .problem import Problem
from .spaces import SequenceSpace

NORMALISATION_TOL = 1e-4
"""|logsumexp(logp row)| allowed by ``check_normalised`` (float32 tables are off by ~1e-6)."""


def token_tree(space) -> SequenceSpace:
    """The prefix tree a policy factorises over: the space itself, or for ``FlatSpace(K)`` a tree of
    K one-token strings (``SequenceSpace(K, 1)``, EOS forced after the token)."""
    if isinstance(space, SequenceSpace):
        return space
    return SequenceSpace(space.size, 1)


def check_normalised(policy, logp: torch.Tensor | None = None) -> torch.Tensor:
    """``policy.logp()`` after checking it is ``[B, P, Y]`` and every row normalises; ValueError otherwise."""
    table = policy.logp() if logp is None else logp
    prob = policy.problem
    if not isinstance(table, torch.Tensor) or tuple(table.shape) != (policy.runs, prob.P, prob.Y):
        shape = tuple(table.shape) if isinstance(table, torch.Tensor) else type(table).__name__
        raise ValueError(f"policy.logp() must return a [B, P, Y] = [{policy.runs}, {prob.P}, {prob.Y}] tensor, "
                         f"got {shape}")
    error = torch.logsumexp(table.detach().to(torch.float64), -1).abs().max().item()
    if not error <= NORMALISATION_TOL:
        raise ValueError(f"policy.logp() must be normalised log-probs (logsumexp over responses = 0 within "
                         f"{NORMALISATION_TOL}); the worst row is off by {error:.3g}")
    return table


def run_generators(seed, runs: int) -> list[torch.Generator]:
    """One generator per run, seeded ``seed + b``."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int (run b uses seed + b), got {seed!r}")
    return [torch.Generator().manual_seed(seed + b) for b in range(runs)]


def stacked_normal(generators, shape, std: float, dtype, device) -> torch.Tensor:
    """``[B, *shape]`` N(0, std²) numbers, run b from generator b (float64 draws, then cast)."""
    draws = [torch.randn(shape, generator=gen, dtype=torch.float64) for gen in generators]
    return (std * torch.stack(draws)).to(dtype=dtype, device=device)


class TokenPolicy(Policy):
    """Shared set-up of the token-factorised policies (see the module docstring)."""

    def _setup(self, prob, runs, dtype, device):
        if not isinstance(prob, Problem):
            raise ValueError(f"{type(self).__name__} needs a Problem, got {type(prob).__name__}")
        self.problem = prob
        self.runs = check_runs(runs)
        self.dtype = check_dtype(dtype)
        try:
            self.device = torch.device(prob.ref_logp.device if device is None else device)
        except (TypeError, RuntimeError) as err:
            raise ValueError(f"device must be a torch device or its name, got {device!r}") from err
        self.tree = token_tree(prob.space)
        self._allowed = self.tree.allowed.to(self.device)
        self.ref_token_logp = self.tree.token_logp(prob.ref_logp).to(device=self.device, dtype=self.dtype)

    def masked_log_softmax(self, logits: torch.Tensor) -> torch.Tensor:
        """log π(a|s) from logits ``[B, P, N, A]``: forbidden actions at −inf, the rest normalised."""
        return log_normalize(logits.masked_fill(~self._allowed, -math.inf))

    def logp(self) -> torch.Tensor:
        """Σ_t log π(a_t | s_t) along every string, ``[B, P, Y]``."""
        return self.tree.sequence_sum(self.token_logp())


class AutoregressiveTabular(TokenPolicy):
    """A free logit per (run, prompt, prefix, token): π(a|s) = softmax over the allowed actions.

    The tabular policy of the token MDP: every distribution over the enumerated strings is
    reachable (it factorises uniquely along the prefix tree), so at convergence it reaches the
    same optimum as ``Tabular`` over whole strings. ``init``: ``[P, Y]`` or ``[B, P, Y]`` sequence
    log-probs (factorised with ``SequenceSpace.token_logp``; default π_ref), with full support;
    ``init_scale`` > 0 adds N(0, init_scale²) to every allowed token logit, run b from seed + b.
    Only a ``SequenceSpace`` has tokens: a ``FlatSpace`` raises ValueError (use ``Tabular``)."""

    def __init__(self, prob: Problem, runs: int = 1, init=None, init_scale: float = 0.0, seed: int = 0,
                 dtype: torch.dtype = torch.float32, device=None):
        if not isinstance(getattr(prob, "space", None), SequenceSpace):
            raise ValueError("AutoregressiveTabular needs a Problem over a SequenceSpace; "
                             "on a FlatSpace use tb.Tabular")
        self._setup(prob, runs, dtype, device)
        start = prob.ref_logp if init is None else init
        try:
            start = torch.as_tensor(start, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"init must be array-like sequence log-probs [P, Y] or [B, P, Y], "
                             f"got {type(init).__name__}") from err
        table = (prob.P, prob.Y)
        if start.shape not in (table, (self.runs, *table)):
            raise ValueError(f"init must have shape {list(table)} or {[self.runs, *table]}, got {list(start.shape)}")
        if not torch.isfinite(start).all():
            raise ValueError("init must be finite sequence log-probs (full support): a logit at -inf never moves")
        if not init_scale >= 0:
            raise ValueError(f"init_scale must be >= 0, got {init_scale!r}")
        start = torch.log_softmax(start, -1)
        logits = self.tree.token_logp(start).expand(self.runs, -1, -1, -1)
        noise = stacked_normal(run_generators(seed, self.runs), logits.shape[1:], init_scale, torch.float64, "cpu")
        logits = (logits + noise).masked_fill(~self.tree.allowed, 0.0)
        self.logits = logits.to(device=self.device, dtype=self.dtype).clone().requires_grad_(True)
        self._init_scale = init_scale

    def token_logp(self) -> torch.Tensor:
        """log π(a|s) ``[B, P, N, A]``."""
        return self.masked_log_softmax(self.logits)

    def parameters(self) -> list[torch.Tensor]:
        return [self.logits]

    def like(self, runs: int | None = None, dtype=None, seed: int = 0, init_scale: float | None = None):
        """A fresh policy of this class: π_ref plus N(0, init_scale²) token-logit noise from ``seed``
        (``init_scale`` defaults to this policy's)."""
        scale = self._init_scale if init_scale is None else init_scale
        return AutoregressiveTabular(self.problem, runs or self.runs, init_scale=scale, seed=seed,
                                     dtype=dtype or self.dtype, device=self.device)

    def __repr__(self) -> str:
        return f"AutoregressiveTabular({self.problem.space!r}, P={self.problem.P}, runs={self.runs}, dtype={self.dtype})"
