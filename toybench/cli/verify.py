"""``toybench verify``: run the registered claims; exit 1 when a verdict differs from its expectation."""
from __future__ import annotations

from ._options import add_command, add_json, emit_json, show_progress


def add_parser(subparsers) -> None:
    parser = add_command(subparsers, "verify", "run every registered claim; exit 1 if a verdict is unexpected")
    parser.add_argument("--only", default="*", metavar="PATTERN", help="glob on claim ids, e.g. 'dpo.*'")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar (there is none anyway when stdout is not a terminal or with --json)")
    add_json(parser)
    parser.set_defaults(run=run)


def run(args) -> int:
    from .. import claims
    results = claims.run(args.only, progress=show_progress(args) and not args.no_progress)
    if args.json or args.json_out:
        emit_json(args, [r.as_dict() for r in results])
    if not args.json:
        _print_table(results)
    return 1 if any(not r.as_expected for r in results) else 0


def _print_table(results) -> None:
    rows = [("claim", "measured", "", "tolerance", "verdict", "expected", "ok")]
    for r in results:
        rows.append((r.id, f"{r.measured:.3g}", r.comparison, f"{r.tolerance:.3g}", r.verdict, r.expected,
                     "yes" if r.as_expected else "NO"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    for r in results:
        if r.error:
            print(f"error in {r.id}: {r.error}")
    unexpected = sum(not r.as_expected for r in results)
    print(f"{len(results)} claims, {len(results) - unexpected} as expected, {unexpected} unexpected "
          f"({sum(r.expected == 'fails' for r in results)} expected to fail)")
