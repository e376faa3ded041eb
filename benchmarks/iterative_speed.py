"""Iterative procedures at B = 256 runs as one tensor program vs a per-run loop, and the Nash oracle's
time as the response count grows.

Part 1: ``procedures.online_dpo`` (exact on-policy population step) and ``procedures.sppo``
(regularised self-play) on a random general preference, P = 8 prompts, Y = 16 responses, float64,
B = 256 runs with different β (or η): iterations per second of the batched call, of 256 one-run
calls of the same procedure, and their ratio (median of three alternated trials).
Part 2: ``tb.optima.nash`` (Newton in log space, with its certificate) on one prompt of a random
intransitive preference at β ∈ {1, 0.01, 0.001}, Y = 4 … 256: median of 5 calls after a warm-up.
Run: ``python benchmarks/iterative_speed.py`` (``--quick`` for a smaller smoke run).
"""
import statistics
import sys
import time

import torch

import toybench as tb
from toybench import procedures

RUNS, PROMPTS, RESPONSES = 256, 8, 16


def seconds(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def batched_vs_loop(name, run_procedure, values, iterations, trials=3):
    batched, looped = [], []
    for _ in range(trials):
        batched.append(seconds(lambda: run_procedure(values, iterations)))
        looped.append(seconds(lambda: [run_procedure(float(v), iterations) for v in values]))
    fast, slow = statistics.median(batched), statistics.median(looped)
    runs = len(values)
    print(f"  {name:12s} batched {runs * iterations / fast:10.0f} run-iterations/s   per-run loop "
          f"{runs * iterations / slow:10.0f}   ratio {slow / fast:5.1f}x")


def main(quick: bool = False) -> None:
    runs = 16 if quick else RUNS
    iterations = 5 if quick else 50
    prob = tb.Problem.random(tb.FlatSpace(RESPONSES), prompts=PROMPTS, seed=0, preference="general", reward_scale=2.0)
    grid = torch.linspace(0.2, 2.0, runs, dtype=torch.float64)
    print(f"Part 1: B={runs} runs, P={PROMPTS}, Y={RESPONSES}, {iterations} iterations, float64, median of 3")
    batched_vs_loop("online_dpo", lambda beta, n: procedures.online_dpo(prob, beta, n, lr=0.5, record_every=n),
                    grid, iterations)
    batched_vs_loop("sppo (τ=0.1)", lambda eta, n: procedures.sppo(prob, eta, n, tau=0.1, record_every=n),
                    grid * 2, iterations)

    print("Part 2: tb.optima.nash on one prompt (Newton, certificate included), median of 5")
    for size in ((4, 16) if quick else (4, 8, 16, 32, 64, 128, 256)):
        game = tb.Problem.random(tb.FlatSpace(size), prompts=1, seed=size, preference="general", reward_scale=2.0)
        for beta in (1.0, 0.01, 0.001):
            def call(game=game, beta=beta):
                return tb.optima.nash(game, beta, return_certificate=True)
            call()
            median = statistics.median(seconds(call) for _ in range(5))
            bound = float(call()[1].tv_bound.max())
            print(f"  Y={size:4d} β={beta:<6g} {median * 1e3:8.2f} ms   TV bound {bound:.1e}")


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
