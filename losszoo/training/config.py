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


@dataclass(frozen=True)
class Setting:
    """One TrainConfig field, declared once, next to it: its check, its command-line flag, and
    its roles, from which every list of settings below (and the argparse options,
    ``losszoo.cli.options``) is derived.

    Roles:
        evaluation_only: changes only how a trained model is scored, so a finished or
            interrupted run can be evaluated or resumed with another value (``EVALUATION_ONLY``,
            left out of the fingerprint).
        trains: changes only the training; the untrained floor does not depend on it
            (``TRAINING_ONLY``, left out of the floor's fingerprint).
        schedule: a tuned value holds only under this value (``SCHEDULE``: best.toml records
            it, a study refuses trials of another, compare warns and the caption says so).
        tuned: a tuning trial may set it per loss (``TUNED_SHARED``: best.toml's
            ``[loss_settings.<loss>]``).
        eval_command: ``losszoo eval`` takes it (``EVAL_COMMAND``).
        hashed_if: a setting added after runs existed: it enters the fingerprint only while the
            named setting (often itself) is set, so runs without it keep the fingerprint (and
            hence the resume) they had before it existed.
    """

    check: Hyper | None  # type and bounds; None: a table of values the loss or miner checks
    flag: str
    help: str = ""
    items: bool = False  # a tuple of integers, each checked by ``check``
    const: Any = None  # a flag without a value stores this (--no-amp: False)
    choices: tuple[str, ...] | None = None  # the flag's choices, when fewer than ``check``'s
    show_default: bool = True
    metavar: str | None = None  # the flag's value in help (default: the field's name)
    command_option: bool = False  # the commands that take it add the flag (train's --loss)
    evaluation_only: bool = False
    trains: bool = False
    schedule: bool = False
    tuned: bool = False
    eval_command: bool = False
    hashed_if: str | None = None


def setting(default: Any, check: Hyper | None, flag: str, help: str = "", **declaration: Any) -> Any:
    """A TrainConfig field with its :class:`Setting` declaration."""
    meta = {"setting": Setting(check, flag, help, **declaration)}
    if isinstance(default, dict):
        return field(default_factory=dict, metadata=meta)
    return field(default=default, metadata=meta)


_COUNT, _INDEX = Hyper(kind=int, ge=1), Hyper(kind=int, ge=0)
_TEXT, _MAYBE_TEXT, _SWITCH = Hyper(kind=str), Hyper(kind=str, optional=True), Hyper(kind=bool)
_MAYBE_COUNT = Hyper(kind=int, ge=1, optional=True)
_RATE, _NONNEGATIVE = Hyper(kind=float, gt=0), Hyper(kind=float, ge=0)
_DATA = dict(schedule=True, eval_command=True)  # what picks the data and the network
_TRAINING = dict(trains=True, schedule=True)  # the training schedule


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run (a loss on a backbone, a dataset and a seed).

    ``protocol`` says which classes a run sees (Musgrave et al., "A Metric Learning Reality
    Check", ECCV 2020): ``"final"`` trains on every training class and evaluates the test
    classes once, at the end; ``"holdout"`` trains on the training classes minus a validation
    part (``val_fraction`` of them, or fold ``val_fold`` of ``val_folds``, drawn with
    ``val_seed``), evaluates the validation classes every ``eval_every`` epochs, and the test
    classes once at the end; ``"tune"`` is ``"holdout"`` that never reads the test split.

    Each field is declared once with :func:`setting` (a new setting needs only its line here).
    """

    loss: str = setting("normsoftmax", _TEXT, "--loss", "registered loss name", command_option=True,
                        trains=True)
    loss_options: dict[str, Any] = setting({}, None, "--loss-option", "loss hyperparameters",
                                           command_option=True, trains=True)
    # A PML miner, "pml:MultiSimilarityMiner"; its tuples feed the loss.
    miner: str | None = setting(None, _MAYBE_TEXT, "--miner", hashed_if="miner", show_default=False, **_TRAINING,
                                help="a pytorch-metric-learning miner, e.g. pml:MultiSimilarityMiner; its "
                                "pairs/triplets replace the loss's own (pair and triplet losses only; default: none)")
    miner_options: dict[str, Any] = setting({}, None, "--miner-option", hashed_if="miner", **_TRAINING,
                                            help="miner argument, repeatable (values parsed like --loss-option)")
    backbone: str = setting("resnet50", _TEXT, "--backbone",
                            "resnet18/34/50/101, googlenet, convnet4, efficientnet_lite0/1/2, or timm:<name>",
                            **_DATA)
    dim: int = setting(512, _COUNT, "--dim", "embedding dimension", **_DATA)
    pretrained: bool = setting(True, _SWITCH, "--no-pretrained", "do not load ImageNet weights", const=False,
                               show_default=False, **_DATA)
    # A local state dict for the backbone (models/weights.py); replaces its default weights.
    weights: str | None = setting(None, _MAYBE_TEXT, "--weights", metavar="FILE", hashed_if="weights",
                                  show_default=False,
                                  help="the backbone's weights from a local state dict (torch.save), "
                                  "loaded strictly", **_DATA)
    dataset: str = setting("omniglot", _TEXT, "--dataset",
                           "omniglot (embedded), cub200, cars196, sop, inshop, imagefolder", **_DATA)
    data_root: str | None = setting(None, _MAYBE_TEXT, "--data-root",
                                    "dataset folder (omniglot: omit for the embedded copy)", show_default=False,
                                    **_DATA)
    max_classes: int | None = setting(None, _MAYBE_COUNT, "--max-classes",
                                      "keep only the first N classes of each split (quick runs)",
                                      show_default=False, **_DATA)
    image_size: int | None = setting(None, _MAYBE_COUNT, "--image-size", "crop size (default: the backbone's)",
                                     show_default=False, **_DATA)  # None: the backbone's / dataset's default
    batch_size: int = setting(75, _COUNT, "--batch-size", **_TRAINING)
    samples_per_class: int = setting(25, _COUNT, "--samples-per-class", tuned=True, **_TRAINING)
    sampler: str | None = setting(None, _MAYBE_TEXT, "--sampler",  # None: the sampler the loss's spec names
                                  "batch sampler for every loss (default: each loss's own)", show_default=False,
                                  **_TRAINING)
    epochs: int = setting(30, _COUNT, "--epochs", "epochs after the warm-up", **_TRAINING)
    warmup_epochs: int = setting(1, _INDEX, "--warmup-epochs", **_TRAINING)
    # The loaded BatchNorm statistics, not re-estimated on the new photos: for some ImageNet
    # weights (EfficientNet-Lite0's) re-estimating them alone ruins the features (docs/compare-cub.md).
    freeze_bn_stats: bool = setting(False, _SWITCH, "--freeze-bn-stats", const=True, show_default=False,
                                    hashed_if="freeze_bn_stats", **_TRAINING,
                                    help="keep the pretrained backbone's BatchNorm statistics while fine-tuning "
                                    "(its BatchNorm layers stay in eval mode; their scale and shift still train)")
    lr: float = setting(0.01, _RATE, "--lr", "base learning rate", tuned=True, **_TRAINING)
    momentum: float = setting(0.9, _NONNEGATIVE, "--momentum", **_TRAINING)
    weight_decay: float = setting(1e-4, _NONNEGATIVE, "--weight-decay", **_TRAINING)
    lr_milestones: tuple[int, ...] = setting((15,), _INDEX, "--lr-milestones", "epochs after the warm-up",
                                             items=True, **_TRAINING)
    lr_gamma: float = setting(0.1, _RATE, "--lr-gamma", "step-decay factor", **_TRAINING)
    # Sparse class weights: momentum on sampled rows only (optim.py).
    lazy_momentum: bool = setting(False, _SWITCH, "--lazy-momentum", const=True, show_default=False, trains=True,
                                  help="subsampled class weights: momentum on the sampled rows only "
                                  "(fast at 1M classes)")
    # Class weights split across ranks (distributed/sharded.py).
    shard_class_weights: bool = setting(False, _SWITCH, "--shard-class-weights", const=True, show_default=False,
                                        trains=True, help="under torchrun, split a loss's class weights across ranks "
                                        "(model-parallel softmax), for the losses that declare it ('losszoo list "
                                        "losses': shards_class_weights); compare shards only those losses")
    # Cross-batch memory of this many embeddings (losses/xbm.py); 0: none.
    xbm: int = setting(0, _INDEX, "--xbm", metavar="SIZE", hashed_if="xbm", **_TRAINING,
                       help="cross-batch memory of SIZE embeddings (Wang et al. 2020), for the pair losses that "
                       "have a memory form (others are refused, naming those); 0: none")
    xbm_start: int = setting(0, _INDEX, "--xbm-start", metavar="STEP", hashed_if="xbm", **_TRAINING,
                             help="the first training step (warm-up included) that uses the cross-batch memory")
    batches_per_epoch: int | None = setting(None, _MAYBE_COUNT, "--batches-per-epoch", show_default=False,
                                            help="(default: about the training set size / batch size; 100 on "
                                            "the embedded omniglot)", **_TRAINING)
    protocol: str = setting("final", Hyper(kind=str, choices=PROTOCOLS), "--protocol",
                            choices=("final", "holdout"),  # tuning trials run through losszoo tune only
                            help="final: train on every training class; holdout: hold out validation classes "
                            "(scored every --eval-every epochs); the test classes are evaluated once, at the end")
    val_fraction: float = setting(0.2, Hyper(kind=float, gt=0, lt=1), "--val-fraction", schedule=True,
                                  help="share of the training classes held out for validation (holdout, tune)")
    # > 1: K-fold class-disjoint cross-validation, fold `val_fold`.
    val_folds: int = setting(1, _COUNT, "--val-folds", "K > 1: K-fold class-disjoint cross-validation",
                             schedule=True)
    val_fold: int = setting(0, _INDEX, "--val-fold", "which of the --val-folds folds validates", schedule=True)
    # The validation classes do not change with the training seed.
    val_seed: int = setting(0, _INDEX, "--val-seed", "seed of the validation class draw", schedule=True)
    # Evaluate the validation classes every N epochs (holdout, tune).
    eval_every: int = setting(0, _INDEX, "--eval-every", "evaluate validation classes every N epochs", trains=True)
    ks: tuple[int, ...] = setting((1, 2, 4, 8), _COUNT, "--ks", "Recall@K values", items=True,
                                  evaluation_only=True, eval_command=True)
    # Also report binarized (sign) embeddings, Sec. 4.3.
    binary: bool = setting(True, _SWITCH, "--no-binary", "skip the binarized-embedding metrics", const=False,
                           show_default=False, evaluation_only=True, eval_command=True)
    seed: int = setting(0, Hyper(kind=int, ge=0, lt=2**64), "--seed", eval_command=True)  # torch seeds: 64 bits
    workers: int = setting(0, _INDEX, "--workers", "data-loading processes", evaluation_only=True,
                           eval_command=True)
    device: str | None = setting(None, _MAYBE_TEXT, "--device", "cpu, cuda, cuda:1 (default: CUDA when available)",
                                 show_default=False, evaluation_only=True, eval_command=True)
    amp: bool = setting(True, _SWITCH, "--no-amp", "no mixed precision on CUDA", const=False,  # CUDA only
                        show_default=False, eval_command=True, **_TRAINING)
    # bfloat16 autocast on CPUs with AMX / AVX512-BF16 (runtime.native_bf16). Not a schedule
    # setting: studies and presets recorded before it stay valid.
    cpu_bf16: bool = setting(False, _SWITCH, "--cpu-bf16",
                             "bfloat16 autocast on a CPU with AMX or AVX512-BF16 (the loss stays "
                             "float32; elsewhere ignored: slower than float32 there)", const=True,
                             hashed_if="cpu_bf16", show_default=False, trains=True)

    def __post_init__(self) -> None:
        for name in (*SETTINGS, *_TUPLES):
            object.__setattr__(self, name, _coerce_setting(name, getattr(self, name)))
        if self.freeze_bn_stats and not (self.pretrained or self.weights):
            raise ConfigError("--freeze-bn-stats keeps the statistics of loaded weights: it needs a pretrained "
                              "backbone (drop --no-pretrained, or give --weights FILE)")
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
        declared = declarations()
        relevant = {k: v for k, v in self.to_dict().items() if k not in skip
                    and (declared[k].hashed_if is None or getattr(self, declared[k].hashed_if))}
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


def declarations() -> dict[str, Setting]:
    """Every TrainConfig field's declaration, in field order."""
    return {f.name: f.metadata["setting"] for f in fields(TrainConfig)}


def _having(role: str) -> tuple[str, ...]:
    return tuple(name for name, declared in declarations().items() if getattr(declared, role))


# Derived from the declarations (see Setting), never written by hand.
EVALUATION_ONLY = _having("evaluation_only")
TRAINING_ONLY = _having("trains")
SCHEDULE = _having("schedule")
TUNED_SHARED = _having("tuned")
EVAL_COMMAND = _having("eval_command")
# Every setting's type and range, checked the same way as a loss's hyperparameters.
SETTINGS: dict[str, Hyper] = {name: d.check for name, d in declarations().items()
                              if d.check is not None and not d.items}
_TUPLES = {name: d.check for name, d in declarations().items() if d.items}  # tuples of integers


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


def preset_names() -> list[str]:
    """The shipped presets (``presets/<name>.toml``): a dataset's default, or a named setting
    such as ``cub100-cpu``."""
    return sorted(path.stem for path in PRESET_FOLDER.glob("*.toml"))


def named_preset(name: str) -> Path:
    """The shipped preset ``name``; ``ConfigError`` listing the shipped ones if there is none."""
    names = preset_names()
    if name not in names:
        raise ConfigError(f"no shipped preset {name!r}; the presets are: {', '.join(names)}")
    return PRESET_FOLDER / f"{name}.toml"


def preset_settings(name: str) -> dict[str, Any]:
    """The shipped preset ``name``'s shared settings: its top-level keys, without its per-loss
    tables. ``losszoo tune --preset NAME`` tunes every loss from them."""
    return {key: value for key, value in read_toml(named_preset(name)).items() if not isinstance(value, dict)}


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
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte {exc.object[exc.start]:#04x}); "
                          "a TOML file is UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror or exc}") from exc
    check_config_table(table, path)
    return table


def toml_value(value: Any) -> str:
    """``value`` (a number, boolean, string or list of them) as TOML."""
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return toml_string(str(value))


def toml_string(text: str) -> str:
    """``text`` as a TOML basic string on one line: quote, backslash and every control
    character escaped (JSON's escapes are not all TOML's: a surrogate pair is refused), and a
    lone surrogate (an undecodable byte of a path) shown as U+FFFD."""
    escaped = []
    for char in text:
        code = ord(char)
        if char in '"\\':
            escaped.append("\\" + char)
        elif code < 0x20 or code == 0x7F:
            escaped.append(f"\\u{code:04x}")
        elif 0xD800 <= code <= 0xDFFF:
            escaped.append("\ufffd")
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'


# A config file's top level: TrainConfig fields, plus what a comparison reads (the losses compared,
# seeds per loss, untuned: no tuned preset); its tables: per-loss options and settings, miner
# arguments, and how a best.toml was tuned (with, for a written comparison spec, the rows not
# tuned and the values set by hand). Anything else (a misspelt key, a nested [training] table)
# would be silently ignored.
FILE_KEYS = ("losses", "seeds", "untuned")
TUNING_KEYS = ("trials", "metric", "split", "curves", "changed", "untuned", "by_hand")


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
    _check_file_keys(table, path)
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


def _check_file_keys(table: dict[str, Any], path: str | Path) -> None:
    """``losses`` a list of names (one string used to be read letter by letter: "unknown loss
    'n'"), ``seeds`` an integer >= 1 (a string reached the comparison as a traceback)."""
    losses = table.get("losses", [])
    if isinstance(losses, str):
        raise ConfigError(f"{path}: losses must be a list of loss names: losses = [{toml_string(losses)}]")
    if not isinstance(losses, list) or not all(isinstance(name, str) for name in losses):
        raise ConfigError(f"{path}: losses must be a list of loss names, got {losses!r}")
    seeds = table.get("seeds", 1)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"{path}: seeds must be an integer >= 1, got {seeds!r}")


def _refuse_unknown(table: dict[str, Any], known: set[str], path: str | Path, prefix: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        close = {name: difflib.get_close_matches(name, known, n=1) for name in unknown}
        hints = "".join(f" ({prefix}{name}: did you mean {match[0]!r}?)" for name, match in close.items() if match)
        raise ConfigError(f"{path}: unknown key(s) {', '.join(prefix + name for name in unknown)}{hints}")
