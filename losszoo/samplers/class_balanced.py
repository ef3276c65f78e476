"""Class-balanced batches: C classes x S samples each (Zhai & Wu 2019, Sec. 3.3).

"For each training batch, we first sample C classes, and sample S samples within each class."
The paper uses batch size 75 with S = 25 (CUB, Cars) or S = 5 (SOP, In-Shop); Table 4 ablates S.

Epoch scheme (every class and image is used before anything repeats):

* classes: shuffled copies of the class list laid end to end and cut into rows of C, so every
  class appears once before any class appears twice, and no batch holds a class twice;
* images: each class's images are shuffled once per epoch; the k-th time a class is drawn in
  the epoch it takes positions ``k*S .. k*S + S - 1`` of that shuffled list, cyclically. A class
  with at least S images therefore never repeats an image within a draw (without replacement);
  a smaller class repeats its images, each ``floor(S/n)`` or ``ceil(S/n)`` times (with
  replacement, and only then).

Within a batch the S items of a class are contiguous: ``[c1 x S, c2 x S, ...]``.
"""

from __future__ import annotations

import numpy as np

from losszoo.samplers.base import (
    LabelBatchSampler,
    LabelsLike,
    check_positive_int,
    cyclic_permutation_rows,
)
from losszoo.samplers.registry import register_sampler


@register_sampler("class_balanced")
class ClassBalancedSampler(LabelBatchSampler):
    """Batches of ``batch_size // samples_per_class`` distinct classes x ``samples_per_class``.

    ``batch_size`` must be a multiple of ``samples_per_class``. Only classes with at least
    ``min_class_size`` items are drawn (1 here; N-pair needs 2).
    """

    min_class_size = 1

    def __init__(
        self,
        labels: LabelsLike,
        *,
        batch_size: int,
        samples_per_class: int,
        seed: int = 0,
        batches_per_epoch: int | None = None,
    ) -> None:
        super().__init__(labels, batch_size=batch_size, seed=seed, batches_per_epoch=batches_per_epoch)
        self.samples_per_class = check_positive_int(samples_per_class, "samples_per_class")
        if self.batch_size % self.samples_per_class:
            raise ValueError(
                f"batch_size ({self.batch_size}) must be a multiple of samples_per_class "
                f"({self.samples_per_class}) for C x S class-balanced batches"
            )
        self.classes_per_batch = self.batch_size // self.samples_per_class
        self._class_keys = np.repeat(np.arange(self.num_classes, dtype=np.int64) << 32, self.class_counts)
        self.eligible_classes = np.flatnonzero(self.class_counts >= self.min_class_size)
        if len(self.eligible_classes) < self.classes_per_batch:
            sized = f" with >= {self.min_class_size} items" if self.min_class_size > 1 else ""
            raise ValueError(
                f"{type(self).__name__} needs {self.classes_per_batch} distinct classes{sized} per "
                f"batch (batch_size {self.batch_size} / samples_per_class "
                f"{self.samples_per_class}), but the labels have only "
                f"{len(self.eligible_classes)}: lower batch_size or raise samples_per_class"
            )

    def draw_batches(self, rng: np.random.Generator, num_batches: int) -> np.ndarray:
        num_classes, per_class = self.classes_per_batch, self.samples_per_class
        drawn = cyclic_permutation_rows(rng, self.eligible_classes, num_classes, num_batches).ravel()
        # Occurrence number of each draw of a class within the epoch (0 for its first draw...).
        by_class = np.argsort(drawn, kind="stable")
        sorted_drawn = drawn[by_class]
        first_of_run = np.flatnonzero(np.r_[True, sorted_drawn[1:] != sorted_drawn[:-1]])
        run_lengths = np.diff(np.r_[first_of_run, len(drawn)])
        occurrence = np.empty_like(drawn)
        occurrence[by_class] = np.arange(len(drawn)) - np.repeat(first_of_run, run_lengths)
        # Shuffle every class's images at once: sort by (class, random 32-bit key), packed into
        # one int64 (a single integer argsort is ~30x faster than np.lexsort here).
        random_keys = rng.integers(0, 1 << 32, len(self.labels), dtype=np.int64)
        shuffled = self.grouped_indices[np.argsort(self._class_keys | random_keys, kind="stable")]
        counts = self.class_counts[drawn][:, None]
        positions = (occurrence[:, None] * per_class + np.arange(per_class)) % counts
        batches = shuffled[self.class_starts[drawn][:, None] + positions]
        return batches.reshape(num_batches, num_classes * per_class)
