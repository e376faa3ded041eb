"""``toybench train``: train one loss, B runs in one tensor program, and print the final metrics."""
from __future__ import annotations

import math

import torch

from ..train import DEFAULT_METRICS, METRICS
from . import _options as opt

RULE = "KL values that float64 rounding puts below 0 are shown as 0"


def add_parser(subparsers) -> None:
    parser = opt.add_command(
        subparsers, "train", "train one loss (B runs in one tensor program) and print final metrics",
        "Train a tabular policy with tb.train. Runs: --runs independent runs per point of the sweeps "
        "(--beta, --eps, --noise comma lists), all in one program; with --samples each run has its own data set.")
    parser.add_argument("--loss", default="dpo", help="name or name:key=value,... (e.g. cdpo:beta=0.5,eps=0.2)")
    opt.add_shared_hyperparameters(parser)
    opt.add_problem_options(parser)
    group = parser.add_argument_group("training")
    group.add_argument("--samples", type=int, default=None,
                       help="train on n sampled records per run (data seeds --seed, --seed+1, …); without it "
                            "every run trains on the exact population")
    group.add_argument("--runs", type=int, default=1, help="independent runs per sweep point")
    group.add_argument("--steps", type=int, default=1000, help="optimiser steps")
    group.add_argument("--lr", type=float, default=0.05, help="learning rate")
    group.add_argument("--optimizer", default="adam", choices=["adam", "sgd"], help="optimiser")
    group.add_argument("--batch-size", type=int, default=None,
                       help="records drawn per step and run (without it: the full objective)")
    group.add_argument("--log-every", type=int, default=None,
                       help="history interval in steps (without it: tb.train's default)")
    group.add_argument("--metrics", default=None,
                       help="metrics recorded at every logged step: comma-separated names from "
                            f"{', '.join(METRICS)}, or 'all' (without it: tb.train's default, all but win_rate); "
                            "the first and last step always record all")
    group.add_argument("--target", choices=("closed", "solve"), default="closed",
                       help="what the KL/TV columns compare with: closed = the loss's closed-form population "
                            "minimiser (empty where none is known); solve = tb.solve's exact minimiser of the "
                            "objective being trained (per run for sampled data)")
    group.add_argument("--no-progress", action="store_true",
                       help="no progress bar (there is none anyway when stdout is not a terminal or with --json)")
    parser.add_argument("--plot", type=opt.output_path, default=None, metavar="PATH",
                        help="save the loss and KL curves to a PNG")
    opt.add_json(parser)
    parser.set_defaults(run=run)


def run(args) -> int:
    from ..comparison import records, run_loss, spec_of
    from ..policies import Tabular
    from ..solve import solve
    from ..train import train
    opt.check_shared_apply(args, [args.loss])
    if args.runs < 1:
        raise opt.UsageError(f"--runs must be >= 1, got {args.runs}")
    prob = opt.problem(args)
    points = [point for point in opt.grid(args, (*opt.SHARED, "noise")) for _ in range(args.runs)]
    loss = opt.make_loss(args.loss, points)
    opt.check_supplied(loss, prob, args)
    rates = [point["noise"] for point in points]
    noise = rates[0] if len(set(rates)) == 1 else torch.tensor(rates, dtype=torch.float64)
    seeds = [args.seed + b % args.runs for b in range(len(points))]
    if args.runs > 1 and args.samples is None and args.batch_size is None:
        opt.warn(args, f"--runs {args.runs} without --samples (or --batch-size) trains identical runs on the "
                       "same population; add --samples N for independent data sets")
    pairs = records(loss, prob, noise, samples=args.samples, seeds=seeds, scores=opt.scores(args, prob))
    target = solve(loss, pairs).logp if args.target == "solve" else None
    metrics = _metrics(args.metrics)
    if args.plot and metrics is None:   # the plot's loss curve needs the objective at every logged step
        metrics = [*DEFAULT_METRICS, "loss"]
    history = train(Tabular(prob, runs=len(points)), loss, pairs, steps=args.steps, optimizer=args.optimizer,
                    lr=args.lr, batch_size=args.batch_size, seed=args.seed, log_every=args.log_every,
                    target=target, metrics=metrics, progress=opt.show_progress(args) and not args.no_progress)
    runs = [{"run": b, "spec": spec_of(run_loss(loss, b) if loss.runs else loss), "noise": rates[b],
             **({"data_seed": seeds[b]} if args.samples is not None else {})} for b in range(len(points))]
    final = {key: [_shown(key, v) for v in torch.as_tensor(value).reshape(-1).tolist()]
             for key, value in history.final.items()}
    if args.json or args.json_out:
        frame = history.to_frame()
        opt.emit_json(args, {"config": _config(args, prob, len(points)), "runs": runs, "final": final,
                             "history": {c: [_shown(c, v) for v in frame[c].tolist()] for c in frame.columns}})
    if not args.json:
        _print(args, prob, runs, final)
    if args.plot:
        _plot_history(history, args.plot, [run["spec"] for run in runs], title=f"{args.loss} on {args.problem}")
        print(f"plot written to {args.plot}")
    return 0


def _metrics(text):
    return text if text in (None, "all") else [name.strip() for name in text.split(",")]


def _shown(key: str, value):
    return max(value, 0.0) if key.startswith("kl_") else value


def _config(args, prob, runs: int) -> dict:
    config = {key: value for key, value in vars(args).items() if key not in ("run", "json", "json_out")}
    return {**config, "problem_repr": repr(prob), "total_runs": runs}


def _print(args, prob, runs, final) -> None:
    lines = [("problem", repr(prob)), ("target", args.target), ("runs", str(len(runs)))]
    lines += [(key, " ".join(str(run[key]) for run in runs)) for key in runs[0] if key != "run"]
    lines += [(key, " ".join(f"{v:.6g}" for v in values)) for key, values in final.items()]
    width = max(len(key) for key, _ in lines)
    for key, text in lines:
        print(f"{key:>{width}}: {text}")
    print(f"(one value per run; {RULE})")
    if args.target == "closed" and all(math.isnan(v) for v in final["kl_to_target"]):
        print("(no closed-form target is known for this loss here: --target solve compares with tb.solve's "
              "exact minimiser)")


def _plot_history(history, path, labels, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    frame = history.to_frame()
    columns = [c for c in ("loss", "kl_to_target") if c in frame and frame[c].notna().any()]
    fig, axes = plt.subplots(1, len(columns), figsize=(4.5 * len(columns), 3.4), squeeze=False)
    for ax, column in zip(axes[0], columns, strict=True):
        for run, part in frame.groupby("run"):
            ax.plot(part["step"], part[column], lw=1, label=f"run {run}: {labels[run]}")
        ax.set_xlabel("step")
        ax.set_ylabel({"loss": "population objective", "kl_to_target": "KL(π‖target)"}[column])
        ax.set_title(column)
        if column == "kl_to_target":
            ax.set_yscale("log")
    if 1 < len(labels) <= 10:
        axes[0][0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120, metadata={"Software": None})
    plt.close(fig)
