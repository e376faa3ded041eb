"""Closed-form optima, exact in float64 and computed in log space.

``reverse_kl`` / ``log_partition``: π*_β = π_ref·e^{r/β}/Z_β; ``ipo``: IPO's population optimum
for any pair law (a graph-Laplacian solve; π_ref·e^{p(y≻μ)/τ} for product μ); ``fdpo_target``:
f-DPO's π_ref·(f′)⁻¹((r − λ)/β); ``nash``: the regularised preference game's equilibrium (``nash_certificate`` checks one,
``nash_unregularised`` is the β → 0 game's, by LP);
``soft_values`` / ``token_policy`` / ``token_target``: the token-level (soft-Bellman) form of the
reverse-KL optimum on a ``SequenceSpace``. Every function
returns ``[P, Y]`` (``[P]`` for ``log_partition``) for scalar β and ``[B, P, Y]`` for ``[B]`` β.
"""
from .fdiv import fdpo_target
from .ipo import ipo
from .nash import NashCertificate, nash, nash_certificate, nash_unregularised
from .reverse_kl import log_partition, reverse_kl
from .sequence import soft_values, step_rewards, token_policy, token_target

__all__ = ["reverse_kl", "log_partition", "ipo", "fdpo_target", "nash", "nash_certificate", "nash_unregularised",
           "NashCertificate", "soft_values", "step_rewards", "token_policy", "token_target"]
