"""``losszoo compare``: train every loss under one shared config and compare them side by side."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from losszoo.cli.options import (HelpFormatter, add_log_options, add_training_options, add_warm_start_option,
                                 command_line_settings, parse_loss_options, plain, warm_start_tables)
from losszoo.errors import ConfigError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("compare", help="train and compare losses", description=plain(__doc__),
                                   formatter_class=HelpFormatter)
    parser.add_argument("--losses", type=lambda s: [x.strip() for x in s.split(",") if x.strip()],
                        help="comma-separated loss names or groups: paper (the default: the eight losses "
                        "Zhai & Wu compare), modern (Proxy-Anchor, Multi-Similarity, ArcFace, SupCon), all")
    parser.add_argument("--seeds", type=int, default=None,
                        help="seeds per loss (default: 1, or the config file's seeds: 3 in the "
                        "shipped omniglot preset)")
    parser.add_argument("--loss-option", action="append", metavar="LOSS.NAME=VALUE",
                        help="one loss's hyperparameter, e.g. cosface.scale=64; repeatable; "
                        "wins over the config file's [loss_options.<loss>] tables")
    parser.add_argument("--tune", type=int, default=None, metavar="N",
                        help="first tune N trials per loss on validation classes (losszoo tune), "
                        "then compare with the best settings under protocol final over --seeds")
    parser.add_argument("--metric", default=None, help="validation metric tuned (with --tune; default map_at_r)")
    parser.add_argument("--storage", default=None, help="Optuna storage URL (with --tune)")
    add_warm_start_option(parser, note=" (with --tune)")
    parser.add_argument("--preset", default=None, metavar="NAME",
                        help="a shipped tuned preset instead of the dataset's (losszoo list presets), "
                        "e.g. cub100-cpu: EfficientNet-Lite0 fine-tuned on cub100 on a CPU")
    parser.add_argument("--untuned", action="store_true",
                        help="the papers' per-loss defaults instead of the dataset's shipped tuned "
                        "preset (losszoo/training/presets/<dataset>.toml)")
    parser.add_argument("--allow-untuned", dest="allow_untuned", metavar="LOSS[,LOSS]",  # or a group
                        type=lambda s: [x.strip() for x in s.split(",") if x.strip()],
                        help="compare these losses at their defaults beside tuned ones (refused "
                        "otherwise); their rows are marked 'untuned' and the caption says so")
    parser.add_argument("--save-embeddings", dest="save_embeddings", action="store_true",
                        help="also write each run's test embeddings, labels and neighbours "
                        "(embeddings.npz, items.csv) and its retrieval figure (retrieval.png) into its folder")
    add_training_options(parser)
    add_log_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from losszoo.distributed import init_distributed
    from losszoo.training.spec import load_comparison, run_comparison

    from losszoo.tuning.study import DEFAULT_METRIC

    if args.tune is not None and args.tune < 1:
        raise ConfigError(f"--tune N runs N >= 1 trials per loss, got {args.tune} (omit --tune not to tune)")
    for flag, value in (("--warm-start", args.warm_start), ("--metric", args.metric), ("--storage", args.storage)):
        if value is not None and not args.tune:  # a tuning option, silently ignored without --tune
            raise ConfigError(f"{flag} needs --tune N (it is a tuning option)")
    args.metric = args.metric or DEFAULT_METRIC
    spec = load_comparison(command_line=command_line_settings(args), config_file=args.config,
                           untuned=args.untuned or bool(args.tune), losses=args.losses, seeds=args.seeds,
                           loss_options=loss_options(args), allow_untuned=args.allow_untuned or (),
                           preset=args.preset)
    config = spec.base
    output = Path(args.output or f"runs/compare-{config.dataset}-{config.backbone}-{config.dim}")
    warm_start = warm_start_tables(args.warm_start, spec.names) if args.warm_start else None
    with _tracking(args, output) as callbacks:
        run_comparison(spec, output, tune=args.tune or 0, metric=args.metric, storage=args.storage,
                       warm_start=warm_start, command=command_line(args), progress=args.progress,
                       console=Console(stderr=True), tensorboard=args.tensorboard,
                       save_embeddings=args.save_embeddings, callbacks=callbacks)
    Console(quiet=not init_distributed().is_main).print(
        f"results: {output}/results.json, results.csv, results.md, *.png")
    return 0


@contextlib.contextmanager
def _tracking(args: argparse.Namespace, output: Path) -> Iterator[list[Any]]:
    """The callbacks --mlflow asks for: a parent MLflow run for the comparison (rank 0 only)."""
    from losszoo.distributed import init_distributed

    if args.mlflow is None or not init_distributed().is_main:
        yield []
        return
    from losszoo.training.mlflow_logger import mlflow_comparison

    with mlflow_comparison(output, args.mlflow or None) as logger:
        yield [logger]


def command_line(args: argparse.Namespace) -> str:
    """The exact command, for best.toml's header."""
    import shlex

    return "losszoo " + " ".join(shlex.quote(a) for a in getattr(args, "argv", []))


def loss_options(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Per-loss options given as ``--loss-option LOSS.NAME=VALUE``."""
    options: dict[str, dict[str, Any]] = {}
    for key, value in parse_loss_options(args.loss_option).items():
        loss, dot, name = key.partition(".")
        if not (dot and loss and name):
            raise ConfigError(f"compare --loss-option expects LOSS.NAME=VALUE (e.g. cosface.scale=64), got {key!r}")
        options.setdefault(loss, {})[name] = value
    return options
