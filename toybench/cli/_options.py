"""What several subcommands share: the parser class, help formatting, option types, the problem
options, the shared loss hyperparameters and their sweeps, JSON output."""
from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import pathlib
import re
import sys

import torch

SHARED = {"beta": "β", "eps": "ε"}
"""Loss fields that a shared flag (``--beta``, ``--eps``) sets for every loss that has them."""


NEGATIVE_NUMBERS = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?(,.*)?$")


class UsageError(ValueError):
    """A command-line error: printed as one line, exit status 2. ``where`` names the (sub)command."""

    def __init__(self, message: str, where: str | None = None):
        super().__init__(message)
        self.where = where


class Parser(argparse.ArgumentParser):
    """argparse, but an error is one line (no usage block) and never exits the interpreter, and a
    comma list that starts with a negative number (``--scores -1,0,2,1``) is a value, not an option."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = NEGATIVE_NUMBERS

    def error(self, message):
        raise UsageError(message, where=self.prog)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: …)" to every option whose default is a value (None and False say
    their meaning in the help text itself)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def add_command(subparsers, name: str, help: str, description: str | None = None):
    """A subcommand parser with the shared help formatting."""
    return subparsers.add_parser(name, help=help, description=description or help,
                                 formatter_class=HelpFormatter)


def number_list(text: str) -> list[float]:
    """'0.1,0.3,1' → [0.1, 0.3, 1.0]."""
    try:
        values = [float(item) for item in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected finite numbers, got {text!r}")
    return values


def output_path(text: str) -> str:
    """An output file that can be written: checked when the options are read, before any work."""
    path = pathlib.Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a directory; give a file name")
    folder = path.parent
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write {text!r}: directory {str(folder)!r} does not exist")
    if not os.access(path if path.exists() else folder, os.W_OK):
        raise argparse.ArgumentTypeError(f"cannot write {text!r}: permission denied")
    return text


def add_json(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--json-out", type=output_path, default=None, metavar="PATH",
                        help="also write the JSON to PATH")


def emit_json(args, data) -> None:
    """``--json`` prints ``data``, ``--json-out`` writes it; Unicode stays readable, NaN becomes null."""
    text = json.dumps(_strict(data), indent=1, ensure_ascii=False)
    if args.json:
        print(text)
    if args.json_out:
        pathlib.Path(args.json_out).write_text(text + "\n", encoding="utf-8")


def _strict(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _strict(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(item) for item in value]
    return value


def warn(args, message: str) -> None:
    print(f"toybench {args.command}: warning: {message}", file=sys.stderr)


def show_progress(args) -> bool:
    """A progress bar only for a person watching: stdout and stderr terminals, no --json."""
    return not getattr(args, "json", False) and sys.stdout.isatty() and sys.stderr.isatty()


# ------------------------------------------------------------------------------ the problem
def add_problem_options(parser) -> None:
    group = parser.add_argument_group("problem")
    group.add_argument("--problem", choices=["e1", "random", "sequence"], default="e1",
                       help="e1: the worked instance E1 (one prompt, Y=4, π_ref=(.4,.3,.2,.1), r=(0,.5,1.5,3)); "
                            "random: Problem.random with --responses, --prompts, --seed, --reward-scale; "
                            "sequence: Problem.random over SequenceSpace(--vocab, --max-len) (real token lengths; "
                            "needed by the token-level losses)")
    group.add_argument("--vocab", type=int, default=None, help="ordinary tokens of --problem sequence (2 when not given)")
    group.add_argument("--max-len", type=int, default=None,
                       help="longest string of --problem sequence (2 when not given)")
    group.add_argument("--responses", type=int, default=None, help="Y for --problem random (6 when not given)")
    group.add_argument("--prompts", type=int, default=None, help="P for --problem random (1 when not given)")
    group.add_argument("--reward-scale", type=float, default=None,
                       help="reward (or preference-logit) standard deviation for --problem random (1 when not given)")
    group.add_argument("--preference", choices=["bt", "general"], default="bt",
                       help="--problem random: Bradley–Terry reward, or a general (intransitive) preference "
                            "matrix without a reward")
    group.add_argument("--seed", type=int, default=0,
                       help="seed of the random problem, the sampled data sets (run b uses seed+b) and mini-batches")
    group.add_argument("--pair-dist", default="ref", choices=["ref", "uniform", "did"],
                       help="pair law μ: ref = π_ref⊗π_ref, uniform, did = DID sampler (arXiv 2505.23761)")
    group.add_argument("--noise", type=number_list, default="0",
                       help="label flip rate in [0, 0.5); a comma list (0,0.1,0.2) is a sweep")
    group.add_argument("--lengths", default="unit",
                       help="token lengths |y| of the Y responses, read by length-aware losses (simpo, r_dpo, "
                            "orpo, …): Y comma-separated numbers, or 'unit' (every |y| = 1, so length "
                            "normalisation changes nothing)")
    group.add_argument("--scores", type=number_list, default=None,
                       help="reward-model scores s(x, y), P·Y comma-separated numbers (prompt-major): the "
                            "score gaps of da_dpo/madpo and ddo's p_data = softmax(s) (default: the reward r)")


def problem(args):
    """The Problem the options describe, with token lengths."""
    from ..problem import Problem, e1
    from ..spaces import FlatSpace

    if args.problem == "sequence":
        from ..spaces import SequenceSpace
        if args.responses is not None or args.lengths != "unit":
            raise UsageError("--responses and --lengths: not for --problem sequence (Y and the lengths follow "
                             "from --vocab and --max-len)")
        try:
            space = SequenceSpace(_or(args.vocab, 2), _or(args.max_len, 2))
        except ValueError as error:
            raise UsageError(str(error)) from None
        return Problem.random(space, prompts=_or(args.prompts, 1), seed=args.seed,
                              reward_scale=_or(args.reward_scale, 1.0), preference=args.preference,
                              pair_dist=args.pair_dist)
    if args.vocab is not None or args.max_len is not None:
        raise UsageError("--vocab and --max-len: only for --problem sequence")
    if args.problem == "e1":
        given = [f"--{name.replace('_', '-')}" for name in ("responses", "prompts", "reward_scale")
                 if getattr(args, name) is not None] + ["--preference general"] * (args.preference != "bt")
        if given:
            raise UsageError(f"{', '.join(given)}: only for --problem random (e1 is one fixed problem)")
        prob = e1(args.pair_dist)
    else:
        prob = Problem.random(FlatSpace(_or(args.responses, 6)), prompts=_or(args.prompts, 1), seed=args.seed,
                              reward_scale=_or(args.reward_scale, 1.0), preference=args.preference,
                              pair_dist=args.pair_dist)
    lengths = [1.0] * prob.Y if args.lengths == "unit" else _numbers(args.lengths, "--lengths", prob.Y)
    return prob.replace(space=FlatSpace(prob.Y, lengths=lengths))


def scores(args, prob):
    """``--scores`` as a ``[P, Y]`` float64 table, or None."""
    if args.scores is None:
        return None
    if len(args.scores) != prob.P * prob.Y:
        raise UsageError(f"--scores needs P·Y = {prob.P * prob.Y} numbers, got {len(args.scores)}")
    return torch.tensor(args.scores, dtype=torch.float64).reshape(prob.P, prob.Y)


def check_supplied(loss, prob, args) -> None:
    """A loss that needs what the problem lacks: say which flag supplies it."""
    from ..losses.fdiv import REWARD_INPUTS
    needs = set(loss.needs)
    try:
        loss.required_inputs(prob.space)
    except ValueError as error:
        raise UsageError(f"{error}: use --problem sequence (with --vocab, --max-len)") from None
    if ("score_gap" in needs or loss.name == "ddo") and prob.reward is None and args.scores is None:
        what = "p_data = softmax(score)" if loss.name == "ddo" else "score gaps"
        raise UsageError(f"loss {loss.name!r} needs reward-model scores for its {what} and the problem has no "
                         "Bradley–Terry reward: pass --scores (P·Y numbers)")
    if needs & set(REWARD_INPUTS) and prob.reward is None:
        raise UsageError(f"loss {loss.name!r} (mode={loss.mode}) reads the Bradley–Terry reward: use "
                         "--preference bt, or mode=pair")


def _or(value, default):
    return default if value is None else value


def _numbers(text: str, flag: str, count: int) -> list[float]:
    try:
        values = number_list(text)
    except argparse.ArgumentTypeError as err:
        raise UsageError(f"{flag}: {err}") from None
    if len(values) != count:
        raise UsageError(f"{flag} needs {count} numbers (one per response), got {len(values)}")
    return values


# ------------------------------------------------------------------------------ losses and sweeps
def add_shared_hyperparameters(parser) -> None:
    group = parser.add_argument_group("shared loss hyperparameters (a spec's own value, e.g. dpo:beta=0.5, wins)")
    group.add_argument("--beta", type=number_list, default=None,
                       help="β for every loss that has one (default: each loss's own default, shown in the "
                            "output); a comma list 0.1,0.3,1 is a sweep: one run per value")
    group.add_argument("--eps", type=number_list, default=None,
                       help="ε for every loss that has one (cdpo, rdpo, exo, fpo; default: each loss's own); "
                            "a comma list is a sweep")


def grid(args, keys) -> list[dict]:
    """Every combination of the swept values of ``keys`` that were given (one dict per point)."""
    axes = {key: getattr(args, key) for key in keys if getattr(args, key) is not None}
    return [dict(zip(axes, point, strict=True)) for point in itertools.product(*axes.values())]


def check_shared_apply(args, specs) -> None:
    """A shared flag that no chosen loss has would be silently ignored: refuse it."""
    from ..comparison import parse_spec
    from ..losses import REGISTRY, fields
    for key in SHARED:
        if getattr(args, key) is None:
            continue
        if not any(key in fields(parse_spec(spec)[0]) for spec in specs):
            having = sorted(name for name in REGISTRY if key in fields(name))
            raise UsageError(f"--{key} applies to losses with a {key} field ({', '.join(having)}); "
                             f"none of {', '.join(specs)} has one")


def make_loss(spec: str, points: list[dict]):
    """The loss of ``spec`` with the shared values of ``points`` (one point per run) for the fields it
    has and its spec does not set: scalars when every run agrees, ``[B]`` float64 tensors otherwise."""
    from ..comparison import parse_spec
    from ..losses import fields, make
    name, given = parse_spec(spec)
    accepted = fields(name)
    for key in SHARED:
        values = [point[key] for point in points if key in point]
        if key in accepted and key not in given and values:
            given[key] = values[0] if len(set(values)) == 1 else torch.tensor(values, dtype=torch.float64)
    return make(name, **given)
