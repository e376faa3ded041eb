"""The reverse-KL RLHF optimum and its partition function."""
from __future__ import annotations

import torch

from .._checks import check_positive
from .._numerics import run_axis


def _beta_axis(beta) -> torch.Tensor:
    """β > 0 as float64 ``[]`` or ``[B, 1, 1]`` for broadcasting against ``[P, Y]``."""
    check_positive(beta, "beta")
    return run_axis(beta, "beta")


def _needs_reward(prob) -> torch.Tensor:
    if prob.reward is None:
        raise ValueError("this optimum needs a Bradley–Terry reward; the problem has a general preference matrix")
    return prob.reward


def log_partition(prob, beta) -> torch.Tensor:
    """log Z_β(x) = log Σ_y π_ref(y|x)·e^{r(x,y)/β}: ``[P]`` or ``[B, P]`` (logsumexp, exact).

    Source: DPO, Rafailov et al., arXiv 2305.18290, Eq. 4."""
    return torch.logsumexp(prob.ref_logp + _needs_reward(prob) / _beta_axis(beta), dim=-1)


def reverse_kl(prob, beta) -> torch.Tensor:
    """log π*_β(y|x) = log π_ref(y|x) + r(x,y)/β − log Z_β(x): the maximiser of
    E_π[r] − β·KL(π ‖ π_ref) and DPO's population minimiser (arXiv 2305.18290, Eq. 4).
    ``[P, Y]`` for scalar β, ``[B, P, Y]`` for ``[B]`` β."""
    return torch.log_softmax(prob.ref_logp + _needs_reward(prob) / _beta_axis(beta), dim=-1)
