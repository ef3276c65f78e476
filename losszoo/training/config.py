"""One run's settings. Everything but the loss is shared by every run of a comparison.

Defaults follow Zhai & Wu (2019), Sec. 4.1: batch 75 with 25 samples per class, 1 warm-up
epoch on new parameters only, then SGD (lr 0.01, momentum 0.9, weight decay 1e-4) for 30
epochs with the learning rate divided by 10 at epoch 15.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run (a loss on a backbone, a dataset and a seed)."""

    loss: str = "normsoftmax"
    loss_options: dict[str, Any] = field(default_factory=dict)
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
    batches_per_epoch: int | None = None  # None: about len(train set) / batch_size
    eval_every: int = 0  # evaluate every N epochs; 0: only at the end
    ks: tuple[int, ...] = (1, 2, 4, 8)
    binary: bool = True  # also report binarized (sign) embeddings, Sec. 4.3
    seed: int = 0
    workers: int = 0
    device: str | None = None  # None: CUDA when available, else CPU
    amp: bool = True  # mixed precision on CUDA only

    def __post_init__(self) -> None:
        for name in ("dim", "batch_size", "samples_per_class", "epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup_epochs", "eval_every", "workers", "weight_decay", "momentum", "seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.batch_size % self.samples_per_class:
            raise ValueError(
                f"batch_size {self.batch_size} must be a multiple of samples_per_class "
                f"{self.samples_per_class} (C classes x S samples per batch)"
            )
        for name in ("batches_per_epoch", "max_classes"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if not self.ks or min(self.ks) < 1:
            raise ValueError(f"ks must be positive integers, got {self.ks}")

    @property
    def total_epochs(self) -> int:
        return self.warmup_epochs + self.epochs

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    def fingerprint(self) -> str:
        """A short hash of everything that changes the result (not workers or device)."""
        relevant = {k: v for k, v in self.to_dict().items() if k not in ("workers", "device")}
        blob = json.dumps(relevant, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from plain values (a TOML table, a JSON record), rejecting unknown keys."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(
                f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        converted = {}
        for name, value in values.items():
            if name in ("ks", "lr_milestones") and value is not None:
                value = tuple(int(v) for v in value)
            converted[name] = value
        return cls(**converted)


# Per-dataset defaults that replace the paper's ImageNet-scale ones. The embedded Omniglot copy
# is small grey 28x28 images: a 4-block conv net trained from scratch (so no warm-up: nothing is
# pretrained), sized so that `losszoo compare` trains every loss in about 15 minutes on 2 CPU
# cores. The learning rate stays the paper's 0.01 (0.05 trained NormSoftmax worse here).
DATASET_PRESETS: dict[str, dict[str, Any]] = {
    "omniglot": {
        "backbone": "convnet4",
        "dim": 64,
        "pretrained": False,
        "warmup_epochs": 0,
        "epochs": 3,
        "batch_size": 80,
        "samples_per_class": 5,
        "lr_milestones": (2,),
    },
}


# Loss hyperparameters a dataset preset changes from the loss's paper defaults; options given
# explicitly win. On the embedded Omniglot (64-d embeddings, 3 epochs from scratch) CosFace at
# its paper's s = 64 barely leaves the untrained network's Recall@1 (17.5 vs 12.4), while at
# s = 20, NormSoftmax's logit scale (1 / T, T = 0.05), it trains like NormSoftmax; see
# docs/compare-omniglot.md.
DATASET_LOSS_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "omniglot": {"cosface": {"scale": 20.0}},
}


def preset_loss_options(dataset: str, loss: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """``options`` on top of the dataset preset's options for ``loss`` (any registered name or
    alias; an unknown name gets no preset and is reported later, by the trainer)."""
    from losszoo.losses import get_loss_spec  # not at import time: the registry loads plugins

    presets = DATASET_LOSS_PRESETS.get(dataset, {})
    try:
        name = get_loss_spec(loss).name if presets else loss
    except KeyError:
        name = loss
    return {**presets.get(name, {}), **(options or {})}


def build_config(*layers: dict[str, Any]) -> TrainConfig:
    """Merge settings: the paper's defaults, then the dataset's preset, then each layer in turn
    (e.g. a TOML file, then the command line); ``None`` values in a layer are ignored."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update({k: v for k, v in layer.items() if v is not None})
    dataset = merged.get("dataset", TrainConfig.dataset)
    loss = merged.get("loss", TrainConfig.loss)
    merged["loss_options"] = preset_loss_options(dataset, loss, merged.get("loss_options"))
    return TrainConfig.from_dict({**DATASET_PRESETS.get(dataset, {}), **merged})


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file into a dict, with a clear error for a missing or bad file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from exc
