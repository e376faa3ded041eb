"""Published toy experiments reproduced with the library: one small module per paper.

Each module calls ``toybench`` (problems, ``solve``, ``train``, ``displacement``, ``procedures``)
and adds no math of its own; its functions take the full-size settings as defaults and smaller
ones as arguments. ``toybench.claims.reproductions`` registers their published numbers as claims
and ``toybench.figures`` draws them. Seeds are batched on the run axis (one ``train`` call).
"""
from . import (
    density,
    did,
    displacement,
    granularity,
    ipo_bandit,
    label_noise,
    optimiser,
    ranking_accuracy,
    samplers,
    selfplay,
    three_d,
)

NAMES = ("ipo_bandit", "optimiser", "density", "ranking_accuracy", "label_noise", "did", "displacement", "selfplay",
         "granularity", "samplers", "three_d")
"""The reproductions, in the order of the figure gallery."""

__all__ = ["NAMES", "density", "did", "displacement", "granularity", "ipo_bandit", "label_noise", "optimiser",
           "ranking_accuracy", "samplers", "selfplay", "three_d"]
