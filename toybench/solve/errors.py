"""The two ways ``tb.solve`` declines to return a minimiser."""
from __future__ import annotations


class NoFiniteMinimum(ValueError):
    """The population objective has no finite minimiser, with a proof in the message: a record on
    no directed cycle of a loss that falls forever along its margin, a cut of negative effective
    weight, or a certified recession direction along which the objective keeps falling."""


class SolveFailed(RuntimeError):
    """``solve`` found no point whose optimality certificate is inside the tolerance.

    ``logp`` is the best point found (lowest objective, ``[P, Y]``), ``certificate`` its
    certificate, ``tolerance`` the bound it missed, ``tried`` what was run. Not a ValueError: the
    input was valid; the solver could not certify an answer."""

    def __init__(self, message: str, logp, certificate: float, tolerance: float, tried: list[str]):
        super().__init__(message)
        self.logp, self.certificate, self.tolerance, self.tried = logp, certificate, tolerance, list(tried)
