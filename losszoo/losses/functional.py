"""Pieces the pair- and triplet-based losses share: distances and label masks."""

from __future__ import annotations

import torch
from torch import Tensor


def pairwise_squared_distances(x: Tensor) -> Tensor:
    """Squared Euclidean distances ``||x_i - x_j||^2`` [B, B], clamped at 0, exact 0 on the diagonal."""
    squared_norms = (x * x).sum(dim=1)
    d2 = squared_norms[:, None] + squared_norms[None, :] - 2.0 * (x @ x.T)
    d2 = d2.clamp_min(0.0)
    return d2 * (1.0 - torch.eye(x.shape[0], dtype=x.dtype, device=x.device))


def pairwise_distances(x: Tensor, eps: float = 1e-12) -> Tensor:
    """Euclidean distances [B, B] with a finite gradient at zero distance.

    ``sqrt`` has an infinite derivative at 0 (the diagonal, duplicate embeddings); where the
    squared distance is below ``eps`` the distance is taken as 0 with zero gradient.
    """
    d2 = pairwise_squared_distances(x)
    positive = d2 > eps
    return torch.where(positive, d2.clamp_min(eps).sqrt(), torch.zeros_like(d2))


def label_masks(labels: Tensor) -> tuple[Tensor, Tensor]:
    """Boolean [B, B] masks of positive pairs (same label, i != j) and negative pairs."""
    same = labels[:, None] == labels[None, :]
    not_self = ~torch.eye(labels.shape[0], dtype=torch.bool, device=labels.device)
    return same & not_self, ~same


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values`` over ``mask``; 0 (with a gradient path) when the mask is empty."""
    count = mask.sum()
    return (values * mask).sum() / count.clamp_min(1)


def masked_logsumexp(values: Tensor, mask: Tensor, dim: int = 1) -> Tensor:
    """``log(sum(exp(values)))`` over the entries where ``mask`` holds, computed stably.

    Slices with an empty mask give ``-inf`` (the log of an empty sum) with zero gradient
    instead of NaN, so callers can drop them afterwards.
    """
    empty = ~mask.any(dim=dim, keepdim=True)
    masked = values.masked_fill(~mask, float("-inf")).masked_fill(empty, 0.0)
    return torch.logsumexp(masked, dim=dim).masked_fill(empty.squeeze(dim), float("-inf"))

