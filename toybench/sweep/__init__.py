"""Sweeps: thousands of runs from one TOML spec, stacked into few tensor programs, resumable and sharded.

``toybench sweep SPEC.toml --out DIR`` (or ``run_sweep``) checks the whole spec (``spec``), expands it
into runs, stacks runs that share shapes into ``[B]`` programs cut into memory-sized chunks
(``plan``), trains each chunk with one ``tb.train`` call (``run``) and writes tidy tables
(``store``). ``merge`` joins shard directories, ``ray_backend`` runs the shards on Ray, ``plots``
draws the standard views and ``bench`` measures throughput. See the README's "Sweeps" section.
"""
from .driver import describe, run_sweep
from .plan import Chunk, Plan, parse_memory, parse_shard, plan, shard
from .spec import TEMPLATE, Spec, load_spec, parse_spec
from .store import merge, read_results

__all__ = ["Spec", "load_spec", "parse_spec", "TEMPLATE", "Plan", "Chunk", "plan", "shard", "parse_shard",
           "parse_memory", "describe", "run_sweep", "merge", "read_results"]
