"""A split cut down to its first classes: quick runs and tests on a slice of any dataset."""

from __future__ import annotations

from typing import Any

import torch

from losszoo.data.base import LabelledDataset


class ClassSubset(LabelledDataset):
    """The items of ``dataset`` whose label is below ``num_classes``.

    Labels are kept as they are, so they stay contiguous, and In-Shop's query and gallery
    splits (which share one label space) keep matching labels.
    """

    def __init__(self, dataset: LabelledDataset, num_classes: int) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.dataset = dataset
        self.indices = torch.nonzero(dataset.labels < num_classes).squeeze(1)
        self.labels = dataset.labels[self.indices]
        self.classes = list(dataset.classes[:num_classes])

    def __getitem__(self, index: int) -> Any:
        return self.dataset[int(self.indices[index])]


def first_classes(dataset: LabelledDataset, num_classes: int) -> LabelledDataset:
    """``dataset`` restricted to its first ``num_classes`` classes (itself when it has no more)."""
    return dataset if num_classes >= dataset.num_classes else ClassSubset(dataset, num_classes)
