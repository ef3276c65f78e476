"""A distributed form of every batch sampler: the global batch a single process would draw at
(seed, epoch, step), cut into ``world_size`` contiguous, disjoint shares, one per rank.

Concatenating the shares in rank order gives the single-process batch exactly, so a loss over
the gathered batch (``losszoo.distributed.losses``) sees what one process would see.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler


class DistributedBatchSampler(Sampler[list[Any]]):
    """Rank ``rank``'s share of each batch of ``batches`` (any seeded batch sampler with
    ``set_epoch``: every rank draws the same global batches and keeps its slice).

    With ``item_seeds``, each index comes as ``(index, seed)``, the seed a function of
    (sampler seed, epoch, step, position in the global batch) only, so random augmentation of
    an item does not depend on which rank loads it (see :class:`SeededItems`).
    """

    def __init__(self, batches: Sampler[list[int]], rank: int, world_size: int, *,
                 seed: int = 0, item_seeds: bool = True) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.batches, self.rank, self.world_size = batches, rank, world_size
        self.seed, self.item_seeds, self.epoch = seed, item_seeds, 0

    def __len__(self) -> int:
        return len(self.batches)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.batches.set_epoch(epoch)

    def share(self, batch: list[int]) -> slice:
        if len(batch) % self.world_size:
            raise ValueError(f"a global batch of {len(batch)} does not split evenly across "
                             f"{self.world_size} ranks: make the batch size a multiple of it")
        size = len(batch) // self.world_size
        return slice(self.rank * size, (self.rank + 1) * size)

    def __iter__(self) -> Iterator[list[Any]]:
        for step, batch in enumerate(self.batches):
            part = self.share(list(batch))
            indices = list(batch)[part]
            if not self.item_seeds:
                yield indices
                continue
            positions = range(part.start, part.stop)
            yield [(index, item_seed(self.seed, self.epoch, step, position))
                   for index, position in zip(indices, positions)]


def item_seed(seed: int, epoch: int, step: int, position: int) -> int:
    """A 63-bit seed from (seed, epoch, step, position): the same on every rank."""
    value = 0
    for part in (seed, epoch, step, position):
        value = (value * 1_000_003 + part + 1) % (1 << 63)
    return value


class SeededItems(Dataset):
    """``dataset[index]`` under torch's global generator seeded with the item's seed, then
    restored: an item's augmentation is fixed by its place in the global batch."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> Any:  # labels, num_classes... of the wrapped dataset
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        return self.__getitems__([key])[0]

    def __getitems__(self, keys: list[tuple[int, int]]) -> list[Any]:
        """A batch of items (the DataLoader fetches a batch at once): the generator is saved and
        restored once per batch, and seeded afresh for each item."""
        generator = torch.random.default_generator
        with torch.random.fork_rng(devices=[]):
            items = []
            for index, seed in keys:
                # The CPU generator only: torch.manual_seed also queues a CUDA seeding, with a
                # stack trace, on every call (1.2 ms an item, which doubled a comparison's time).
                generator.manual_seed(seed)
                items.append(self.dataset[index])
            return items
