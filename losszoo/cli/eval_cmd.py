"""``losszoo eval``: evaluate a trained run (its checkpoint), or an untrained network, on the
run's dataset or another one."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from losszoo.cli.options import EVAL_SETTINGS, HelpFormatter, add_training_options, config_from_args, plain
from losszoo.cli.tables import print_table
from losszoo.errors import ConfigError, OutputError
from losszoo.training.config import TrainConfig


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("eval", help="evaluate a trained run", description=plain(__doc__),
                                   formatter_class=HelpFormatter)
    parser.add_argument("run_dir", nargs="?", help="a 'losszoo train' output folder (omit: untrained)")
    add_training_options(parser, only=EVAL_SETTINGS)
    parser.add_argument("--save-embeddings", dest="save_embeddings", nargs="?", const=True, default=None,
                        metavar="DIR", help="write embeddings.npz and items.csv (test embeddings, "
                        "labels, image paths, neighbours) into DIR (default: the run folder)")
    parser.add_argument("--retrieval-figure", dest="retrieval_figure", nargs="?", const=True,
                        default=None, metavar="PNG", help="draw queries and their top-k neighbours, "
                        "marked same class / other class (default: RUN/retrieval.png, with .svg and .pdf)")
    parser.add_argument("--figure-queries", dest="figure_queries", type=int, default=8,
                        help="queries in the retrieval figure")
    parser.add_argument("--figure-k", dest="figure_k", type=int, default=5,
                        help="neighbours per query in the retrieval figure")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from losszoo.training.checkpoint import load_checkpoint, write_json
    from losszoo.training.plan import build_model, evaluate, final_test_data, plan_run
    from losszoo.training.retrieval_figure import RETRIEVAL_FIGURE
    from losszoo.training.trainer import CHECKPOINT

    # Where extras go is settled before any work, so a missing folder fails at once.
    for flag, value in (("--figure-queries", args.figure_queries), ("--figure-k", args.figure_k)):
        if value < 1:
            raise ConfigError(f"{flag} must be >= 1, got {value}")
    embeddings_dir = _target(args.save_embeddings, args.run_dir, "--save-embeddings DIR")
    figure = _target(args.retrieval_figure, args.run_dir, "--retrieval-figure PNG", RETRIEVAL_FIGURE)
    for path in (embeddings_dir, figure and figure.parent, args.output and Path(args.output).parent):
        _check_writable(path)
    state = None
    if args.run_dir:
        path = Path(args.run_dir) / CHECKPOINT
        if not path.exists():
            raise ConfigError(f"no checkpoint at {path}: pass a losszoo train output folder")
        state = load_checkpoint(path)
        trained = TrainConfig.from_dict(state["config"])
        for key in MODEL_SHAPE:  # the checkpoint's weights fit only the network they trained
            given = getattr(args, key, None)
            if given is not None and given != getattr(trained, key):
                raise ConfigError(f"{path} holds a {trained.backbone} with dim {trained.dim}: "
                                  f"--{key.replace('_', '-')} {given} cannot load it")
        # Settings given now (e.g. another dataset) apply on top of the run's own.
        config, _ = config_from_args(args, **{k: v for k, v in trained.to_dict().items()
                                               if getattr(args, k, None) is None})
    else:
        config, _ = config_from_args(args)
    if args.run_dir:
        check_loss_registered(Path(args.run_dir), config.loss)
    # eval tests the model: on the test split, whichever classes it was trained on.
    plan = plan_run(config.replace(protocol="final", eval_every=0))
    model = build_model(plan)
    if state is not None:
        model.load_state_dict(state["model"])
    data = final_test_data(plan, model)
    keep = embeddings_dir is not None or figure is not None
    evaluation = evaluate(plan, model, data, keep=keep, console=Console(stderr=True))
    if keep:
        _write_extras(evaluation.arrays, data, config, embeddings_dir, figure, args)
    metrics = evaluation.metrics.to_dict()
    rows = [[key, f"{100 * value:.2f}" if isinstance(value, float) else str(value)]
            for key, value in metrics.items()]
    print_table(Console(), f"{config.dataset}: {args.run_dir or 'untrained ' + config.backbone}",
                ("metric", "value"), rows, right=("value",))
    if args.output:
        write_json(args.output, metrics)
    return 0


MODEL_SHAPE = ("backbone", "dim")  # the settings a checkpoint's state dict is tied to


def _check_writable(folder: Path | None) -> None:
    """An output folder that cannot be written (its nearest existing folder refuses a file, or
    a file stands in its way) is refused before the evaluation, not after it."""
    if folder is None:
        return
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise OutputError(f"cannot write {folder}: {existing} is a file")
    try:
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as exc:
        raise OutputError(f"cannot write {folder}: {exc.strerror or exc}") from None


def check_loss_registered(run_dir: Path, loss: str) -> None:
    """Refuse, saying how to load it, a run whose loss is not registered in this process (one
    trained with ``--loss-module``): its result.json records where the loss was defined."""
    from losszoo.losses import get_loss_spec
    from losszoo.training.records import read_record
    from losszoo.training.trainer import RESULT

    try:
        get_loss_spec(loss)
        return
    except KeyError:
        pass
    source = {}
    if (run_dir / RESULT).exists():
        source = (read_record(run_dir / RESULT).provenance or {}).get("loss") or {}
    module = source.get("file") or source.get("module")
    how = (f"pass --loss-module {module}" if module
           else "pass --loss-module FILE.py|MODULE, the one it was trained with")
    raise ConfigError(f"{run_dir} was trained with loss {loss!r}, which is not registered: {how}")


def _target(value: str | bool | None, run_dir: str | None, flag: str, name: str | None = None) -> Path | None:
    """The path an optional-argument flag names: its value, else the run folder (``/ name``)."""
    if value is None:
        return None
    if isinstance(value, str):
        return Path(value)
    if not run_dir:
        raise ConfigError(f"an untrained evaluation has no run folder: give a path ({flag})")
    return Path(run_dir) / name if name else Path(run_dir)


def _write_extras(arrays: object, data: object, config: TrainConfig, embeddings_dir: Path | None,
                  figure: Path | None, args: argparse.Namespace) -> None:
    from rich.console import Console

    from losszoo.training.embeddings import save_embeddings
    from losszoo.training.retrieval_figure import retrieval_figure

    console = Console(stderr=True)
    if embeddings_dir is not None:
        paths = save_embeddings(embeddings_dir, arrays, data)
        console.print(f"embeddings: {', '.join(map(str, paths))}")
    if figure is not None:
        path, _ = retrieval_figure(figure, arrays, data, queries=args.figure_queries, k=args.figure_k,
                                   seed=config.seed, title=f"{config.loss}: {config.dataset} test queries "
                                         f"({config.backbone}, dim {config.dim})")
        console.print(f"retrieval figure: {path}")
