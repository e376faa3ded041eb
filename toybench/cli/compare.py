"""``toybench compare``: each loss's exact minimiser (tb.solve) against π*_β, side by side."""
from __future__ import annotations

from . import _options as opt


def add_parser(subparsers) -> None:
    parser = opt.add_command(subparsers, "compare", "each loss's exact minimiser against π*_β, side by side",
                             "Solve every loss exactly (tb.solve) on the population of the problem and compare "
                             "the minimiser with π*_β = π_ref·e^{r/β}/Z at the loss's own β (the β column). "
                             "Sweeps (--beta 0.1,1 --noise 0,0.1) give one row per value.")
    parser.add_argument("losses", nargs="+", metavar="LOSS",
                        help="loss specs: name or name:key=value,... e.g. dpo ipo:beta=0.5 cdpo:eps=0.2")
    opt.add_shared_hyperparameters(parser)
    opt.add_problem_options(parser)
    parser.add_argument("--list-size", type=int, default=None, metavar="K",
                        help="solve list losses on every Plackett–Luce ranking of K-subsets instead of on pairs")
    parser.add_argument("--candidates", choices=["uniform", "ref"], default="uniform",
                        help="with --list-size: the law of the K-subsets (uniform, or K draws from π_ref "
                             "without replacement)")
    parser.add_argument("--reward-labels", action="store_true",
                        help="with --list-size: label each list with its items' rewards (soft labels, which fpo "
                             "and exo lists need) instead of by rank")
    parser.add_argument("--csv", type=opt.output_path, default=None, metavar="PATH", help="also write the table as CSV")
    opt.add_json(parser)
    parser.set_defaults(run=run)


def run(args) -> int:
    from ..comparison import compare, format_table
    opt.check_shared_apply(args, args.losses)
    prob = opt.problem(args)
    losses = [opt.make_loss(spec, opt.grid(args, opt.SHARED)) for spec in args.losses]
    for loss in losses:
        opt.check_supplied(loss, prob, args)
    lists = None if args.list_size is None else (args.list_size, args.candidates, args.reward_labels)
    if lists is None and (args.candidates != "uniform" or args.reward_labels):
        raise opt.UsageError("--candidates and --reward-labels describe the lists of --list-size K")
    frame = compare(prob, losses, noise=args.noise, scores=opt.scores(args, prob), lists=lists)
    if args.csv:
        frame.to_csv(args.csv, index=False)
    if args.json or args.json_out:
        opt.emit_json(args, frame.to_dict(orient="records"))
    if not args.json:
        print(f"problem: {prob!r}")
        print(format_table(frame))
    return 0
