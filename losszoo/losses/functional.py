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


def cross_distances(x: Tensor, y: Tensor, eps: float = 1e-12) -> Tensor:
    """Euclidean distances ``||x_i - y_j||`` [B, M], with a finite gradient at zero distance
    (taken as 0 with zero gradient below ``eps`` squared, as :func:`pairwise_distances`)."""
    d2 = ((x * x).sum(dim=1)[:, None] + (y * y).sum(dim=1)[None, :] - 2.0 * (x @ y.T)).clamp_min(0.0)
    return torch.where(d2 > eps, d2.clamp_min(eps).sqrt(), torch.zeros_like(d2))


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


def log1p_sum_exp(values: Tensor, mask: Tensor, dim: int = 1) -> Tensor:
    """``log(1 + sum(exp(values)))`` over the entries where ``mask`` holds, computed stably;
    0 (with zero gradient) where the mask is empty."""
    lse = masked_logsumexp(values, mask, dim=dim)
    return torch.logaddexp(torch.zeros_like(lse), lse)



# -- mined tuples (pytorch-metric-learning's indices_tuple formats) ------------------------------
Triplets = tuple[Tensor, Tensor, Tensor]  # (anchor, positive, negative) batch indices
Pairs = tuple[Tensor, Tensor, Tensor, Tensor]  # (a1, p, a2, n): positive pairs (a1, p), negative (a2, n)


def check_indices_tuple(indices_tuple: object, labels: Tensor) -> tuple[Tensor, ...]:
    """Validate a miner's output: 3 (triplets) or 4 (pairs) 1-D integer index tensors into the batch,
    the members of a group of equal length, positives of the anchor's class, negatives of another.

    Returns the tensors as ``long`` on the labels' device; raises ``ValueError`` naming the fault.
    """
    if not isinstance(indices_tuple, (tuple, list)) or len(indices_tuple) not in (3, 4):
        raise ValueError(
            "indices_tuple must be (anchors, positives, negatives) triplets or (a1, p, a2, n) pairs, "
            f"got {type(indices_tuple).__name__} of length {len(indices_tuple) if hasattr(indices_tuple, '__len__') else '?'}"
        )
    tensors = []
    for t in indices_tuple:
        if not isinstance(t, Tensor) or t.dim() != 1 or t.dtype.is_floating_point or t.dtype == torch.bool:
            raise ValueError("indices_tuple must hold 1-D integer index tensors")
        tensors.append(t.to(labels.device, torch.long))
    groups = [tensors] if len(tensors) == 3 else [tensors[:2], tensors[2:]]
    for group in groups:
        if len({t.shape[0] for t in group}) != 1:
            raise ValueError(f"indices_tuple: index tensors of one group differ in length: "
                             f"{[t.shape[0] for t in group]}")
    batch = labels.shape[0]
    for t in tensors:
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= batch):
            raise ValueError(f"indices_tuple: indices must lie in [0, {batch}) (the batch)")
    a1, p, a2, n = convert_to_pairs(tuple(tensors))  # type: ignore[arg-type]
    if not bool((labels[a1] == labels[p]).all()) or bool((a1 == p).any()):
        raise ValueError("indices_tuple: a positive must be another sample of the anchor's class")
    if bool((labels[a2] == labels[n]).any()):
        raise ValueError("indices_tuple: a negative must be of another class than its anchor")
    return tuple(tensors)


def convert_to_pairs(indices_tuple: Triplets | Pairs) -> Pairs:
    """Pairs from triplets as PML's ``lmu.convert_to_pairs``: (a, p, n) -> (a, p, a, n)."""
    if len(indices_tuple) == 4:
        return indices_tuple  # type: ignore[return-value]
    a, p, n = indices_tuple
    return a, p, a, n


def convert_to_triplets(indices_tuple: Triplets | Pairs) -> Triplets:
    """Triplets from pairs as PML's ``lmu.convert_to_triplets``: every positive pair (a, p) with
    every negative pair (a, n) of the same anchor gives (a, p, n)."""
    if len(indices_tuple) == 3:
        return indices_tuple  # type: ignore[return-value]
    a1, p, a2, n = indices_tuple
    p_idx, n_idx = torch.where(a1[:, None] == a2[None, :])
    return a1[p_idx], p[p_idx], n[n_idx]


def pair_counts(rows: Tensor, cols: Tensor, batch: int, dtype: torch.dtype) -> Tensor:
    """[B, B] matrix counting how often each ordered pair (rows[k], cols[k]) occurs."""
    counts = torch.zeros(batch, batch, dtype=dtype, device=rows.device)
    return counts.index_put_((rows, cols), torch.ones_like(rows, dtype=dtype), accumulate=True)


def triplet_margin_losses(distances: Tensor, triplets: Triplets, margin: float) -> Tensor:
    """``relu(d(a, p) - d(a, n) + margin)`` per triplet."""
    a, p, n = triplets
    return (distances[a, p] - distances[a, n] + margin).relu()
