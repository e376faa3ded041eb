"""The ``toybench`` command line: verify, list, train, compare. It adds no math of its own."""
from __future__ import annotations

import argparse
import json
import math
import sys

import torch

from .sweep.cli import register as register_sweep_commands


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="toybench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    verify = commands.add_parser("verify", help="run every registered claim; exit 1 if a verdict is unexpected")
    verify.add_argument("--json", action="store_true", help="print the results as JSON")
    verify.add_argument("--only", default="*", metavar="PATTERN", help="glob on claim ids, e.g. 'dpo.*'")
    verify.set_defaults(run=_verify)

    listing = commands.add_parser("list", help="registered losses with source and target kind")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=_list)

    train = commands.add_parser("train", help="train one configuration and print final metrics")
    train.add_argument("--loss", default="dpo", help="name or name:key=value,... (e.g. cdpo:beta=0.5,eps=0.2)")
    _problem_options(train)
    train.add_argument("--samples", type=int, default=None, help="train on n sampled records (default: population)")
    train.add_argument("--runs", type=int, default=1, help="independent runs in one program (data seeds seed..)")
    train.add_argument("--steps", type=int, default=1000)
    train.add_argument("--lr", type=float, default=0.05)
    train.add_argument("--optimizer", default="adam")
    train.add_argument("--batch-size", type=int, default=None)
    train.add_argument("--target", choices=("closed", "solve"), default="closed",
                       help="what the KL/TV columns compare with: closed = the loss's closed-form population "
                            "minimiser (NaN where none is known); solve = tb.solve's exact minimiser of the "
                            "objective being trained (per run for sampled data)")
    train.add_argument("--plot", default=None, metavar="PATH", help="save loss and KL curves to a PNG")
    train.add_argument("--json", action="store_true")
    train.set_defaults(run=_train)

    compare = commands.add_parser("compare", help="each loss's exact minimiser against π*_β, side by side")
    compare.add_argument("losses", nargs="+", help="loss specs, e.g. dpo ipo:beta=0.5 cdpo:eps=0.2")
    _problem_options(compare)
    compare.add_argument("--json", action="store_true")
    compare.add_argument("--csv", default=None, metavar="PATH", help="also write the table as CSV")
    compare.set_defaults(run=_compare)
    register_sweep_commands(commands)

    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except ValueError as err:
        print(f"toybench {args.command}: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into a reader that closed early (e.g. `| head`)
        sys.stdout = None
        return 0


def _problem_options(parser):
    parser.add_argument("--problem", choices=["e1", "random"], default="e1",
                        help="e1: the reference instance (Y=4, r=(0,.5,1.5,3)); random: Problem.random")
    parser.add_argument("--responses", type=int, default=6, help="Y for --problem random")
    parser.add_argument("--prompts", type=int, default=1, help="P for --problem random")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reward-scale", type=float, default=1.0)
    parser.add_argument("--pair-dist", default="uniform", choices=["ref", "uniform", "did"])
    parser.add_argument("--noise", type=float, default=0.0, help="label flip rate in [0, 0.5)")


def _problem(args):
    from .claims.core import e1
    from .problem import Problem
    from .spaces import FlatSpace
    if args.problem == "e1":
        return e1(args.pair_dist)
    return Problem.random(FlatSpace(args.responses), prompts=args.prompts, seed=args.seed,
                          reward_scale=args.reward_scale, pair_dist=args.pair_dist)


def _verify(args) -> int:
    from . import claims
    results = claims.run(args.only, progress=not args.json and sys.stderr.isatty())
    if args.json:
        print(json.dumps([r.as_dict() for r in results], indent=1))
    else:
        rows = [("claim", "measured", "", "tolerance", "verdict", "expected", "ok")]
        for r in results:
            rows.append((r.id, f"{r.measured:.3g}", r.comparison, f"{r.tolerance:.3g}", r.verdict, r.expected,
                         "yes" if r.as_expected else "NO"))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)))
        for r in results:
            if r.error:
                print(f"error in {r.id}: {r.error}")
        unexpected = sum(not r.as_expected for r in results)
        print(f"{len(results)} claims, {len(results) - unexpected} as expected, {unexpected} unexpected "
              f"({sum(r.expected == 'fails' for r in results)} expected to fail)")
    return 1 if any(not r.as_expected for r in results) else 0


def _list(args) -> int:
    from .losses import REGISTRY, fields
    rows = []
    for name in sorted(REGISTRY):
        cls = REGISTRY[name]
        rows.append({"name": name, "family": cls.family, "target": cls.target_kind,
                     "evidence": cls.evidence + ("; RECONSTRUCTION" if cls.reconstruction else ""),
                     "hyperparameters": ", ".join(f"{k}={v}" for k, v in fields(name).items()),
                     "source": cls.citation})
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    keys = ["name", "family", "target", "evidence", "hyperparameters", "source"]
    widths = {k: max(len(k), *(len(r[k]) for r in rows)) for k in keys[:-1]}
    print("  ".join(k.ljust(widths[k]) if k in widths else k for k in keys))
    for r in rows:
        print("  ".join(r[k].ljust(widths[k]) if k in widths else r[k] for k in keys))
    return 0


def _train(args) -> int:
    from .compare import loss_from_spec
    from .pairs import population, sample_pairs
    from .policies import Tabular
    from .solve import solve
    from .train import train
    prob = _problem(args)
    loss = loss_from_spec(args.loss)
    if args.samples is None:
        pairs = population(prob, args.noise)
    else:
        pairs = sample_pairs(prob, args.samples, noise=args.noise, seed=[args.seed + b for b in range(args.runs)])
    policy = Tabular(prob, runs=args.runs)
    target = solve(loss, pairs).logp if args.target == "solve" else None
    history = train(policy, loss, pairs, steps=args.steps, optimizer=args.optimizer, lr=args.lr,
                    batch_size=args.batch_size, seed=args.seed, target=target)
    final = {key: [float(v) for v in torch.as_tensor(value).reshape(-1)] for key, value in history.final.items()}
    if args.json:   # NaN (no target) as null: strict JSON
        print(json.dumps({key: [None if math.isnan(v) else v for v in values] for key, values in final.items()},
                         indent=1))
    else:
        print(f"{'target':>20}: {args.target}")
        for key, values in final.items():
            print(f"{key:>20}: " + " ".join(f"{v:.6g}" for v in values))
    if args.plot:
        _plot_history(history, args.plot, title=f"{args.loss} on {args.problem}")
        print(f"plot written to {args.plot}")
    return 0


def _plot_history(history, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    frame = history.to_frame()
    columns = [c for c in ("loss", "kl_to_target") if c in frame and frame[c].notna().any()]
    fig, axes = plt.subplots(1, len(columns), figsize=(4.5 * len(columns), 3.2), squeeze=False)
    for ax, column in zip(axes[0], columns, strict=False):
        for _run, part in frame.groupby("run"):
            ax.plot(part["step"], part[column], lw=1)
        ax.set_xlabel("step")
        ax.set_ylabel(column)
        if column == "kl_to_target":
            ax.set_yscale("log")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120, metadata={"Software": None})
    plt.close(fig)


def _compare(args) -> int:
    from .compare import compare, format_table
    frame = compare(_problem(args), args.losses, noise=args.noise)
    if args.csv:
        frame.to_csv(args.csv, index=False)
    if args.json:
        print(frame.to_json(orient="records", indent=1))
    else:
        print(format_table(frame))
    return 0


if __name__ == "__main__":
    sys.exit(main())
