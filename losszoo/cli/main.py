"""The ``losszoo`` command: ``list``, ``train``, ``eval``, ``compare``, ``tune``."""

from __future__ import annotations

import argparse
import sys

from losszoo import __version__
from losszoo.cli import compare, eval_cmd, list_cmd, train, tune
from losszoo.cli.options import HelpFormatter
from losszoo.errors import LosszooError

# Each command module imports torch and the harness only when its command runs, so that
# `losszoo --help` and every `losszoo COMMAND --help` answer at once.
COMMANDS = (list_cmd, train, eval_cmd, compare, tune)


def user_errors() -> tuple[type[BaseException], ...]:
    """Errors a user can fix, printed as one line; anything else is a bug and keeps its traceback."""
    from losszoo.models import WeightsUnavailableError

    return (LosszooError, WeightsUnavailableError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="losszoo", description="A zoo of deep-metric-learning losses and a fair comparison harness.",
        formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"losszoo {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # recorded in tune's best.toml
    from rich.console import Console

    try:
        return args.run(args)
    except Exception as exc:
        if not isinstance(exc, user_errors()):
            raise
        message = exc.args[0] if exc.args else exc
        Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {message}", markup=True,
                                                   highlight=False)
        return 2
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted: rerun the same command (train: with --resume) to continue")
        return 130


if __name__ == "__main__":
    sys.exit(main())
