"""Finite response spaces.

Everything downstream of a space sees a response as an index ``0..Y-1``. A space only has to
say how many responses it holds (``size``), their token lengths (``lengths``, used by
length-aware losses) and a printable label for each. ``SequenceSpace`` (every EOS-terminated
token string up to a length) plugs in later behind the same three members.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

MAX_RESPONSES = 4096
"""Largest response space toybench enumerates: pair tables are ``[P, Y, Y]`` float64, so
4096 responses already cost 128 MiB per prompt."""


def check_enumerable(size: int, what: str) -> None:
    """Raise a ValueError when ``size`` responses are too many to enumerate exactly."""
    if size > MAX_RESPONSES:
        raise ValueError(
            f"{what} has {size} responses; toybench enumerates at most {MAX_RESPONSES} "
            "(pair tables are [P, Y, Y] float64)"
        )


@dataclass(frozen=True, eq=False)
class FlatSpace:
    """K atomic responses ``0..K-1``.

    ``lengths`` (optional, K positive numbers) gives each response a token length so that
    length-normalised losses (SimPO, ORPO, ``ipo(length_normalized=True)``) work on a flat
    space; without it those losses raise a ValueError saying lengths are missing.
    """

    K: int
    lengths: torch.Tensor | None = None

    def __post_init__(self):
        if isinstance(self.K, bool) or not isinstance(self.K, int) or self.K < 2:
            raise ValueError(f"FlatSpace(K) needs an integer K >= 2 responses, got {self.K!r}")
        check_enumerable(self.K, f"FlatSpace({self.K})")
        if self.lengths is not None:
            lengths = torch.as_tensor(self.lengths, dtype=torch.float64).detach().clone()
            if lengths.shape != (self.K,):
                raise ValueError(f"lengths must have shape ({self.K},), got {tuple(lengths.shape)}")
            if not torch.isfinite(lengths).all() or (lengths <= 0).any():
                raise ValueError("lengths must be finite and positive (token counts)")
            object.__setattr__(self, "lengths", lengths)

    @property
    def size(self) -> int:
        """Number of responses Y."""
        return self.K

    def label(self, y: int) -> str:
        """Printable name of response ``y``."""
        return f"y{y}"

    def __repr__(self) -> str:
        extra = "" if self.lengths is None else f", lengths={self.lengths.tolist()}"
        return f"FlatSpace({self.K}{extra})"
