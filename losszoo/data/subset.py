"""A split restricted to some of its classes: validation hold-outs, quick runs on a slice."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from losszoo.data.labels import LabelledDataset


class ClassSubset(LabelledDataset):
    """The items of ``dataset`` whose label is in ``classes``, relabelled ``0..len(classes)-1``
    in the order given.

    ``ClassSubset(d, range(n))`` keeps the labels as they are, so In-Shop's query and gallery
    splits (which share one label space) still match when both are cut to their first classes.
    """

    def __init__(self, dataset: LabelledDataset, classes: Sequence[int]) -> None:
        chosen = [int(c) for c in classes]
        if not chosen:
            raise ValueError("a class subset needs at least one class")
        if len(set(chosen)) != len(chosen):
            raise ValueError("classes contains duplicates")
        if min(chosen) < 0 or max(chosen) >= dataset.num_classes:
            raise ValueError(f"classes must lie in [0, {dataset.num_classes}), got {chosen}")
        new_label = torch.full((dataset.num_classes,), -1, dtype=torch.long)
        new_label[torch.tensor(chosen)] = torch.arange(len(chosen))
        relabelled = new_label[dataset.labels]
        self.dataset = dataset
        self.indices = torch.nonzero(relabelled >= 0).squeeze(1)
        self.labels = relabelled[self.indices]
        self.classes = [dataset.classes[c] for c in chosen]

    def __getitem__(self, index: int) -> Any:
        image, _ = self.dataset[int(self.indices[index])]
        return image, int(self.labels[index])


def first_classes(dataset: LabelledDataset, num_classes: int) -> LabelledDataset:
    """``dataset`` restricted to its first ``num_classes`` classes (itself when it has no more)."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    return dataset if num_classes >= dataset.num_classes else ClassSubset(dataset, range(num_classes))


def split_by_classes(dataset: LabelledDataset, classes: Sequence[int]) -> LabelledDataset:
    """``dataset`` restricted to ``classes`` (label indices), relabelled contiguously."""
    if list(classes) == list(range(dataset.num_classes)):
        return dataset
    return ClassSubset(dataset, classes)
