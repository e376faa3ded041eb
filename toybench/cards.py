"""Loss cards: one loss's math as Markdown, built from the registry so it cannot drift.

``card("dpo")`` gives the card ``toybench explain dpo`` prints: the loss's definition and notes
(its class docstring), its family (G1/G2/G3), the symbols its formula uses, its hyperparameters
with their defaults, its target kind, evidence level, reconstruction flag and source (arXiv id
and equation). ``document()`` is ``docs/losses.md``; regenerate it with
``python -m toybench.cards --write docs/losses.md`` (``--check`` fails when the file is stale).
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import sys
from pathlib import Path

from .losses import REGISTRY, names

FAMILIES = {
    "logit_link": ("G1", "logit link: the per-pair optimum is z* = logit p, so under Bradley–Terry "
                   "the target is a potential difference and does not depend on the pair law μ "
                   "(any connected comparison graph gives the same optimum)"),
    "non_proper": ("G2", "non-proper margin: the per-pair optimum is not logit p (or the per-pair "
                   "weights differ by direction), so the population optimum is a μ-dependent "
                   "weighted projection"),
    "single_response": ("G3", "single-response terms: terms in one response's log-probability make "
                        "the simplex constraint Σπ = 1 bind, so the optimum is numeric, depends on "
                        "μ and may sit on the simplex boundary"),
}

TARGET_KINDS = {
    "closed": "a closed form (possibly with a scalar root): ``loss.target(prob)`` returns it where "
              "its conditions hold, else None",
    "projection": "a μ-dependent weighted projection of the per-pair optima: ``tb.solve`` "
                  "computes it (``target`` is None unless stated)",
    "numeric": "no closed form: ``tb.solve`` computes the minimiser numerically in float64 "
               "(a fixed point for losses with batch statistics)",
    "none": "no target is defined",
}

EVIDENCE = {
    "code": "read in the authors' code or TRL",
    "paper": "read in the paper's full text",
    "paper: abstract": "only the paper's abstract or TL;DR was read",
    "secondary": "taken from a third-party summary or another paper; the paper itself was not read",
    "derived": "derived here and checked numerically in float64",
    "unverified": "recollection, not re-verified",
}

# (symbol, meaning, regex that finds the symbol in a docstring)
SYMBOLS = [
    ("ℓ", "log π_θ(y|x), summed over tokens (``chosen_logp``/``rejected_logp``)", r"ℓ(?!̄)"),
    ("ℓ̄", "ℓ/|y|, the token-mean log-probability", r"ℓ̄"),
    ("|y|", "the response's length in tokens (``chosen_len``/``rejected_len``)", r"\|y"),
    ("g", "ℓ − log π_ref(y), the log-ratio (implicit reward / β); g_w, g_l for chosen, rejected",
     r"(?<![A-Za-z])g(_[wlt]|\(|\b)"),
    ("Δ", "g_w − g_l, the DPO margin", r"Δ"),
    ("z", "β·Δ, the scaled margin", r"(?<![A-Za-z])z(?![A-Za-z])"),
    ("β", "the regularisation strength ``beta`` (IPO's τ)", r"β"),
    ("σ", "the logistic sigmoid", r"σ"),
    ("sp", "softplus, sp(t) = log(1 + e^t) = −log σ(−t)", r"sp\("),
    ("π_ref", "the reference policy", r"π_ref"),
    ("π*_β", "π_ref·e^{r/β}/Z, the reverse-KL optimum and DPO's target", r"π\*_"),
    ("r", "the true reward (Bradley–Terry: P(a ≻ b) = σ(r_a − r_b))", r"(?<![A-Za-z_])r(\(|_[abwl]|\b)"),
    ("p", "P(a ≻ b), the probability that a is preferred to b", r"(?<![A-Za-z])p(?![A-Za-z_(])"),
    ("μ", "the pair law μ(y, y′|x) (``pair_dist``)", r"μ"),
    ("ε", "a flip or smoothing rate ``eps``, 0 ≤ ε < ½", r"ε"),
    ("p̃", "(1 − ε)p + ε(1 − p), the noisy label probability", r"p̃"),
    ("n_w, n_l", "the rates at which a response appears as chosen / rejected in the records",
     r"n_[wl]"),
]


def _loss_class(name: str):
    if name not in REGISTRY:
        raise ValueError(f"unknown loss {name!r}; valid names: {', '.join(names())}")
    return REGISTRY[name]


def _arxiv_ids(text: str) -> list[str]:
    return list(dict.fromkeys(re.findall(r"\b\d{4}\.\d{4,5}\b", text)))


def _evidence_lines(evidence: str) -> list[str]:
    labels = [label.strip() for label in evidence.split(",") if label.strip()]
    return [f"- {label}: {EVIDENCE.get(label, 'see the notes')}" for label in labels]


TARGET_WORDS = re.compile(r"\b(optimum|optima|minimiser|[Nn]umeric|[Tt]arget|fixed point)\b")


def target_sentence(doc: str) -> str:
    """The first sentence of a docstring's notes about the optimum (target, minimiser, fixed point), or ""."""
    text = " ".join(doc.split())
    for sentence in re.split(r"(?<=[.])\s+(?=[A-Z`])", text):
        if TARGET_WORDS.search(sentence) and not sentence.startswith(("- ", "State", "``")):
            return sentence
    return ""


def card(name: str) -> str:
    """One loss's card as Markdown; ValueError for a name that is not registered."""
    cls = _loss_class(name)
    doc = inspect.getdoc(cls) or ""
    definition, _, notes = doc.partition("\n\n")
    tag, meaning = FAMILIES[cls.family]
    fields = dataclasses.fields(cls)
    lines = [f"## `{name}` ({cls.__name__})", "", definition, ""]
    lines += [f"- **Family**: {tag} (`{cls.family}`): {meaning}.",
              f"- **Target**: `{cls.target_kind}`: {TARGET_KINDS[cls.target_kind]}.",
              *([f"- **The optimum**: {sentence}"] if (sentence := target_sentence(notes)) else []),
              f"- **Evidence**: {cls.evidence or 'not stated'}.",
              f"- **Reconstruction**: {'yes: no read source states the formula in full' if cls.reconstruction else 'no'}.",
              f"- **Convex** in tabular logits: {'yes' if cls.convex else 'not in general'}.",
              f"- **Source**: {cls.citation}."]
    ids = _arxiv_ids(cls.citation + " " + doc)
    if ids:
        lines.append("- **Papers**: " + ", ".join(f"[arXiv {i}](https://arxiv.org/abs/{i})" for i in ids) + ".")
    needs = cls.needs if isinstance(cls.needs, tuple) else ()
    if needs:
        lines.append(f"- **Extra inputs**: {', '.join(f'`{n}`' for n in needs)}.")
    if cls.stateful:
        lines.append("- **Stateful**: keeps batch statistics (``init_state``/``update_state``/``population_state``).")
    lines += ["", "**Hyperparameters** (a number, or a `[B]` tensor for one value per run):", "",
              "| field | default |", "|---|---|"]
    lines += [f"| `{f.name}` | `{f.default!r}` |" for f in fields]
    symbols = [(s, m) for s, m, pattern in SYMBOLS if re.search(pattern, doc)]
    if symbols:
        lines += ["", "**Symbols**:", ""] + [f"- {s}: {m}" for s, m in symbols]
    if cls.evidence:
        lines += ["", "**Evidence labels**:", ""] + _evidence_lines(cls.evidence)
    if notes:
        lines += ["", "**Notes**:", "", notes]
    return "\n".join(lines).rstrip() + "\n"


HEADER = """# Losses

Generated from the loss registry by `python -m toybench.cards --write docs/losses.md`; a test
fails when this file differs from what the registry gives, so edit the loss's class docstring
and attributes, not this file. `toybench explain NAME` prints one card.

Every loss maps gathered sequence log-probs to per-record losses in TRL's argument order,
`loss(chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, **inputs)`, each `[B, N]`;
the pair law, dtypes and what `tb.solve` returns are in [conventions.md](conventions.md).

## Families

| tag | `family` | meaning |
|---|---|---|
{families}

Two refinements are used in the notes. **G1′**: a logit link with direction-dependent record
weights or per-pair temperatures (`madpo`, `da_dpo`, minibatch `beta_dpo`): each pair's optimum
is logit p shifted or rescaled pair by pair, which is no longer a potential difference, so the
optimum is numeric and differs from π*_β. **G4**: with deterministic or finite data a pair seen
in one orientation only drives every loss whose per-pair optimum at p = 1 is an infinite margin
(`dpo`, `bpo`, `rdpo`, `fdpo`, `simpo`, ...) to infinity: `tb.solve` raises `NoFiniteMinimum`;
bounded losses (`ipo`, `cdpo`, `hinge`, `exo`/`fpo` pair mode with ε > 0, ...) stay finite.

## Target kinds

| `target_kind` | meaning |
|---|---|
{targets}

## Evidence labels

| label | meaning |
|---|---|
{evidence}

A **reconstruction** is a formula no read source states in full: it is implemented under that
name and no paper claim is registered against it.

## Index

| loss | family | target | evidence | source |
|---|---|---|---|---|
{index}
"""


def document() -> str:
    """``docs/losses.md``: the legend, an index, then every registered loss's card."""
    families = "\n".join(f"| {tag} | `{key}` | {meaning} |" for key, (tag, meaning) in FAMILIES.items())
    targets = "\n".join(f"| `{key}` | {meaning} |" for key, meaning in TARGET_KINDS.items())
    evidence = "\n".join(f"| {key} | {meaning} |" for key, meaning in EVIDENCE.items())
    index = "\n".join(
        f"| [`{n}`](#{n}-{REGISTRY[n].__name__.lower()}) | {FAMILIES[REGISTRY[n].family][0]} | {REGISTRY[n].target_kind} "
        f"| {REGISTRY[n].evidence} | {REGISTRY[n].citation} |" for n in names())
    head = HEADER.format(families=families, targets=targets, evidence=evidence, index=index)
    return head + "\n" + "\n".join(card(n) for n in names())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m toybench.cards", description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", help="print this loss's card")
    parser.add_argument("--write", metavar="PATH", help="write every card to PATH (docs/losses.md)")
    parser.add_argument("--check", metavar="PATH", help="exit 1 when PATH differs from the registry's cards")
    args = parser.parse_args(argv)
    if args.write:
        Path(args.write).write_text(document(), encoding="utf-8")
    if args.check:
        if Path(args.check).read_text(encoding="utf-8") != document():
            print(f"{args.check} is stale: run python -m toybench.cards --write {args.check}", file=sys.stderr)
            return 1
    if args.name:
        try:
            print(card(args.name), end="")
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    elif not (args.write or args.check):
        print(document(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
