"""``--backend ray``: the sweep's shards as Ray tasks (https://docs.ray.io), one CPU each.

The driver checks the spec and prepares the output directory, then submits shards 1/n … n/n of the
plan (n = ``workers``, default the cluster's CPUs, at most one per chunk); each task runs
``run_sweep`` on its shard and writes its chunks into the same directory, which must therefore be
on a file system every node sees. Ray does the scheduling, retries and placement; nothing here
does. ``ray.init`` joins the cluster at ``address`` (or ``RAY_ADDRESS``) or starts a local
instance, which is shut down again at the end.
"""
from __future__ import annotations

from pathlib import Path

from . import store
from .driver import check_dtype, read, run_sweep
from .plan import DEFAULT_MAX_MEMORY, plan


def _shard_task(text: str, out: str, shard_of: tuple[int, int], device: str, dtype: str, max_memory: int) -> dict:
    import torch
    torch.set_num_threads(1)
    return run_sweep(text, out, shard_of=shard_of, device=device, dtype=dtype, max_memory=max_memory,
                     progress=False, log=lambda _: None, consolidate=False)


def run_on_ray(spec, out, *, workers: int | None = None, device: str = "auto", dtype: str = "float32",
               max_memory: int = DEFAULT_MAX_MEMORY, address: str | None = None, log=print) -> list[dict]:
    """Run ``spec`` (a path or TOML text) into ``out`` as Ray tasks; return each shard's counts."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"--workers must be an integer >= 1, got {workers!r}")
    spec_obj, text = read(spec)
    dtype = check_dtype(dtype)
    chunks = len(plan(spec_obj, dtype, max_memory).chunks)      # checks every run before any starts
    try:
        import ray
    except ImportError as err:
        raise ValueError("--backend ray needs Ray: pip install 'toybench[ray]'") from err
    store.prepare(out, spec_obj.fingerprint(dtype), text)
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        count = min(workers or max(1, int(ray.cluster_resources().get("CPU", 1))), chunks)
        task = ray.remote(num_cpus=1)(_shard_task)
        pending = {task.remote(text, str(Path(out).resolve()), (i, count), device, dtype, max_memory): i
                   for i in range(1, count + 1)}
        log(f"sweep: {chunks} chunks in {count} Ray tasks")
        results = {}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            index = pending.pop(ready[0])
            results[index] = ray.get(ready[0])
            log(f"sweep: shard {index}/{count} done ({results[index]['trained']} runs trained, "
                f"{results[index]['skipped']} skipped)")
    finally:
        if started:
            ray.shutdown()
    written = store.consolidate(out)
    log(f"sweep: tables: {', '.join(str(p) for p in written)}")
    return [results[i] for i in sorted(results)]
