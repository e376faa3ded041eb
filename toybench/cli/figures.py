"""``toybench figures``: regenerate the figure gallery (byte-identical PNGs across runs)."""
from __future__ import annotations

from ._options import add_command


def add_parser(subparsers) -> None:
    parser = add_command(subparsers, "figures", "regenerate every figure of the gallery deterministically")
    parser.add_argument("--out", default="figures", metavar="DIR", help="folder for the PNG files")
    parser.add_argument("--only", default=None, metavar="NAMES",
                        help="comma-separated figure names (default: all; an unknown name lists the valid ones)")
    parser.set_defaults(run=run)


def run(args) -> int:
    from .. import figures
    figures.select(args.only)     # an unknown name fails before any work
    for path in figures.write(args.out, args.only, progress=lambda name: print(f"drew {name}", flush=True)):
        print(f"wrote {path}")
    return 0
