"""Registered claims. ``run()`` evaluates them; each module below registers one topic's claims."""
from . import (  # noqa: F401  (imported to register their claims)
    adaptive,
    anchor,
    bregman,
    core,
    did,
    displace,
    fdiv,
    iterative,
    length,
    nash,
    rankings,
    reproductions,
    selfplay,
    sequence,
)
from .registry import REGISTRY, Claim, Result, claim, evaluate, run, select

__all__ = ["REGISTRY", "Claim", "Result", "claim", "evaluate", "run", "select"]
