"""Resolve once: a :class:`TrainConfig` becomes one validated :class:`RunPlan`.

Every command (train, compare, eval, tune, the benchmarks) builds from a plan. Planning looks
up each name once (loss, sampler, backbone, dataset), coerces and checks every hyperparameter,
reads the dataset's listings (file names and labels, no image is decoded), carves the
validation classes, and checks that the evaluation can run (>= 2 classes, enough items for the
largest K) — all before any model is built or any file is written. The builders that turn a
plan into a model, datasets and metrics live here too, so no command re-implements them.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from losszoo.data import get_dataset_spec
from losszoo.data.check import bad_headers
from losszoo.data.registry import DatasetSpec, SplitSource
from losszoo.data.splits import validation_classes
from losszoo.data.subset import first_classes, split_by_classes
from losszoo.data.transforms import check_input_spec
from losszoo.errors import ConfigError, DataError
from losszoo.losses import LossSpec, create_loss, get_loss_spec, list_losses
from losszoo.losses.xbm import CrossBatchMemory, check_memory
from losszoo.miners import create_miner
from losszoo.models import BACKBONES, InputSpec, create_model
from losszoo.samplers import SAMPLERS, create_sampler
from losszoo.training.config import TrainConfig
from losszoo.training.inference import EvalData, Evaluation, evaluate_model, resolve_device
from losszoo.training.preflight import check_plan_fits

TRAIN_SPLIT = "train"


@dataclass(frozen=True)
class SplitListing:
    """One split as listed by its loader, before any image is decoded."""

    source: SplitSource
    class_sizes: tuple[int, ...]  # images per class, in label order

    @property
    def num_classes(self) -> int:
        return len(self.class_sizes)

    @property
    def num_items(self) -> int:
        return sum(self.class_sizes)


@dataclass(frozen=True)
class RunPlan:
    """Everything a run is built from, resolved and checked.

    Attributes:
        config: the settings, with canonical names and every loss hyperparameter filled in.
        loss: the loss's registry spec.
        sampler: canonical name of the batch sampler.
        dataset: the dataset's registry spec.
        splits: the listings of the splits this run reads (never the test split under
            protocol ``"tune"``), cut to ``max_classes``.
        eval_splits: the splits tested once at the end: ``("test",)``, ``("query",
            "gallery")`` (In-Shop), or none (protocol ``"tune"``).
        validation_classes: labels of the training classes held out for validation.
        notes: things worth telling the user before training (e.g. small classes).
    """

    config: TrainConfig
    loss: LossSpec
    sampler: str
    dataset: DatasetSpec
    splits: dict[str, SplitListing]
    eval_splits: tuple[str, ...]
    validation_classes: tuple[int, ...] = ()
    notes: tuple[str, ...] = field(default=())
    miner: nn.Module | None = None  # built once, from config.miner / miner_options

    def fingerprint(self) -> str:
        return self.config.fingerprint()

    def split_sizes(self) -> dict[str, dict[str, int]]:
        """Classes and images of each split the run reads (the training classes less the
        validation ones, the validation classes, the evaluation splits), for the report."""
        sizes: dict[str, dict[str, int]] = {}
        train = self.splits[TRAIN_SPLIT].class_sizes
        held_out = set(self.validation_classes)
        kept = [size for label, size in enumerate(train) if label not in held_out]
        sizes[TRAIN_SPLIT] = {"classes": len(kept), "images": sum(kept)}
        if held_out:
            sizes["validation"] = {"classes": len(held_out), "images": sum(train[c] for c in held_out)}
        for name in self.eval_splits:
            listing = self.splits[name]
            sizes[name] = {"classes": listing.num_classes, "images": listing.num_items}
        return sizes

    @property
    def device(self) -> torch.device:
        return resolve_device(self.config.device)


def plan_run(config: TrainConfig, *, check_images: bool = True) -> RunPlan:
    """Resolve and check ``config``; raise ``ConfigError`` / ``DataError`` naming the problem.
    ``check_images``: read every listed image's header (``check-data`` decodes them instead)."""
    loss = _lookup(get_loss_spec, config.loss)
    options = loss.resolve(config.loss_options)
    sampler = _lookup(SAMPLERS.canonical, config.sampler or loss.sampler)
    backbone = _check_backbone(config.backbone)
    dataset = _lookup(get_dataset_spec, config.dataset)
    device = resolve_device(config.device)
    if device.type == "cuda" and not torch.cuda.is_available():  # pragma: no cover - resolve_device raises
        raise ConfigError(f"device {config.device!r} asked for, but CUDA is not available")
    config = config.replace(loss=loss.name, loss_options=options, sampler=sampler,
                            backbone=backbone, dataset=dataset.name)

    eval_splits = () if config.protocol == "tune" else tuple(s for s in dataset.splits if s != TRAIN_SPLIT)
    splits = {name: _read_split(dataset, name, config) for name in (TRAIN_SPLIT, *eval_splits)}
    if check_images:
        _check_headers(dataset, splits, config.max_classes)
    validation: tuple[int, ...] = ()
    if config.holds_out_validation:
        validation = tuple(int(c) for c in validation_classes(
            splits[TRAIN_SPLIT].num_classes, fraction=config.val_fraction, folds=config.val_folds,
            fold=config.val_fold, seed=config.val_seed))
    if config.shard_class_weights and not loss.shards_class_weights:
        able = list_losses(namespaced=False, where=lambda spec: spec.shards_class_weights)
        raise ConfigError(f"shard_class_weights: loss {loss.name!r} has no class weights to shard "
                          f"(losses that have: {', '.join(able)})")
    if config.xbm:
        check_memory(loss, config)
    miner = _build_miner(config, loss)
    plan = RunPlan(config, loss, sampler, dataset, splits, eval_splits, validation, miner=miner)
    _check_sampler(plan)
    _check_evaluation(plan)
    check_plan_fits(plan)
    return replace(plan, notes=tuple(_notes(plan)))


def _build_miner(config: TrainConfig, loss: LossSpec) -> nn.Module | None:
    """The miner of ``config`` (from the miner registry), after checking that the loss can use
    mined tuples."""
    if not config.miner:
        return None
    if not loss.takes_miner:
        raise ConfigError(f"loss {loss.name!r} cannot use a miner: {loss.cls.miner_refusal}")
    return create_miner(config.miner, **config.miner_options)


def loss_spec(name: str) -> LossSpec:
    """The spec of loss ``name`` (an alias or a prefixed name); ConfigError if unknown."""
    return _lookup(get_loss_spec, name)


def loss_name(name: str) -> str:
    """The registered name of loss ``name`` (an alias or a prefixed name); ConfigError if unknown."""
    return loss_spec(name).name


def _lookup(find: Any, name: str) -> Any:
    try:
        return find(name)
    except KeyError as exc:
        raise ConfigError(exc.args[0] if exc.args else str(exc)) from None


def _check_backbone(name: str) -> str:
    """The registered name of backbone ``name`` (``timm:<model>`` names are checked by timm);
    ConfigError when there is none, or when the library behind its namespace is missing."""
    try:
        return BACKBONES.canonical(name)
    except KeyError as exc:
        raise ConfigError(exc.args[0]) from None
    except ImportError as exc:
        raise ConfigError(f"backbone {name!r}: {exc}") from None


def _check_headers(dataset: DatasetSpec, splits: dict[str, SplitListing], max_classes: int | None) -> None:
    """An unreadable image (header: format and size) of the classes used fails now, not
    after training."""
    for split, listing in splits.items():
        source = listing.source
        used = None
        if max_classes:  # the first classes in label order (contiguous_labels')
            order = getattr(source, "classes", None) or sorted(set(source.raw_labels))
            used = set(list(order)[:max_classes])
        bad = bad_headers(source, used)
        if bad:
            raise DataError(f"dataset {dataset.name!r} ({split} split): {len(bad)} image(s) cannot be "
                            f"read, e.g. {bad[0]}; losszoo check-data lists them all")


def _read_split(dataset: DatasetSpec, split: str, config: TrainConfig) -> SplitListing:
    try:
        source = dataset.loader(config.data_root, split)
    except OSError as exc:  # a missing or unreadable folder or list file
        detail = f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else str(exc)
        raise DataError(f"dataset {dataset.name!r} ({split} split): {detail}") from exc
    except ValueError as exc:  # the loaders' word for a list file in another format
        raise DataError(f"dataset {dataset.name!r} ({split} split): {exc}") from exc
    sizes = _class_sizes(source.raw_labels, getattr(source, "classes", None))
    if config.max_classes:
        sizes = sizes[: config.max_classes]
    return SplitListing(source, tuple(sizes))


def _class_sizes(raw_labels: Sequence[Hashable], classes: Sequence[Hashable] | None) -> list[int]:
    """Items per class in label order (the order of ``contiguous_labels``)."""
    counts = Counter(raw_labels)
    order = sorted(counts) if classes is None else list(classes)
    return [counts.get(key, 0) for key in order]


def _check_sampler(plan: RunPlan) -> None:
    """Build the batch sampler once over the training labels (from the listing's class sizes),
    so that a batch it cannot draw (too few classes for batch / samples_per_class) fails now."""
    held_out = set(plan.validation_classes)
    kept = [(label, size) for label, size in enumerate(plan.splits[TRAIN_SPLIT].class_sizes)
            if label not in held_out]
    labels = np.repeat([label for label, _ in kept], [size for _, size in kept])
    config = plan.config
    try:
        sampler = create_sampler(plan.sampler, labels, batch_size=config.batch_size,
                                 samples_per_class=config.samples_per_class, seed=config.seed,
                                 batches_per_epoch=config.batches_per_epoch)
    except ValueError as exc:
        raise ConfigError(f"sampler {plan.sampler!r} on the {len(kept)} training classes: {exc}") from None
    _check_positive_pairs(plan, labels[next(iter(sampler))])


def _check_positive_pairs(plan: RunPlan, first_batch: np.ndarray) -> None:
    """A pair or triplet loss (or any miner) on batches without two samples of one class would
    be 0 at every step: refuse it, judged on the sampler's first batch (a cross-batch memory
    supplies positives from earlier batches: no refusal then)."""
    if plan.config.xbm:
        return
    needs = "loss " + repr(plan.loss.name) if plan.loss.needs_positive_pairs else (
        "miner " + repr(plan.config.miner) if plan.miner is not None else None)
    if needs and len(np.unique(first_batch)) == len(first_batch):
        raise ConfigError(
            f"{needs} needs positive pairs (two samples of one class per batch), but sampler "
            f"{plan.sampler!r} with samples_per_class {plan.config.samples_per_class} draws none: "
            "it would train with loss 0; use samples_per_class >= 2")


def _check_evaluation(plan: RunPlan) -> None:
    """Fail now, not after training, when an evaluation cannot give meaningful numbers."""
    largest_k = max(plan.config.ks)
    groups: list[tuple[str, list[int], int]] = []  # (what, class sizes, items each query can retrieve)
    if plan.validation_classes:
        sizes = [plan.splits[TRAIN_SPLIT].class_sizes[c] for c in plan.validation_classes]
        groups.append(("the validation classes", sizes, sum(sizes) - 1))
    if plan.eval_splits == ("test",):
        sizes = list(plan.splits["test"].class_sizes)
        groups.append(("the test split", sizes, sum(sizes) - 1))
    elif plan.eval_splits:
        query, gallery = (plan.splits[s] for s in plan.eval_splits)
        groups.append((f"the {plan.eval_splits[0]} split", list(query.class_sizes), gallery.num_items))
    for what, sizes, retrievable in groups:
        populated = sum(1 for size in sizes if size)
        if populated < 2:
            raise DataError(
                f"{what} of {plan.dataset.name!r} has {populated} class(es): retrieval metrics "
                "need at least 2 (raise --max-classes or use another split)"
            )
        if retrievable == sum(sizes) - 1 and max(sizes) < 2:
            raise DataError(
                f"{what} of {plan.dataset.name!r} has one image per class: no query has another "
                "image of its class, so Recall@K and MAP@R are undefined")
        if largest_k > retrievable:
            raise DataError(
                f"Recall@{largest_k} is impossible on {what} of {plan.dataset.name!r}: each query "
                f"can retrieve only {retrievable} items (lower --ks or raise --max-classes)"
            )
    train_classes = plan.splits[TRAIN_SPLIT].num_classes - len(plan.validation_classes)
    if train_classes < 1:
        raise DataError(f"no training classes left after holding out {len(plan.validation_classes)}")


def _notes(plan: RunPlan) -> list[str]:
    sizes = plan.splits[TRAIN_SPLIT].class_sizes
    held_out = set(plan.validation_classes)
    small = [size for label, size in enumerate(sizes)
             if label not in held_out and size < plan.config.samples_per_class]
    if not small:
        return []
    return [f"{len(small)} training classes have fewer than samples_per_class = "
            f"{plan.config.samples_per_class} images (smallest: {min(small)}); their images "
            "repeat within a batch"]


# -- builders ------------------------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed % 2**64)  # torch takes 64 bits; (seed, epoch) mixes can exceed them


def build_model(plan: RunPlan) -> nn.Module:
    """The embedding model, seeded by the run's seed, on the plan's device."""
    seed_everything(plan.config.seed)
    config = plan.config
    return create_model(config.backbone, config.dim, pretrained=config.pretrained,
                        weights=config.weights).to(plan.device)


def build_loss(plan: RunPlan, num_classes: int) -> nn.Module:
    config = plan.config
    loss = create_loss(plan.loss.name, embedding_dim=config.dim, num_classes=num_classes, **config.loss_options)
    if config.xbm:
        loss = CrossBatchMemory(loss, config.dim, config.xbm, config.xbm_start)
    return loss.to(plan.device)


def input_spec(plan: RunPlan, model: nn.Module) -> InputSpec:
    """The model's input spec, with the crop size (and proportionally the resize) overridden
    by ``config.image_size`` when set."""
    spec = model.input_spec
    size = plan.config.image_size
    if size is None or size == spec.image_size:
        return spec
    return replace(spec, image_size=size, resize=round(spec.resize * size / spec.image_size))


def _dataset(plan: RunPlan, model: nn.Module, split: str, *, train: bool) -> Dataset:
    listing = plan.splits[split]
    dataset = listing.source.build_dataset(check_input_spec(input_spec(plan, model)), train=train,
                                           augmentation=plan.dataset.augmentation)
    return first_classes(dataset, listing.num_classes) if plan.config.max_classes else dataset


def train_dataset(plan: RunPlan, model: nn.Module) -> Dataset:
    """The classes the run trains on: every training class, less the validation ones."""
    dataset = _dataset(plan, model, TRAIN_SPLIT, train=True)
    if not plan.validation_classes:
        return dataset
    held_out = set(plan.validation_classes)
    return split_by_classes(dataset, [c for c in range(dataset.num_classes) if c not in held_out])


def validation_data(plan: RunPlan, model: nn.Module) -> EvalData | None:
    """The held-out validation classes (evaluation transforms), or None."""
    if not plan.validation_classes:
        return None
    return EvalData(split_by_classes(_dataset(plan, model, TRAIN_SPLIT, train=False),
                                     list(plan.validation_classes)))


def final_test_data(plan: RunPlan, model: nn.Module) -> EvalData | None:
    """The split(s) tested once at the end: the test set, or In-Shop's query and gallery."""
    if not plan.eval_splits:
        return None
    return EvalData(*(_dataset(plan, model, split, train=False) for split in plan.eval_splits))


def evaluate(plan: RunPlan, model: nn.Module, data: EvalData, *, keep: bool = False,
             console: Any = None) -> Evaluation:
    """The one evaluate-a-model workflow: embeddings of ``data``, then every metric
    (``keep=True``: and the arrays; ``console``: progress lines; see
    :func:`~losszoo.training.inference.evaluate_model`)."""
    config = plan.config
    return evaluate_model(model, data, ks=config.ks, binary=config.binary, workers=config.workers,
                          seed=config.seed, keep=keep, console=console)
