"""``losszoo train``: train one loss and report its retrieval metrics."""

from __future__ import annotations

import argparse
from pathlib import Path

from losszoo.cli.options import (HelpFormatter, add_log_options, add_training_options, config_from_args,
                                 file_loss_tables, parse_loss_options, plain)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train one loss", description=plain(__doc__),
                                   formatter_class=HelpFormatter)
    parser.add_argument("--loss", default=None, help="registered loss name (default: normsoftmax)")
    parser.add_argument("--loss-option", action="append", metavar="NAME=VALUE",
                        help="loss hyperparameter override, repeatable")
    add_training_options(parser)
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run")
    add_log_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from losszoo.distributed import init_distributed
    from losszoo.training.checkpoint import folder_name
    from losszoo.training.trainer import train

    config, table = config_from_args(args)
    options, settings = file_loss_tables(table, config.loss)
    options.update(parse_loss_options(args.loss_option))  # the command line wins
    config = config.replace(loss_options=options,
                            **{k: v for k, v in settings.items() if getattr(args, k, None) is None})
    output = Path(args.output or f"runs/{config.dataset}-{folder_name(config.loss)}-seed{config.seed}")
    callbacks = []
    if args.mlflow is not None and init_distributed().is_main:
        from losszoo.training.mlflow_logger import MLflowLogger

        callbacks.append(MLflowLogger(args.mlflow or None))
    train(config, output, resume=args.resume, progress=args.progress, console=Console(stderr=True),
          tensorboard=args.tensorboard, callbacks=callbacks)
    Console(quiet=not init_distributed().is_main).print(f"results: {output / 'result.json'}")
    return 0
