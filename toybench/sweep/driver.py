"""Running a sweep on this machine: plan, skip finished runs, train chunk after chunk, write each
chunk as it finishes, consolidate the tables."""
from __future__ import annotations

import sys
from pathlib import Path

import torch

from . import store
from .plan import BASE_BYTES, DEFAULT_MAX_MEMORY, parse_shard, plan, shard
from .run import run_chunk
from .spec import Spec, load_spec, parse_spec

DTYPES = ("float32", "float64")
DEVICES = ("cpu", "cuda", "auto")


def resolve_device(device: str) -> str:
    """"auto" → "cuda" when torch sees a GPU, else "cpu"; "cuda" without one is a ValueError."""
    if device not in DEVICES and not str(device).startswith("cuda:"):
        raise ValueError(f"--device {device!r} is not allowed; use one of {list(DEVICES)} (or cuda:N)")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but torch sees no CUDA device; use --device cpu or auto")
    return device


def check_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise ValueError(f"--dtype {dtype!r} is not allowed; use one of {list(DTYPES)}")
    return dtype


def read(spec) -> tuple[Spec, str]:
    """(checked spec, its text) from a path or TOML text."""
    if isinstance(spec, Spec):
        raise ValueError("pass the spec file's path or its TOML text (the text is stored beside the results)")
    path = Path(spec)
    if "\n" not in str(spec) and path.suffix == ".toml":
        return load_spec(path), path.read_text()
    return parse_spec(str(spec)), str(spec)


def describe(spec: Spec, dtype: str = "float32", max_memory: int = DEFAULT_MAX_MEMORY, shard_of=None) -> str:
    """The ``--dry-run`` report: stacks, their chunks and varying values, the memory estimate."""
    the_plan = plan(spec, dtype, max_memory)
    chunks = the_plan.chunks if shard_of is None else shard(the_plan, *shard_of)
    lines = [f"{the_plan.runs} runs in {len(the_plan.chunks)} chunks ({len(the_plan.chunk_sizes)} stacks); "
             f"dtype {dtype}; memory budget {max_memory / 2**20:.0f} MiB"]
    if shard_of is not None:
        lines.append(f"shard {shard_of[0]}/{shard_of[1]}: {len(chunks)} chunks, {sum(len(c.runs) for c in chunks)} runs")
    stacks = {}
    for chunk in chunks:
        stacks.setdefault(chunk.stack, []).append(chunk)
    for index, members in stacks.items():
        key = members[0].key
        runs = [run for chunk in members for run in chunk.runs]
        varying = {name: sorted({run[name] for run in runs}) for name in runs[0] if name != "run_id"}
        varying = {k: v for k, v in varying.items() if len(v) > 1}
        fixed = ", ".join(f"{k}={v}" for k, v in key["fixed"].items())
        data = "population" if key["samples"] == 0 else f"n={key['samples']}"
        noise = "" if key["noise"] is None else f" noise={key['noise']}"
        size = the_plan.chunk_sizes[index]
        peak = BASE_BYTES + min(size, len(runs)) * the_plan.bytes_per_run[index]
        lines.append(f"stack {index}: {key['loss']}{'(' + fixed + ')' if fixed else ''} on {key['family']}{_space(key)} "
                     f"P={key['prompts']} Y={key['responses']} instance={key['instance']} {data}{noise}, "
                     f"{_policy(key)}, {key['optimizer']} {key['steps']} steps, "
                     f"{'full batch' if key['batch_size'] == 0 else 'batch ' + str(key['batch_size'])}, "
                     f"log_every {key['log_every'] or 'default'}: {len(runs)} runs, chunks of <= {size} "
                     f"(est. peak {peak / 2**20:.0f} MiB per chunk, {the_plan.bytes_per_run[index] / 2**10:.0f} KiB per run)")
        lines.append("    stacked [B] values: " + ("; ".join(f"{k} {_show(v)}" for k, v in varying.items()) or "none"))
        for chunk in members:
            lines.append(f"    chunk {chunk.index} ({chunk.id}): {len(chunk.runs)} runs")
    peaks = [BASE_BYTES + len(c.runs) * the_plan.bytes_per_run[c.stack] for c in chunks]
    lines.append(f"memory estimate: largest chunk {max(peaks, default=0) / 2**20:.0f} MiB (budget "
                 f"{max_memory / 2**20:.0f} MiB; the model is toybench.sweep.plan.bytes_per_run)")
    if _seeds_idle(spec):
        lines.append("note: data.seeds change nothing here (population data, policy.init = 'ref'): "
                     "those runs repeat each other")
    return "\n".join(lines)


def _space(key: dict) -> str:
    return f" vocab={key['vocab']} max_len={key['max_len']}" if key["family"] == "sequence" else ""


def _policy(key: dict) -> str:
    """The class and its sizes (mlp, transformer)."""
    sizes = ", ".join(f"{k}={v}" for k, v in key.get("policy_sizes", {}).items())
    return f"{key['policy_class']}{'(' + sizes + ')' if sizes else ''}"


def _seeds_idle(spec: Spec) -> bool:
    return (len(spec.value("data", "seeds")) > 1 and spec.value("data", "samples") == ["population"]
            and spec.value("policy", "init") == "ref"
            and set(spec.value("policy", "class")) <= {"tabular", "autoregressive"})


def _show(values: list) -> str:
    shown = ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values[:6])
    return f"[{shown}{', ...' if len(values) > 6 else ''}] ({len(values)})"


def run_sweep(spec, out, *, shard_of: tuple[int, int] | str | None = None, device: str = "auto",
              dtype: str = "float32", max_memory: int = DEFAULT_MAX_MEMORY, progress: bool | None = None,
              log=print, consolidate: bool = True) -> dict:
    """Run ``spec`` (a path or TOML text) into ``out``: plan (and check) every run first, skip runs
    already in ``out``, train each remaining chunk of this shard as one program, write it, and
    consolidate the tables (``consolidate=False``: leave that to whoever merges). Returns counts: ``runs`` (planned in this shard), ``skipped``, ``trained``,
    ``chunk_size`` (largest chunk), ``seconds``."""
    import time
    spec_obj, text = read(spec)
    dtype, device = check_dtype(dtype), resolve_device(device)
    if isinstance(shard_of, str):
        shard_of = parse_shard(shard_of)
    the_plan = plan(spec_obj, dtype, max_memory)
    chunks = list(the_plan.chunks) if shard_of is None else shard(the_plan, *shard_of)
    out = store.prepare(out, spec_obj.fingerprint(dtype), text)
    done = store.done_runs(out)
    pending = [chunk for chunk in chunks if not all(run["run_id"] in done for run in chunk.runs)]
    planned = sum(len(chunk.runs) for chunk in chunks)
    skipped = planned - sum(len(chunk.runs) for chunk in pending)
    size = max((len(chunk.runs) for chunk in pending), default=0)
    log(f"sweep: {planned} runs{'' if shard_of is None else f' in shard {shard_of[0]}/{shard_of[1]}'}, "
        f"{skipped} already done, {len(pending)} chunks to train (chunk size {size}, budget "
        f"{max_memory / 2**20:.0f} MiB), device {device}, {dtype}")
    if _seeds_idle(spec_obj):
        log("sweep: note: data.seeds change nothing here (population data, policy.init = 'ref')")
    bar = _bar(sum(chunk.run_steps for chunk in pending), planned, skipped, progress)
    start, trained = time.perf_counter(), 0
    for chunk in pending:
        runs, history = run_chunk(spec_obj, chunk, device, dtype)
        store.write_chunk(out, chunk.id, runs, history)
        trained += len(chunk.runs)
        if bar is not None:
            bar.set_postfix_str(f"runs {skipped + trained}/{planned}", refresh=False)
            bar.update(chunk.run_steps)
    if bar is not None:
        bar.close()
    written = store.consolidate(out) if consolidate else []
    seconds = time.perf_counter() - start
    log(f"sweep: trained {trained} runs in {seconds:.1f} s; tables: {', '.join(str(p) for p in written) or 'not yet'}")
    return {"runs": planned, "skipped": skipped, "trained": trained, "chunk_size": size, "seconds": seconds}


def _bar(total: int, planned: int, skipped: int, progress):
    """A tqdm bar over run-steps (its rate is run-steps/s, its ETA the sweep's), showing runs done;
    ``progress=None`` shows it only on a terminal."""
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress or total == 0:
        return None
    from tqdm import tqdm
    bar = tqdm(total=total, desc="sweep", unit="run-step", unit_scale=True, dynamic_ncols=True)
    bar.set_postfix_str(f"runs {skipped}/{planned}")
    return bar
