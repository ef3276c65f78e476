"""``losszoo compare``: train every loss under one shared config and compare them side by side."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from losszoo.cli.options import (HelpFormatter, add_log_options, add_training_options, add_warm_start_option,
                                 config_from_args, parse_loss_options, plain, warm_start_tables)
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
    parser.add_argument("--metric", default="map_at_r", help="validation metric tuned (with --tune)")
    parser.add_argument("--storage", default=None, help="Optuna storage URL (with --tune)")
    add_warm_start_option(parser, note=" (with --tune)")
    parser.add_argument("--untuned", action="store_true",
                        help="without --config: the papers' per-loss defaults instead of the "
                        "dataset's shipped tuned preset (losszoo/training/presets/<dataset>.toml)")
    parser.add_argument("--save-embeddings", dest="save_embeddings", action="store_true",
                        help="also write each run's test embeddings, labels and neighbours "
                        "(embeddings.npz, items.csv) and its retrieval figure (retrieval.png) into its folder")
    add_training_options(parser)
    add_log_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from losszoo.distributed import init_distributed
    from losszoo.losses import select_losses
    from losszoo.training.compare import compare
    from losszoo.training.plan import loss_name
    from losszoo.training.config import TrainConfig, tuned_preset
    from losszoo.tuning.study import SCHEDULE

    if args.warm_start and not args.tune:
        raise ConfigError("--warm-start needs --tune N (it seeds the tuning studies)")
    if args.config is None and not args.untuned and not args.tune:
        args.config = tuned_preset(args.dataset or TrainConfig.dataset)
    config, table = config_from_args(args)
    losses = select_losses(args.losses if args.losses is not None else table.get("losses"))
    seeds = args.seeds if args.seeds is not None else table.get("seeds", 1)
    output = Path(args.output or f"runs/compare-{config.dataset}-{config.backbone}-{config.dim}")
    if args.losses:  # a config file (e.g. the shipped preset) may cover more losses than compared
        wanted = {loss_name(name) for name in select_losses(args.losses)}
        for key in ("loss_options", "loss_settings"):
            table[key] = {k: v for k, v in table.get(key, {}).items() if loss_name(k) in wanted}
    options, settings = loss_options(args, table), loss_settings(table)
    tuning = table.get("tuning")
    if tuning:  # tuned values hold for the schedule they were tuned under
        changed = [key for key in SCHEDULE if key in table and _differs(table[key], getattr(config, key))]
        if changed:
            tuning = {**tuning, "changed": changed}
            Console(stderr=True).print(f"warning: {args.config} was tuned for other {', '.join(changed)}; "
                                       "the table says so")
    if args.tune:
        from losszoo.tuning import tune

        names = losses
        warm_start = warm_start_tables(args.warm_start, names) if args.warm_start else None
        results = tune(config.replace(protocol="tune", eval_every=0), output / "tune", losses=names,
                       trials=args.tune, metric=args.metric, storage=args.storage,
                       command=command_line(args), console=Console(stderr=True), warm_start=warm_start)
        for result in results:
            options.setdefault(result.loss, {}).update(result.loss_options)
            settings.setdefault(result.loss, {}).update(result.loss_settings)
        tuning = {"trials": args.tune, "metric": args.metric,
                  "curves": {result.loss: result.curve for result in results}}
        config = config.replace(protocol="final", eval_every=0)
    compare(config, output, losses=losses, seeds=seeds, loss_options=options, loss_settings=settings,
            progress=args.progress, console=Console(stderr=True), tuning=tuning,
            tensorboard=args.tensorboard, save_embeddings=args.save_embeddings)
    Console(quiet=not init_distributed().is_main).print(
        f"results: {output}/results.json, results.csv, results.md, *.png")
    return 0


def _differs(tuned: Any, used: Any) -> bool:
    return (list(tuned) != list(used)) if isinstance(tuned, list) else tuned != used


def command_line(args: argparse.Namespace) -> str:
    """The exact command, for best.toml's header."""
    import shlex

    return "losszoo " + " ".join(shlex.quote(a) for a in getattr(args, "argv", []))


def loss_settings(table: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The config file's ``[loss_settings.<loss>]`` tables (e.g. lr, samples_per_class from best.toml)."""
    return {loss: dict(values) for loss, values in table.get("loss_settings", {}).items()}


def loss_options(args: argparse.Namespace, table: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per-loss options: the config file's ``[loss_options.<loss>]`` tables, then ``--loss-option``."""
    options = {loss: dict(values) for loss, values in table.get("loss_options", {}).items()}
    for key, value in parse_loss_options(args.loss_option).items():
        loss, dot, name = key.partition(".")
        if not (dot and loss and name):
            raise ConfigError(f"compare --loss-option expects LOSS.NAME=VALUE (e.g. cosface.scale=64), got {key!r}")
        options.setdefault(loss, {})[name] = value
    return options
