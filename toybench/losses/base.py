"""The loss protocol and the registry.

A loss is a frozen dataclass whose fields are its hyperparameters (Python numbers or ``[B]``
tensors, one value per run). Calling it maps gathered sequence log-probs to **per-record**
losses, never reduced, in TRL's argument order::

    loss(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **inputs)  # each [B, N]

``inputs`` are the extra per-record tensors the loss declares in ``needs`` (``chosen_len``,
``rejected_len``, or a named ``Pairs`` field). Class attributes describe the loss for
``toybench list`` and ``tb.solve`` (docs/conventions.md, loss objects):

- ``citation``: arXiv id and equation; ``evidence``: the evidence labels of docs/losses.md ([code], [paper], ...);
- ``reconstruction``: True where no read source states the formula in full;
- ``target_kind``: ``closed`` | ``projection`` | ``numeric`` | ``none``;
- ``family``: ``logit_link`` (G1: target independent of μ), ``non_proper`` (G2: a μ-dependent
  projection), ``single_response`` (G3: terms in one response, the simplex constraint binds);
- ``convex``: the population objective is convex in tabular logits;
- ``plain_margin``: the per-record loss is φ(β·Δ) of the reference margin Δ = g_w − g_l with
  ``MarginLoss``'s own value and derivative (training's cell grid then needs only φ′; the tests
  check the declaration against that formula for every registered loss);
- ``solver_case``: how ``tb.solve`` minimises it ("convex": convex in the logits or, for an
  affine margin (``margin_coefficients``) with a convex φ, in the margin scores; "lp";
  "nonconvex"); ``falls_forever``: the per-record loss falls strictly as its margin grows, to
  an infimum it never reaches (so a record on no directed cycle leaves no finite minimiser);
  ``kink``: (role, sign) when the loss bends through relu(sign·g) of the chosen or rejected
  log-ratio g, with ``relaxed`` giving it with that relu replaced by a slack t ≥ relu(sign·g);
  ``effective_table``: the record weights the population loss acts on (rDPO's de-noised ones).

Losses with batch statistics (β-DPO's β_batch, KTO's z₀, BCO's running δ, α-DPO's EMAs) set
``stateful = True`` and keep per-run state outside the frozen object:
``state = loss.init_state(runs, like)``; each training step calls
``state = loss.update_state(state, inputs, weight)`` (detached statistics from the batch,
updated before use, as the authors' code does) and then ``loss(..., state=state)``;
``loss.population_state(inputs, weight)`` gives the exact full-population statistics that
``tb.solve`` iterates to a fixed point.
"""
from __future__ import annotations

import dataclasses
import functools
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch

from .._checks import as_run_param, check_positive, run_count

REGISTRY: dict[str, type[Loss]] = {}
TARGET_KINDS = ("closed", "projection", "numeric", "none")
FAMILIES = ("logit_link", "non_proper", "single_response")
LENGTH_INPUTS = ("chosen_len", "rejected_len")


class by_fields:
    """A class attribute (``convex``, ``family``, ``solver_case``, ...) whose value on an instance
    depends on its fields; the class itself reports ``default`` (its default fields)."""

    def __init__(self, default, rule):
        self.default, self.rule = default, rule

    def __get__(self, loss, owner):
        return self.default if loss is None else self.rule(loss)


@dataclass(frozen=True)
class Loss(ABC):
    """Base class of every loss; see the module docstring."""

    name: ClassVar[str] = ""
    citation: ClassVar[str] = ""
    evidence: ClassVar[str] = ""
    reconstruction: ClassVar[bool] = False
    target_kind: ClassVar[str] = "none"
    family: ClassVar[str] = "logit_link"
    convex: ClassVar[bool] = False
    needs: ClassVar[tuple[str, ...]] = ()
    stateful: ClassVar[bool] = False
    plain_margin: ClassVar[bool] = False
    falls_forever: ClassVar[bool] = False
    kink: ClassVar[tuple[str, int] | None] = None
    solver_case = by_fields("nonconvex", lambda loss: "convex" if loss.convex else "nonconvex")

    def __post_init__(self):
        self.validate()
        run_count(*(getattr(self, f.name) for f in dataclasses.fields(self)))

    def validate(self) -> None:
        """Check hyperparameter ranges; raise ValueError saying what is allowed. The default checks
        β > 0 for losses that have a ``beta``; subclasses with more fields override it."""
        if hasattr(self, "beta"):
            check_positive(self.beta, "beta")

    @property
    def runs(self) -> int | None:
        """B when some hyperparameter is a ``[B]`` tensor, else None."""
        return run_count(*(getattr(self, f.name) for f in dataclasses.fields(self)))

    def hp(self, name: str, like: torch.Tensor):
        """Hyperparameter ``name`` broadcast against a ``[B, N]`` input."""
        return as_run_param(getattr(self, name), like)

    def required_inputs(self, space) -> tuple[str, ...]:
        """The extra per-record inputs this loss needs on ``space`` (ValueError if it lacks them)."""
        if any(n in LENGTH_INPUTS for n in self.needs) and getattr(space, "lengths", None) is None:
            raise ValueError(f"loss {self.name!r} is length-aware and needs per-response lengths: "
                             "build the space as FlatSpace(K, lengths=[...])")
        return self.needs

    def __call__(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, state=None, **inputs):
        unknown = set(inputs) - set(self.needs)
        missing = set(self.needs) - set(inputs)
        if unknown or missing:
            raise ValueError(f"loss {self.name!r} takes extra inputs {list(self.needs)}; "
                             f"unknown {sorted(unknown)}, missing {sorted(missing)}")
        if self.stateful:
            if state is None:
                raise ValueError(f"loss {self.name!r} keeps batch statistics: pass state=loss.init_state(B, like)")
            inputs["state"] = state
        elif state is not None:
            raise ValueError(f"loss {self.name!r} has no state; do not pass state=")
        return self.per_record(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **inputs)

    @abstractmethod
    def per_record(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **inputs):
        """Per-record losses ``[B, N]``; the formula is in the subclass docstring."""

    def input_grads(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **inputs):
        """(∂L/∂chosen_logp, ∂L/∂rejected_logp) per record. The default differentiates
        ``per_record`` elementwise with autograd; margin losses give a closed form."""
        with torch.enable_grad():
            chosen = chosen_logp.detach().requires_grad_(True)
            rejected = rejected_logp.detach().requires_grad_(True)
            value = self.per_record(chosen, rejected, ref_chosen_logp, ref_rejected_logp, **inputs)
            return torch.autograd.grad(value.sum(), (chosen, rejected), allow_unused=True,
                                       materialize_grads=True)

    def margin_coefficients(self, inputs: dict):
        """(k_w, k_l, o), each ``[B, N]``, when the per-record loss is a function of the affine
        margin Δ = k_w·ℓ_w − k_l·ℓ_l + o alone (``inputs`` as ``record_inputs`` gives them); None
        otherwise."""
        return None

    def effective_table(self, table: torch.Tensor) -> torch.Tensor:
        """Record weights ``[..., P, Y, Y]`` whose DPO-type population loss this loss's equals."""
        return table

    def target(self, prob, noise=0.0):
        """Exact minimiser over ``population(prob, noise)``: log-probs ``[P, Y]`` (``[B, P, Y]``
        with per-run hyperparameters or noise), float64; None where no closed form is known."""
        return None


@dataclass(frozen=True)
class MarginLoss(Loss):
    """A loss φ(z) of the scaled margin z = β·Δ, Δ = (ℓ_w − ℓ^ref_w) − (ℓ_l − ℓ^ref_l).

    Subclasses give ``phi(z)`` and its derivative ``dphi(z)``; ``input_grads`` is then the
    closed form (β·φ′(z), −β·φ′(z)), checked against autograd in the tests."""

    beta: float = 0.1

    def margin(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **inputs):
        return (chosen_logp - ref_chosen_logp) - (rejected_logp - ref_rejected_logp)

    @abstractmethod
    def phi(self, z):
        """Per-record loss as a function of z = β·Δ."""

    @abstractmethod
    def dphi(self, z):
        """dφ/dz."""

    def dphi_kernel_(self, z):
        """φ′(z) − c with c = ``dphi_shift``, allowed to overwrite ``z`` (training's pair-grid
        buffer); default ``dphi`` (c = 0). Training adds c's share once per response, not per cell."""
        return self.dphi(z)

    def dphi_shift(self, like):
        """The constant c of ``dphi_kernel_`` (``hp``-broadcast against ``like``); default 0."""
        return 0.0

    def dphi_pair_sum(self, like):
        """κ with φ′(z) + φ′(−z) = κ for every z (``hp``-broadcast against ``like``), or None when
        that sum is not constant. With κ, training evaluates φ′ once per unordered pair
        (``toybench.loss_grads``); the tests check each declaration against ``dphi``."""
        return None

    def margin_coefficients(self, inputs: dict):
        """Δ = ℓ_w − ℓ_l + (ℓ^ref_l − ℓ^ref_w): unit slopes (subclasses with another margin override)."""
        ones = torch.ones_like(inputs["chosen_logp"])
        return ones, ones, inputs["ref_rejected_logp"] - inputs["ref_chosen_logp"]

    def per_record(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **inputs):
        delta = self.margin(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **inputs)
        return self.phi(self.hp("beta", delta) * delta)

    def input_grads(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **inputs):
        if self.needs:  # length-normalised margins: fall back to autograd
            return super().input_grads(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **inputs)
        slope = self.margin_slope(self.margin(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp))
        return slope, -slope

    def margin_slope(self, delta):
        """∂L/∂Δ = β·φ′(β·Δ), elementwise (the training fast path's only per-record work)."""
        beta = self.hp("beta", delta)
        return self.dphi(beta * delta).mul_(beta) if not torch.is_grad_enabled() else beta * self.dphi(beta * delta)


def register(cls):
    """Class decorator: add a loss to the registry and make unknown keywords a ValueError."""
    if not cls.name or cls.name in REGISTRY:
        raise ValueError(f"loss class {cls.__name__} needs a unique name, got {cls.name!r}")
    if cls.target_kind not in TARGET_KINDS or cls.family not in FAMILIES:
        raise ValueError(f"{cls.__name__}: target_kind must be in {TARGET_KINDS}, family in {FAMILIES}")
    init = cls.__init__
    accepted = [f.name for f in dataclasses.fields(cls)]

    @functools.wraps(init)
    def checked_init(self, *args, **kwargs):
        unknown = sorted(set(kwargs) - set(accepted))
        if unknown or len(args) > len(accepted):
            raise ValueError(f"loss {cls.name!r} has no field(s) {unknown or list(args)}; "
                             f"accepted fields: {accepted}")
        init(self, *args, **kwargs)

    cls.__init__ = checked_init
    REGISTRY[cls.name] = cls
    return cls


def names() -> list[str]:
    """Every registered loss name, sorted."""
    return sorted(REGISTRY)


def make(name: str, **hyperparameters) -> Loss:
    """Build a registered loss by name: ``make("dpo", beta=0.1)`` is ``DPO(beta=0.1)``."""
    if name not in REGISTRY:
        raise ValueError(f"unknown loss {name!r}; valid names: {', '.join(names())}")
    return REGISTRY[name](**hyperparameters)


def fields(loss_or_name) -> dict:
    """The hyperparameters of a loss (instance: its values; name: the defaults)."""
    if isinstance(loss_or_name, str):
        cls = REGISTRY[loss_or_name] if loss_or_name in REGISTRY else None
        if cls is None:
            raise ValueError(f"unknown loss {loss_or_name!r}; valid names: {', '.join(names())}")
        return {f.name: f.default for f in dataclasses.fields(cls)}
    return {f.name: getattr(loss_or_name, f.name) for f in dataclasses.fields(loss_or_name)}
