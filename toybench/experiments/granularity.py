"""Token vs feedback granularity in autoregressive DPO (Oi et al., arXiv 2602.09533).

The loss splits each response into m feedback segments, −Σ_i log σ(β·S_i(y_w) − β·S_i(y_l)); m = 1
is DPO and token granularity (``segments=0``) puts one term per position. On the depth-2 binary
token tree aa, ab, ba, bb (no EOS choice, uniform π_ref, r = (1, 0, 0.5, −1), β = 1, all ordered
pairs with soft BT labels) the best ``AutoregressiveTabular`` policy (``fit_best``, several starts:
the token-level loss is not convex in the prefix logits) is π*_β for m = 1 but not for token
granularity, where it is (0.45153, 0.20144, 0.29801, 0.04902) [derived].
"""
from __future__ import annotations

import torch

from .. import optima
from ..autoregressive import AutoregressiveTabular
from ..claims.sequence import depth2_tree
from ..fit_best import fit_best
from ..losses import make
from ..pairs import population

TREE = ("aa", "ab", "ba", "bb")


def best_policy(segments: int, beta: float = 1.0, starts: int = 4) -> torch.Tensor:
    """The best autoregressive policy for ``autoregressive_dpo`` with ``segments`` (0 = token level), π ``[4]``."""
    prob = depth2_tree()
    fit = fit_best(AutoregressiveTabular(prob), make("autoregressive_dpo", beta=beta, segments=segments),
                   population(prob), starts=starts, simplex=False)
    return fit.logp.exp()[0]


def target(beta: float = 1.0) -> torch.Tensor:
    """π*_β on the tree, ``[4]``."""
    return optima.reverse_kl(depth2_tree(), beta).exp()[0]
