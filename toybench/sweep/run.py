"""Training one chunk: its problem, data, loss and policy built with ``[B]`` tensors, one ``tb.train``
call, and two tidy tables (one row per run; one row per run and logged step).

Per-run randomness comes only from the run's seed: ``tb.sample_pairs`` with one seed per run draws
the data set, ``init = "random"`` draws the initial logits from a generator seeded with
``seed + INIT_SEED_OFFSET`` (the autoregressive, mlp and transformer policies: each run's policy is
built alone with that seed, then the runs' parameters are stacked, ``build_policy``), and mini-batches (``batch_size``) are ``tb.train``'s counter-based
draws keyed by the seed, so a run's numbers do not depend on the other runs of its chunk.
"""
from __future__ import annotations

import math
import time

import torch

from ..autoregressive import AutoregressiveTabular
from ..policies import Tabular
from ..shared_policies import MLP
from ..transformer import TinyTransformer
from .spec import BATCH_FULL, SAMPLES_POPULATION, Spec

INIT_SEED_OFFSET = 1_000_003
"""Added to a run's seed for its random init, so init and data draws use different streams."""
POLICY_CLASSES = {"tabular": Tabular, "autoregressive": AutoregressiveTabular, "mlp": MLP,
                  "transformer": TinyTransformer}
"""``policy.class`` → the policy built for a chunk (``spec.SCHEMA`` lists the same names)."""
LENGTH_RANGE = (1, 8)
"""Token lengths of ``lengths = "random"``: integers drawn uniformly from this range (inclusive)."""


def field_providers() -> dict:
    """Per-record input name → the function that adds it to ``Pairs`` (exact, from the problem)."""
    from ..losses import with_score_gap, with_win_probs
    from ..losses.fdiv import with_rewards
    return {"score_gap": with_score_gap, "chosen_win_prob": with_win_probs, "rejected_win_prob": with_win_probs,
            "pair_win_prob": with_win_probs, "chosen_reward": with_rewards, "rejected_reward": with_rewards}


def build_problem(spec: Spec, key: dict):
    """The stack's Problem (float64, CPU; ``tb.train`` moves what it needs to the policy's device)."""
    from ..problem import Problem, e1
    from ..spaces import FlatSpace, SequenceSpace
    if key["family"] == "e1":
        return e1(key["pair_dist"])
    if key["family"] == "sequence":
        return Problem.random(SequenceSpace(key["vocab"], key["max_len"]), prompts=key["prompts"],
                              seed=key["instance"], reward_scale=key["reward_scale"], preference=key["preference"],
                              pair_dist=key["pair_dist"])
    lengths = None
    if spec.value("problem", "lengths") == "random":
        low, high = LENGTH_RANGE
        gen = torch.Generator().manual_seed(key["instance"])
        lengths = torch.randint(low, high + 1, (key["responses"],), generator=gen).double()
    return Problem.random(FlatSpace(key["responses"], lengths=lengths), prompts=key["prompts"],
                          seed=key["instance"], reward_scale=key["reward_scale"], preference=key["preference"],
                          pair_dist=key["pair_dist"])


def build_policy(spec: Spec, key: dict, prob, seeds: list[int], dtype: torch.dtype, device):
    """The chunk's ``[B, ...]`` policy, run b's initial parameters from seed ``seeds[b] + INIT_SEED_OFFSET``
    alone: tabular draws its logits directly; the other classes build run b as a one-run policy with
    that seed (its class's own initialisation and ``policy_sizes``) and stack the runs' parameters
    (``stack_runs``), so a run's start does not depend on the runs stacked with it."""
    name, sizes = key["policy_class"], key.get("policy_sizes", {})
    random_init, scale = spec.value("policy", "init") == "random", spec.value("policy", "init_scale")
    if name == "tabular":
        init = None
        if random_init:
            init = torch.stack([prob.ref_logp + scale * torch.randn(
                prob.ref_logp.shape, generator=torch.Generator().manual_seed(seed + INIT_SEED_OFFSET),
                dtype=torch.float64) for seed in seeds])
        return Tabular(prob, runs=len(seeds), init=init, dtype=dtype, device=device)
    if name == "autoregressive":
        sizes = {"init_scale": scale if random_init else 0.0}
    return stack_runs([POLICY_CLASSES[name](prob, seed=seed + INIT_SEED_OFFSET, dtype=dtype, device=device, **sizes)
                       for seed in seeds])


def stack_runs(policies: list):
    """One policy whose run b is ``policies[b]`` (one-run policies of one class and configuration): a
    fresh ``like(runs=B)`` policy with every ``[B, ...]`` parameter overwritten by the runs' parameters."""
    stacked = policies[0].like(runs=len(policies))
    with torch.no_grad():
        for index, parameter in enumerate(stacked.parameters()):
            parameter.copy_(torch.cat([policy.parameters()[index] for policy in policies]))
    return stacked


def build_loss(key: dict, runs: list[dict]):
    """The stack's loss with its numeric hyperparameters as [B] float64 tensors."""
    from ..losses import make
    numeric = {name[3:]: torch.tensor([run[name] for run in runs], dtype=torch.float64)
               for name in runs[0] if name.startswith("hp_")}
    return make(key["loss"], **key["fixed"], **numeric)


def build_pairs(prob, key: dict, runs: list[dict], loss):
    """Population records (shared, the stack's noise rate) or one sampled data set per run, plus
    the named per-record inputs the loss reads."""
    from ..pairs import population, sample_pairs
    if key["samples"] == SAMPLES_POPULATION:
        pairs = population(prob, key["noise"])
    else:
        noise = torch.tensor([run["noise"] for run in runs], dtype=torch.float64)
        pairs = sample_pairs(prob, key["samples"], noise=noise, seed=[run["seed"] for run in runs])
    providers = field_providers()
    for name in loss.required_inputs(prob.space):
        if name in ("chosen_len", "rejected_len") or name in pairs.fields:
            continue
        if name not in providers:
            raise ValueError(f"loss {key['loss']!r} needs the per-record input {name!r}, which a sweep cannot "
                             f"provide; sweepable inputs: {sorted(providers)}")
        pairs = providers[name](pairs)
    return pairs


def check_stack(spec: Spec, key: dict, runs: list[dict]) -> None:
    """Everything that could fail before training, for every value of the stack: the loss's
    hyperparameter ranges, inputs the problem lacks (lengths, a BT reward), the data draw
    (ValueError naming the loss or the key)."""
    try:
        prob = build_problem(spec, key)
    except ValueError as err:
        raise ValueError(f"[problem] {_describe(key)}: {err}") from err
    try:
        loss = build_loss(key, runs)
    except ValueError as err:
        raise ValueError(f"losses.{key['loss']}: {err}") from err
    try:
        loss.required_inputs(prob.space)
    except ValueError as err:
        raise ValueError(f"losses.{key['loss']}: {err}; set problem.lengths = \"random\"") from err
    try:
        build_pairs(prob, {**key, "samples": min(key["samples"], 2) if key["samples"] else 0}, runs[:1],
                    build_loss(key, runs[:1]))
    except ValueError as err:
        raise ValueError(f"losses.{key['loss']} on {_describe(key)}: {err}") from err


def _describe(key: dict) -> str:
    if key["family"] == "e1":
        return f"e1 ({key['pair_dist']})"
    if key["family"] == "sequence":
        return (f"sequence P={key['prompts']} vocab={key['vocab']} max_len={key['max_len']} "
                f"instance={key['instance']} {key['preference']} {key['pair_dist']}")
    return (f"random P={key['prompts']} Y={key['responses']} instance={key['instance']} {key['preference']} "
            f"{key['pair_dist']}")


def run_chunk(spec: Spec, chunk, device: str = "cpu", dtype: str = "float32"):
    """Train ``chunk`` as one program; return (runs frame, history frame)."""
    import pandas as pd

    from ..train import train
    key, runs = chunk.key, list(chunk.runs)
    prob = build_problem(spec, key)
    loss = build_loss(key, runs)
    pairs = _on(build_pairs(prob, key, runs, loss), device)
    policy = build_policy(spec, key, prob, [run["seed"] for run in runs], getattr(torch, dtype), device)
    target, unsolved = _target(spec, loss, pairs, runs)
    lr = torch.tensor([run["lr"] for run in runs], dtype=torch.float64)
    log_every = key["log_every"] or max(1, key["steps"] // 10)
    batch_size = None if key["batch_size"] == BATCH_FULL else key["batch_size"]
    start = time.perf_counter()
    keep = spec.value("metrics", "record")
    history = train(policy, loss, pairs, steps=key["steps"], optimizer=key["optimizer"], lr=lr,
                    batch_size=batch_size, seed=[run["seed"] for run in runs], log_every=log_every,
                    target=target, metrics=[_history_name(name) for name in keep])
    seconds = time.perf_counter() - start
    steps, records = history.steps, history.records
    columns = {name: torch.stack([_metric(record, name, unsolved) for record in records]) for name in keep}
    run_ids = [run["run_id"] for run in runs]
    hist = pd.DataFrame({"run_id": [r for _ in steps for r in run_ids],
                         "step": [s for s in steps for _ in run_ids],
                         **{name: values.reshape(-1).tolist() for name, values in columns.items()}})
    rows = []
    for b, run in enumerate(runs):
        row = {"run_id": run["run_id"], "chunk": chunk.id, "stack": chunk.stack, "loss": key["loss"],
               **{f"hp_{k}": v for k, v in key["fixed"].items()},
               **{k: v for k, v in run.items() if k.startswith("hp_")},
               **{k: key[k] for k in ("family", "prompts", "responses", "instance", "reward_scale", "preference",
                                      "pair_dist", "samples", "optimizer", "steps", "batch_size")},
               **({k: key[k] for k in ("vocab", "max_len")} if key["family"] == "sequence" else {}),
               "log_every": log_every, "policy": key["policy_class"],
               **{f"policy_{k}": v for k, v in key.get("policy_sizes", {}).items()},
               "noise": run["noise"], "lr": run["lr"], "seed": run["seed"], "init": spec.value("policy", "init"),
               "dtype": dtype, "device": str(device), "chunk_runs": len(runs), "chunk_seconds": seconds}
        row.update({name: float(values[-1, b]) for name, values in columns.items()})
        rows.append(row)
    return pd.DataFrame(rows), hist


def _on(pairs, device):
    """``pairs`` with its record tensors on ``device`` (the problem's tables stay float64 on the CPU;
    ``tb.train`` and the metrics move what they read)."""
    if torch.device(device).type == "cpu":
        return pairs
    import dataclasses
    move = lambda t: t.to(device) if isinstance(t, torch.Tensor) else t  # noqa: E731
    return dataclasses.replace(pairs, prompt=move(pairs.prompt), chosen=move(pairs.chosen),
                               rejected=move(pairs.rejected), weight=move(pairs.weight),
                               fields={k: move(v) for k, v in pairs.fields.items()})


def _history_name(name: str) -> str:
    """``tb.train``'s name of a recorded metric (it calls the objective ``loss``)."""
    return "loss" if name == "objective" else name


def _metric(record: dict, name: str, unsolved: torch.Tensor) -> torch.Tensor:
    """Metric ``name`` of one history record as float64 ``[B]`` on the CPU (History calls the
    objective ``loss``); NaN where the record lacks it (e.g. expected_reward without a Bradley–Terry
    reward) and, for the target columns, for runs without a target."""
    value = record.get(name, record.get("loss") if name == "objective" else None)
    if value is None:
        runs = next(v.shape for k, v in record.items() if k != "step")
        return torch.full(runs, math.nan, dtype=torch.float64)
    value = value.detach().to("cpu", torch.float64)
    if name in ("kl_to_target", "kl_from_target", "tv_to_target"):
        value = torch.where(unsolved, math.nan, value)
    return value


def _target(spec: Spec, loss, pairs, runs: list[dict]):
    """(target log-probs ``[B, P, Y]`` for ``train``, mask of runs without one).

    "closed": the loss's closed form at each run's own noise rate (``loss.target``, evaluated once per
    distinct rate, so a run's target does not depend on the rates of the runs stacked with it);
    "solve": ``tb.solve`` on each run's data, run by run. A run without a target (no closed form, or an
    infimum at infinity) gets π_ref as a stand-in and NaN in its target columns."""
    prob, count = pairs.problem, len(runs)
    stand_in = prob.ref_logp.expand(count, -1, -1)
    if spec.value("metrics", "target") == "closed":
        table, unsolved = stand_in.clone(), torch.ones(count, dtype=torch.bool)
        rates = [run["noise"] for run in runs]
        for rate in sorted(set(rates)):
            found = loss.target(prob, rate)
            if found is not None:
                rows = torch.tensor([r == rate for r in rates])
                table[rows] = found.to(torch.float64).expand(count, -1, -1)[rows]
                unsolved &= ~rows
        return table, unsolved
    import dataclasses

    from ..solve import NoFiniteMinimum, SolveFailed, solve
    targets, unsolved = [], []
    for b in range(count):
        one_loss = dataclasses.replace(loss, **{f.name: _row(getattr(loss, f.name), b, count)
                                                for f in dataclasses.fields(loss)})
        one_pairs = pairs if pairs.runs == 1 else dataclasses.replace(
            pairs, prompt=pairs.prompt[b:b + 1], chosen=pairs.chosen[b:b + 1], rejected=pairs.rejected[b:b + 1],
            weight=pairs.weight[b:b + 1], noise=_row(pairs.noise, b, count),
            fields={k: _row(v, b, count) for k, v in pairs.fields.items()})
        try:
            targets.append(solve(one_loss, one_pairs).logp.reshape(prob.P, prob.Y))
            unsolved.append(False)
        except (NoFiniteMinimum, SolveFailed):   # no certified target: the run is marked unsolved
            targets.append(prob.ref_logp)
            unsolved.append(True)
    return torch.stack(targets), torch.tensor(unsolved)


def _row(value, b: int, runs: int):
    if isinstance(value, torch.Tensor) and value.ndim >= 1 and value.shape[0] == runs and runs > 1:
        return value[b:b + 1]
    return value
