"""``toybench plot DIR``: the standard views of a sweep, as PNGs beside its tables.

- ``distance_vs_<hp>.png``: final distance to the target against each hyperparameter that varies,
  one line per loss (median over the other axes, band from the 25th to the 75th percentile);
- ``noise_robustness.png``: final distance to the target against the noise rate, one line per loss;
- ``convergence.png``: the distance over training steps per loss, median over seeds with a band
  from the smallest to the largest seed's value.

The distance is ``kl_to_target`` where the sweep has finite values, else ``tv_to_target``, else the
objective; losses without it are named in the legend's title; a view whose axis does not vary is
skipped.
"""
from __future__ import annotations

from pathlib import Path

from .store import read_results

DISTANCES = ("kl_to_target", "tv_to_target", "objective")


def plot_sweep(directory) -> list[Path]:
    """Draw every view that applies; return the PNG paths."""
    import matplotlib
    matplotlib.use("Agg")
    runs, history = read_results(directory)
    metric = next((m for m in DISTANCES if m in runs and runs[m].notna().any()), None)
    if metric is None:
        raise ValueError(f"the sweep in {str(directory)!r} recorded none of {list(DISTANCES)}; nothing to plot")
    left_out = sorted(set(runs.loss) - set(runs.loss[runs[metric].notna()]))
    legend = "loss" + (f" (no {metric}: {', '.join(left_out)})" if left_out else "")
    runs = runs[runs[metric].notna()]
    out = Path(directory)
    written = []
    for column in [c for c in runs.columns if c.startswith("hp_") or c == "lr"]:
        if runs[column].dropna().nunique() > 1 and _numeric(runs[column]):
            written.append(_versus(runs, column, metric, out / f"distance_vs_{column.removeprefix('hp_')}.png",
                                   f"final {metric} against {column.removeprefix('hp_')}", legend))
    if runs["noise"].nunique() > 1:
        written.append(_versus(runs, "noise", metric, out / "noise_robustness.png",
                               f"noise robustness: final {metric} against the label flip rate", legend))
    if metric in history:
        written.append(_convergence(runs, history, metric, out / "convergence.png", legend))
    return written


def _numeric(series) -> bool:
    import pandas as pd
    return pd.api.types.is_numeric_dtype(series)


def _versus(runs, column, metric, path, title, legend):
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for loss, part in runs.dropna(subset=[column]).groupby("loss"):
        stats = part.groupby(column)[metric].quantile([0.25, 0.5, 0.75]).unstack()
        ax.plot(stats.index, stats[0.5], marker="o", ms=3, label=loss)
        ax.fill_between(stats.index, stats[0.25], stats[0.75], alpha=0.2)
    if column != "noise" and (runs[column] > 0).all() and runs[column].max() / runs[column].min() > 20:
        ax.set_xscale("log")
    if metric.startswith("kl") and (runs[metric] > 0).all():
        ax.set_yscale("log")
    ax.set_xlabel(column.removeprefix("hp_") if column != "noise" else "label flip rate (noise)")
    ax.set_ylabel(f"final {metric} (median, 25–75%)")
    ax.set_title(title)
    ax.legend(title=legend)
    return _save(fig, path)


def _convergence(runs, history, metric, path, legend):
    import matplotlib.pyplot as plt
    frame = history.merge(runs[["run_id", "loss", "seed"]], on="run_id")
    fig, ax = plt.subplots(figsize=(6, 4))
    for loss, part in frame.groupby("loss"):
        # one curve per seed (median over the other axes), then the band over seeds
        per_seed = part.groupby(["step", "seed"])[metric].median().unstack()
        ax.plot(per_seed.index, per_seed.median(axis=1), label=loss)
        ax.fill_between(per_seed.index, per_seed.min(axis=1), per_seed.max(axis=1), alpha=0.2)
    if metric.startswith("kl") and (frame[metric] > 0).all():
        ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel(f"{metric} (median; band: range over seeds)")
    ax.set_title(f"convergence of {metric}")
    ax.legend(title=legend)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    """Write through a temporary file and rename (no half-written PNG)."""
    import os

    import matplotlib.pyplot as plt
    fig.tight_layout()
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fig.savefig(temporary, format="png", dpi=120, metadata={"Software": None})
    plt.close(fig)
    os.replace(temporary, path)
    return path
