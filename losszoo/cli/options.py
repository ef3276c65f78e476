"""Training options shared by ``losszoo train`` and ``losszoo compare``.

Every option defaults to ``None`` so that only what the user typed overrides the TOML config
(``--config``), which in turn overrides the dataset preset and the paper's defaults.
"""

from __future__ import annotations

import argparse
from typing import Any

from losszoo.errors import ConfigError
from losszoo.training.config import TrainConfig, build_config, read_toml


def _int_tuple(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def add_training_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("training (command line > --config file > dataset preset > paper defaults)")
    g.add_argument("--config", help="TOML file; its top-level keys are TrainConfig fields")
    g.add_argument("--backbone", help="resnet18/34/50/101, googlenet, convnet4, or timm:<name>")
    g.add_argument("--dim", type=int, help="embedding dimension")
    g.add_argument("--no-pretrained", dest="pretrained", action="store_const", const=False,
                   help="do not load ImageNet weights")
    g.add_argument("--dataset", help="omniglot (embedded default), cub200, cars196, sop, inshop, imagefolder")
    g.add_argument("--data-root", dest="data_root", help="dataset folder (omniglot: omit for the embedded copy)")
    g.add_argument("--max-classes", dest="max_classes", type=int,
                   help="keep only the first N classes of each split (quick runs)")
    g.add_argument("--image-size", dest="image_size", type=int)
    g.add_argument("--batch-size", dest="batch_size", type=int)
    g.add_argument("--samples-per-class", dest="samples_per_class", type=int)
    g.add_argument("--epochs", type=int, help="epochs after the warm-up")
    g.add_argument("--warmup-epochs", dest="warmup_epochs", type=int)
    g.add_argument("--sampler", help="batch sampler for every loss (default: each loss's own)")
    g.add_argument("--miner", help="a pytorch-metric-learning miner, e.g. pml:MultiSimilarityMiner; "
                   "its pairs/triplets replace the loss's own (pair and triplet losses only)")
    g.add_argument("--miner-option", dest="miner_option", action="append", metavar="NAME=VALUE",
                   help="miner argument, repeatable (values parsed like --loss-option)")
    g.add_argument("--lr", type=float)
    g.add_argument("--momentum", type=float)
    g.add_argument("--lr-gamma", dest="lr_gamma", type=float, help="step-decay factor")
    g.add_argument("--lazy-momentum", dest="lazy_momentum", action="store_const", const=True,
                   help="subsampled class weights: momentum on the sampled rows only (fast at 1M classes)")
    g.add_argument("--lr-milestones", dest="lr_milestones", type=_int_tuple)
    g.add_argument("--weight-decay", dest="weight_decay", type=float)
    g.add_argument("--batches-per-epoch", dest="batches_per_epoch", type=int)
    g.add_argument("--eval-every", dest="eval_every", type=int)
    g.add_argument("--ks", type=_int_tuple, help="Recall@K values, e.g. 1,2,4,8")
    g.add_argument("--no-binary", dest="binary", action="store_const", const=False)
    g.add_argument("--seed", type=int)
    g.add_argument("--workers", type=int, help="data-loading processes")
    g.add_argument("--device", help="cpu, cuda, cuda:1 (default: CUDA when available)")
    g.add_argument("--no-amp", dest="amp", action="store_const", const=False,
                   help="no mixed precision on CUDA")
    parser.add_argument("--output", "-o", default=None, help="output folder (eval: a JSON file for the metrics)")
    parser.add_argument("--no-progress", dest="progress", action="store_false")


def add_log_options(parser: argparse.ArgumentParser) -> None:
    """Options of the commands that train (train, compare)."""
    parser.add_argument("--tensorboard", action="store_true",
                        help="also write TensorBoard event files (pip install losszoo[tensorboard])")


_NOT_CONFIG = {"command", "run", "config", "output", "resume", "progress", "losses", "seeds",
               "loss_option", "miner_option", "run_dir", "tune", "metric", "storage", "trials",
               "sampler_seed", "argv", "untuned", "tensorboard", "save_embeddings", "retrieval_figure"}


def config_from_args(args: argparse.Namespace, **overrides: Any) -> tuple[TrainConfig, dict[str, Any]]:
    """The run config and the raw TOML table (for command-specific keys such as ``losses``)."""
    table = read_toml(args.config) if args.config else {}
    command_line = {k: v for k, v in vars(args).items() if k not in _NOT_CONFIG}
    miner_options = parse_loss_options(getattr(args, "miner_option", None), flag="--miner-option")
    if miner_options:
        command_line["miner_options"] = miner_options
    file_settings = {k: v for k, v in table.items() if k not in _NOT_CONFIG and not isinstance(v, dict)}
    return build_config(file_settings, command_line, overrides), table


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
