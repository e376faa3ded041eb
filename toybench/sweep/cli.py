"""The ``sweep``, ``plot`` and ``bench`` subcommands, registered on the ``toybench`` parser by
``register(subparsers)``. Each handler returns an exit status; bad input raises ValueError (the
main parser prints it and exits 2)."""
from __future__ import annotations

import argparse
import sys

from .plan import DEFAULT_MAX_MEMORY


def register(commands) -> None:
    """Add ``sweep``, ``plot`` and ``bench`` to an argparse subparsers object."""
    from ..cli._options import HelpFormatter  # the command line's help style ("(default: …)")
    sweep = commands.add_parser(
        "sweep", help="run a TOML sweep spec (or: sweep merge OUT SHARD_DIR...)",
        description="toybench sweep SPEC.toml --out DIR | toybench sweep --template | "
                    "toybench sweep merge OUT [SHARD_DIR ...]", formatter_class=HelpFormatter)
    sweep.add_argument("target", nargs="*", metavar="SPEC | merge OUT DIR...",
                       help="the spec file; or 'merge' followed by the output and the shard directories")
    sweep.add_argument("--out", default=None, metavar="DIR", help="output directory (resumed when it exists)")
    sweep.add_argument("--template", action="store_true", help="print a commented example spec and exit")
    sweep.add_argument("--dry-run", action="store_true", help="print runs, stacks, chunks and memory; train nothing")
    sweep.add_argument("--shard", default=None, metavar="I/N", help="run shard I of N (1 <= I <= N)")
    sweep.add_argument("--backend", choices=("local", "ray"), default="local",
                       help="local: this process; ray: the shards as Ray tasks (RAY_ADDRESS or a local Ray)")
    sweep.add_argument("--workers", type=int, default=None,
                       help="Ray tasks (shards) for --backend ray (default: the cluster's CPUs)")
    sweep.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda when available)")
    sweep.add_argument("--max-memory", default=None, metavar="SIZE",
                       help=f"memory budget per chunk, e.g. 4GiB (default {DEFAULT_MAX_MEMORY >> 30}GiB)")
    sweep.add_argument("--dtype", default="float32", choices=("float32", "float64"), help="training dtype")
    sweep.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None, help="progress bar (default: on a terminal)")
    sweep.set_defaults(run=_sweep)

    plot = commands.add_parser("plot", help="standard plots of a sweep directory (PNGs beside the results)",
                               formatter_class=HelpFormatter)
    plot.add_argument("directory", metavar="DIR", help="a sweep output directory (toybench sweep ... --out DIR)")
    plot.set_defaults(run=_plot)

    bench = commands.add_parser("bench", help="training throughput, batching, roofline and scaling on this machine",
                                formatter_class=HelpFormatter)
    bench.add_argument("--steps", type=int, default=50, help="training steps per timing")
    bench.add_argument("--quick", action="store_true", help="small sizes, one trial (a smoke run)")
    bench.add_argument("--threads", type=int, default=None,
                       help="torch intra-op threads (default: torch's; 1 is faster on a machine other jobs share)")
    bench.set_defaults(run=_bench)


def _sweep(args) -> int:
    from . import driver, store
    from .plan import parse_memory, parse_shard
    from .spec import TEMPLATE
    if args.template:
        print(TEMPLATE.read_text(), end="")
        return 0
    if args.target[:1] == ["merge"]:
        if len(args.target) < 2:
            raise ValueError("usage: toybench sweep merge OUT [SHARD_DIR ...] (OUT alone: rebuild its tables)")
        sources = args.target[2:] or args.target[1:2]
        written = store.merge(args.target[1], sources)
        print(f"merged {len(sources)} directories into {args.target[1]}: "
              f"{', '.join(str(p) for p in written) or 'no finished runs'}")
        return 0
    if len(args.target) != 1:
        raise ValueError("give one spec file (toybench sweep SPEC.toml --out DIR), or --template")
    max_memory = DEFAULT_MAX_MEMORY if args.max_memory is None else parse_memory(args.max_memory)
    shard_of = None if args.shard is None else parse_shard(args.shard)
    spec, _ = driver.read(args.target[0])
    if args.dry_run:
        print(driver.describe(spec, driver.check_dtype(args.dtype), max_memory, shard_of))
        return 0
    if args.out is None:
        raise ValueError("--out DIR is required (where results are written)")
    if args.backend == "ray":
        if shard_of is not None:
            raise ValueError("--shard and --backend ray do not mix: Ray runs every shard itself")
        from .ray_backend import run_on_ray
        run_on_ray(args.target[0], args.out, workers=args.workers, device=args.device, dtype=args.dtype,
                   max_memory=max_memory)
        return 0
    if args.workers is not None:
        raise ValueError("--workers applies to --backend ray only")
    driver.run_sweep(args.target[0], args.out, shard_of=shard_of, device=args.device, dtype=args.dtype,
                     max_memory=max_memory, progress=args.progress,
                     log=lambda message: print(message, file=sys.stderr))
    return 0


def _plot(args) -> int:
    from .plots import plot_sweep
    for path in plot_sweep(args.directory):
        print(path)
    return 0


def _bench(args) -> int:
    from .bench import main
    return main(steps=args.steps, quick=args.quick, threads=args.threads)
