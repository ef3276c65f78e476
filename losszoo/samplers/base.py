"""The shared core of every batch sampler: label grouping, epoch length, per-epoch seeding.

A sampler draws a whole epoch of batches at once as an ``int64`` array ``[len(self), batch]``
(vectorised with numpy, so an epoch for Stanford Online Products' 11,318 classes takes a few
milliseconds) and hands the rows to the ``DataLoader`` as lists of dataset indices.
"""

from __future__ import annotations

import numbers
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Union

import numpy as np
import torch
from torch.utils.data import Sampler

LabelsLike = Union[Sequence[int], np.ndarray, torch.Tensor]


def check_positive_int(value: object, name: str) -> int:
    """``value`` as an ``int`` if it is an integer >= 1; a clear error otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def check_non_negative_int(value: object, name: str) -> int:
    """``value`` as an ``int`` if it is an integer >= 0; a clear error otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return int(value)


def as_label_array(labels: LabelsLike) -> np.ndarray:
    """Labels (list, numpy array or torch tensor of integers) as a 1-D ``int64`` numpy array."""
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    array = np.asarray(labels)
    if array.ndim != 1:
        raise ValueError(f"labels must be 1-D (one label per dataset item), got shape {array.shape}")
    if array.size == 0:
        raise ValueError("labels are empty: a sampler needs at least one labelled item")
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"labels must be integers, got dtype {array.dtype}")
    return array.astype(np.int64, copy=False)


def cyclic_permutation_rows(
    rng: np.random.Generator, items: np.ndarray, width: int, num_rows: int
) -> np.ndarray:
    """``[num_rows, width]`` items: shuffled copies of ``items`` laid end to end, cut into rows.

    Every item appears once before any item repeats, and no row holds an item twice: where a
    row straddles two copies, the items the next copy shares with that row's first part are
    moved to the back of the next copy. ``items`` must be distinct, ``width <= len(items)``.
    """
    num_items = len(items)
    total = num_rows * width
    num_copies = -(-total // num_items)
    copies = [rng.permutation(items)]
    for _ in range(num_copies - 1):
        straddling = (len(copies) * num_items) % width  # items of the open row in the last copy
        following = rng.permutation(items)
        if straddling:
            clashes = np.isin(following, copies[-1][num_items - straddling :])
            following = np.concatenate([following[~clashes], following[clashes]])
        copies.append(following)
    return np.concatenate(copies)[:total].reshape(num_rows, width)


class LabelBatchSampler(Sampler[list[int]], ABC):
    """Base class: a seeded, reproducible ``batch_sampler`` drawn from the dataset's labels.

    Args:
        labels: one integer label per dataset item (any integers, not necessarily 0..K-1).
        batch_size: items per batch.
        seed: batches depend only on ``(seed, epoch)``, never on the global RNG state.
        batches_per_epoch: epoch length; default ``max(1, len(labels) // batch_size)``.

    Call :meth:`set_epoch` before each epoch to reshuffle (as with ``DistributedSampler``);
    iterating twice without it yields the same batches.
    """

    def __init__(
        self,
        labels: LabelsLike,
        *,
        batch_size: int,
        seed: int = 0,
        batches_per_epoch: int | None = None,
    ) -> None:
        self.labels = as_label_array(labels)
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.seed = check_non_negative_int(seed, "seed")
        self.batches_per_epoch = (
            None if batches_per_epoch is None
            else check_positive_int(batches_per_epoch, "batches_per_epoch")
        )
        self.epoch = 0
        # Group items by class once: class k owns grouped_indices[starts[k] : starts[k] + counts[k]].
        self.grouped_indices = np.argsort(self.labels, kind="stable")
        self.classes, self.class_counts = np.unique(self.labels, return_counts=True)
        self.class_starts = np.cumsum(self.class_counts) - self.class_counts

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        if self.batches_per_epoch is not None:
            return self.batches_per_epoch
        return max(1, len(self.labels) // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batches the next iteration yields."""
        self.epoch = check_non_negative_int(epoch, "epoch")

    def generator(self, epoch: int | None = None) -> np.random.Generator:
        """A fresh generator seeded from ``(seed, epoch)`` (the current epoch by default)."""
        epoch = self.epoch if epoch is None else check_non_negative_int(epoch, "epoch")
        return np.random.default_rng(np.random.SeedSequence([self.seed, epoch]))

    def epoch_batches(self, epoch: int | None = None) -> np.ndarray:
        """The epoch's batches as an ``int64`` array ``[len(self), batch_size]``."""
        return self.draw_batches(self.generator(epoch), len(self))

    @abstractmethod
    def draw_batches(self, rng: np.random.Generator, num_batches: int) -> np.ndarray:
        """``[num_batches, batch_size]`` dataset indices drawn with ``rng``."""

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.epoch_batches().tolist()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(items={len(self.labels)}, classes={self.num_classes}, "
            f"batch_size={self.batch_size}, batches={len(self)}, seed={self.seed}, "
            f"epoch={self.epoch})"
        )
