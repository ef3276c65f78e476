"""``losszoo eval``: evaluate a trained run (its checkpoint), or an untrained network, on the
run's dataset or another one."""

from __future__ import annotations

import argparse
from pathlib import Path

from losszoo.cli.options import EVAL_SETTINGS, HelpFormatter, add_training_options, config_from_args, plain
from losszoo.cli.tables import print_table
from losszoo.errors import ConfigError
from losszoo.training.config import TrainConfig


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("eval", help="evaluate a trained run", description=plain(__doc__),
                                   formatter_class=HelpFormatter)
    parser.add_argument("run_dir", nargs="?", help="a 'losszoo train' output folder (omit: untrained)")
    add_training_options(parser, only=EVAL_SETTINGS)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from losszoo.training.checkpoint import load_checkpoint, write_json
    from losszoo.training.plan import build_model, evaluate, final_test_data, plan_run
    from losszoo.training.trainer import CHECKPOINT

    state = None
    if args.run_dir:
        path = Path(args.run_dir) / CHECKPOINT
        if not path.exists():
            raise ConfigError(f"no checkpoint at {path}: pass a losszoo train output folder")
        state = load_checkpoint(path)
        trained = TrainConfig.from_dict(state["config"])
        # Settings given now (e.g. another dataset) apply on top of the run's own.
        config, _ = config_from_args(args, **{k: v for k, v in trained.to_dict().items()
                                               if getattr(args, k, None) is None})
    else:
        config, _ = config_from_args(args)
    # eval tests the model: on the test split, whichever classes it was trained on.
    plan = plan_run(config.replace(protocol="final", eval_every=0))
    model = build_model(plan)
    if state is not None:
        model.load_state_dict(state["model"])
    metrics = evaluate(plan, model, final_test_data(plan, model))
    rows = [[key, f"{100 * value:.2f}" if isinstance(value, float) else str(value)]
            for key, value in metrics.items()]
    print_table(Console(), f"{config.dataset}: {args.run_dir or 'untrained ' + config.backbone}",
                ("metric", "value"), rows, right=("value",))
    if args.output:
        write_json(args.output, metrics)
    return 0
