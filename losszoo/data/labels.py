"""Contiguous labels, and :class:`LabelledDataset`, the base of every split dataset."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset


def contiguous_labels(
    raw_labels: Sequence[Hashable], classes: Sequence[Hashable] | None = None
) -> tuple[Tensor, list[Hashable]]:
    """Map raw class ids to ``0..C-1`` in sorted order of the ids.

    ``classes`` fixes the label space (and its order) instead, e.g. the union of In-Shop's
    query and gallery items so that both splits label an item alike. Returns the labels as a
    LongTensor and the class ids, where ``classes[label]`` is the raw id of ``label``.
    """
    class_list = sorted(set(raw_labels)) if classes is None else list(classes)
    index = {key: position for position, key in enumerate(class_list)}
    if len(index) != len(class_list):
        raise ValueError("classes contains duplicates")
    try:
        labels = [index[key] for key in raw_labels]
    except KeyError as exc:
        raise ValueError(f"label {exc.args[0]!r} is not among the given classes") from None
    return torch.tensor(labels, dtype=torch.long), class_list


class LabelledDataset(Dataset):
    """Base of the split datasets: ``.labels`` (contiguous LongTensor), ``.classes``, ``.num_classes``."""

    labels: Tensor
    classes: list[Hashable]

    def _set_labels(self, raw_labels: Sequence[Hashable], classes: Sequence[Hashable] | None) -> None:
        self.labels, self.classes = contiguous_labels(raw_labels, classes)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.labels)
