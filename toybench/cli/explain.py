"""``toybench explain NAME``: one loss's card (formula, symbols, target, evidence, source)."""
from __future__ import annotations

from ._options import add_command


def add_parser(subparsers) -> None:
    parser = add_command(subparsers, "explain", "print one loss's card: formula, symbols, target, evidence, source")
    parser.add_argument("name", help="a registered loss name (toybench list shows them)")
    parser.set_defaults(run=run)


def run(args) -> int:
    from ..cards import card
    print(card(args.name))   # an unknown name: ValueError listing the valid ones
    return 0
