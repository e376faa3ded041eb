"""The 10,000-run sweep: wall time, CPU time and peak memory of ``toybench sweep examples/scale_10k.toml``.

Runs the sweep in ``--processes`` child processes (shards i/N into one directory, then
``toybench sweep merge DIR``), each with ``--threads`` torch threads, and reports the wall time,
the children's CPU time, and the peak of their summed resident memory (sampled from /proc every
0.2 s, so Linux only; it includes each interpreter and torch, about 0.35 GB per process) next to the
planner's estimate for the largest chunk. Goal: under 10 minutes on 2 CPU cores, peak under 4 GiB.

    python benchmarks/sweep_scale.py [--spec examples/scale_10k.toml] [--processes 2] [--threads 1] [--max-memory 1GiB]
"""
from __future__ import annotations

import argparse
import os
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
torch.set_num_threads({threads})
sys.exit(main(["sweep", {spec!r}, "--out", {out!r}, "--max-memory", {memory!r}, "--device", "cpu",
               "--no-progress", "--shard", "{index}/{count}"]))
"""


def resident_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default=str(ROOT / "examples" / "scale_10k.toml"))
    parser.add_argument("--processes", type=int, default=2, help="shard processes run at once")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads per process")
    parser.add_argument("--max-memory", default="1GiB", help="chunk memory budget per process")
    args = parser.parse_args()
    if args.processes < 1 or args.threads < 1:
        parser.error("--processes and --threads must be >= 1")

    from toybench import sweep
    from toybench.cli import main as cli
    from toybench.sweep.plan import BASE_BYTES
    the_plan = sweep.plan(sweep.load_spec(args.spec), max_memory=sweep.parse_memory(args.max_memory))
    largest = max(BASE_BYTES + len(c.runs) * the_plan.bytes_per_run[c.stack] for c in the_plan.chunks)
    steps = sum(c.run_steps for c in the_plan.chunks)
    print(f"{args.spec}: {the_plan.runs} runs, {len(the_plan.chunks)} chunks, {steps:,} run-steps; "
          f"{args.processes} processes × {args.threads} thread(s); planner's estimate for the largest chunk "
          f"{largest / 2**20:.0f} MiB", flush=True)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        children = [subprocess.Popen([sys.executable, "-c", CHILD.format(
            threads=args.threads, spec=args.spec, out=out, memory=args.max_memory, index=i, count=args.processes)],
            env={**os.environ, "OMP_NUM_THREADS": str(args.threads)}) for i in range(1, args.processes + 1)]
        peak = 0
        while any(child.poll() is None for child in children):
            peak = max(peak, sum(resident_bytes(child.pid) for child in children))
            time.sleep(0.2)
        if any(child.returncode for child in children):
            sys.exit(f"a shard failed: exit codes {[child.returncode for child in children]}")
        cli(["sweep", "merge", out])
        seconds = time.perf_counter() - start
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        runs, _ = sweep.read_results(out)
    cpu = usage.ru_utime + usage.ru_stime
    print(f"wall {seconds:.0f} s ({seconds / 60:.1f} min), {steps / seconds:,.0f} run-steps/s; children's CPU "
          f"{cpu:.0f} s ({cpu / seconds / args.processes / args.threads:.0%} of the {args.processes * args.threads} "
          f"cores' wall time); peak summed resident memory {peak / 2**30:.2f} GiB; {len(runs)} rows in runs")


if __name__ == "__main__":
    main()
