"""Side by side: each loss's exact minimiser on one problem, measured against π*_β.

``tb.compare(prob, ["dpo", "ipo:beta=0.5", tb.losses.make("cdpo", eps=0.2)])`` solves every loss
exactly (``tb.solve``) on the records it is defined on (``records``: the population of ``prob``
at label-flip rate ``noise``, plus the extra inputs the loss needs) and returns a pandas DataFrame
with one row per loss, run and noise rate: KL both ways and TV to π*_β (β the row's own), entropy,
expected reward, exact win rate against π_ref, mass on the best response and the most likely
responses of prompt 0. ``COLUMNS`` says what each column means. All numbers are prompt-weighted
averages, float64.
"""
from __future__ import annotations

import dataclasses
import math

import torch

from . import metrics, optima
from .losses import Loss, ddo_pairs, fields, make, with_score_gap, with_win_probs
from .losses.base import LENGTH_INPUTS
from .losses.fdiv import with_rewards
from .losses.token import TOKEN_INPUTS
from .pairs import Pairs, population, sample_pairs
from .solve import NoFiniteMinimum, Solution, SolveFailed, solve

COLUMNS = {
    "loss": "the loss and every hyperparameter it was solved with",
    "beta": "the β of π*_β that the KL/TV columns compare with (empty: the loss has no β)",
    "noise": "label-flip rate of the records",
    "target_kind": "closed | projection | numeric | none: what is known of the loss's minimiser",
    "case": "how the minimiser was found (tb.solve: convex Newton, lp, nonconvex multi-start, fixed_point; "
            "lists: solve_lists), or 'no finite minimum' / 'solve failed' (metrics then empty)",
    "identified": "the records determine the minimiser uniquely (False: part of it is free; empty: not checked)",
    "kl_to_pistar": "KL(π‖π*_β)",
    "kl_from_pistar": "KL(π*_β‖π)",
    "tv_to_pistar": "total variation between π and π*_β",
    "entropy": "entropy of π",
    "win_rate": "exact probability that a draw of π beats a draw of π_ref",
    "expected_reward": "E_π[r]",
    "mass_on_best": "π's mass on the highest-reward response",
    "top_prompt0": "the most likely responses of prompt 0 with their probabilities",
    "value": "the population objective at the minimiser",
    "note": "why a row has no numbers, or what is left free",
    "solver": "tb.solve's account of what it did",
}
KL_NOTE = "KL is never negative: a value rounded below 0 in float64 is shown as 0"


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


def parse_spec(spec: str) -> tuple[str, dict]:
    """``"cdpo:beta=0.5,eps=0.2"`` → ``("cdpo", {"beta": 0.5, "eps": 0.2})``."""
    name, _, rest = spec.partition(":")
    kwargs = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not key:
            raise ValueError(f"bad hyperparameter {item!r} in {spec!r}; write key=value, e.g. dpo:beta=0.1")
        if not value:
            raise ValueError(f"hyperparameter {key!r} in {spec!r} has no value; write {key}=VALUE, "
                             f"e.g. {name.strip()}:{key}={fields(name.strip()).get(key, 0.1)}")
        if key in kwargs:
            raise ValueError(f"hyperparameter {key!r} is given twice in {spec!r}")
        kwargs[key] = parse_value(value)
    return name.strip(), kwargs


def loss_from_spec(spec: str | Loss) -> Loss:
    """A loss from ``"name"`` or ``"name:key=value,key=value"`` (e.g. ``"cdpo:beta=0.5,eps=0.2"``)."""
    if isinstance(spec, Loss):
        return spec
    name, kwargs = parse_spec(spec)
    return make(name, **kwargs)


def spec_of(loss: Loss) -> str:
    """The inverse of ``loss_from_spec`` for scalar hyperparameters."""
    shown = ",".join(f"{key}={value}" for key, value in fields(loss).items())
    return f"{loss.name}:{shown}" if shown else loss.name


def run_loss(loss: Loss, b: int) -> Loss:
    """Run ``b`` of a loss with ``[B]`` hyperparameters, as a loss with scalar ones."""
    return dataclasses.replace(loss, **{key: value[b].item() for key, value in fields(loss).items()
                                        if isinstance(value, torch.Tensor)})


def _score_gap(pairs, scores):
    return with_score_gap(pairs, score=scores)


FIELD_SOURCES = {
    "score_gap": _score_gap,
    "chosen_win_prob": lambda pairs, scores: with_win_probs(pairs),
    "rejected_win_prob": lambda pairs, scores: with_win_probs(pairs),
    "pair_win_prob": lambda pairs, scores: with_win_probs(pairs),
    "chosen_reward": lambda pairs, scores: with_rewards(pairs),
    "rejected_reward": lambda pairs, scores: with_rewards(pairs),
}
"""Where each extra per-record input comes from (token lengths come from ``prob.space.lengths``)."""


def records(loss: Loss, prob, noise=0.0, *, samples: int | None = None, seeds=(0,), scores=None) -> Pairs:
    """The records ``loss`` is solved or trained on, with the extra per-record inputs it needs.

    ``population(prob, noise)`` (``samples=None``) or ``sample_pairs(prob, samples, noise, seed=seeds)``
    (one data set per seed); then ``score_gap`` (da_dpo, madpo) = s(x, y_w) − s(x, y_l) with s =
    ``scores`` (``[P, Y]``) or the problem's reward r (``with_score_gap``); SPPO's win probabilities
    P(y ≻ π_ref) exact under the problem's preference (``with_win_probs``, π_t = π_ref); the BT
    reward of both responses for the list modes of fpo/exo (``with_rewards``). ``ddo`` is unpaired:
    chosen y ~ p_data = softmax(s), rejected y′ ~ π_ref (``ddo_pairs``; there are no labels, so
    ``noise`` must be 0). Token lengths come from ``prob.space.lengths`` and the token views of a
    ``SequenceSpace`` from the policy table (``toybench.objective``)."""
    if loss.name == "ddo":
        return _ddo_records(prob, noise, samples, seeds, scores)
    if samples is None:
        pairs = population(prob, noise)
    else:
        pairs = sample_pairs(prob, samples, noise=noise, seed=list(seeds))
    added = set()
    for name in loss.required_inputs(prob.space):
        source = FIELD_SOURCES.get(name)
        if name in LENGTH_INPUTS or name in TOKEN_INPUTS or source in added:   # from the space itself
            continue
        if source is None:
            raise ValueError(f"loss {loss.name!r} needs the per-record input {name!r}, which toybench cannot "
                             "compute from a problem; add it with pairs.with_fields")
        pairs = source(pairs, scores)
        added.add(source)
    return pairs


def _ddo_records(prob, noise, samples, seeds, scores) -> Pairs:
    if torch.as_tensor(noise).ne(0).any():
        raise ValueError("ddo's records are draws from p_data and π_ref with no labels to flip; use noise 0")
    if scores is None and prob.reward is None:
        raise ValueError("ddo draws chosen responses from p_data = softmax(score): give scores ([P, Y]); "
                         "the problem has no Bradley–Terry reward")
    data = torch.log_softmax(torch.as_tensor(prob.reward if scores is None else scores, dtype=torch.float64), -1)
    if samples is None:
        return ddo_pairs(prob, data)
    sets = [ddo_pairs(prob, data, samples, seed) for seed in seeds]
    stack = lambda name: torch.cat([getattr(p, name) for p in sets])  # noqa: E731
    return Pairs(stack("prompt"), stack("chosen"), stack("rejected"), stack("weight"), prob)


def _solve_lists(loss: Loss, prob, noise: float, lists: tuple[int, str, bool]) -> Solution:
    """A list loss's exact minimiser on every Plackett–Luce ranking of k-subsets (``solve_lists``)."""
    from .losses.listwise import solve_lists
    from .rankings import list_population
    if not hasattr(loss, "list_loss"):
        raise ValueError(f"loss {loss.name!r} is not a list loss; with lists compare only list losses "
                         "(plackett_luce, lipo, rank_dpo, tpo, irpo, anchored_dpo, curry_dpo, fpo, exo)")
    if noise != 0:
        raise ValueError("Plackett–Luce lists have no label noise; use noise 0")
    size, candidates, reward_scores = lists
    found = solve_lists(loss, list_population(prob, size, candidates, reward_scores))
    return Solution(found.logp, float(found.value.reshape(-1)[0]), "lists", found.certificate, found.logp.isinf(),
                    None, None, 1, f"Newton on every ranking of {size}-subsets ({candidates} candidate sets, "
                    f"solve_lists); gradient norm {found.certificate:.2g}")


def compare(prob, loss_specs, noise=0.0, top: int = 3, scores=None, lists: tuple[int, str, bool] | None = None):
    """One row per loss, per run of a loss with ``[B]`` hyperparameters, and per noise rate
    (``noise`` a number, a list or a ``[B]`` tensor of rates); columns as in ``COLUMNS``. A loss whose infimum is
    at infinity gets ``case = "no finite minimum"`` and NaN metrics instead of stopping the table; one
    that ``solve`` could not certify (``SolveFailed``) gets ``case = "solve failed"``, NaN metrics and
    the failure message as its note.
    ``scores``: reward-model scores ``[P, Y]`` for the losses that read them (see ``records``).
    ``lists=(k, candidates, reward_scores)``: list losses on every Plackett–Luce ranking of k-subsets
    drawn by the candidate law ("uniform" or "ref"), labelled by rank or (``reward_scores``) by the
    items' rewards (``toybench.rankings.list_population``), instead of pairs.
    KL values rounded below zero are clamped at 0."""
    import pandas as pd

    if not loss_specs:
        raise ValueError("give at least one loss to compare")
    try:
        rates = torch.as_tensor(noise, dtype=torch.float64).reshape(-1).tolist()
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"noise must be a flip rate or a list of rates, got {noise!r}") from None
    rows = []
    for spec in loss_specs:
        loss = loss_from_spec(spec)
        for b in range(loss.runs or 1):
            one = run_loss(loss, b) if loss.runs else loss
            rows += [_row(prob, one, rate, top, scores, lists) for rate in rates]
    return pd.DataFrame(rows)


def _row(prob, loss, noise, top, scores, lists) -> dict:
    beta = getattr(loss, "beta", None)
    row = {"loss": spec_of(loss), "beta": beta, "noise": noise, "target_kind": loss.target_kind}
    try:
        sol = _solve_lists(loss, prob, noise, lists) if lists else solve(loss, records(loss, prob, noise, scores=scores))
    except NoFiniteMinimum as err:
        row.update(case="no finite minimum", identified=False, note=str(err))
        return row
    except SolveFailed as err:
        row.update(case="solve failed", note=str(err))
        return row
    logp = sol.logp
    weights = prob.prompt_weights
    row.update(case=sol.case, identified=None if sol.identified is None else bool(sol.identified))
    if prob.reward is not None and beta is not None:
        pistar = optima.reverse_kl(prob, beta)
        row.update(kl_to_pistar=max(0.0, float(metrics.kl(logp, pistar, prompt_weights=weights))),
                   kl_from_pistar=max(0.0, float(metrics.kl(pistar, logp, prompt_weights=weights))),
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
    if sol.identified is False:
        row["note"] = sol.message
    row["solver"] = sol.message
    return row


def format_table(frame) -> str:
    """A plain-text table (floats to 4 significant digits, missing values blank), a legend of
    its columns, and the notes of the rows that have one."""
    def show(value):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return ""
        return f"{value:.4g}" if isinstance(value, float) else str(value)
    columns = [c for c in frame.columns if c not in ("note", "solver")]
    cells = [[show(v) for v in frame[c]] for c in columns]
    widths = [max(len(c), *(len(v) for v in col)) for c, col in zip(columns, cells, strict=True)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(col[i].ljust(w) for col, w in zip(cells, widths, strict=True)) for i in range(len(frame))]
    lines += ["", "columns:"] + [f"  {c}: {COLUMNS[c]}" for c in columns if c in COLUMNS]
    if any(c.startswith("kl_") for c in columns):
        lines.append(f"  ({KL_NOTE})")
    if "note" in frame:
        notes = [(loss, note) for loss, note in zip(frame["loss"], frame["note"], strict=True) if show(note)]
        if notes:
            lines += ["", "notes:"] + [f"  {loss}: {note}" for loss, note in notes]
    return "\n".join(lines)
