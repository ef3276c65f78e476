"""The dataset registry: ``@register_dataset``, ``list_datasets``, ``load_split``.

A registered loader is a function ``loader(root, split, **options) -> source`` that only reads
a dataset's listing (files, annotations) and returns a source with
``build_dataset(input_spec, *, train, augmentation)`` (an :class:`~losszoo.data.base.ImageListing`
or :class:`~losszoo.data.arrays.ImageArrays`); :func:`load_split` adds the transforms.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

from torch.utils.data import Dataset

from losszoo.data.transforms import (
    IMAGENET_INPUT_SPEC,
    PAPER_AUGMENTATION,
    Augmentation,
    InputSpecLike,
    check_input_spec,
)
from losszoo.registry import Registry

ENTRY_POINT_GROUP = "losszoo.datasets"


class SplitSource(Protocol):
    def build_dataset(
        self, input_spec: InputSpecLike, *, train: bool, augmentation: Augmentation
    ) -> Dataset: ...


Loader = Callable[..., SplitSource]


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset.

    Attributes:
        name: canonical registry name.
        loader: ``loader(root, split, **options) -> SplitSource``; ``root`` may be None.
        splits: the split names it accepts (class-disjoint: ``train`` vs ``test``).
        input_spec: default input spec when the caller gives none.
        augmentation: training augmentation (flip, crop padding).
        options: the loader's extra keyword options and their defaults.
        aliases: other names resolving to this dataset.
        description: one line for listings.
    """

    name: str
    loader: Loader
    splits: tuple[str, ...] = ("train", "test")
    input_spec: InputSpecLike = IMAGENET_INPUT_SPEC
    augmentation: Augmentation = PAPER_AUGMENTATION
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    aliases: tuple[str, ...] = ()
    description: str = ""


DATASETS: Registry[DatasetSpec] = Registry("dataset", entry_point_group=ENTRY_POINT_GROUP)


def register_dataset(
    name: str,
    *,
    splits: tuple[str, ...] = ("train", "test"),
    input_spec: InputSpecLike = IMAGENET_INPUT_SPEC,
    augmentation: Augmentation = PAPER_AUGMENTATION,
    aliases: tuple[str, ...] = (),
    description: str = "",
) -> Callable[[Loader], Loader]:
    """Function decorator adding a dataset loader to the registry.

    Example::

        @register_dataset("mydata")
        def load_mydata(root, split):
            return ImageListing(paths, raw_labels)
    """

    def wrap(loader: Loader) -> Loader:
        parameters = list(inspect.signature(loader).parameters.values())
        if len(parameters) < 2:
            raise TypeError(f"@register_dataset({name!r}): the loader must take (root, split, **options)")
        options = {p.name: p.default for p in parameters[2:]}
        if any(default is inspect.Parameter.empty for default in options.values()):
            raise TypeError(f"@register_dataset({name!r}): loader options after (root, split) need defaults")
        spec = DatasetSpec(
            name=name,
            loader=loader,
            splits=tuple(splits),
            input_spec=check_input_spec(input_spec),
            augmentation=augmentation,
            options=MappingProxyType(options),
            aliases=tuple(aliases),
            description=description or (inspect.getdoc(loader) or "").split("\n")[0],
        )
        DATASETS.add(name, spec, aliases=spec.aliases)
        return loader

    return wrap


def list_datasets(pattern: str = "*") -> list[str]:
    """Registered dataset names matching the fnmatch ``pattern``, sorted."""
    return DATASETS.names(pattern)


def get_dataset_spec(name: str) -> DatasetSpec:
    """The :class:`DatasetSpec` for ``name`` (an alias works too)."""
    return DATASETS.get(name)


def load_split(
    name: str,
    split: str,
    *,
    root: str | os.PathLike | None = None,
    input_spec: InputSpecLike | None = None,
    train: bool = False,
    **options: Any,
) -> Dataset:
    """One split of a registered dataset as a torch Dataset of ``(image_tensor, label)``.

    The result has ``.labels`` (LongTensor of contiguous labels ``0..C-1`` within the split;
    In-Shop's query and gallery share one label space over their union of items), ``.classes``
    (the raw class id of each label) and ``.num_classes``. ``input_spec`` (e.g. ``model.input_spec``) sets channels, sizes and
    normalization; None uses the dataset's default. ``train=True`` selects the training
    transforms (random crop, flip where the dataset allows). ``options`` go to the loader
    (e.g. ``download=True`` for omniglot, ``train_fraction`` for imagefolder).
    """
    spec = get_dataset_spec(name)
    if split not in spec.splits:
        raise ValueError(f"dataset {spec.name!r} has no split {split!r}; splits: {', '.join(spec.splits)}")
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        accepted = ", ".join(sorted(spec.options)) or "none"
        raise TypeError(
            f"dataset {spec.name!r} has no option {', '.join(map(repr, unknown))}; accepted: {accepted}"
        )
    input_spec = check_input_spec(spec.input_spec if input_spec is None else input_spec)
    source = spec.loader(root, split, **options)
    return source.build_dataset(input_spec, train=train, augmentation=spec.augmentation)
