"""Training options shared by ``losszoo train`` and ``losszoo compare``.

Every option defaults to ``None`` so that only what the user typed overrides the TOML config
(``--config``), which in turn overrides the dataset preset and the paper's defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from losszoo.errors import ConfigError
from losszoo.training.config import DATASET_PRESETS, TrainConfig, build_config, read_toml


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
EVAL_SETTINGS = frozenset({"config", "backbone", "dim", "pretrained", "dataset", "data_root", "max_classes",
                           "image_size", "ks", "binary", "seed", "workers", "device", "amp"})


def add_training_options(parser: argparse.ArgumentParser, *, only: frozenset[str] | None = None) -> None:
    """The run settings as options (``only``: just these TrainConfig fields, e.g. for eval)."""
    title = ("training (command line > --config file > dataset preset > paper defaults)" if only is None
             else "settings (command line > the run's own > dataset preset > paper defaults)")
    g = parser.add_argument_group(title)

    def add(*flags: str, dest: str, help: str = "", show_default: bool = True, **kwargs: Any) -> None:
        if only is not None and dest not in only:
            return
        if show_default and dest != "config":
            help = f"{help} {_default(dest)}".strip()
        g.add_argument(*flags, dest=dest, help=help, **kwargs)

    add("--config", dest="config", help="TOML file; its top-level keys are TrainConfig fields")
    add("--backbone", dest="backbone", help="resnet18/34/50/101, googlenet, convnet4, or timm:<name>")
    add("--dim", dest="dim", type=int, help="embedding dimension")
    add("--no-pretrained", dest="pretrained", action="store_const", const=False,
        help="do not load ImageNet weights", show_default=False)
    add("--dataset", dest="dataset", help="omniglot (embedded), cub200, cars196, sop, inshop, imagefolder")
    add("--data-root", dest="data_root", help="dataset folder (omniglot: omit for the embedded copy)",
        show_default=False)
    add("--max-classes", dest="max_classes", type=int,
        help="keep only the first N classes of each split (quick runs)", show_default=False)
    add("--image-size", dest="image_size", type=int, help="crop size (default: the backbone's)",
        show_default=False)
    add("--batch-size", dest="batch_size", type=int)
    add("--samples-per-class", dest="samples_per_class", type=int)
    add("--epochs", dest="epochs", type=int, help="epochs after the warm-up")
    add("--warmup-epochs", dest="warmup_epochs", type=int)
    add("--sampler", dest="sampler", help="batch sampler for every loss (default: each loss's own)",
        show_default=False)
    add("--miner", dest="miner", show_default=False,
        help="a pytorch-metric-learning miner, e.g. pml:MultiSimilarityMiner; its pairs/triplets "
        "replace the loss's own (pair and triplet losses only; default: none)")
    if only is None:
        g.add_argument("--miner-option", dest="miner_option", action="append", metavar="NAME=VALUE",
                       help="miner argument, repeatable (values parsed like --loss-option)")
    add("--lr", dest="lr", type=float, help="base learning rate")
    add("--momentum", dest="momentum", type=float)
    add("--lr-gamma", dest="lr_gamma", type=float, help="step-decay factor")
    add("--lazy-momentum", dest="lazy_momentum", action="store_const", const=True, show_default=False,
        help="subsampled class weights: momentum on the sampled rows only (fast at 1M classes)")
    add("--shard-class-weights", dest="shard_class_weights", action="store_const", const=True,
        show_default=False, help="under torchrun, split the class weights of NormSoftmax, CosFace, "
        "ArcFace, Proxy-NCA and Proxy-Anchor across ranks (model-parallel softmax); compare shards only those losses")
    add("--xbm", dest="xbm", type=int, metavar="SIZE",
        help="cross-batch memory of SIZE embeddings (Wang et al. 2020), for the pair losses that "
        "have a memory form (others are refused, naming those); 0: none")
    add("--xbm-start", dest="xbm_start", type=int, metavar="STEP",
        help="the first training step (warm-up included) that uses the cross-batch memory")
    add("--lr-milestones", dest="lr_milestones", type=_int_tuple, help="epochs after the warm-up")
    add("--weight-decay", dest="weight_decay", type=float)
    add("--batches-per-epoch", dest="batches_per_epoch", type=int, show_default=False,
        help="(default: about the training set size / batch size; 100 on the embedded omniglot)")
    add("--protocol", dest="protocol", choices=("final", "holdout"),
        help="final: train on every training class; holdout: hold out validation classes "
        "(scored every --eval-every epochs); the test classes are evaluated once, at the end")
    add("--val-fraction", dest="val_fraction", type=float,
        help="share of the training classes held out for validation (holdout, tune)")
    add("--val-folds", dest="val_folds", type=int, help="K > 1: K-fold class-disjoint cross-validation")
    add("--val-fold", dest="val_fold", type=int, help="which of the --val-folds folds validates")
    add("--val-seed", dest="val_seed", type=int, help="seed of the validation class draw")
    add("--eval-every", dest="eval_every", type=int, help="evaluate validation classes every N epochs")
    add("--ks", dest="ks", type=_int_tuple, help="Recall@K values")
    add("--no-binary", dest="binary", action="store_const", const=False, show_default=False,
        help="skip the binarized-embedding metrics")
    add("--seed", dest="seed", type=int)
    add("--workers", dest="workers", type=int, help="data-loading processes")
    add("--device", dest="device", help="cpu, cuda, cuda:1 (default: CUDA when available)",
        show_default=False)
    add("--no-amp", dest="amp", action="store_const", const=False, show_default=False,
        help="no mixed precision on CUDA")
    parser.add_argument("--output", "-o", default=None,
                        help="a JSON file for the metrics" if only is not None else "output folder")
    if only is None:
        parser.add_argument("--no-progress", dest="progress", action="store_false",
                            help="no progress bars")


def add_log_options(parser: argparse.ArgumentParser) -> None:
    """Options of the commands that train (train, compare)."""
    parser.add_argument("--tensorboard", action="store_true",
                        help="also write TensorBoard event files (pip install losszoo[tensorboard])")


_NOT_CONFIG = {"command", "run", "config", "output", "resume", "progress", "losses", "seeds",
               "loss_option", "miner_option", "run_dir", "tune", "metric", "storage", "trials",
               "sampler_seed", "warm_start", "argv", "untuned", "tensorboard", "save_embeddings",
               "retrieval_figure", "figure_queries", "figure_k", "loss_module", "allow_untuned"}


def command_line_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig settings given as flags (None: not given)."""
    command_line = {k: v for k, v in vars(args).items() if k not in _NOT_CONFIG}
    miner_options = parse_loss_options(getattr(args, "miner_option", None), flag="--miner-option")
    if miner_options:
        command_line["miner_options"] = miner_options
    return command_line


def config_from_args(args: argparse.Namespace, **overrides: Any) -> tuple[TrainConfig, dict[str, Any]]:
    """The run config and the raw TOML table (for command-specific keys such as ``losses``)."""
    table = read_toml(args.config) if args.config else {}
    file_settings = {k: v for k, v in table.items() if k not in _NOT_CONFIG and not isinstance(v, dict)}
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
