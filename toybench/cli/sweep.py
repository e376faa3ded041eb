"""``toybench sweep``, ``toybench plot`` and ``toybench bench``: their parsers and handlers live
in ``toybench.sweep.cli``."""
from __future__ import annotations


def add_parser(subparsers) -> None:
    from ..sweep.cli import register
    register(subparsers)
