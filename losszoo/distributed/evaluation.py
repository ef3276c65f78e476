"""Distributed embedding of an evaluation set: rank r embeds batches r, r + N, r + 2N, ... of
the single-process loader, the batches are gathered to every rank and put back in order.

The batches are the single-process ones (same composition, same order), so each embedding is
bitwise the single-process one, and the metrics computed from them are exactly equal.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import Dataset, Subset


def distributed_embeddings(
    extract: Callable[[Dataset], tuple[Tensor, Tensor]], dataset: Dataset, batch_size: int,
) -> tuple[Tensor, Tensor]:
    """``extract(dataset)`` computed as shares across ranks; every rank gets the whole result.

    ``extract`` embeds a dataset in batches of ``batch_size`` (unshuffled) and returns CPU
    embeddings and labels, as ``losszoo.training.inference.extract_embeddings`` does.
    """
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return extract(dataset)
    rank, world_size = dist.get_rank(), dist.get_world_size()
    size = len(dataset)  # type: ignore[arg-type]
    starts = list(range(0, size, batch_size))
    mine = [start for k, start in enumerate(starts) if k % world_size == rank]
    indices = [i for start in mine for i in range(start, min(start + batch_size, size))]
    if indices:
        embeddings, labels = extract(Subset(dataset, indices))
    else:
        embeddings, labels = torch.empty(0), torch.empty(0, dtype=torch.long)
    shares: list[tuple[Tensor, Tensor]] = [None] * world_size  # type: ignore[list-item]
    dist.all_gather_object(shares, (embeddings, labels))
    chunks: list[tuple[Tensor, Tensor]] = []
    for k in range(len(starts)):
        owner_embeddings, owner_labels = shares[k % world_size]
        offset = (k // world_size) * batch_size
        length = min(batch_size, size - starts[k])
        chunks.append((owner_embeddings[offset:offset + length], owner_labels[offset:offset + length]))
    return torch.cat([c[0] for c in chunks]), torch.cat([c[1] for c in chunks])
