"""One run's settings. Everything but the loss is shared by every run of a comparison.

Defaults follow Zhai & Wu (2019), Sec. 4.1: batch 75 with 25 samples per class, 1 warm-up
epoch on new parameters only, then SGD (lr 0.01, momentum 0.9, weight decay 1e-4) for 30
epochs with the learning rate divided by 10 at epoch 15.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from losszoo.errors import ConfigError
from losszoo.hyperparams import Hyper

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib


PROTOCOLS = ("final", "holdout", "tune")
# Settings that change only how a trained model is evaluated, never the training itself: a
# finished or interrupted run can be evaluated (or resumed) with other values of these.
EVALUATION_ONLY = ("ks", "binary", "workers", "device")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run (a loss on a backbone, a dataset and a seed).

    ``protocol`` says which classes a run sees (Musgrave et al., "A Metric Learning Reality
    Check", ECCV 2020): ``"final"`` trains on every training class and evaluates the test
    classes once, at the end; ``"holdout"`` trains on the training classes minus a validation
    part (``val_fraction`` of them, or fold ``val_fold`` of ``val_folds``, drawn with
    ``val_seed``), evaluates the validation classes every ``eval_every`` epochs, and the test
    classes once at the end; ``"tune"`` is ``"holdout"`` that never reads the test split.
    """

    loss: str = "normsoftmax"
    loss_options: dict[str, Any] = field(default_factory=dict)
    miner: str | None = None  # a PML miner, "pml:MultiSimilarityMiner"; its tuples feed the loss
    miner_options: dict[str, Any] = field(default_factory=dict)
    backbone: str = "resnet50"
    dim: int = 512
    pretrained: bool = True
    dataset: str = "omniglot"
    data_root: str | None = None
    max_classes: int | None = None  # keep only the first N classes of each split (quick runs)
    image_size: int | None = None  # None: the backbone's / dataset's default
    batch_size: int = 75
    samples_per_class: int = 25
    sampler: str | None = None  # None: the sampler the loss's spec names
    epochs: int = 30
    warmup_epochs: int = 1
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_milestones: tuple[int, ...] = (15,)  # counted in epochs after the warm-up
    lr_gamma: float = 0.1
    lazy_momentum: bool = False  # sparse class weights: momentum on sampled rows only (optim.py)
    shard_class_weights: bool = False  # class weights split across ranks (distributed/sharded.py)
    xbm: int = 0  # cross-batch memory of this many embeddings (losses/xbm.py); 0: none
    xbm_start: int = 0  # the first training step (warm-up included) that uses the memory
    batches_per_epoch: int | None = None  # None: about len(train set) / batch_size
    protocol: str = "final"
    val_fraction: float = 0.2
    val_folds: int = 1  # > 1: K-fold class-disjoint cross-validation, fold `val_fold`
    val_fold: int = 0
    val_seed: int = 0  # the validation classes do not change with the training seed
    eval_every: int = 0  # evaluate the validation classes every N epochs (holdout, tune)
    ks: tuple[int, ...] = (1, 2, 4, 8)
    binary: bool = True  # also report binarized (sign) embeddings, Sec. 4.3
    seed: int = 0
    workers: int = 0
    device: str | None = None  # None: CUDA when available, else CPU
    amp: bool = True  # mixed precision on CUDA only

    def __post_init__(self) -> None:
        for name in (*SETTINGS, *_TUPLES):
            object.__setattr__(self, name, _coerce_setting(name, getattr(self, name)))
        if self.batch_size % self.samples_per_class:
            raise ConfigError(
                f"batch_size {self.batch_size} must be a multiple of samples_per_class "
                f"{self.samples_per_class} (C classes x S samples per batch)"
            )
        if self.val_fold >= self.val_folds:
            raise ConfigError(f"val_fold must be < val_folds ({self.val_folds}), got {self.val_fold}")
        if self.eval_every and self.protocol == "final":
            raise ConfigError(
                "eval_every evaluates held-out validation classes, which protocol 'final' "
                "trains on: use --protocol holdout (test classes are evaluated once, at the end)"
            )
        if not isinstance(self.loss_options, dict):
            raise ConfigError(f"loss_options must be a table of hyperparameters, got {self.loss_options!r}")
        if not isinstance(self.miner_options, dict):
            raise ConfigError(f"miner_options must be a table of miner arguments, got {self.miner_options!r}")
        if self.miner_options and not self.miner:
            raise ConfigError("miner_options given without a miner (--miner pml:<MinerClass>)")

    @property
    def total_epochs(self) -> int:
        return self.warmup_epochs + self.epochs

    @property
    def holds_out_validation(self) -> bool:
        return self.protocol != "final"

    def evaluation_settings(self) -> dict[str, Any]:
        """The settings that change only the metrics (a result records them, see EVALUATION_ONLY)."""
        return {"ks": list(self.ks), "binary": self.binary}

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    def fingerprint(self, exclude: tuple[str, ...] = ()) -> str:
        """A short hash of everything that changes the trained model (not the settings that
        only change its evaluation, see ``EVALUATION_ONLY``, nor those in ``exclude``)."""
        skip = (*EVALUATION_ONLY, *exclude)
        relevant = {k: v for k, v in self.to_dict().items() if k not in skip}
        if self.miner is None:  # runs without a miner keep the fingerprint they had before miners
            relevant.pop("miner", None), relevant.pop("miner_options", None)
        if not self.xbm:  # nor runs without a cross-batch memory
            relevant.pop("xbm", None), relevant.pop("xbm_start", None)
        blob = json.dumps(relevant, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from plain values (a TOML table, a JSON record), rejecting unknown keys."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            close = {name: difflib.get_close_matches(name, known, n=1) for name in unknown}
            hints = "".join(f" ({name}: did you mean {match[0]!r}?)" for name, match in close.items() if match)
            raise ConfigError(
                f"unknown setting(s) {', '.join(unknown)}{hints}; known: {', '.join(sorted(known))}"
            )
        return cls(**values)


# Every setting's type and range, checked the same way as a loss's hyperparameters.
_COUNT, _INDEX = Hyper(kind=int, ge=1), Hyper(kind=int, ge=0)
SETTINGS: dict[str, Hyper] = {
    "loss": Hyper(kind=str), "backbone": Hyper(kind=str), "dataset": Hyper(kind=str),
    "data_root": Hyper(kind=str, optional=True), "sampler": Hyper(kind=str, optional=True),
    "miner": Hyper(kind=str, optional=True),
    "device": Hyper(kind=str, optional=True),
    "dim": _COUNT, "batch_size": _COUNT, "samples_per_class": _COUNT, "epochs": _COUNT,
    "max_classes": Hyper(kind=int, ge=1, optional=True),
    "image_size": Hyper(kind=int, ge=1, optional=True),
    "batches_per_epoch": Hyper(kind=int, ge=1, optional=True),
    "warmup_epochs": _INDEX, "eval_every": _INDEX, "workers": _INDEX, "seed": _INDEX,
    "val_folds": _COUNT, "val_fold": _INDEX, "val_seed": _INDEX,
    "val_fraction": Hyper(kind=float, gt=0, lt=1),
    "lr": Hyper(kind=float, gt=0), "momentum": Hyper(kind=float, ge=0),
    "weight_decay": Hyper(kind=float, ge=0), "lr_gamma": Hyper(kind=float, gt=0),
    "pretrained": Hyper(kind=bool), "lazy_momentum": Hyper(kind=bool),
    "shard_class_weights": Hyper(kind=bool),
    "xbm": _INDEX, "xbm_start": _INDEX,
    "binary": Hyper(kind=bool), "amp": Hyper(kind=bool),
    "protocol": Hyper(kind=str, choices=PROTOCOLS),
}
_TUPLES = {"ks": _COUNT, "lr_milestones": _INDEX}  # tuples of integers


def _coerce_setting(name: str, value: Any) -> Any:
    if name in _TUPLES:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"setting {name} must be a list of integers, got {value!r}")
        items = tuple(_TUPLES[name].coerce(item, name, "setting") for item in value)
        if name == "ks" and not items:
            raise ConfigError("setting ks must name at least one K")
        return items
    return SETTINGS[name].coerce(value, name, "setting")


# Per-dataset defaults that replace the paper's ImageNet-scale ones. The embedded Omniglot copy
# is small grey 28x28 images: a 4-block conv net trained from scratch (so no warm-up: nothing is
# pretrained), 10 "epochs" of 100 batches with lr / 10 after the 6th and the 9th: the tuned
# validation curves rise < 1 point of MAP@R over their last two epochs (a 7-epoch schedule passed
# the last-epoch rule while 3 more epochs still added 5-9 points; docs/compare-omniglot.md).
# The per-loss hyperparameters tuned for this schedule on validation classes ship in
# presets/<dataset>.toml; ``losszoo compare`` uses them unless told ``--untuned``.
DATASET_PRESETS: dict[str, dict[str, Any]] = {
    "omniglot": {
        "backbone": "convnet4",
        "dim": 64,
        "pretrained": False,
        "warmup_epochs": 0,
        "epochs": 10,
        "batches_per_epoch": 100,
        "batch_size": 80,
        "samples_per_class": 5,
        "lr_milestones": (6, 9),
    },
}

PRESET_FOLDER = Path(__file__).resolve().parent / "presets"


def tuned_preset(dataset: str) -> Path | None:
    """The shipped ``losszoo tune`` output (best.toml) for ``dataset``, if there is one."""
    path = PRESET_FOLDER / f"{dataset}.toml"
    return path if path.is_file() else None


def build_config(*layers: dict[str, Any]) -> TrainConfig:
    """Merge settings: the paper's defaults, then the dataset's preset, then each layer in turn
    (e.g. a TOML file, then the command line); ``None`` values in a layer are ignored."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update({k: v for k, v in layer.items() if v is not None})
    dataset = merged.get("dataset", TrainConfig.dataset)
    return TrainConfig.from_dict({**DATASET_PRESETS.get(dataset, {}), **merged})


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file into a dict, with a clear error for a missing or bad file and
    for any key or table that is not a losszoo setting (see :func:`check_config_table`)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        with path.open("rb") as fh:
            table = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror or exc}") from exc
    check_config_table(table, path)
    return table


# A config file's top level: TrainConfig fields, plus what a comparison reads (the losses compared,
# seeds per loss); its tables: per-loss options and settings, miner arguments, and how a best.toml
# was tuned. Anything else (a misspelt key, a nested [training] table) would be silently ignored.
FILE_KEYS = ("losses", "seeds")
TUNING_KEYS = ("trials", "metric", "split", "curves")


def check_config_table(table: dict[str, Any], path: str | Path) -> None:
    """Refuse keys and tables that no command reads, naming them (ConfigError)."""
    known = {f.name for f in fields(TrainConfig)} | set(FILE_KEYS) | {"loss_settings", "tuning"}
    for key, value in table.items():
        if isinstance(value, dict) and key not in ("loss_options", "loss_settings", "tuning", "miner_options"):
            raise ConfigError(f"{path}: table {key!r} is not one losszoo reads (settings are top-level keys)")
    _refuse_unknown(table, known, path, "")
    for key in ("loss_settings", "tuning", "miner_options"):
        if key in table and not isinstance(table[key], dict):
            raise ConfigError(f"{path}: {key} must be a table, got {table[key]!r}")
    _refuse_unknown(table.get("tuning", {}), set(TUNING_KEYS), path, "tuning.")
    setting_names = {f.name for f in fields(TrainConfig)} - {"loss", "loss_options", "miner", "miner_options"}
    for loss, values in table.get("loss_settings", {}).items():
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: loss_settings.{loss} must be a table of settings, got {values!r}")
        _refuse_unknown(values, setting_names, path, f"loss_settings.{loss}.")
    options = table.get("loss_options", {})
    if isinstance(options, dict) and any(isinstance(v, dict) for v in options.values()):
        flat = sorted(k for k, v in options.items() if not isinstance(v, dict))
        if flat:  # per-loss tables and flat options in one file: which loss would the flat ones go to?
            raise ConfigError(f"{path}: loss_options mixes per-loss tables with flat options "
                              f"({', '.join(flat)}); put them in a loss_options.<loss> table")
        for loss, values in options.items():
            nested = sorted(k for k, v in values.items() if isinstance(v, dict))
            if nested:
                raise ConfigError(f"{path}: loss_options.{loss}.{nested[0]} is a table; "
                                  "loss options are values")


def _refuse_unknown(table: dict[str, Any], known: set[str], path: str | Path, prefix: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        close = {name: difflib.get_close_matches(name, known, n=1) for name in unknown}
        hints = "".join(f" ({prefix}{name}: did you mean {match[0]!r}?)" for name, match in close.items() if match)
        raise ConfigError(f"{path}: unknown key(s) {', '.join(prefix + name for name in unknown)}{hints}")
