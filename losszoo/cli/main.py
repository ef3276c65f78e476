"""The ``losszoo`` command: ``list``, ``train``, ``eval``, ``compare``, ``tune``."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

from losszoo import __version__, runtime
from losszoo.cli import check_data, compare, eval_cmd, list_cmd, train, tune
from losszoo.cli.options import HelpFormatter
from losszoo.errors import LosszooError

# Each command module imports torch and the harness only when its command runs, so that
# `losszoo --help` and every `losszoo COMMAND --help` answer at once.
COMMANDS = (list_cmd, train, eval_cmd, compare, tune, check_data)


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
        if getattr(command, "IMPORTS_LOSSES", True):  # the parser just added
            list(subparsers.choices.values())[-1].add_argument(
                "--loss-module", dest="loss_module", action="append", metavar="FILE.py|MODULE[:FUNC]",
                help="import a file or module first, registering its losses for this command "
                "(MODULE:FUNC also calls FUNC()); repeatable")
    return parser


def load_loss_modules(specs: list[str]) -> None:
    """Import each ``--loss-module``: a ``.py`` file, a module name, or ``module:function``
    (then call the function, like a plugin's entry point). Its ``register_loss`` calls register
    its losses for this process."""
    import importlib
    import importlib.util
    from pathlib import Path

    from losszoo.errors import ConfigError

    for spec in specs:
        if spec.endswith(".py"):
            path = Path(spec)
            if not path.is_file():
                raise ConfigError(f"--loss-module {spec}: no such file")
            module_spec = importlib.util.spec_from_file_location(f"losszoo_user.{path.stem}", path)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[module_spec.name] = module
            module_spec.loader.exec_module(module)
            continue
        name, _, function = spec.partition(":")
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"--loss-module {spec}: {exc}") from None
        if function:
            if not callable(getattr(module, function, None)):
                raise ConfigError(f"--loss-module {spec}: {name} has no function {function!r}")
            getattr(module, function)()


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """While the command runs, SIGTERM (``kill``, a scheduler's stop, the end of a session)
    unwinds like Ctrl-C: a tune marks its running trial failed, so that the rerun runs it again,
    and the command ends with the "rerun to continue" line instead of dying mid-write."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    runtime.tune_allocator()  # before torch allocates anything
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # recorded in tune's best.toml
    from rich.console import Console

    try:
        with sigterm_interrupts():
            runtime.tune_process(workers=getattr(args, "workers", None) or 0)
            if getattr(args, "loss_module", None):
                load_loss_modules(args.loss_module)
            return args.run(args)
    except Exception as exc:
        if not isinstance(exc, user_errors()):
            raise
        from rich.markup import escape

        message = exc.args[0] if exc.args else exc  # escaped: "[loss_settings.x]" is no markup
        Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {escape(str(message))}", markup=True,
                                                   highlight=False)
        return 2
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted: rerun the same command (train: with --resume) to continue")
        return 130


if __name__ == "__main__":
    sys.exit(main())
