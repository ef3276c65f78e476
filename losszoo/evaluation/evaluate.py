"""One call for the numbers the tables report: Recall@K, NMI, MAP@R and R-precision."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from losszoo.evaluation import knn
from losszoo.evaluation.clustering import NMI_AVERAGES, kmeans_assignments, nmi_score
from losszoo.evaluation.inputs import as_embedding_matrix, as_label_vector, is_positive_int
from losszoo.evaluation.metrics import (
    average_precision_at_r,
    count_relevant,
    hits_at_k,
    r_precision,
    relevance,
)
from losszoo.evaluation.results import MAP_AT_R, METRIC_KINDS, R_PRECISION

METRIC_NAMES = METRIC_KINDS  # the metrics ``evaluate(metrics=...)`` selects from
DISTANCES = ("cosine", "euclidean")
_NEEDS_R = (MAP_AT_R, R_PRECISION)


@dataclass(frozen=True)
class Neighbors:
    """The neighbours the metrics were computed from, in the caller's item order.

    ``indices[i]``: gallery ids (the query set itself in same-set mode, query ``i`` excluded)
    of query ``i``'s nearest items, nearest first; ``distances[i]``: their distances under
    ``metric``: 1 - cosine similarity, L2 ("euclidean") or, for binary codes, Hamming.
    """

    indices: np.ndarray  # int64 [num_queries, k]
    distances: np.ndarray  # float32 [num_queries, k]
    metric: str  # "cosine", "euclidean" or "hamming"


def _check_metrics(metrics: Iterable[str]) -> list[str]:
    if isinstance(metrics, str):
        metrics = (metrics,)
    requested = list(dict.fromkeys(metrics))
    unknown = [name for name in requested if name not in METRIC_NAMES]
    if unknown or not requested:
        raise ValueError(f"metrics must be a non-empty selection of {METRIC_NAMES}, got {list(metrics)}")
    return requested


def _check_ks(ks: Sequence[int], available: int) -> list[int]:
    if isinstance(ks, (int, np.integer)):
        ks = (ks,)
    checked = list(dict.fromkeys(ks))
    if not checked or not all(is_positive_int(k) for k in checked):
        raise ValueError(f"ks must be positive integers, got {ks!r}")
    too_large = [int(k) for k in checked if k > available]
    if too_large:
        raise ValueError(
            f"Recall@K for K={too_large} is impossible: "
            f"each query can retrieve only {available} gallery items"
        )
    return [int(k) for k in checked]


def evaluate(
    embeddings: Any,
    labels: Any,
    *,
    gallery_embeddings: Any | None = None,
    gallery_labels: Any | None = None,
    ks: Sequence[int] = (1, 2, 4, 8),
    metrics: Sequence[str] = METRIC_NAMES,
    binary: bool = False,
    seed: int = 0,
    nmi_average: str = "arithmetic",
    backend: knn.Backend = "auto",
    chunk_size: int | None = None,
    distance: str = "cosine",
    return_neighbors: bool = False,
    report: Callable[[int, int], None] | None = None,
) -> dict[str, float | str] | tuple[dict[str, float | str], Neighbors | None]:
    """Retrieval and clustering metrics of embeddings (torch tensors or numpy arrays, any scale).

    Same-set mode (CARS-196, CUB-200, SOP): every embedding queries all the others, itself
    excluded by index. Query/gallery mode (In-Shop): ``embeddings`` query
    ``gallery_embeddings``, nothing excluded.

    Returns a JSON-serialisable dict, keys in the order of ``metrics``: ``recall@K`` for K in
    ``ks`` (over all queries), ``map_at_r`` and ``r_precision`` (over queries with R > 0, see
    :mod:`losszoo.evaluation.metrics`), ``nmi`` (on the queries) — python floats in [0, 1] — and,
    with ``nmi``, ``nmi_average``: the string naming the NMI normalisation (the one non-float).

    Retrieval ranks by cosine similarity (rows L2-normalised, float32), or with ``binary=True``
    by Hamming distance between codes thresholded at zero (Zhai & Wu 2019, Sec. 4.3/4.6); NMI
    then clusters the ±1 codes. The neighbours are searched once, k = max(max(ks), max R), in
    calls of ``chunk_size`` queries (default: sized by memory, see :mod:`.knn`).
    ``backend="torch"`` avoids faiss (torch top-k, scikit-learn k-means); ``seed`` seeds k-means
    and the random order in which distance ties are broken (never in dataset order).

    ``distance="euclidean"`` ranks the float embeddings as they are, by L2 distance, and NMI
    clusters them unnormalised: the figures of pytorch-metric-learning's ``AccuracyCalculator``
    with its default ``FaissKNN`` (L2 on unnormalised rows); ``"cosine"`` gives its figures with
    ``knn_func=CustomKNN(CosineSimilarity())``. Its ``precision_at_1`` is ``recall@1`` here,
    its ``mean_average_precision_at_r`` is ``map_at_r`` (see docs/evaluation.md).
    ``return_neighbors=True`` returns ``(metrics, Neighbors)``: the neighbours of that one
    search, mapped back to the input order (None when only NMI was asked for).
    ``report(done, total)`` is called as query blocks are searched (progress of a long search;
    the calls then hold about a twentieth of the queries each, see ``knn.progress_chunk_size``).
    """
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
    requested = _check_metrics(metrics)
    queries = as_embedding_matrix(embeddings, "embeddings")
    query_labels = as_label_vector(labels, queries.shape[0], "labels")
    if (gallery_embeddings is None) != (gallery_labels is None):
        given, missing = ("gallery_embeddings", "gallery_labels")
        if gallery_embeddings is None:
            given, missing = missing, given
        raise ValueError(f"{given} given without {missing}: query/gallery mode needs both")
    same_set = gallery_embeddings is None
    if same_set:
        gallery, reference_labels = queries, query_labels
    else:
        gallery = as_embedding_matrix(gallery_embeddings, "gallery_embeddings")
        reference_labels = as_label_vector(gallery_labels, gallery.shape[0], "gallery_labels")
        if gallery.shape[1] != queries.shape[1]:
            raise ValueError(
                "embeddings and gallery_embeddings differ in dimension: "
                f"{queries.shape[1]} vs {gallery.shape[1]}"
            )
    available = gallery.shape[0] - int(same_set)
    ks = _check_ks(ks, available) if "recall" in requested else []
    if "nmi" in requested and nmi_average not in NMI_AVERAGES:
        raise ValueError(f"nmi_average must be one of {NMI_AVERAGES}, got {nmi_average!r}")
    knn.resolve_backend(backend)

    retrieval: dict[str, float] = {}
    found: list[Neighbors] = []
    if any(name != "nmi" for name in requested):
        retrieval = _retrieval_metrics(
            queries,
            query_labels,
            gallery=None if same_set else gallery,
            gallery_labels=None if same_set else reference_labels,
            ks=ks,
            requested=requested,
            binary=binary,
            backend=backend,
            chunk_size=chunk_size,
            seed=seed,
            distance=distance,
            keep=found if return_neighbors else None,
            report=report,
        )
    results: dict[str, float | str] = {}
    for name in requested:
        if name == "recall":
            results.update({f"recall@{k}": retrieval[f"recall@{k}"] for k in ks})
        elif name == "nmi":
            results["nmi"] = _nmi(
                queries, query_labels, binary=binary, seed=seed, average=nmi_average, backend=backend,
                normalize=distance == "cosine",
            )
            results["nmi_average"] = nmi_average
        else:
            results[name] = retrieval[name]
    if return_neighbors:
        return results, (found[0] if found else None)
    return results


def _retrieval_metrics(
    queries: np.ndarray,
    query_labels: np.ndarray,
    *,
    gallery: np.ndarray | None,
    gallery_labels: np.ndarray | None,
    ks: list[int],
    requested: list[str],
    binary: bool,
    backend: knn.Backend,
    chunk_size: int | None,
    seed: int,
    distance: str = "cosine",
    keep: list[Neighbors] | None = None,
    report: Callable[[int, int], None] | None = None,
) -> dict[str, float]:
    """Recall@K / MAP@R / R-precision from one neighbour search (``gallery=None``: same set)."""
    # Break distance ties (equal binary codes, duplicated images) in a seeded random order, not
    # in dataset order: test sets are listed class by class, so index order among tied items
    # would favour whichever class comes first. The metrics are invariant to the reordering.
    order = np.random.default_rng(seed).permutation((queries if gallery is None else gallery).shape[0])
    if gallery is None:
        queries, query_labels = queries[order], query_labels[order]
    else:
        gallery, gallery_labels = gallery[order], gallery_labels[order]
    reference_labels = query_labels if gallery_labels is None else gallery_labels
    num_relevant = count_relevant(query_labels, gallery_labels)
    wants_r = [name for name in requested if name in _NEEDS_R]
    scored = num_relevant > 0
    if wants_r and not scored.any():
        raise ValueError(
            f"{' and '.join(wants_r)} are undefined: "
            "no query has a gallery item of its class (R = 0 for every query)"
        )
    # One search serves every metric: deep enough for the largest K and the largest R.
    k = max(max(ks, default=0), int(num_relevant.max()) if wants_r else 0)
    metric = "hamming" if binary else distance
    query_rows, gallery_rows = queries, gallery
    if binary:
        query_rows = knn.binarize(queries)
        gallery_rows = None if gallery is None else knn.binarize(gallery)

    if report is not None and chunk_size is None:
        chunk_size = knn.progress_chunk_size(queries.shape[0], k)
    hits = dict.fromkeys(ks, 0)
    sums = dict.fromkeys(wants_r, 0.0)
    blocks: list[np.ndarray] = []
    for start, neighbors in knn.iter_neighbors(
        query_rows, k, gallery=gallery_rows, metric=metric, backend=backend, chunk_size=chunk_size
    ):
        stop = start + neighbors.shape[0]
        if report is not None:
            report(stop, queries.shape[0])
        if keep is not None:
            blocks.append(neighbors)
        relevant = relevance(reference_labels[neighbors], query_labels[start:stop])
        for k_ in ks:
            hits[k_] += int(hits_at_k(relevant, k_).sum())
        chunk_scored = scored[start:stop]
        if not chunk_scored.any():
            continue
        relevant, chunk_r = relevant[chunk_scored], num_relevant[start:stop][chunk_scored]
        if "map_at_r" in sums:
            sums["map_at_r"] += float(average_precision_at_r(relevant, chunk_r).sum())
        if "r_precision" in sums:
            sums["r_precision"] += float(r_precision(relevant, chunk_r).sum())

    if keep is not None:
        indices = np.concatenate(blocks, axis=0)
        rows = query_rows if gallery_rows is None else gallery_rows
        distances = _distances(query_rows, rows, indices, metric)
        # Back to the caller's order: permuted position p is item order[p].
        indices = order[indices]
        if gallery is None:
            restored_i, restored_d = np.empty_like(indices), np.empty_like(distances)
            restored_i[order], restored_d[order] = indices, distances
            indices, distances = restored_i, restored_d
        keep.append(Neighbors(indices, distances, metric))
    results = {f"recall@{k_}": hits[k_] / queries.shape[0] for k_ in ks}
    results.update({name: total / int(scored.sum()) for name, total in sums.items()})
    return results


def _distances(queries: np.ndarray, gallery: np.ndarray, indices: np.ndarray, metric: str,
               block_bytes: int = 1 << 27) -> np.ndarray:
    """Distances of each query to its found neighbours (gathered for the found ids, no new
    search): Hamming counts of packed codes, 1 - cosine similarity, or L2 distance. Queries go in
    blocks whose gathered neighbour rows take about ``block_bytes``."""
    out = np.empty(indices.shape, dtype=np.float32)
    block = max(1, block_bytes // max(1, indices.shape[1] * gallery[:1].nbytes))
    if metric == "cosine":
        queries, gallery = knn.l2_normalize(queries), knn.l2_normalize(gallery)
    for start in range(0, indices.shape[0], block):
        found = gallery[indices[start : start + block]]
        q = queries[start : start + block][:, None, :]
        if metric == "hamming":
            out[start : start + block] = np.unpackbits(q ^ found, axis=2).sum(axis=2)
        elif metric == "cosine":
            out[start : start + block] = 1.0 - np.einsum("nkd,nkd->nk", np.broadcast_to(q, found.shape), found)
        else:
            out[start : start + block] = np.linalg.norm(q - found, axis=2)
    return out


def _nmi(
    queries: np.ndarray, labels: np.ndarray, *, binary: bool, seed: int, average: str, backend: knn.Backend,
    normalize: bool = True,
) -> float:
    """NMI of k-means (one cluster per class) on the L2-normalised queries (or as they are,
    ``normalize=False``), or on their ±1 codes."""
    rows = np.where(queries > 0, 1.0, -1.0).astype(np.float32) if binary else queries
    kmeans_backend = {"auto": "auto", "faiss": "faiss", "numkong": "auto", "torch": "sklearn"}[backend]
    assignments = kmeans_assignments(
        knn.l2_normalize(rows) if normalize or binary else rows, len(np.unique(labels)), seed=seed, backend=kmeans_backend
    )
    return nmi_score(labels, assignments, average_method=average)
