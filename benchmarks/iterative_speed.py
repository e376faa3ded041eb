"""Iterative procedures at B = 256 runs as one tensor program vs a per-run loop, and the Nash oracle's
time as the response count grows.

Part 1: ``procedures.online_dpo`` (exact on-policy population step) and ``procedures.sppo``
(regularised self-play) on a random general preference, P = 8 prompts, Y = 16 responses, float64,
B = 256 runs with different β (or η): iterations per second of the batched call, of 256 one-run
calls of the same procedure, and their ratio (median of three alternated trials).
Part 2: ``tb.optima.nash`` (Newton in log space, with its certificate) on one prompt of a random
intransitive preference at β ∈ {1, 0.01, 0.001}, Y = 4 … 256: median of 5 calls after a warm-up.
Part 3: the worst case of ``tb.optima.nash`` over random near-deterministic games at β = 0.001: for
Y ∈ {2, 3, 4, 6, 8, 12, 16} and 5 seeds, intransitive M = σ(A) with A ~ N(0, s²), s ∈ {3, 10, 30}, and
Bradley–Terry with reward sd 20, reference logits N(0, 4); the slowest call (best of 2 per game).
Run: ``python benchmarks/iterative_speed.py`` (``--quick`` for a smaller smoke run; ``--nash`` for parts 2–3).
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


def near_deterministic_games(sizes=(2, 3, 4, 6, 8, 12, 16), seeds=5):
    """Random games whose preferences are near 0 or 1 (the hard case for the Nash oracle at small β)."""
    for size in sizes:
        for seed in range(seeds):
            for scale in (3.0, 10.0, 30.0):
                yield tb.Problem.random(tb.FlatSpace(size), seed=100 * size + seed, preference="general",
                                        reward_scale=scale, ref_scale=2.0)
            yield tb.Problem.random(tb.FlatSpace(size), seed=100 * size + seed, reward_scale=20.0, ref_scale=2.0)


def nash_worst_case(beta: float = 1e-3, quick: bool = False) -> None:
    games = list(near_deterministic_games((4, 16) if quick else (2, 3, 4, 6, 8, 12, 16), 2 if quick else 5))
    worst, where = 0.0, None
    for game in games:
        took = min(seconds(lambda game=game: tb.optima.nash(game, beta, return_certificate=True)) for _ in range(2))
        if took > worst:
            worst, where = took, game
    print(f"Part 3: tb.optima.nash, worst of {len(games)} near-deterministic games (Y ≤ 16) at β={beta:g}: "
          f"{worst * 1e3:.1f} ms (Y={where.Y})")


def nash_scaling(quick: bool = False) -> None:
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


def main(quick: bool = False, nash_only: bool = False) -> None:
    if nash_only:
        nash_scaling(quick)
        nash_worst_case(quick=quick)
        return
    runs = 16 if quick else RUNS
    iterations = 5 if quick else 50
    prob = tb.Problem.random(tb.FlatSpace(RESPONSES), prompts=PROMPTS, seed=0, preference="general", reward_scale=2.0)
    grid = torch.linspace(0.2, 2.0, runs, dtype=torch.float64)
    print(f"Part 1: B={runs} runs, P={PROMPTS}, Y={RESPONSES}, {iterations} iterations, float64, median of 3")
    batched_vs_loop("online_dpo", lambda beta, n: procedures.online_dpo(prob, beta, n, lr=0.5, record_every=n),
                    grid, iterations)
    batched_vs_loop("sppo (τ=0.1)", lambda eta, n: procedures.sppo(prob, eta, n, tau=0.1, record_every=n),
                    grid * 2, iterations)

    nash_scaling(quick)
    nash_worst_case(quick=quick)

if __name__ == "__main__":
    main(quick="--quick" in sys.argv, nash_only="--nash" in sys.argv)
