"""Retrieval metrics per query, from the labels of its ranked neighbours.

- Recall@K (Song et al. 2016, used by Zhai & Wu 2019, Sec. 4): a query is a hit at K when one of
  its K nearest neighbours has its label. Every query counts; one whose class has no other member
  in the gallery can never be hit.
- R-precision and MAP@R (Musgrave et al. 2020, "A Metric Learning Reality Check", Sec. 3.2):
  R is the number of gallery items with the query's label (the query itself excluded when the
  gallery is the query set); of the R nearest neighbours,
  ``R-precision = hits / R`` and ``MAP@R = (1/R) * sum_{i<=R} P(i) * rel(i)``.
  Queries with R = 0 are undefined for both and get NaN here; the averages skip them, as
  pytorch-metric-learning's ``AccuracyCalculator`` skips its "lone" queries.
"""

from __future__ import annotations

import numpy as np


def count_relevant(query_labels: np.ndarray, gallery_labels: np.ndarray | None = None) -> np.ndarray:
    """R per query: gallery items sharing its label; ``gallery_labels=None`` is the same-set case,
    where the query itself is not counted."""
    query_labels = np.asarray(query_labels)
    reference = query_labels if gallery_labels is None else np.asarray(gallery_labels)
    classes, counts = np.unique(reference, return_counts=True)
    position = np.searchsorted(classes, query_labels).clip(max=len(classes) - 1)
    relevant = np.where(classes[position] == query_labels, counts[position], 0)
    return relevant - 1 if gallery_labels is None else relevant


def relevance(neighbor_labels: np.ndarray, query_labels: np.ndarray) -> np.ndarray:
    """``bool [n, k]``: whether each ranked neighbour has its query's label."""
    return np.asarray(neighbor_labels) == np.asarray(query_labels)[:, None]


def hits_at_k(relevant: np.ndarray, k: int) -> np.ndarray:
    """``bool [n]``: whether a relevant item is among the first ``k`` neighbours."""
    if k > relevant.shape[1]:
        raise ValueError(f"Recall@{k} needs {k} neighbours per query, got {relevant.shape[1]}")
    return relevant[:, :k].any(axis=1)


def _relevant_within_r(relevant: np.ndarray, num_relevant: np.ndarray) -> np.ndarray:
    """``relevant`` restricted to each row's first R columns, width max(R)."""
    num_relevant = np.asarray(num_relevant)
    width = int(num_relevant.max(initial=0))
    if width > relevant.shape[1]:
        raise ValueError(f"R up to {width} needs as many neighbours per query, got {relevant.shape[1]}")
    return relevant[:, :width] & (np.arange(width) < num_relevant[:, None])


def r_precision(relevant: np.ndarray, num_relevant: np.ndarray) -> np.ndarray:
    """``float64 [n]``: relevant items among the R nearest, divided by R (NaN where R = 0)."""
    hits = _relevant_within_r(relevant, num_relevant).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(num_relevant > 0, hits / np.asarray(num_relevant, dtype=np.float64), np.nan)


def average_precision_at_r(relevant: np.ndarray, num_relevant: np.ndarray) -> np.ndarray:
    """``float64 [n]``: AP@R = (1/R) sum_{i<=R} P(i) rel(i), P(i) = precision at rank i (NaN where R = 0)."""
    within = _relevant_within_r(relevant, num_relevant)
    ranks = np.arange(1, within.shape[1] + 1)
    precision_at_rank = np.cumsum(within, axis=1) / ranks
    summed = (precision_at_rank * within).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(num_relevant > 0, summed / np.asarray(num_relevant, dtype=np.float64), np.nan)
