"""Per-run memory of the sweep's sequence policy classes against ``toybench.sweep.plan.bytes_per_run``.

For each class, a child process trains a sequence sweep (P=4, vocab 3, max_len 4, 50 sampled records,
DPO, 3 steps, float32, one torch thread) with ``--runs`` few and many runs and reports its peak
resident memory (``ru_maxrss``, Linux); the slope between the two, per run, is compared with the
planner's estimate. The constants of ``plan.policy_bytes`` were calibrated with this script.

    python benchmarks/sweep_policy_memory.py [--runs 16 512]
"""
from __future__ import annotations

import argparse
import subprocess
import sys

CLASSES = {"autoregressive": "", "mlp": "embed = 16\nhidden = 64", "transformer": "width = 32\nlayers = 2\nheads = 2"}
SPEC = """
[problem]
family = "sequence"
prompts = 4
vocab = 3
max_len = 4
[policy]
class = "{name}"
{sizes}
[data]
samples = 50
seeds = {seeds}
[train]
steps = 3
[losses.dpo]
beta = 0.5
"""
CHILD = """
import resource, sys, tempfile, torch
from toybench import sweep
from toybench.sweep import driver
torch.set_num_threads(1)
spec = sys.stdin.read()
estimate = sweep.plan(sweep.parse_spec(spec)).bytes_per_run[0]
with tempfile.TemporaryDirectory() as out:
    driver.run_sweep(spec, out, device="cpu", log=lambda message: None)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, estimate)
"""


def peak(name: str, runs: int) -> tuple[int, int]:
    spec = SPEC.format(name=name, sizes=CLASSES[name], seeds=list(range(runs)))
    done = subprocess.run([sys.executable, "-c", CHILD], input=spec, capture_output=True, text=True, check=True)
    measured, estimate = done.stdout.split()
    return int(measured), int(estimate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, nargs=2, default=(16, 512))
    few, many = parser.parse_args().runs
    for name in CLASSES:
        (low, estimate), (high, _) = peak(name, few), peak(name, many)
        slope = (high - low) / (many - few)
        print(f"{name:>14}: measured {slope / 2**10:7.0f} KiB per run, estimate {estimate / 2**10:7.0f} KiB "
              f"(measured/estimate {slope / estimate:.2f})")


if __name__ == "__main__":
    main()
