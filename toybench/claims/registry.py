"""Claims: checkable statements with a citation, a measured number and an expected verdict.

A claim's ``measure()`` returns one float64 number. The verdict is ``"holds"`` when
``measured <= tolerance`` (``comparison="<="``, e.g. a TV distance to a target) or
``measured >= tolerance`` (``comparison=">="``, statements of difference), else ``"fails"``;
``"error"`` when ``measure`` raises. ``expected`` is what the mathematics predicts: a paper
statement that is false under stated conditions is registered with ``expected="fails"``.
(docs/conventions.md, claims.)
"""
from __future__ import annotations

import fnmatch
import math
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass

from .._numerics import single_threaded

VERDICTS = ("holds", "fails")
COMPARISONS = ("<=", ">=")


@dataclass(frozen=True)
class Claim:
    """One registered statement. ``id`` is ``<loss or topic>.<slug>``."""

    id: str
    citation: str
    assumptions: str
    measure: Callable[[], float]
    comparison: str
    tolerance: float
    expected: str
    statement: str = ""


@dataclass(frozen=True)
class Result:
    """What running a claim gave; ``as_dict()`` is the JSON record of ``toybench verify --json``."""

    id: str
    citation: str
    assumptions: str
    statement: str
    measured: float
    comparison: str
    tolerance: float
    verdict: str
    expected: str
    seconds: float
    error: str = ""

    @property
    def as_expected(self) -> bool:
        return self.verdict == self.expected

    def as_dict(self) -> dict:
        record = asdict(self)
        record["measured"] = None if math.isnan(self.measured) else self.measured
        return record


REGISTRY: dict[str, Claim] = {}


def claim(id: str, *, citation: str, assumptions: str, tolerance: float, expected: str = "holds",
          comparison: str = "<=", statement: str = ""):
    """Decorator registering ``measure`` (a function of no arguments returning a float) as a claim."""
    if expected not in VERDICTS or comparison not in COMPARISONS:
        raise ValueError(f"claim {id}: expected must be in {VERDICTS}, comparison in {COMPARISONS}")
    if "." not in id:
        raise ValueError(f"claim id {id!r} must look like '<loss or topic>.<slug>'")

    def register(measure):
        if id in REGISTRY:
            raise ValueError(f"claim {id!r} is registered twice")
        REGISTRY[id] = Claim(id, citation, assumptions, measure, comparison, float(tolerance), expected,
                             statement or (measure.__doc__ or "").strip().split("\n")[0])
        return measure

    return register


def select(pattern: str = "*") -> list[Claim]:
    """Registered claims whose id matches the glob ``pattern`` (sorted by id)."""
    chosen = [REGISTRY[key] for key in sorted(REGISTRY) if fnmatch.fnmatchcase(key, pattern)]
    if not chosen:
        raise ValueError(f"no claim id matches {pattern!r}; ids look like 'dpo.population_minimiser'")
    return chosen


def evaluate(item: Claim) -> Result:
    """Run one claim and judge its verdict. Claims are small tensor programs, so ``measure`` runs
    single-threaded (``toybench._numerics.single_threaded``)."""
    start = time.perf_counter()
    error = ""
    try:
        with single_threaded():
            measured = float(item.measure())
        if math.isnan(measured):
            raise ValueError("measure() returned NaN")
        holds = measured <= item.tolerance if item.comparison == "<=" else measured >= item.tolerance
        verdict = "holds" if holds else "fails"
    except Exception as err:  # a claim that raises is reported, never hidden
        measured, verdict = math.nan, "error"
        error = "".join(traceback.format_exception_only(type(err), err)).strip()
    return Result(item.id, item.citation, item.assumptions, item.statement, measured, item.comparison,
                  item.tolerance, verdict, item.expected, time.perf_counter() - start, error)


def run(pattern: str = "*", progress: bool = False) -> list[Result]:
    """Run every claim whose id matches ``pattern``; a list of ``Result``."""
    chosen = select(pattern)
    if progress:
        from tqdm.auto import tqdm
        chosen = tqdm(chosen, desc="claims", unit="claim")
    return [evaluate(item) for item in chosen]
