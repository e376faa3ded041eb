"""The 10,000-run sweep: wall time and peak memory of ``toybench sweep examples/scale_10k.toml``.

Runs the sweep in a child process (``python -m``-free: ``toybench.cli.main``) into a temporary
directory and reports its wall time, its peak resident memory (the child's ``ru_maxrss``, which
includes the interpreter and torch, about 0.3 GB) and the planner's estimate of the largest chunk.
Goal: under 10 minutes on 2 CPU cores, peak under 4 GiB. ``--spec`` runs another spec,
``--max-memory`` passes a budget, ``--threads`` sets torch's intra-op threads in the child.

    python benchmarks/sweep_scale.py [--spec examples/scale_10k.toml] [--max-memory 3GiB] [--threads 2]
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import sys, torch
from toybench.cli import main
if {threads} > 0:
    torch.set_num_threads({threads})
sys.exit(main(["sweep", {spec!r}, "--out", {out!r}, "--max-memory", {memory!r}, "--device", "cpu", "--no-progress"]))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default=str(ROOT / "examples" / "scale_10k.toml"))
    parser.add_argument("--max-memory", default="3GiB")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()

    from toybench import sweep
    from toybench.sweep.plan import BASE_BYTES
    spec = sweep.load_spec(args.spec)
    the_plan = sweep.plan(spec, max_memory=sweep.parse_memory(args.max_memory))
    largest = max(BASE_BYTES + len(c.runs) * the_plan.bytes_per_run[c.stack] for c in the_plan.chunks)
    steps = sum(c.run_steps for c in the_plan.chunks)
    print(f"{args.spec}: {the_plan.runs} runs, {len(the_plan.chunks)} chunks, {steps:,} run-steps; "
          f"planner's estimate for the largest chunk {largest / 2**20:.0f} MiB", flush=True)
    with tempfile.TemporaryDirectory() as out:
        code = CHILD.format(threads=args.threads, spec=args.spec, out=out, memory=args.max_memory)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024      # Linux: KiB
        rows = sum(1 for _ in (Path(out) / "parts").glob("*.runs.*"))
    print(f"wall {seconds:.0f} s ({seconds / 60:.1f} min), {steps / seconds:,.0f} run-steps/s; "
          f"peak resident memory {peak / 2**30:.2f} GiB; {rows} chunk files written")


if __name__ == "__main__":
    main()
