"""Tiny transformers trained exactly over a whole token space: batched runs vs one at a time.

Prints, in one process (float32, whatever device ``--device`` names; default CPU):

1. ``tb.train`` of B = 64 ``TinyTransformer`` runs (vocab 3, max_len 5: 363 strings; width 32, 2 layers,
   2 heads) on the exact population DPO objective (every ordered pair of distinct strings), Adam, as one
   tensor program, vs 64 one-run ``tb.train`` calls — median of ``--trials`` alternated trials; goal ≥ 1.5×;
2. the achieved GFLOP/s of a batched training step (``step_flops``: the matmul FLOPs the exact log-probs
   need, counted analytically, ×3 for forward and backward; the time of a step of at least 10, without
   ``tb.train``'s set-up)
   as a fraction of this machine's float32 matmul rate (1024² matmuls) measured in the same run (goal ≥ 30%);
3. the time of one exact forward (every string's log-prob) over vocab 4, max_len 6 (5460 strings);
4. how step time grows with the space: fitted exponents of step time in vocab (max_len 4) and in the
   number of strings over max_len (vocab 3).

    python benchmarks/transformer_speed.py [--steps 3] [--trials 3] [--device cuda] [--threads 1] [--quick]

Measured on the idle 2-core development machine (torch 2.13 CPU, ``--trials 3``), 2026-12-07, whose
host multiplies 1024² float32 matrices at 281–308 GFLOP/s (2 threads; 152 with one), against 206 on
the day of the previous figures: 2 threads: 1. ratio 8.4–9.3×; 2. a 37–44 ms step, 27–32 GFLOP/s:
9.3–11.1%; 3. 3.5–3.8 ms; one thread: 1. 6.2×; 2. 72 ms, 16.3 vs 152 GFLOP/s: 10.7%; 3. 5.0 ms.
In the same session, the step took 48–49 ms (8.3–8.5%) before attention ran prefix-major and 47.6 ms
(8.0%) before the loss side's pair grid did its [B, P, Y] work once per step; an earlier day (206
GFLOP/s matmuls, faster elementwise work) gave 30.6 ms, 19.6%.
Why 30% is out of reach here: 30% of 308 GFLOP/s for 1.175 GFLOP is a 12.7 ms step, and the step's
own batched products ([64, 121, 32]·[64, 32, 96]-sized) run at 144–237 GFLOP/s alone and take ~9 ms
of the step (torch.profiler: bmm and baddbmm, ~130 GFLOP/s), so everything else — attention over the ancestors
(gathers, products, sums, index_add), LayerNorm, GELU, softmax, the loss side's σ over 64 × 363 × 181
pairs, Adam — would have to fit in ~4 ms; it takes ~30 ms as eager kernels at width 32.
Tried on the same day, none near a 12.7 ms step: ``torch.compile`` (inductor, default mode) of the
forward pass plus autograd, 36 ms per step against the closed-form ``vjp``'s 42 ms, after a 34 s
compile; attention as masked dense products over all 121 inner prefixes (``baddbmm``, softmax over
[B·H, 121, 121], ``bmm``), 8.5 + 12.6 ms per layer forward + backward against the gathered
ancestors' 6.8 + 4.4 ms (these small batched products run at ~50 GFLOP/s); attention by depth
level without gathers, the same sums, 9.0 against 7.5 ms per layer (its op count grows as max_len²/2);
the gathered layout run prefix-major instead of run-major (kept): 2.0–2.5 + 3.1–4.2 ms against
3.1–3.4 + 4.8–5.1 ms per layer.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

import toybench as tb

WIDTH, LAYERS, HEADS, RUNS = 32, 2, 2, 64


def problem(vocab: int, max_len: int, device) -> tb.Problem:
    """A random one-prompt problem over every string of 1..max_len tokens (the Problem stays on the CPU;
    policies and training follow ``device``)."""
    return tb.Problem.random(tb.SequenceSpace(vocab, max_len), prompts=1, seed=0)


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def train_times(prob, pairs, runs: int, steps: int, device, calls: int = 1) -> tuple[float, float]:
    """(wall-clock, CPU) seconds for ``calls`` trainings of ``runs`` runs each (model construction
    excluded); CPU time is this process's, all threads together."""
    models = [tb.TinyTransformer(prob, runs=runs, width=WIDTH, layers=LAYERS, heads=HEADS, seed=c, device=device)
              for c in range(calls)]
    loss = tb.losses.make("dpo", beta=0.1)
    sync(device)
    start, cpu = time.perf_counter(), time.process_time()
    for model in models:
        tb.train(model, loss, pairs, steps=steps, lr=1e-3, log_every=steps)
    sync(device)
    return time.perf_counter() - start, time.process_time() - cpu


def train_seconds(prob, pairs, runs: int, steps: int, device, calls: int = 1) -> float:
    """Wall-clock seconds of ``train_times``."""
    return train_times(prob, pairs, runs, steps, device, calls)[0]


def step_flops(policy) -> float:
    """Matmul FLOPs of one forward pass of every run (2·m·n·k per product), counting only what the
    exact log-probs need: one state per prefix that chooses a token (N_inner = Σ_{k<max_len} vocab^k
    per prompt, not the tokens of teacher-forced strings, which repeat shared prefixes), per layer
    the QKV, output and MLP products (2·d²·(3 + 1 + 4 + 4) per state) and attention over the
    prefix's own depth + 1 positions (2·(depth + 1)·d for the scores, as much for the mix), and the
    output head (2·d·A per state)."""
    tree, P, d = policy.tree, policy.problem.P, policy.width
    depth = tree.depth[tree.depth < tree.max_len]
    per_layer = 2 * len(depth) * d * d * (3 + 1 + 4 + 4) + 4 * int((depth + 1).sum()) * d
    head = 2 * len(depth) * d * tree.actions
    return policy.runs * P * (policy.layers * per_layer + head)


def matmul_rate(device, size: int = 1024, repeats: int = 20) -> tuple[float, float]:
    """Measured float32 matmul FLOP/s: (per wall-clock second, per CPU second)."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    a @ b
    sync(device)
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        a @ b
    sync(device)
    flops = 2 * size ** 3 * repeats
    return flops / (time.perf_counter() - start), flops / (time.process_time() - cpu)


def step_seconds(prob, pairs, runs: int, steps: int, device, trials: int) -> tuple[float, float]:
    """(wall-clock, CPU) seconds per step of ``tb.train`` without its set-up and its first and last
    float64 records: (time of 1 + ``steps`` steps − time of 1 step) / ``steps``, each time the fastest
    of ``trials`` (a difference of minima: the minimum of differences would favour a slow short run)."""
    long = [train_times(prob, pairs, runs, 1 + steps, device) for _ in range(trials)]
    short = [train_times(prob, pairs, runs, 1, device) for _ in range(trials)]
    return tuple((min(t[i] for t in long) - min(t[i] for t in short)) / steps for i in (0, 1))


def step_time(vocab, max_len, runs, steps, device, repeats: int = 3) -> float:
    """Seconds per training step: the fastest of ``repeats`` timings (robust to other jobs on the machine)."""
    prob = problem(vocab, max_len, device)
    pairs = tb.population(prob)
    train_seconds(prob, pairs, runs, 1, device)          # warm-up
    return min(train_seconds(prob, pairs, runs, steps, device) for _ in range(repeats)) / steps


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run, not a measurement")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = args.device
    runs = 4 if args.quick else RUNS
    vocab, max_len = (2, 3) if args.quick else (3, 5)
    prob = problem(vocab, max_len, device)
    pairs = tb.population(prob)
    print(f"device {device}; torch threads {torch.get_num_threads()}; space vocab {vocab}, max_len {max_len} "
          f"({prob.Y} strings, {pairs.size} population records); width {WIDTH}, {LAYERS} layers, B = {runs}")

    train_seconds(prob, pairs, runs, 1, device)
    train_seconds(prob, pairs, 1, 1, device)
    batched, looped = [], []
    for _ in range(args.trials):
        batched.append(train_seconds(prob, pairs, runs, args.steps, device))
        looped.append(train_seconds(prob, pairs, 1, args.steps, device, calls=runs))
    b, lo = statistics.median(batched), statistics.median(looped)
    print(f"1. B={runs} as one program: {b:.3f} s; {runs} one-run trainings: {lo:.3f} s "
          f"({runs * args.steps / b:.1f} vs {runs * args.steps / lo:.1f} run-steps/s); ratio {lo / b:.2f}x (goal >= 1.5x)")

    model = tb.TinyTransformer(prob, runs=runs, width=WIDTH, layers=LAYERS, heads=HEADS, device=device)
    step, step_cpu = step_seconds(prob, pairs, runs, max(args.steps, 10), device, args.trials)
    (rate, rate_cpu), flops = matmul_rate(device), 3 * step_flops(model)
    print(f"2. training step {step * 1e3:.1f} ms: {flops / step / 1e9:.2f} GFLOP/s achieved ({flops / 1e9:.3f} GFLOP: "
          f"needed matmul FLOPs x3) vs measured float32 matmul {rate / 1e9:.1f} GFLOP/s: "
          f"{100 * flops / step / rate:.1f}% (goal >= 30%)")
    if torch.device(device).type == "cpu":
        print(f"   in CPU time (robust to other jobs on the machine): step {step_cpu * 1e3:.1f} ms, "
              f"{flops / step_cpu / 1e9:.2f} vs {rate_cpu / 1e9:.1f} GFLOP per CPU second: "
              f"{100 * flops / step_cpu / rate_cpu:.1f}%")

    big_vocab, big_len = (2, 3) if args.quick else (4, 6)
    big = tb.TinyTransformer(problem(big_vocab, big_len, device), width=WIDTH, layers=LAYERS, heads=HEADS,
                             device=device)
    forward_times = []
    with torch.no_grad():
        big.logp()
        for _ in range(3):
            sync(device)
            start = time.perf_counter()
            big.logp()
            sync(device)
            forward_times.append(time.perf_counter() - start)
    print(f"3. exact forward over vocab {big_vocab}, max_len {big_len} ({big.problem.Y} strings), one run: "
          f"{min(forward_times) * 1e3:.1f} ms (fastest of 3)")

    scan_runs, scan_steps = (2, 2) if args.quick else (8, 3)
    vocabs = (2, 3) if args.quick else (2, 3, 4)
    times = [step_time(v, 3 if args.quick else 4, scan_runs, scan_steps, device) for v in vocabs]
    slope_vocab = np.polyfit(np.log(vocabs), np.log(times), 1)[0]
    lengths = (2, 3) if args.quick else (3, 4, 5)
    sizes = [tb.SequenceSpace(3, n).size for n in lengths]
    times_len = [step_time(3, n, scan_runs, scan_steps, device) for n in lengths]
    slope_size = np.polyfit(np.log(sizes), np.log(times_len), 1)[0]
    print(f"4. step time (B={scan_runs}) over vocab {list(vocabs)}: "
          f"{', '.join(f'{t * 1e3:.0f} ms' for t in times)} -> time ~ vocab^{slope_vocab:.2f}; "
          f"over max_len {list(lengths)} (vocab 3, {sizes} strings): "
          f"{', '.join(f'{t * 1e3:.0f} ms' for t in times_len)} -> time ~ strings^{slope_size:.2f} "
          f"(population pairs grow as strings^2)")


if __name__ == "__main__":
    main()
