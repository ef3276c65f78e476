"""Training options shared by ``losszoo train`` and ``losszoo compare``.

Every option defaults to ``None`` so that only what the user typed overrides the TOML config
(``--config``), which in turn overrides the dataset preset and the paper's defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from losszoo.errors import ConfigError
from losszoo.training.config import (DATASET_PRESETS, EVAL_COMMAND, Setting, TrainConfig, build_config,
                                     declarations, read_toml)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default when it has a meaningful one (not None, not a flag's False)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        flag = isinstance(action, (argparse._StoreConstAction, argparse._StoreTrueAction,
                                   argparse._StoreFalseAction, argparse._VersionAction))
        if action.default in (None, False, argparse.SUPPRESS) or "default" in help_text or flag \
                or not action.option_strings:
            return help_text
        return super()._get_help_string(action)


def plain(text: str | None) -> str | None:
    """A docstring as help text: no reStructuredText markup (double backticks)."""
    return None if text is None else text.replace("``", "'")


def _default(name: str) -> str:
    """'(default: X)' for a TrainConfig field, and the embedded Omniglot preset's value if it differs."""
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    value = defaults[name]
    shown = ",".join(map(str, value)) if isinstance(value, tuple) else value
    preset = DATASET_PRESETS["omniglot"].get(name, value)
    if preset != value:
        preset = ",".join(map(str, preset)) if isinstance(preset, tuple) else preset
        return f"(default: {shown}; {preset} on the embedded omniglot)"
    return f"(default: {shown})"


def _int_tuple(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


# Settings ``losszoo eval`` uses: what picks the data and the network, and how it is scored.
EVAL_SETTINGS = frozenset({"config", *EVAL_COMMAND})


def add_training_options(parser: argparse.ArgumentParser, *, only: frozenset[str] | None = None) -> None:
    """The run settings as options, one per TrainConfig field from its declaration
    (``losszoo.training.config.Setting``; ``only``: just these fields, e.g. for eval)."""
    title = ("training (command line > --config file > tuned preset > dataset preset > paper defaults)"
             if only is None else "settings (command line > the run's own > dataset preset > paper defaults)")
    g = parser.add_argument_group(title)
    if only is None or "config" in only:
        g.add_argument("--config", dest="config", help="TOML file; its top-level keys are TrainConfig fields")
    for name, declared in declarations().items():
        if declared.command_option or (only is not None and name not in only):
            continue
        help_text = declared.help
        if declared.show_default and declared.check is not None:  # a table has no default to show
            help_text = f"{help_text} {_default(name)}".strip()
        g.add_argument(declared.flag, dest=_dest(name, declared), help=help_text, **_argparse_kind(declared))
    parser.add_argument("--output", "-o", default=None,
                        help="a JSON file for the metrics" if only is not None else "output folder")
    if only is None:
        parser.add_argument("--no-progress", dest="progress", action="store_false",
                            help="no progress bars")


def _dest(name: str, declared: Setting) -> str:
    """A table setting's flag is repeatable (--miner-option NAME=VALUE): its raw values land in
    the flag's own name, parsed by :func:`command_line_settings`."""
    return declared.flag.lstrip("-").replace("-", "_") if declared.check is None else name


def _argparse_kind(declared: Setting) -> dict[str, Any]:
    if declared.check is None:
        return {"action": "append", "metavar": "NAME=VALUE"}
    if declared.const is not None:
        return {"action": "store_const", "const": declared.const}
    if declared.items:
        return {"type": _int_tuple}
    kind = {int: int, float: float}.get(declared.check.kind)
    return {**({"type": kind} if kind else {}), **({"choices": declared.choices} if declared.choices else {}),
            **({"metavar": declared.metavar} if declared.metavar else {})}


def add_log_options(parser: argparse.ArgumentParser) -> None:
    """Options of the commands that train (train, compare)."""
    parser.add_argument("--tensorboard", action="store_true",
                        help="also write TensorBoard event files (pip install losszoo[tensorboard])")
    parser.add_argument("--mlflow", nargs="?", const="", default=None, metavar="TRACKING_URI",
                        help="also log to MLflow (pip install losszoo[mlflow]): one run per loss and "
                        "seed, a comparison as their parent; default store: ./mlruns/mlflow.db")


def command_line_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig settings given as flags (None: not given)."""
    given = vars(args)
    settings: dict[str, Any] = {}
    for name, declared in declarations().items():
        if declared.check is None:  # a table: repeated NAME=VALUE flags
            raw = given.get(_dest(name, declared))
            if raw is not None and not declared.command_option:
                settings[name] = parse_loss_options(raw, flag=declared.flag)
        elif name in given:
            settings[name] = given[name]
    return settings


def config_from_args(args: argparse.Namespace, *, base: dict[str, Any] | None = None,
                     **overrides: Any) -> tuple[TrainConfig, dict[str, Any]]:
    """The run config and the raw TOML table (for command-specific keys such as ``losses``).

    ``base``: settings below the config file (a preset's shared settings), the table's keys too.
    """
    table = {**(base or {}), **(read_toml(args.config) if args.config else {})}
    settings = declarations()
    # The loss options of a file go to the loss it trains (file_loss_tables); a miner's arguments are one table.
    file_settings = {k: v for k, v in table.items()
                     if k in settings and (not isinstance(v, dict) or k == "miner_options")}
    return build_config(file_settings, command_line_settings(args), overrides), table


def file_loss_tables(table: dict[str, Any], loss: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A config file's hyperparameters and shared settings for the one loss ``loss`` trains: a
    flat ``[loss_options]`` table, or the loss's own ``[loss_options.<loss>]`` and
    ``[loss_settings.<loss>]`` tables (best.toml's, matched by canonical name or alias)."""
    if _flat_loss_options(table):
        return dict(table["loss_options"]), {}
    from losszoo.training.plan import loss_name

    def canonical(name: str) -> str:
        try:
            return loss_name(name)
        except ConfigError as exc:
            raise ConfigError(f"{exc.args[0]} (a table of the config file)") from None

    wanted = canonical(loss)
    pick = lambda key: {k: v for name, values in table.get(key, {}).items()  # noqa: E731
                        if canonical(name) == wanted for k, v in values.items()}
    return pick("loss_options"), pick("loss_settings")


def _flat_loss_options(table: dict[str, Any]) -> bool:
    """Whether the file's ``[loss_options]`` is one flat table (for the one loss trained), not
    per-loss ``[loss_options.<loss>]`` tables."""
    options = table.get("loss_options", {})
    return bool(options) and not any(isinstance(v, dict) for v in options.values())


def add_warm_start_option(parser: argparse.ArgumentParser, *, note: str = "") -> None:
    parser.add_argument("--warm-start", dest="warm_start", default=None, metavar="BEST_TOML",
                        help="a previous tune's best.toml: each new study tries its loss's best second "
                             f"(after the untuned setting); it must cover every loss tuned{note}")


def warm_start_tables(path: str, losses: list[str]) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Each loss's (options, shared settings) from a previous tune's best.toml; every loss tuned
    must have them, so that each gets the same warm start."""
    from losszoo.training.plan import loss_name

    table = read_toml(path)
    best = {loss_name(loss): file_loss_tables(table, loss) for loss in losses}
    flat = _flat_loss_options(table)
    missing = [name for name, (options, settings) in best.items() if flat or not (options or settings)]
    if missing:
        raise ConfigError(f"{path}: no loss_options.<loss> or loss_settings.<loss> table for "
                          f"{', '.join(missing)} (a warm start must cover every loss tuned)")
    return best


def parse_loss_options(items: list[str] | None, flag: str = "--loss-option") -> dict[str, Any]:
    """``--loss-option temperature=0.1`` pairs, values parsed as numbers/booleans when they can be."""
    options: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag} expects name=value, got {item!r}")
        options[key.strip()] = _parse_value(raw.strip())
    return options


def _parse_value(raw: str) -> Any:
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return raw
