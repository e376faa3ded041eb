"""Side by side: each loss's exact minimiser on one problem, measured against π*_β.

``compare(prob, ["dpo", "ipo:beta=0.5", tb.losses.make("cdpo", eps=0.2)])`` solves every loss
exactly (``tb.solve``) on ``population(prob, noise)`` and returns a pandas DataFrame with one
row per loss: KL both ways and TV to π*_β (β the loss's own), entropy, expected reward, exact
win rate against π_ref, mass on the best response and the most likely responses of prompt 0.
All numbers are prompt-weighted averages, float64.
"""
from __future__ import annotations

import math

import torch

from . import metrics, optima
from .losses import Loss, make
from .pairs import population
from .solve import NoFiniteMinimum, solve


def parse_value(text: str):
    """'0.1' → 0.1, '3' → 3, 'true' → True, anything else stays a string."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text.strip()


def loss_from_spec(spec: str | Loss) -> Loss:
    """A loss from ``"name"`` or ``"name:key=value,key=value"`` (e.g. ``"cdpo:beta=0.5,eps=0.2"``)."""
    if isinstance(spec, Loss):
        return spec
    name, _, rest = spec.partition(":")
    kwargs = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"bad hyperparameter {item!r} in {spec!r}; write key=value, e.g. dpo:beta=0.1")
        kwargs[key.strip()] = parse_value(value)
    return make(name.strip(), **kwargs)


def spec_of(loss: Loss) -> str:
    """The inverse of ``loss_from_spec`` for scalar hyperparameters."""
    from .losses import fields
    shown = ",".join(f"{key}={value}" for key, value in fields(loss).items())
    return f"{loss.name}:{shown}" if shown else loss.name


def compare(prob, loss_specs, noise=0.0, top: int = 3):
    """One row per loss (see the module docstring); a loss whose infimum is at infinity gets
    ``case = "no finite minimum"`` and NaN metrics instead of stopping the table."""
    import pandas as pd

    if not loss_specs:
        raise ValueError("give at least one loss to compare")
    rows = []
    for spec in loss_specs:
        loss = loss_from_spec(spec)
        if loss.runs is not None:
            raise ValueError(f"compare takes scalar hyperparameters; {loss.name} has per-run values")
        rows.append(_row(prob, loss, noise, top))
    return pd.DataFrame(rows)


def _row(prob, loss, noise, top) -> dict:
    row = {"loss": spec_of(loss), "target_kind": loss.target_kind}
    try:
        sol = solve(loss, population(prob, noise))
    except NoFiniteMinimum as err:
        row.update(case="no finite minimum", identified=False, note=str(err))
        return row
    logp = sol.logp
    weights = prob.prompt_weights
    row.update(case=sol.case, identified=bool(sol.identified))
    beta = getattr(loss, "beta", None)
    if prob.reward is not None and beta is not None:
        pistar = optima.reverse_kl(prob, beta)
        row.update(kl_to_pistar=float(metrics.kl(logp, pistar, prompt_weights=weights)),
                   kl_from_pistar=float(metrics.kl(pistar, logp, prompt_weights=weights)),
                   tv_to_pistar=float(metrics.tv(logp, pistar, prompt_weights=weights)))
    row.update(entropy=float(metrics.entropy(logp, prompt_weights=weights)),
               win_rate=float(metrics.win_rate(logp, prob.ref_logp, prob.preference_matrix(),
                                               prompt_weights=weights)))
    if prob.reward is not None:
        row.update(expected_reward=float(metrics.expected_reward(logp, prob.reward, prompt_weights=weights)),
                   mass_on_best=float(metrics.mass_on_best(logp, prob.reward, prompt_weights=weights)))
    probs = logp[0].exp()
    order = torch.argsort(probs, descending=True)[:top]
    row["top_prompt0"] = " ".join(f"{prob.space.label(int(y))}:{float(probs[y]):.3f}" for y in order)
    row["value"] = float(sol.value)
    return row


def format_table(frame) -> str:
    """A plain-text table (floats to 4 significant digits)."""
    def show(value):
        if isinstance(value, float):
            return "nan" if math.isnan(value) else f"{value:.4g}"
        return str(value)
    columns = [c for c in frame.columns if c != "note"]
    cells = [[show(v) for v in frame[c]] for c in columns]
    widths = [max(len(c), *(len(v) for v in col)) for c, col in zip(columns, cells, strict=False)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=False))]
    lines += ["  ".join(col[i].ljust(w) for col, w in zip(cells, widths, strict=False)) for i in range(len(frame))]
    return "\n".join(lines)
