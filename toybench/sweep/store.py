"""The output directory of a sweep.

    DIR/sweep.json     the spec's fingerprint (hash of the checked spec and dtype) and the layout version
    DIR/spec.toml      the spec as given
    DIR/parts/         one ``<chunk>.history.*`` and ``<chunk>.runs.*`` per finished chunk
    DIR/runs.*         one row per run: spec values and final metrics (all parts together)
    DIR/history.*      one row per run and logged step (join on ``run_id``)

Tables are Parquet (pyarrow, the ``sweep`` extra) or CSV where pyarrow is missing. Every file is
written to a temporary name in the same directory and renamed over the final one, so a killed
sweep leaves finished files or none; a chunk counts as done once its runs file exists (written
after its history), and re-running skips the runs it holds. A directory written by a spec with
another fingerprint is refused.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

LAYOUT_VERSION = 1
META = "sweep.json"
PARTS = "parts"


def table_format() -> str:
    """"parquet" when pyarrow is importable, else "csv"."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return "csv"
    return "parquet"


def atomic_write_text(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(text)
    os.replace(temporary, path)


def atomic_write_frame(frame, path: Path) -> None:
    """Write a DataFrame as Parquet or CSV (by ``path``'s suffix) through a temporary file."""
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    frame = _tidy(frame)
    if path.suffix == ".parquet":
        frame.to_parquet(temporary, index=False)
    else:
        frame.to_csv(temporary, index=False)
    os.replace(temporary, path)


def _tidy(frame):
    """Columns of one kind each (Parquet needs it): numbers stay numbers, booleans become nullable
    booleans, anything mixed becomes text."""
    import pandas as pd
    frame = frame.copy()
    for column in [c for c in frame.columns if pd.api.types.is_object_dtype(frame[c])]:
        present = frame[column].dropna()
        if len(present) and all(isinstance(v, bool) for v in present):
            frame[column] = frame[column].astype("boolean")
        elif len(present) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
            frame[column] = pd.to_numeric(frame[column])
        else:
            frame[column] = [None if pd.isna(v) else str(v) for v in frame[column]]
    return frame


def read_frame(path: Path):
    import pandas as pd
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def prepare(out, fingerprint: str, spec_text: str) -> Path:
    """Create ``out`` for a sweep, or check that it holds the same sweep; ValueError otherwise."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} exists and is not a directory")
    found = fingerprint_of(out)
    if found is not None and found != fingerprint:
        raise ValueError(f"{str(out)!r} holds results of a different sweep (spec fingerprint {found}, this spec "
                         f"{fingerprint}); use another --out directory")
    if found is None and out.exists() and any(out.iterdir()):
        raise ValueError(f"{str(out)!r} is not empty and holds no sweep; use a new or empty --out directory")
    (out / PARTS).mkdir(parents=True, exist_ok=True)
    if found is None:
        atomic_write_text(out / "spec.toml", spec_text)
        atomic_write_text(out / META, json.dumps({"fingerprint": fingerprint, "layout": LAYOUT_VERSION}))
    return out


def fingerprint_of(out) -> str | None:
    meta = Path(out) / META
    if not meta.is_file():
        return None
    return json.loads(meta.read_text())["fingerprint"]


def _parts(out: Path, kind: str) -> list[Path]:
    parts = Path(out) / PARTS
    if not parts.is_dir():
        return []
    return sorted(p for p in parts.iterdir() if p.name.endswith((f".{kind}.parquet", f".{kind}.csv"))
                  and not p.name.startswith("."))


def done_runs(out) -> set[str]:
    """Run ids of every finished chunk in ``out``."""
    done = set()
    for path in _parts(out, "runs"):
        done.update(read_frame(path)["run_id"].astype(str))
    return done


def write_chunk(out, chunk_id: str, runs, history) -> None:
    """A finished chunk: history first, then the runs file that marks it done."""
    suffix = "." + table_format()
    atomic_write_frame(history, Path(out) / PARTS / f"{chunk_id}.history{suffix}")
    atomic_write_frame(runs, Path(out) / PARTS / f"{chunk_id}.runs{suffix}")


def consolidate(out) -> list[Path]:
    """Write ``runs.*`` and ``history.*`` from every finished chunk (ordered by run id); return their paths."""
    import pandas as pd
    out = Path(out)
    written = []
    for kind, order in (("runs", ["run_id"]), ("history", ["run_id", "step"])):
        chunk_files = [p for p in _parts(out, kind) if _runs_file(p).exists()]
        if not chunk_files:
            continue
        frame = pd.concat([_tidy(read_frame(p)) for p in chunk_files], ignore_index=True)
        frame = frame.sort_values(order, kind="stable").reset_index(drop=True)
        path = out / f"{kind}.{table_format()}"
        atomic_write_frame(frame, path)
        written.append(path)
    return written


def _runs_file(path: Path) -> Path:
    return path.with_name(path.name.replace(".history.", ".runs."))


def read_results(out):
    """(runs, history) DataFrames of a sweep directory (consolidated tables, or its parts)."""
    import pandas as pd
    out = Path(out)
    if fingerprint_of(out) is None:
        raise ValueError(f"{str(out)!r} is not a sweep output directory (no {META})")
    frames = []
    for kind in ("runs", "history"):
        whole = [out / f"{kind}.{ext}" for ext in ("parquet", "csv") if (out / f"{kind}.{ext}").is_file()]
        parts = _parts(out, kind)
        if whole and len(read_frame(whole[0])) >= sum(len(read_frame(p)) for p in parts):
            frames.append(read_frame(whole[0]))
        elif parts:
            frames.append(pd.concat([_tidy(read_frame(p)) for p in parts], ignore_index=True))
        else:
            raise ValueError(f"{str(out)!r} holds no finished runs yet")
    return tuple(frames)


def merge(out, sources) -> list[Path]:
    """Copy the finished chunks of shard directories ``sources`` (same spec fingerprint) into ``out``
    and consolidate. ``out`` may be one of the sources, or a new directory."""
    sources = [Path(s) for s in sources]
    if not sources:
        raise ValueError("sweep merge needs at least one shard directory")
    prints = {str(s): fingerprint_of(s) for s in sources}
    missing = [s for s, f in prints.items() if f is None]
    if missing:
        raise ValueError(f"not a sweep output directory (no {META}): {missing}")
    if len(set(prints.values())) > 1:
        raise ValueError(f"the directories hold different sweeps (spec fingerprints {prints}); merge only shards "
                         f"of one spec")
    fingerprint = next(iter(prints.values()))
    out = prepare(out, fingerprint, (sources[0] / "spec.toml").read_text())
    for source in sources:
        if source.resolve() == out.resolve():
            continue
        for kind in ("history", "runs"):      # history first: a runs file marks the chunk done
            for path in _parts(source, kind):
                target = out / PARTS / path.name
                if not target.exists():
                    temporary = target.with_name(f".{target.name}.tmp-{os.getpid()}")
                    shutil.copyfile(path, temporary)
                    os.replace(temporary, target)
    return consolidate(out)
