"""From a checked spec to runs, stacks and chunks.

A *run* is one point of the grid. Runs that share every shape-setting value (the loss and its
non-numeric hyperparameters, the problem family and its sizes, the data size, the policy class, the
optimiser, the step count, ``log_every``, the mini-batch size; for
population data also the noise rate, so the records stay shared) form a *stack*: its numeric loss
hyperparameters, learning rates, noise rates (sampled data) and seeds become ``[B]`` tensors of one
``tb.train`` call. A stack is cut into *chunks* of at most ``chunk_size`` runs, the largest that fits
the memory budget (``bytes_per_run``); a chunk is the unit that is trained, written, resumed and
sharded. The plan is a pure function of the spec and the budget: the same spec and budget give the
same chunks, so shards and resumed sweeps train exactly the programs a single pass would.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass

from .spec import BATCH_FULL, CLASS_KEYS, FULL_BATCH, SAMPLES_POPULATION, Spec

MAX_CHUNK = 1024
"""Most runs per chunk: batching has saturated by then on CPU (``toybench bench``), and it bounds the
work a killed sweep loses."""
DEFAULT_MAX_MEMORY = 2 << 30
BASE_BYTES = 64 << 20
"""Per-chunk overhead independent of B: ``tb.train``'s per-block temporaries (64 runs ×
P·Y·Y) and the allocator's slack."""
HEADROOM = 1.2
"""Margin on the per-run memory model."""
PER_RUN_BYTES = 16 << 10
"""Small per-run objects (per-run generators and draws, history scalars, allocator slack)."""
GRID_FILL = 4
ACTIVATION_SLACK = 1.5
"""Measured activation bytes over the tensors ``policy_bytes`` lists for the mlp and transformer (about 1.35)."""
AUTOREGRESSIVE_TABLES = 28
"""[P, N, A]-sized tables per run that the autoregressive policy's training holds at its peak (measured 12 to
27; the largest kept)."""
"""``tb.train`` lays full-batch records on the [P, Y, Y] grid when it has at most this many cells per record."""


@dataclass(frozen=True)
class Chunk:
    """Runs trained as one program. ``key``: the stack's shared settings; ``runs``: one dict per run
    (its stacked values and ``run_id``); ``index``: position in the plan (sharding uses it)."""

    index: int
    stack: int
    key: dict
    runs: tuple

    @property
    def id(self) -> str:
        return hashlib.sha256(",".join(run["run_id"] for run in self.runs).encode()).hexdigest()[:16]

    @property
    def run_steps(self) -> int:
        return len(self.runs) * self.key["steps"]


@dataclass(frozen=True)
class Plan:
    chunks: tuple
    chunk_sizes: dict
    """stack index → runs per chunk."""
    bytes_per_run: dict
    """stack index → estimated bytes per run."""

    @property
    def runs(self) -> int:
        return sum(len(chunk.runs) for chunk in self.chunks)


def plan(spec: Spec, dtype: str = "float32", max_memory: int = DEFAULT_MAX_MEMORY) -> Plan:
    """Every run of ``spec`` in stacks and chunks (module docstring); ValueError if a loss's values are
    out of range, a loss cannot run on the problem, or one run does not fit ``max_memory`` bytes."""
    from .run import check_stack
    stacks = _stacks(spec, dtype)
    chunks, sizes, per_run = [], {}, {}
    for index, (key, runs) in enumerate(stacks):
        check_stack(spec, key, runs)
        per_run[index] = bytes_per_run(key, dtype)
        fit = (max_memory - BASE_BYTES) // per_run[index]
        if fit < 1:
            raise ValueError(f"--max-memory {max_memory / 2**20:.0f} MiB does not fit one run of stack {index} "
                             f"(about {(BASE_BYTES + per_run[index]) / 2**20:.0f} MiB); raise it")
        sizes[index] = size = min(MAX_CHUNK, fit)
        for start in range(0, len(runs), size):
            chunks.append(Chunk(len(chunks), index, key, tuple(runs[start:start + size])))
    return Plan(tuple(chunks), sizes, per_run)


def bytes_per_run(key: dict, dtype: str) -> int:
    """Estimated peak bytes one run adds to a chunk, with ``HEADROOM`` (checked against measured
    peaks: ``benchmarks/sweep_scale.py``). Population records are shared by the runs of a chunk
    (``BASE_BYTES``). Per run: the float64 record inputs, losses and products of a history record
    (6 tensors per record); the logits, gradient and Adam moments (4 [P, Y] tables in the training
    dtype); ``PER_RUN_BYTES`` of small objects; on ``tb.train``'s record list (stateful losses, data
    far smaller than the [P, Y, Y] grid) batch statistics and step temporaries (24 bytes per record)
    and, for per-run records, their constant inputs (3 per record, training dtype); for sampled data the records and the
    draws they are built from (96 bytes per record; as much per mini-batch draw, an estimate not yet checked against a measured peak) and, on the grid path, their [P, Y, Y] grid
    (float64 while built, the training dtype, float32 counts, a mask and a float64 scatter buffer:
    25 bytes per cell, plus 2 in the training dtype for the unordered-pair tables of DPO-like losses, an
    estimate not yet checked against a measured peak). Measured peaks (P=8, Y=32, 1,000 runs; population, 200, 2,000 and 5,000 records; DPO, IPO, KTO)
    were 0.5–1.0 of the estimate (most conservative for large sampled data sets)."""
    from ..losses import make
    P, Y, n = key["prompts"], key["responses"], key["samples"]
    width = 8 if dtype == "float64" else 4
    population = n == SAMPLES_POPULATION
    records = P * Y * (Y - 1) if population else n
    grid = not make(key["loss"], **key["fixed"]).stateful and (population or P * Y * Y <= GRID_FILL * n)
    per_run = PER_RUN_BYTES + 6 * 8 * records + policy_bytes(key, width)
    if not grid:
        per_run += (24 if population else 3 * width + 24) * records
    if not population:
        per_run += 96 * n + ((25 + 2 * width) * P * Y * Y if grid else 0)
    if key["batch_size"] != BATCH_FULL:
        per_run += 96 * key["batch_size"]
    return int(HEADROOM * per_run)


def _tree(key: dict):
    """The prefix tree a token policy of the stack factorises over (``autoregressive.token_tree``)."""
    from ..spaces import SequenceSpace
    if key["family"] == "sequence":
        return SequenceSpace(key["vocab"], key["max_len"])
    return SequenceSpace(key["responses"], 1)


def policy_bytes(key: dict, width: int) -> int:
    """Estimated bytes of one run's policy in training, ``width`` bytes per number: the parameters
    (``parameter_count``), their gradient and Adam's two moments (4 copies), the [P, Y] table and its
    gradient, plus what the forward pass keeps for the backward one. With P prompts, the prefix
    tree's N prefixes (N_in of them choosing a token, depth < max_len), A = vocab + 1 actions,
    L = max_len, the activations listed are: mlp P·N·((L+1)·e + 2h + 4A) (inputs, hidden pre- and
    post-tanh, outputs); transformer (width d, S = max(L, 1) positions, H heads) per layer
    P·N_in·(16·d + 2·S·d + 2·S·H) (inputs, q, k, v, mixed, the MLP's 4d-wide tensors, the ancestors'
    gathered keys and values, attention scores and weights) plus 4·P·N·A for the head; both times
    ``ACTIVATION_SLACK``. The autoregressive table's are ``AUTOREGRESSIVE_TABLES``·P·N·A. A rough model
    calibrated on one shape only (``benchmarks/sweep_policy_memory.py``: P=4, vocab 3, max_len 4, the
    slope of the peak resident memory from 16 to 512 runs, float32, 50 sampled records): the listed
    tensors explained 0.73 (mlp, embed 16, hidden 64) and 0.75 (transformer, width 32, 2 layers,
    2 heads) of the measured activation bytes, the autoregressive tables 4 of 12 to 27 (the slope
    varied between three measurements); with the constants below the measured slopes were 0.46–0.82
    (autoregressive), 0.73–0.77 (mlp) and 0.75–0.76 (transformer) of the estimate, measured on the
    shared 2-core development machine. Other shapes are not checked."""
    P, Y = key["prompts"], key["responses"]
    name = key["policy_class"]
    numbers = 4 * parameter_count(key)
    if name != "tabular":
        tree = _tree(key)
        N, A, L = tree.prefixes, tree.actions, tree.max_len
        sizes = key.get("policy_sizes", {})
        if name == "autoregressive":
            numbers += AUTOREGRESSIVE_TABLES * P * N * A
        elif name == "mlp":
            numbers += int(ACTIVATION_SLACK * P * N * ((L + 1) * sizes["embed"] + 2 * sizes["hidden"] + 4 * A))
        else:
            d, S, inner = sizes["width"], max(L, 1), int((tree.depth < L).sum())
            numbers += int(ACTIVATION_SLACK * (sizes["layers"] * P * inner * (16 * d + 2 * S * d + 2 * S * sizes["heads"])
                                               + 4 * P * N * A))
        numbers += 2 * P * Y
    return numbers * width


def parameter_count(key: dict) -> int:
    """Trainable numbers of one run: tabular P·Y; autoregressive P·N·A (a logit per prompt, prefix and
    action); mlp P·e + (vocab+1)·e + (L+1)·e·h + h + h·A + A (embeddings, W₁, b₁, W₂, b₂); transformer
    vocab·d + P·d + S·d + layers·12·d² + d·A (embeddings, per block qkv 3d², out d², up and down 4d²
    each, the head)."""
    P, Y = key["prompts"], key["responses"]
    name = key["policy_class"]
    if name == "tabular":
        return P * Y
    tree = _tree(key)
    N, A, L, V = tree.prefixes, tree.actions, tree.max_len, tree.vocab
    sizes = key.get("policy_sizes", {})
    if name == "autoregressive":
        return P * N * A
    if name == "mlp":
        e, h = sizes["embed"], sizes["hidden"]
        return P * e + (V + 1) * e + (L + 1) * e * h + h + h * A + A
    d = sizes["width"]
    return V * d + P * d + max(L, 1) * d + 12 * sizes["layers"] * d * d + d * A


def parse_memory(text: str) -> int:
    """'4GiB', '512MB', '2G', '1500000000' → bytes; ValueError otherwise."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?b?)\s*", str(text).lower())
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"--max-memory {text!r} is not a memory size; write e.g. 4GiB, 512MB or 2G")
    power = " kmgt".index(match.group(2) or " ")
    base = 1000 if match.group(3) == "b" and match.group(2) else 1024
    return int(float(match.group(1)) * base**power)


def shard(plan_: Plan, index: int, count: int) -> list:
    """Shard ``index`` of ``count`` (1-based): chunks dealt, largest first (run-steps, then plan
    position), each to the shard with the least work so far (the lowest-numbered on a tie). A pure
    function of the plan, so the ``count`` shards hold every chunk exactly once."""
    load, owner = [0] * count, {}
    for chunk in sorted(plan_.chunks, key=lambda c: (-c.run_steps, c.index)):
        least = min(range(count), key=lambda s: (load[s], s))
        load[least] += chunk.run_steps
        owner[chunk.index] = least
    return [chunk for chunk in plan_.chunks if owner[chunk.index] == index - 1]


def parse_shard(text: str) -> tuple[int, int]:
    """'i/n' with 1 <= i <= n → (i, n); ValueError otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise ValueError(f"--shard {text!r} is not allowed; write i/n with 1 <= i <= n (e.g. 1/4 ... 4/4)")
    return int(match.group(1)), int(match.group(2))


E1_SHAPE = {"prompts": [1], "responses": [4], "instance": [0], "reward_scale": [1.0], "preference": ["bt"]}
"""The fixed problem keys of family "e1" (the random-problem grids do not apply to it)."""


def _stacks(spec: Spec, dtype: str) -> list[tuple[dict, list]]:
    """(stack key, runs) in a fixed order: problem, data, training, loss, then the stacked axes."""
    problem, data, train = spec.grids["problem"], spec.grids["data"], spec.grids["train"]
    stacks = []
    for family in problem["family"]:
        shape = E1_SHAPE if family == "e1" else {name: problem[name] for name in E1_SHAPE}
        if family == "sequence":
            shape = {**{k: v for k, v in shape.items() if k != "responses"}, "vocab": problem["vocab"],
                     "max_len": problem["max_len"]}
        shared = {"family": [family], **shape, "pair_dist": problem["pair_dist"],
                  "samples": [SAMPLES_POPULATION if s == "population" else s for s in data["samples"]],
                  "policy_class": _policies(spec), "optimizer": train["optimizer"],
                  "steps": train["steps"], "log_every": train["log_every"],
                  "batch_size": [BATCH_FULL if b == FULL_BATCH else b for b in train["batch_size"]]}
        for values in itertools.product(*shared.values()):
            base = dict(zip(shared, values, strict=True))
            base["policy_class"], sizes = base["policy_class"]
            if sizes:
                base["policy_sizes"] = dict(sizes)
            if family == "sequence":
                base["responses"] = _tree(base).size
            population = base["samples"] == SAMPLES_POPULATION
            for noise in data["noise"] if population else [None]:
                for loss, hypers in spec.losses.items():
                    numeric, fixed = _split_hypers(loss, hypers)
                    for fixed_values in itertools.product(*fixed.values()):
                        key = {**base, "noise": noise, "loss": loss,
                               "fixed": dict(zip(fixed, fixed_values, strict=True))}
                        stacks.append((key, _runs(key, numeric, data, train, dtype, spec)))
    return stacks


def _policies(spec: Spec) -> list[tuple]:
    """(class, ((size key, value), ...)) for every class of the grid and every combination of its size keys."""
    grids = spec.grids["policy"]
    cells = []
    for name in grids["class"]:
        sizes = [key for key in CLASS_KEYS[name] if key not in ("init", "init_scale")]
        cells += [(name, tuple(zip(sizes, values, strict=True)))
                  for values in itertools.product(*(grids[key] for key in sizes))]
    return cells


def _split_hypers(loss: str, hypers: dict) -> tuple[dict, dict]:
    """Hyperparameters with a float default and number values become [B] tensors; the rest are
    stack keys (booleans, strings, integers such as beta_dpo's seed, optional floats)."""
    from ..losses import fields
    defaults = fields(loss)
    numeric, fixed = {}, {}
    for name, values in hypers.items():
        tensorable = isinstance(defaults[name], float) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        (numeric if tensorable else fixed)[name] = [float(v) for v in values] if tensorable else values
    return numeric, fixed


def _runs(key: dict, numeric: dict, data: dict, train: dict, dtype: str, spec: Spec) -> list[dict]:
    axes = {"noise": [key["noise"]] if key["noise"] is not None else data["noise"],
            "lr": [float(v) for v in train["lr"]], **{f"hp_{k}": v for k, v in numeric.items()},
            "seed": data["seeds"]}
    runs = []
    for values in itertools.product(*axes.values()):
        run = dict(zip(axes, values, strict=True))
        run["noise"] = float(run["noise"])
        policy = {name: spec.grids["policy"][name] for name in ("init", "init_scale")
                  if name in CLASS_KEYS[key["policy_class"]]}
        identity = {**key, **run, "dtype": dtype, "policy": policy, "lengths": spec.grids["problem"]["lengths"]}
        run["run_id"] = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
        runs.append(run)
    return runs
