"""The ``losszoo`` command: ``list``, ``train``, ``eval``, ``compare``, ``tune``."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from losszoo.cli import compare, eval_cmd, list_cmd, train, tune
from losszoo.errors import LosszooError
from losszoo.models import WeightsUnavailableError

COMMANDS = (list_cmd, train, eval_cmd, compare, tune)
# Errors a user can fix, printed as one line; anything else is a bug and keeps its traceback.
USER_ERRORS = (LosszooError, WeightsUnavailableError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="losszoo", description="A zoo of deep-metric-learning losses and a fair comparison harness.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # recorded in tune's best.toml
    try:
        return args.run(args)
    except USER_ERRORS as exc:
        message = exc.args[0] if exc.args else exc
        Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {message}", markup=True,
                                                   highlight=False)
        return 2
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted: rerun the same command (train: with --resume) to continue")
        return 130


if __name__ == "__main__":
    sys.exit(main())
