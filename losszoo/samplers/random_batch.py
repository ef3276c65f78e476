"""Plain random batches, no class balancing: the first column of Zhai & Wu (2019), Table 4.

A shuffled permutation of the dataset cut into batches (``drop_last``). When
``batches_per_epoch`` asks for more than ``len(labels) // batch_size`` batches, further
permutations follow (no batch holds an index twice); otherwise every index appears at most once.
"""

from __future__ import annotations

import numpy as np

from losszoo.samplers.base import LabelBatchSampler, LabelsLike, cyclic_permutation_rows
from losszoo.samplers.registry import register_sampler


@register_sampler("random", uses_samples_per_class=False)
class RandomBatchSampler(LabelBatchSampler):
    """Uniformly shuffled batches of ``batch_size``; ``samples_per_class`` is ignored."""

    def __init__(
        self,
        labels: LabelsLike,
        *,
        batch_size: int,
        samples_per_class: int | None = None,
        seed: int = 0,
        batches_per_epoch: int | None = None,
    ) -> None:
        super().__init__(labels, batch_size=batch_size, seed=seed, batches_per_epoch=batches_per_epoch)
        if len(self.labels) < self.batch_size:
            raise ValueError(
                f"random batches of {self.batch_size} need at least that many items, "
                f"got {len(self.labels)} labels"
            )

    def draw_batches(self, rng: np.random.Generator, num_batches: int) -> np.ndarray:
        return cyclic_permutation_rows(rng, np.arange(len(self.labels)), self.batch_size, num_batches)
