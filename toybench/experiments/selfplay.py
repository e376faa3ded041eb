"""Self-play on intransitive preferences (SPPO, Wu et al., arXiv 2405.00675; DNO, Rosset et al.,
arXiv 2404.03715): the ideal multiplicative-weights step π_{t+1} ∝ π_t·exp(η·P(y ≻ π_t))
(``procedures.sppo`` with τ = 0) on the skew 3-cycle P(1≻2) = 0.9, P(2≻3) = 0.7, P(3≻1) = 0.6.

Its von Neumann winner is (2/7, 1/7, 4/7) [derived]: the last iterate cycles around it, the running
average converges to it; the KL-regularised game's equilibrium π*_τ (``optima.nash``) moves
non-monotonically from uniform towards it as τ → 0.
"""
from __future__ import annotations

import functools

import torch

from .. import optima, procedures
from ..problem import Problem
from ..spaces import FlatSpace

WINNER = (2 / 7, 1 / 7, 4 / 7)
TAUS = (1.0, 0.5, 0.1, 0.05, 0.01)


def skew_cycle() -> Problem:
    """Three responses, uniform π_ref, the skew 3-cycle preference matrix."""
    pref = torch.tensor([[0.5, 0.9, 0.4], [0.1, 0.5, 0.7], [0.6, 0.3, 0.5]], dtype=torch.float64)
    return Problem(FlatSpace(3), ref_probs=torch.full((1, 3), 1 / 3, dtype=torch.float64), preference=pref[None])


def hedge(eta: float = 0.1, iterations: int = 20000, record_every: int = 10):
    """Hedge from uniform: ``(steps [T], last iterate [T, 3], running average [T, 3])`` (probabilities).
    Deterministic, so cached (two claims read one run); each call gets its own copies."""
    return tuple(value.clone() for value in _hedge(eta, iterations, record_every))


@functools.lru_cache(maxsize=4)
def _hedge(eta: float, iterations: int, record_every: int):
    found = procedures.sppo(skew_cycle(), eta, iterations, record_every=record_every)
    return found.steps, found.logp[:, 0, 0].exp(), found.average[:, 0, 0]


def regularised_path(taus=TAUS) -> torch.Tensor:
    """π*_τ of the τ-regularised game, ``[len(taus), 3]`` (probabilities)."""
    return optima.nash(skew_cycle(), torch.tensor(taus, dtype=torch.float64)).exp()[:, 0]
