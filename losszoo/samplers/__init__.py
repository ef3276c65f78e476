"""Batch samplers named by the losses' specs. Importing this package registers the built-ins.

    >>> from losszoo.samplers import create_sampler
    >>> sampler = create_sampler("class_balanced", [0, 0, 1, 1, 2, 2], batch_size=4, samples_per_class=2)
    >>> len(sampler), len(next(iter(sampler)))
    (1, 4)
"""

from losszoo.samplers.base import LabelBatchSampler
from losszoo.samplers.class_balanced import ClassBalancedSampler
from losszoo.samplers.npair import NPairSampler
from losszoo.samplers.random_batch import RandomBatchSampler
from losszoo.samplers.registry import (
    SAMPLERS,
    create_sampler,
    list_samplers,
    register_sampler,
    uses_samples_per_class,
)

__all__ = [
    "SAMPLERS",
    "ClassBalancedSampler",
    "LabelBatchSampler",
    "NPairSampler",
    "RandomBatchSampler",
    "create_sampler",
    "list_samplers",
    "register_sampler",
    "uses_samples_per_class",
]
