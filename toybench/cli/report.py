"""``toybench report``: one self-contained HTML page and a Markdown twin with the claims and the figures."""
from __future__ import annotations

from ._options import add_command


def add_parser(subparsers) -> None:
    parser = add_command(subparsers, "report", "write a shareable HTML + Markdown report of claims and figures")
    parser.add_argument("--out", default="report", metavar="DIR", help="folder for report.html and report.md")
    parser.add_argument("--claims", default="*", metavar="PATTERN", help="glob on claim ids, e.g. 'repro.*'")
    parser.add_argument("--figures", default="figures", metavar="DIR",
                        help="folder of rendered figures (a missing figure is rendered afresh)")
    parser.add_argument("--only", default=None, metavar="NAMES", help="comma-separated figure names (default: all)")
    parser.set_defaults(run=run)


def run(args) -> int:
    from .. import figures, report
    figures.select(args.only)
    for path in report.write(args.out, args.claims, args.figures, args.only):
        print(f"wrote {path}")
    return 0
