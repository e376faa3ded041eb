"""The sweep spec: a TOML file read with the standard library's ``tomllib``, checked in full
before anything runs.

Sections and keys (``SCHEMA``; a list is a grid, a single value a one-point grid):

- ``[problem]`` ``family`` ("random": ``Problem.random(FlatSpace(responses), prompts, seed=instance)``;
  "sequence": ``Problem.random(SequenceSpace(vocab, max_len), prompts, seed=instance)``, every string of
  1..max_len tokens then EOS; "e1": the E1 instance, P=1, Y=4, π_ref = (0.4, 0.3, 0.2, 0.1),
  r = (0, 0.5, 1.5, 3); a grid such as ["random", "sequence", "e1"] runs each, every key applying to the
  cells of the families it belongs to, ``FAMILY_KEYS``), ``prompts``, ``responses`` ("random"),
  ``vocab``, ``max_len`` ("sequence"; at most ``spaces.MAX_SEQUENCES`` strings), ``instance``,
  ``reward_scale``, ``preference`` ("bt" | "general"), ``pair_dist`` ("ref" | "uniform" | "did"),
  ``lengths`` ("random" only: "none" | "random", token lengths 1..8 drawn from the instance seed,
  needed by length-aware losses; a sequence's length is its token count);
- ``[policy]`` ``class`` (a grid of "tabular", "autoregressive": ``AutoregressiveTabular``, sequence
  family only; "mlp": ``shared_policies.MLP``; "transformer": ``transformer.TinyTransformer``; the last
  two also run on flat spaces as one-step models over the responses), ``init`` ("ref" | "random": log
  π_ref plus ``init_scale``·N(0, 1) per run on the logits (tabular) or token logits (autoregressive),
  drawn from the run's seed) and ``init_scale`` (tabular, autoregressive), ``embed``, ``hidden`` (mlp),
  ``width``, ``layers``, ``heads`` (transformer; grids). The mlp and transformer weights are always drawn
  from the run's seed (their output layer starts at 0, so they start at π_ref). A key of a class not
  in the grid is refused (``CLASS_KEYS``);
- ``[data]`` ``samples`` ("population" or a record count n), ``noise`` (flip rates in [0, 0.5)),
  ``seeds`` (per-run seeds: the sampled data set and a random init);
- ``[train]`` ``optimizer`` ("adam" | "sgd"), ``lr``, ``steps``, ``log_every`` (history records every
  that many steps; default steps/10; a grid), ``batch_size`` ("full": the whole objective each step;
  or n: n records per run and step drawn ∝ weight by ``tb.train``'s counter-based sampler keyed by
  the run's seed, so a run's draws do not depend on its chunk or shard);
- ``[losses.NAME]`` one table per registered loss, its keys the loss's hyperparameters (grids);
- ``[metrics]`` ``record`` (history and final columns kept; default all), ``target`` ("closed": the
  loss's closed-form population minimiser, NaN where none is known; "solve": ``tb.solve``'s exact
  minimiser of the data each run trains on, one float64 solve per run).

Every grid over a shape-setting key (family, policy class, log_every, batch_size, ...) splits the
runs into separate stacks. Bad input raises ``ValueError`` naming the key and what is allowed.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:   # Python 3.10: the same parser as the tomli package (the sweep extra)
    import tomli as tomllib

HISTORY_METRICS = ("objective", "kl_to_target", "kl_from_target", "tv_to_target", "kl_to_ref", "entropy",
                   "win_rate", "expected_reward", "mass_on_best")
"""What a history record holds (``tb.train``'s History; its ``loss`` is called ``objective`` here)."""
TARGETS = ("closed", "solve")
SAMPLES_POPULATION = 0
"""How the results tables write ``samples = "population"`` (a number column)."""
FULL_BATCH = "full"
BATCH_FULL = 0
"""How the stack keys and results tables write ``batch_size = "full"`` (a number column)."""


def _choice(*allowed):
    def check(value):
        if value not in allowed:
            return f"one of {list(allowed)}"
    return check


def _int(low):
    def check(value):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            return f"an integer >= {low}"
    return check


def _number(low=-math.inf, high=math.inf, low_open=False, high_open=False):
    def check(value):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or (value <= low if low_open else value < low) or (value >= high if high_open else value > high):
            return f"a number in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    return check


def _samples(value):
    if value != "population" and _int(1)(value) is not None:
        return '"population" or an integer number of records >= 1'


def _metric_list(value):
    if not isinstance(value, list) or not value or any(item not in HISTORY_METRICS for item in value):
        return f"a non-empty list drawn from {list(HISTORY_METRICS)}"


def _batch(value):
    if value != FULL_BATCH and _int(1)(value) is not None:
        return f'"{FULL_BATCH}" or an integer number of records per step >= 1'


def _int_range(low, high):
    def check(value):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            return f"an integer in {low}..{high}"
    return check


def _int_any(value):
    if isinstance(value, bool) or not isinstance(value, int):
        return "an integer"


# section -> key -> (default, check, grid allowed)
SCHEMA = {
    "problem": {"family": ("random", _choice("random", "sequence", "e1"), True),
                "prompts": (1, _int(1), True),
                "responses": (6, _int(2), True),
                "vocab": (2, _int(1), True),
                "max_len": (3, _int(1), True),
                "instance": (0, _int_any, True),
                "reward_scale": (1.0, _number(0.0), True),
                "preference": ("bt", _choice("bt", "general"), True),
                "pair_dist": ("uniform", _choice("ref", "uniform", "did"), True),
                "lengths": ("none", _choice("none", "random"), False)},
    "policy": {"class": ("tabular", _choice("tabular", "autoregressive", "mlp", "transformer"), True),
               "init": ("ref", _choice("ref", "random"), False),
               "init_scale": (1.0, _number(0.0), False),
               "embed": (8, _int(1), True),
               "hidden": (32, _int(1), True),
               "width": (16, _int(1), True),
               "layers": (1, _int_range(1, 4), True),
               "heads": (1, _int(1), True)},
    "data": {"samples": ("population", _samples, True),
             "noise": (0.0, _number(0.0, 0.5, high_open=True), True),
             "seeds": (0, _int_any, True)},
    "train": {"optimizer": ("adam", _choice("adam", "sgd"), True),
              "lr": (0.05, _number(0.0, low_open=True), True),
              "steps": (100, _int(1), True),
              "log_every": (None, _int(1), True),
              "batch_size": (FULL_BATCH, _batch, True)},
    "metrics": {"record": (list(HISTORY_METRICS), _metric_list, False),
                "target": ("closed", _choice(*TARGETS), False)},
}
FAMILY_KEYS = {"random": ("family", "prompts", "responses", "instance", "reward_scale", "preference", "pair_dist",
                          "lengths"),
               "sequence": ("family", "prompts", "vocab", "max_len", "instance", "reward_scale", "preference",
                            "pair_dist"),
               "e1": ("family", "pair_dist")}
"""The problem keys that apply to each family (E1 is a fixed instance, P=1, Y=4)."""
CLASS_KEYS = {"tabular": ("init", "init_scale"), "autoregressive": ("init", "init_scale"),
              "mlp": ("embed", "hidden"), "transformer": ("width", "layers", "heads")}
"""The policy keys (besides ``class``) that apply to each class."""
FLAT_CLASSES = ("tabular", "mlp", "transformer")
"""The classes that run on the flat families ("random", "e1")."""


@dataclass(frozen=True)
class Spec:
    """A checked spec: ``grids[section][key]`` is the list of values of every non-loss key (defaults
    filled in, single values as one-point lists, non-grid keys as a plain value); ``losses[name][field]``
    the list of values of each hyperparameter the spec sets (others keep the loss's default);
    ``name`` the optional top-level label."""

    grids: dict
    losses: dict
    name: str = ""

    def value(self, section: str, key: str):
        return self.grids[section][key]

    def fingerprint(self, dtype: str) -> str:
        """A hash of what determines the numbers: the checked spec (not its comments or layout)
        and the training dtype."""
        canonical = json.dumps({"grids": self.grids, "losses": self.losses, "dtype": dtype}, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def load_spec(path) -> Spec:
    """Read and check a spec file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"spec file {str(path)!r} does not exist")
    return parse_spec(path.read_text())


def parse_spec(text: str) -> Spec:
    """Check a spec given as TOML text; ValueError naming the key and the allowed values."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"the spec is not valid TOML: {err}") from err
    allowed = [*SCHEMA, "losses", "name"]
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise ValueError(f"unknown top-level key(s) {unknown}; allowed: {allowed}")
    name = raw.get("name", "")
    if not isinstance(name, str):
        raise ValueError(f"name must be a string, got {name!r}")
    grids = {section: _section(section, raw.get(section, {})) for section in SCHEMA}
    _check_applies(raw, grids)
    return Spec(grids, _losses(raw.get("losses")), name)


def _check_applies(raw: dict, grids: dict) -> None:
    """Every given problem key applies to a family of the grid and every policy key to a class of it;
    flat families get flat classes; sequence sizes and transformer head counts are valid."""
    from ..spaces import SequenceSpace
    families, classes = grids["problem"]["family"], grids["policy"]["class"]
    for section, owners, chosen, what in (("problem", FAMILY_KEYS, families, "family"),
                                          ("policy", CLASS_KEYS, classes, "class")):
        for key in sorted(set(raw.get(section, {})) - {"family", "class"}):
            if not any(key in owners[name] for name in chosen):
                theirs = [k for k in SCHEMA[section] if any(k in owners[name] for name in chosen)]
                raise ValueError(f"{section}.{key} does not apply to {section}.{what} = {chosen} (keys there: "
                                 f"{theirs}); it applies to {[n for n, keys in owners.items() if key in keys]}")
    if "e1" in families and grids["problem"]["lengths"] != "none":
        raise ValueError("problem.lengths must be 'none' when problem.family includes 'e1' (its space has no "
                         "lengths)")
    if "sequence" in families and grids["problem"]["lengths"] != "none":
        raise ValueError("problem.lengths must be 'none' when problem.family includes 'sequence' (a string's "
                         "length is its token count)")
    flat = [name for name in families if name != "sequence"]
    if flat and set(classes) - set(FLAT_CLASSES):
        raise ValueError(f"policy.class 'autoregressive' needs problem.family = 'sequence' (a flat space has no "
                         f"tokens), got family {families}; on flat families use one of {list(FLAT_CLASSES)}")
    if "sequence" in families:
        for vocab in grids["problem"]["vocab"]:
            for max_len in grids["problem"]["max_len"]:
                try:
                    SequenceSpace(vocab, max_len)
                except ValueError as err:
                    raise ValueError(f"problem.vocab={vocab}, problem.max_len={max_len}: {err}") from err
    if "transformer" in classes:
        for width in grids["policy"]["width"]:
            for heads in grids["policy"]["heads"]:
                if width % heads:
                    raise ValueError(f"policy.heads={heads} does not divide policy.width={width}; choose "
                                     "heads that divide every width of the grid")


def _section(section: str, table) -> dict:
    if not isinstance(table, dict):
        raise ValueError(f"[{section}] must be a table of keys, got {table!r}")
    schema = SCHEMA[section]
    unknown = sorted(set(table) - set(schema))
    if unknown:
        raise ValueError(f"unknown key {section}.{unknown[0]}; allowed keys in [{section}]: {list(schema)}")
    checked = {}
    for key, (default, check, grid) in schema.items():
        value = table.get(key, default)
        where = f"{section}.{key}"
        if grid:
            values = _grid(value, where)
            for item in values:
                if item is not None:     # None: the default of log_every (TOML cannot write it)
                    _check(check, item, where)
            checked[key] = values
        else:
            if value is not None:
                _check(check, value, where)
            checked[key] = value
    return checked


def _grid(value, where: str) -> list:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ValueError(f"{where} is an empty grid; give at least one value")
    if len({json.dumps(v) for v in values}) != len(values):
        raise ValueError(f"{where} lists a value twice: {values}")
    return values


def _check(check, value, where):
    problem = check(value)
    if problem:
        raise ValueError(f"{where}={value!r} is not allowed; need {problem}")


def _losses(table) -> dict:
    from ..losses import REGISTRY, fields, names
    if not table:
        raise ValueError(f"the spec needs at least one [losses.NAME] table; NAME one of: {', '.join(names())}")
    if not isinstance(table, dict):
        raise ValueError("losses must be tables [losses.NAME] of hyperparameter grids")
    checked = {}
    for name, hypers in table.items():
        if name not in REGISTRY:
            raise ValueError(f"unknown loss losses.{name}; valid names: {', '.join(names())}")
        if not isinstance(hypers, dict):
            raise ValueError(f"losses.{name} must be a table of hyperparameter grids, got {hypers!r}")
        accepted = list(fields(name))
        unknown = sorted(set(hypers) - set(accepted))
        if unknown:
            raise ValueError(f"unknown hyperparameter losses.{name}.{unknown[0]}; accepted: {accepted}")
        checked[name] = {key: _grid(value, f"losses.{name}.{key}") for key, value in hypers.items()}
    return checked


TEMPLATE = Path(__file__).with_name("template.toml")
"""The commented template ``toybench sweep --template`` prints."""
