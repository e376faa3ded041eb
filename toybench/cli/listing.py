"""``toybench list``: the registered losses with family, target kind, evidence, defaults and source."""
from __future__ import annotations

from ._options import add_command, add_json, emit_json


def add_parser(subparsers) -> None:
    parser = add_command(subparsers, "list", "registered losses with family, target kind, evidence and source")
    add_json(parser)
    parser.set_defaults(run=run)


def run(args) -> int:
    from ..losses import REGISTRY, fields
    rows = []
    for name in sorted(REGISTRY):
        cls = REGISTRY[name]
        rows.append({"name": name, "family": cls.family, "target": cls.target_kind,
                     "evidence": cls.evidence + ("; RECONSTRUCTION" if cls.reconstruction else ""),
                     "hyperparameters": ", ".join(f"{k}={v}" for k, v in fields(name).items()),
                     "source": cls.citation})
    if args.json or args.json_out:
        emit_json(args, rows)
    if args.json:
        return 0
    keys = ["name", "family", "target", "evidence", "hyperparameters", "source"]
    widths = {k: max(len(k), *(len(r[k]) for r in rows)) for k in keys[:-1]}
    print("  ".join(k.ljust(widths[k]) if k in widths else k for k in keys))
    for r in rows:
        print("  ".join(r[k].ljust(widths[k]) if k in widths else r[k] for k in keys))
    return 0
