"""Batched training vs a per-run loop (docs/conventions.md, speed).

Population records of a random P=8, Y=32 problem, Adam (lr 0.05), float32. Four timings, in
one process, alternated over ``--trials`` trials (median reported):

- ``loop``: 256 one-run trainings written as plain autograd + ``torch.optim.Adam``, what a user
  writes without toybench (hand-gathered record log-probs, the loss object's per-record formula,
  ``(weight * loss).sum().backward()``), each for half the steps (with ``--all``, 32 runs) to save
  time: runs are independent, so the rate per run-step is the same;
- ``tb.train B=256``: one call, 256 runs as one tensor program, history at the first and last
  step only (``log_every=steps``, the fastest setting);
- ``tb.train B=256 default``: the same call as a user writes it (default history: a record
  every ``steps // 100`` steps);
- ``tb.train B=1``: one call, one run (``log_every=steps``).

Each call's time includes its setup and its two float64 history records (first and last step).
Throughput is run-steps per second (runs × steps / seconds); the ratio is batched over loop (goal
≥ 60× on a 2-core CPU); the default call's slowdown is fastest over default (goal ≤ 1.5×). ``--threads N`` sets torch's intra-op threads for
all three (default: torch's own). ``--loss NAME`` benchmarks another registered loss (default
hyperparameters), ``--all`` prints the ratio for every registered loss with shorter runs.

    python benchmarks/batched_vs_loop.py [--loss dpo] [--steps 100] [--trials 3] [--threads N] [--all]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import toybench as tb
from toybench.losses.adaptive import with_score_gap
from toybench.losses.fdiv import with_rewards
from toybench.losses.selfplay import with_win_probs
from toybench.policies import Tabular
from toybench.train import train

PROMPTS, RESPONSES, RUNS, LR = 8, 32, 256, 0.05


def make_pairs() -> tb.Pairs:
    """Population records of the benchmark instance, with lengths 1..8 tokens and the named
    fields some losses read (score gap r_w − r_l, exact win probabilities vs π_ref, rewards)."""
    lengths = torch.randint(1, 9, (RESPONSES,), generator=torch.Generator().manual_seed(0)).double()
    prob = tb.Problem.random(tb.FlatSpace(RESPONSES, lengths=lengths), prompts=PROMPTS, seed=0)
    return with_rewards(with_win_probs(with_score_gap(tb.population(prob))))


def loop_trainings(loss, pairs, runs: int, steps: int) -> None:
    """``runs`` one-run trainings, each plain autograd + torch.optim.Adam on a [P, Y] logit table."""
    prob = pairs.problem
    chosen = pairs.prompt[0] * prob.Y + pairs.chosen[0]
    rejected = pairs.prompt[0] * prob.Y + pairs.rejected[0]
    weight = pairs.weight[0].float()[None]
    ref = prob.ref_logp.float().reshape(-1)
    lengths = prob.space.lengths.float()
    per_record = {"chosen_len": lengths[pairs.chosen[0]][None], "rejected_len": lengths[pairs.rejected[0]][None],
                  **{name: value.float() for name, value in pairs.fields.items()}}
    extras = {name: per_record[name] for name in loss.needs}
    ref_chosen, ref_rejected = ref[chosen][None], ref[rejected][None]
    for _ in range(runs):
        logits = prob.ref_logp.float().clone().requires_grad_(True)
        adam = torch.optim.Adam([logits], lr=LR)
        state = loss.init_state(1, logits) if loss.stateful else None
        for _ in range(steps):
            logp = torch.log_softmax(logits, dim=-1).reshape(-1)
            inputs = dict(chosen_logp=logp[chosen][None], rejected_logp=logp[rejected][None],
                          ref_chosen_logp=ref_chosen, ref_rejected_logp=ref_rejected, **extras)
            if state is not None:
                state = loss.update_state(state, inputs, weight)
                inputs["state"] = state
            value = (weight * loss(**inputs)).sum()
            adam.zero_grad()
            value.backward()
            adam.step()


def batched_training(loss, pairs, runs: int, steps: int, default_history: bool = False) -> None:
    log_every = None if default_history else steps
    train(Tabular(pairs.problem, runs=runs), loss, pairs, steps=steps, optimizer="adam", lr=LR, log_every=log_every)


def measure(loss, pairs, steps: int, trials: int, loop_runs: int) -> dict:
    """Median run-steps/s of each contender over alternated trials."""
    loop_steps = max(1, steps // 2)
    contenders = {
        f"loop of {loop_runs} (autograd + torch.optim.Adam)": (
            lambda: loop_trainings(loss, pairs, loop_runs, loop_steps), loop_runs * loop_steps),
        f"tb.train B={RUNS}": (lambda: batched_training(loss, pairs, RUNS, steps), RUNS * steps),
        f"tb.train B={RUNS} default history": (lambda: batched_training(loss, pairs, RUNS, steps, True), RUNS * steps),
        "tb.train B=1": (lambda: batched_training(loss, pairs, 1, steps), steps),
    }
    batched_training(loss, pairs, RUNS, 2)           # warm-up: first-call costs (imports, allocator)
    loop_trainings(loss, pairs, 1, 2)
    rates = {name: [] for name in contenders}
    for _ in range(trials):
        for name, (run, run_steps) in contenders.items():
            start = time.perf_counter()
            run()
            rates[name].append(run_steps / (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in rates.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loss", default="dpo", help="registered loss name (default hyperparameters)")
    parser.add_argument("--steps", type=int, default=None, help="training steps per run (default 100; 50 with --all)")
    parser.add_argument("--trials", type=int, default=None,
                        help="alternated trials, median reported (default 3; 1 with --all)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--all", action="store_true", help="the ratio for every registered loss")
    args = parser.parse_args()
    if args.threads is not None:
        if args.threads < 1:
            parser.error("--threads must be >= 1")
        torch.set_num_threads(args.threads)
    steps = args.steps or (50 if args.all else 100)
    trials = args.trials or (1 if args.all else 3)
    if steps < 1 or trials < 1:
        parser.error("--steps and --trials must be >= 1")
    # token-level losses need a SequenceSpace: benchmarks/transformer_speed.py times sequence training
    names = [n for n in tb.losses.names() if not getattr(tb.losses.REGISTRY[n], "needs_table", False)] \
        if args.all else [args.loss]
    if args.loss not in tb.losses.names():
        parser.error(f"unknown loss {args.loss!r}; valid names: {', '.join(tb.losses.names())}")
    pairs = make_pairs()
    print(f"P={PROMPTS}, Y={RESPONSES}, {pairs.size} population records, Adam lr={LR}, float32, "
          f"{steps} steps, median of {trials} trial(s), torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name in names:
        rates = measure(tb.losses.make(name), pairs, steps, trials, loop_runs=32 if args.all else RUNS)
        loop, batched, default, single = rates.values()
        if args.all:
            print(f"{name:>16}: loop {loop:>9,.0f}  B={RUNS} {batched:>9,.0f}  default {default:>9,.0f}  "
                  f"B=1 {single:>7,.0f} run-steps/s  ratio {batched / loop:5.1f}x  default {batched / default:4.2f}x slower")
        else:
            for label, rate in rates.items():
                print(f"  {label:<45} {rate:>10,.0f} run-steps/s")
            print(f"  ratio tb.train B={RUNS} / loop: {batched / loop:.1f}x")
            print(f"  default history / fastest (log_every=steps): {batched / default:.2f}x slower")


if __name__ == "__main__":
    main()
