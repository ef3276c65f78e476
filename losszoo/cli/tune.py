"""``losszoo tune``: per loss, an Optuna study with the same trial budget on validation classes
(the test split is never read); writes best.toml for ``losszoo compare --config``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from losszoo.cli.compare import command_line
from losszoo.cli.options import (HelpFormatter, add_training_options, add_warm_start_option, config_from_args,
                                 plain, warm_start_tables)

if TYPE_CHECKING:
    from losszoo.training.config import TrainConfig


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("tune", help="tune each loss on validation classes", description=plain(__doc__),
                                   formatter_class=HelpFormatter)
    parser.add_argument("--losses", type=lambda s: [x.strip() for x in s.split(",") if x.strip()],
                        help="comma-separated loss names or groups: paper (the default: the eight losses "
                        "Zhai & Wu compare), modern (Proxy-Anchor, Multi-Similarity, ArcFace, SupCon), all")
    parser.add_argument("--trials", type=int, default=20, help="finished trials per loss")
    parser.add_argument("--metric", default=None, help="validation metric to maximise (default map_at_r)")
    parser.add_argument("--storage", default=None,
                        help="Optuna storage URL (any SQLAlchemy URL); default SQLite in the output folder")
    add_warm_start_option(parser)
    parser.add_argument("--preset", default=None, metavar="NAME",
                        help="start from a shipped preset's shared settings (losszoo list presets), "
                        "below --config and flags; its per-loss tables are what the tune searches")
    parser.add_argument("--sampler-seed", dest="sampler_seed", type=int, default=0, help="TPE sampler seed")
    add_training_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from losszoo.tuning import tune
    from losszoo.tuning.study import DEFAULT_METRIC

    config, losses = tune_settings(args)
    output = Path(args.output or f"runs/tune-{config.dataset}-{config.backbone}-{config.dim}")
    warm_start = warm_start_tables(args.warm_start, losses) if args.warm_start else None
    tune(config.replace(eval_every=0), output, losses=losses, trials=args.trials, metric=args.metric or DEFAULT_METRIC,
         storage=args.storage, sampler_seed=args.sampler_seed, command=command_line(args),
         console=Console(stderr=True), warm_start=warm_start)
    Console().print(f"best settings: {output / 'best.toml'} (losszoo compare --config {output / 'best.toml'})")
    return 0


def tune_settings(args: argparse.Namespace) -> tuple[TrainConfig, list[str]]:
    """The settings every loss is tuned from (flags > --config > --preset's shared settings) and
    the losses tuned."""
    from losszoo.losses import select_losses
    from losszoo.training.config import preset_settings

    base = preset_settings(args.preset) if args.preset else None
    config, table = config_from_args(args, base=base, protocol="tune")
    return config, select_losses(args.losses or table.get("losses"))
