"""``losszoo compare``: train every loss under one shared config and compare them side by side."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console

from losszoo.errors import ConfigError
from losszoo.cli.options import add_training_options, config_from_args, parse_loss_options
from losszoo.distributed import init_distributed
from losszoo.training.compare import compare


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("compare", help="train and compare losses", description=__doc__)
    parser.add_argument("--losses", type=lambda s: [x.strip() for x in s.split(",") if x.strip()],
                        help="comma-separated loss names (default: every registered loss)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per loss (default 1)")
    parser.add_argument("--loss-option", action="append", metavar="LOSS.NAME=VALUE",
                        help="one loss's hyperparameter, e.g. cosface.scale=64; repeatable; "
                        "wins over the config file's [loss_options.<loss>] tables")
    add_training_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config, table = config_from_args(args)
    losses = args.losses if args.losses is not None else table.get("losses")
    seeds = args.seeds if args.seeds is not None else table.get("seeds", 1)
    output = Path(args.output or f"runs/compare-{config.dataset}-{config.backbone}-{config.dim}")
    compare(config, output, losses=losses, seeds=seeds, loss_options=loss_options(args, table),
            progress=args.progress, console=Console(stderr=True))
    Console(quiet=not init_distributed().is_main).print(
        f"results: {output}/results.json, results.csv, results.md, *.png")
    return 0


def loss_options(args: argparse.Namespace, table: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per-loss options: the config file's ``[loss_options.<loss>]`` tables, then ``--loss-option``."""
    options = {loss: dict(values) for loss, values in table.get("loss_options", {}).items()}
    for key, value in parse_loss_options(args.loss_option).items():
        loss, dot, name = key.partition(".")
        if not (dot and loss and name):
            raise ConfigError(f"compare --loss-option expects LOSS.NAME=VALUE (e.g. cosface.scale=64), got {key!r}")
        options.setdefault(loss, {})[name] = value
    return options
