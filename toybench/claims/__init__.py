"""Registered claims. ``run()`` evaluates them; each module below registers one topic's claims."""
from .registry import REGISTRY, Claim, Result, claim, evaluate, run, select

__all__ = ["REGISTRY", "Claim", "Result", "claim", "evaluate", "run", "select"]
