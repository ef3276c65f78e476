"""``losszoo compare``: train every loss under one shared config and compare them side by side."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from losszoo.cli.options import add_training_options, config_from_args
from losszoo.training.compare import compare


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("compare", help="train and compare losses", description=__doc__)
    parser.add_argument("--losses", type=lambda s: [x.strip() for x in s.split(",") if x.strip()],
                        help="comma-separated loss names (default: every registered loss)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per loss (default 1)")
    add_training_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config, table = config_from_args(args)
    losses = args.losses or table.get("losses")
    seeds = args.seeds or table.get("seeds", 1)
    output = Path(args.output or f"runs/compare-{config.dataset}-{config.backbone}-{config.dim}")
    compare(config, output, losses=losses, seeds=seeds, loss_options=table.get("loss_options"),
            progress=args.progress, console=Console(stderr=True))
    Console().print(f"results: {output}/results.json, results.csv, results.md, *.png")
    return 0
