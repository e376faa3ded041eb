"""``toybench bench``: how fast training runs on this machine, in one process.

Workload: flat DPO (β 0.1) on the population of a random P=8, Y=32 problem, Adam (lr 0.05), float32,
history at the first and last step only; each timing is the median of ``TRIALS`` (after a warm-up
call) and includes ``tb.train``'s set-up. Printed:

1. run-steps/s (runs × steps / seconds) at B ∈ {1, 64, 256, 1024, 4096};
   and, load-robust, per second of the process's CPU time (equal to the first on an idle machine
   with one thread); items 2–4 give both too;
2. the batched-vs-loop ratio at B = 256: one ``tb.train`` call against plain per-run loops
   (autograd + ``torch.optim.Adam`` on one [P, Y] logit table, the loss's per-record formula), timed
   on ``LOOP_RUNS`` runs (runs are independent, so the rate per run-step carries over);
3. the roofline fraction at B = 256. Byte model per run-step of DPO's path, which evaluates φ′ once
   per unordered pair on an [H, Y] float32 layout (H = ⌊Y/2⌋ partner offsets per response): the
   layout is written (gaps), read and written twice (φ′'s kernel in place, × pair weights, which are
   read once), its last H of Y columns copied (read and written, for the wrap-around: about one
   pass) and read twice (the two sums): 9 × 4·P·H·Y bytes; the [P, Y] float32 logits, gradient and two Adam moments are read and
   written: 8 × 4·P·Y bytes. Roofline = measured copy bandwidth (a ``torch`` copy of a 256 MiB
   float32 buffer: 2 × 256 MiB moved) / bytes per run-step. Blocks of runs keep the layout in
   cache, so the fraction can exceed 1 on machines with large caches;
4. fitted exponents k (on wall and on CPU time) of the cost per run-step, time ∝ Yᵏ (B = 256, Y ∈ {8, 16, 32, 64}) and of
   the cost per step, time ∝ Bᵏ (Y = 32, B ∈ {64, 256, 1024, 4096}): least squares on logs.
5. the share of its threads' CPU time the process got while timed (below 90 %, other jobs were
   running and every rate above is low by about that factor).
"""
from __future__ import annotations

import statistics
import time

import numpy as np
import torch

PROMPTS, RESPONSES, LR, BETA = 8, 32, 0.05, 0.1
BATCHES = (1, 64, 256, 1024, 4096)
Y_SWEEP = (8, 16, 32, 64)
LOOP_RUNS = 16
TRIALS = 3
COPY_BYTES = 256 << 20


def _problem(Y: int = RESPONSES):
    import toybench as tb
    return tb.Problem.random(tb.FlatSpace(Y), prompts=PROMPTS, seed=0)


CPU_SECONDS: list = []
"""(wall, process CPU) seconds of every timing of the last ``main`` call, to report how much CPU the
process got (other jobs on the machine slow the wall clock)."""


def _median_seconds(work, trials: int) -> float:
    work()                                                        # warm-up (first-call costs)
    times = []
    for _ in range(trials):
        start, cpu = time.perf_counter(), time.process_time()
        work()
        times.append(time.perf_counter() - start)
        CPU_SECONDS.append((times[-1], time.process_time() - cpu))
    return statistics.median(times)


def _last_cpu(trials: int) -> float:
    """Median CPU seconds of the last ``trials`` timings."""
    return statistics.median(cpu for _, cpu in CPU_SECONDS[-trials:])


def batched_rate(prob, runs: int, steps: int, trials: int = TRIALS) -> float:
    """run-steps/s of one ``tb.train`` call with ``runs`` runs."""
    import toybench as tb
    pairs, loss = tb.population(prob), tb.losses.make("dpo", beta=BETA)

    def work():
        tb.train(tb.Tabular(prob, runs=runs), loss, pairs, steps=steps, lr=LR, log_every=steps)
    return runs * steps / _median_seconds(work, trials)


def loop_rate(prob, runs: int, steps: int, trials: int = TRIALS) -> float:
    """run-steps/s of plain one-run loops: autograd through the per-record DPO loss, torch.optim.Adam."""
    import toybench as tb
    pairs, loss = tb.population(prob), tb.losses.make("dpo", beta=BETA)
    chosen = pairs.prompt[0] * prob.Y + pairs.chosen[0]
    rejected = pairs.prompt[0] * prob.Y + pairs.rejected[0]
    weight = pairs.weight[0].float()
    ref = prob.ref_logp.float().reshape(-1)

    def work():
        for _ in range(runs):
            logits = prob.ref_logp.float().clone().requires_grad_(True)
            adam = torch.optim.Adam([logits], lr=LR)
            for _ in range(steps):
                logp = torch.log_softmax(logits, dim=-1).reshape(-1)
                value = (weight * loss(logp[chosen], logp[rejected], ref[chosen], ref[rejected])).sum()
                adam.zero_grad()
                value.backward()
                adam.step()
    return runs * steps / _median_seconds(work, trials)


def copy_bandwidth(nbytes: int = COPY_BYTES, trials: int = 5) -> float:
    """Bytes/s of a float32 tensor copy (read + write counted)."""
    source = torch.ones(nbytes // 4)
    target = torch.empty_like(source)
    return 2 * nbytes / _median_seconds(lambda: target.copy_(source), trials)


def bytes_per_run_step(P: int, Y: int) -> int:
    """The byte model of the module docstring (float32)."""
    return 9 * 4 * P * (Y // 2) * Y + 8 * 4 * P * Y


def exponent(sizes, seconds) -> float:
    """k in seconds ∝ sizeᵏ, least squares on logs."""
    return float(np.polyfit(np.log(sizes), np.log(seconds), 1)[0])


def main(steps: int = 50, quick: bool = False, threads: int | None = None, out=print) -> int:
    for name, value in (("--steps", steps), ("--threads", threads)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if steps is None:
        raise ValueError("--steps must be an integer >= 1, got None")
    if threads is not None:
        torch.set_num_threads(threads)
    CPU_SECONDS.clear()
    batches, y_sweep, loop_runs, trials = (BATCHES, Y_SWEEP, LOOP_RUNS, TRIALS) if not quick else \
        ((1, 8, 32), (4, 8), 2, 1)
    middle = 256 if not quick else 32
    prob = _problem()
    out(f"toybench bench: flat DPO, P={PROMPTS}, Y={RESPONSES}, population ({prob.P * prob.Y * (prob.Y - 1)} "
        f"records), Adam, float32, {steps} steps, median of {trials}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads")
    rates, cpu_rates = {}, {}
    for runs in batches:
        rates[runs] = batched_rate(prob, runs, steps, trials)
        cpu_rates[runs] = runs * steps / _last_cpu(trials)
        out(f"  B={runs:<5} {rates[runs]:>12,.0f} run-steps/s  ({cpu_rates[runs]:>9,.0f} per CPU-second)")
    loop_steps = max(1, steps // 2)
    loop = loop_rate(prob, loop_runs, loop_steps, trials)
    loop_cpu = loop_runs * loop_steps / _last_cpu(trials)
    out(f"  loop (autograd + torch.optim.Adam, {loop_runs} runs) {loop:,.0f} run-steps/s ({loop_cpu:,.0f} per "
        f"CPU-second); batched B={middle} / loop = {rates[middle] / loop:.1f}x ({cpu_rates[middle] / loop_cpu:.1f}x "
        f"in CPU time)")
    copy_bytes = COPY_BYTES if not quick else 16 << 20
    bandwidth = copy_bandwidth(copy_bytes)
    bandwidth_cpu = 2 * copy_bytes / _last_cpu(5)
    per_step = bytes_per_run_step(PROMPTS, RESPONSES)
    roofline, roofline_cpu = bandwidth / per_step, bandwidth_cpu / per_step
    out(f"  roofline: copy bandwidth {bandwidth / 1e9:.1f} GB/s ({bandwidth_cpu / 1e9:.1f} per CPU-second), "
        f"{per_step / 1e3:.0f} kB per run-step (9×4·P·⌊Y/2⌋·Y pair layout + 8×4·P·Y tables) → {roofline:,.0f} run-steps/s; "
        f"B={middle} reaches {rates[middle] / roofline:.0%} ({cpu_rates[middle] / roofline_cpu:.0%} in CPU time)")
    seconds_y, cpu_y = [], []
    for Y in y_sweep:
        seconds_y.append(1 / batched_rate(_problem(Y), middle, steps, trials))
        cpu_y.append(_last_cpu(trials) / (middle * steps))
    big = [b for b in batches if b >= 64] or list(batches)
    out(f"  cost per run-step ∝ Y^{exponent(y_sweep, seconds_y):.2f} (CPU time: Y^{exponent(y_sweep, cpu_y):.2f}; "
        f"Y in {list(y_sweep)}, B={middle}); cost per step ∝ B^{exponent(big, [b / rates[b] for b in big]):.2f} "
        f"(CPU time: B^{exponent(big, [b / cpu_rates[b] for b in big]):.2f}; B in {big})")
    wall, cpu = (sum(column) for column in zip(*CPU_SECONDS, strict=True))
    share = cpu / wall / torch.get_num_threads()
    out(f"  this process got {share:.0%} of {torch.get_num_threads()} core(s) while timed"
        + ("" if share > 0.9 else " (other jobs share the machine: the wall-clock rates above are low)"))
    return 0
