"""The ``toybench`` command line. It adds no math of its own.

Each subcommand is a module of this package with ``add_parser(subparsers)``, which adds the
subcommand's parser (``_options.add_command``) and sets its handler with
``set_defaults(run=handler)``; a handler takes the parsed arguments and returns the exit status.
Adding a subcommand is one new module and one entry in ``COMMANDS``. Every error is one line on
stderr: exit status 2 for bad input (``ValueError``), 1 for anything else (a bug; the environment
variable ``TOYBENCH_TRACEBACK=1`` shows its traceback).
"""
from __future__ import annotations

import importlib
import os
import sys

from .. import __version__
from ._options import HelpFormatter, Parser, UsageError

COMMANDS = ("verify", "listing", "train", "compare", "explain", "sweep", "figures", "report")
"""Modules of this package, one subcommand each, in the order ``--help`` lists them."""


def build_parser() -> Parser:
    parser = Parser(prog="toybench", formatter_class=HelpFormatter,
                    description="Exact, enumerable toy problems for DPO-family preference losses.",
                    epilog="toybench COMMAND --help lists a command's options with their defaults; "
                           "python -m toybench is the same program.")
    parser.add_argument("--version", action="version", version=f"toybench {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", help="one of:")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").add_parser(subparsers)
    return parser


def main(argv=None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as err:
        return _fail(err.where or "toybench", err)
    except SystemExit as done:   # --help, --version
        return done.code or 0
    try:
        return args.run(args)
    except ValueError as err:    # includes UsageError and tb.NoFiniteMinimum
        return _fail(f"toybench {args.command}", err)
    except BrokenPipeError:      # output piped into a reader that closed early (e.g. `| head`)
        sys.stdout = None
        return 0
    except Exception as err:     # a bug, not bad input: one line, status 1, the traceback on request
        if os.environ.get("TOYBENCH_TRACEBACK"):
            raise
        print(f"toybench {args.command}: internal error: {type(err).__name__}: {' '.join(str(err).split())} "
              "(a bug: please report it; TOYBENCH_TRACEBACK=1 shows the traceback)", file=sys.stderr)
        return 1


def _fail(where: str, err: Exception) -> int:
    message = " ".join(str(err).split())
    print(f"{where}: error: {message}", file=sys.stderr)
    return 2
