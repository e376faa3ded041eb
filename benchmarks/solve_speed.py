"""Wall time of ``tb.solve`` on a population with P = 8 prompts and Y = 64 responses.

Prints the median of 5 timed calls (after one warm-up call) for DPO and IPO (damped Newton),
cDPO (damped Newton) and hinge (HiGHS LP plus its uniqueness check), float64, on this machine.
Run: ``python benchmarks/solve_speed.py``.
"""
import statistics
import time

import toybench as tb
from toybench.solve import solve

PROMPTS, RESPONSES, REPEATS = 8, 64, 5
LOSSES = {"dpo": {"beta": 0.5}, "ipo": {"beta": 0.5}, "cdpo": {"beta": 0.5, "eps": 0.1}, "hinge": {"beta": 0.5}}


def median_seconds(loss, pairs) -> float:
    solve(loss, pairs)
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        solve(loss, pairs)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    prob = tb.Problem.random(tb.FlatSpace(RESPONSES), prompts=PROMPTS, seed=0)
    pairs = tb.population(prob)
    print(f"tb.solve on population(P={PROMPTS}, Y={RESPONSES}): {pairs.size} records, median of {REPEATS}")
    for name, hyper in LOSSES.items():
        loss = tb.losses.make(name, **hyper)
        seconds = median_seconds(loss, pairs)
        case = solve(loss, pairs).case
        print(f"  {name:6s} {case:7s} {seconds * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
