"""Registered claims. ``run()`` evaluates them; each module below registers one topic's claims."""
from .registry import REGISTRY, Claim, Result, claim, evaluate, run, select
from . import core, length  # noqa: F401
from . import bregman, fdiv  # noqa: F401
from . import anchor  # noqa: F401
from . import adaptive, did, selfplay  # noqa: F401

__all__ = ["REGISTRY", "Claim", "Result", "claim", "evaluate", "run", "select"]
