"""N-pair batches: N distinct classes x 2 images (Sohn, NeurIPS 2016, Sec. 3.2).

The N-pair batch construction: N pairs from N different classes; each class contributes an
anchor and a positive, and the other N - 1 classes' positives are the anchor's negatives. The drawing is
the class-balanced one with S = 2, restricted to classes that have two distinct images.
"""

from __future__ import annotations

from losszoo.samplers.base import LabelsLike, check_positive_int
from losszoo.samplers.class_balanced import ClassBalancedSampler
from losszoo.samplers.registry import register_sampler


@register_sampler("npair", uses_samples_per_class=False)
class NPairSampler(ClassBalancedSampler):
    """Batches of ``N = batch_size // 2`` distinct classes x 2 distinct images, laid out as
    ``[a1, p1, a2, p2, ...]``.

    ``samples_per_class`` is ignored (always 2); an odd ``batch_size`` gives batches of
    ``batch_size - 1``. Classes with a single image are never drawn; N >= 2 is required.
    """

    min_class_size = 2

    def __init__(
        self,
        labels: LabelsLike,
        *,
        batch_size: int,
        samples_per_class: int | None = None,
        seed: int = 0,
        batches_per_epoch: int | None = None,
    ) -> None:
        num_pairs = check_positive_int(batch_size, "batch_size") // 2
        if num_pairs < 2:
            raise ValueError(
                f"npair needs at least 2 pairs (batch_size >= 4) so each anchor has a negative, "
                f"got batch_size {batch_size}"
            )
        super().__init__(
            labels,
            batch_size=2 * num_pairs,
            samples_per_class=2,
            seed=seed,
            batches_per_epoch=batches_per_epoch,
        )
