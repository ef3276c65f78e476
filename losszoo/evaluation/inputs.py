"""Conversion and validation of what callers pass to the evaluation: torch tensors or numpy arrays."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def as_embedding_matrix(embeddings: Any, name: str = "embeddings") -> np.ndarray:
    """A C-contiguous float32 ``[N, D]`` numpy copy-or-view of ``embeddings``.

    Raises ``TypeError`` for non-real dtypes and ``ValueError`` for a shape other than 2-D, an
    empty matrix, or NaN/inf values (checked after the cast, so float64 overflow is caught too).
    """
    if isinstance(embeddings, torch.Tensor):
        if embeddings.is_complex() or embeddings.dtype == torch.bool:
            raise TypeError(f"{name} must be real numbers, got torch dtype {embeddings.dtype}")
        array = embeddings.detach().to("cpu", torch.float32).numpy()
    else:
        array = np.asarray(embeddings)
        if array.dtype.kind not in "fiu":
            raise TypeError(f"{name} must be real numbers, got numpy dtype {array.dtype}")
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D [num_items, dim], got shape {tuple(array.shape)}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {tuple(array.shape)}")
    with np.errstate(over="ignore"):  # values beyond float32 become inf, reported just below
        array = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contain NaN or inf (after conversion to float32)")
    return array


def as_label_vector(labels: Any, length: int, name: str = "labels") -> np.ndarray:
    """A 1-D int64 numpy array of ``length`` class labels; ``TypeError`` for non-integer dtypes."""
    if isinstance(labels, torch.Tensor):
        if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
            raise TypeError(f"{name} must be integers, got torch dtype {labels.dtype}")
        array = labels.detach().cpu().numpy()
    else:
        array = np.asarray(labels)
        if array.dtype.kind not in "iu":
            raise TypeError(f"{name} must be integers, got numpy dtype {array.dtype}")
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(array.shape)}")
    if array.shape[0] != length:
        raise ValueError(
            f"{name} has {array.shape[0]} entries but there are {length} embeddings; "
            "give one label per embedding"
        )
    return array.astype(np.int64, copy=False)


def is_positive_int(value: object) -> bool:
    """Whether ``value`` is an integer >= 1 (python or numpy; ``True`` does not count)."""
    return not isinstance(value, bool) and isinstance(value, (int, np.integer)) and value >= 1
