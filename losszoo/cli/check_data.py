"""``losszoo check-data``: decode every image of a dataset's splits once and list each bad file."""

from __future__ import annotations

import argparse

from losszoo.cli.options import HelpFormatter, add_training_options, config_from_args, plain
from losszoo.errors import ConfigError

DATA_SETTINGS = frozenset({"config", "dataset", "data_root"})
IMPORTS_LOSSES = False  # it decodes images only: a --loss-module would go unused


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("check-data", help="decode every image once and list the bad files",
                                   description=plain(__doc__), formatter_class=HelpFormatter)
    add_training_options(parser, only=DATA_SETTINGS)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from losszoo.data.check import bad_images
    from losszoo.training.inference import progress_lines
    from losszoo.training.plan import plan_run

    if args.output:
        raise ConfigError("check-data writes no file (the bad images are printed, one per line): "
                          "drop --output, or redirect its output")
    config, _ = config_from_args(args)
    # Only the listing matters here: no K or batch check may refuse a dataset being checked.
    plan = plan_run(config.replace(protocol="final", eval_every=0, ks=(1,), batch_size=2,
                                   samples_per_class=1), check_images=False)
    console = Console(stderr=True)
    bad: list[str] = []
    for name, listing in plan.splits.items():
        found = bad_images(listing.source, progress_lines(console, f"{config.dataset} {name}"))
        console.log(f"{config.dataset} {name}: {len(found)} bad of {len(listing.source.raw_labels)} images")
        bad += [f"{name}: {message}" for message in found]
    for line in bad:
        Console(soft_wrap=True).print(line, markup=False, highlight=False)
    return 1 if bad else 0
