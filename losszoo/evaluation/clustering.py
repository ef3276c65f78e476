"""Clustering quality: k-means with one cluster per class, scored by NMI.

The protocol of the metric-learning tables (Song et al. 2016; Zhai & Wu 2019, Tables 1-3): run
k-means with as many clusters as there are classes and report the normalized mutual information
between cluster assignments and labels (scikit-learn's ``normalized_mutual_info_score``).
k-means is faiss's (``faiss.Kmeans``, seeded, 20 iterations as in pytorch-metric-learning's
``FaissKMeans``); scikit-learn's ``KMeans`` stands in when faiss is not importable.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from losszoo.evaluation import knn

NMI_AVERAGES = ("min", "geometric", "arithmetic", "max")
KMEANS_BACKENDS = ("auto", "faiss", "sklearn")
DEFAULT_KMEANS_ITERATIONS = 20


def kmeans_assignments(
    embeddings: np.ndarray,
    num_clusters: int,
    *,
    seed: int = 0,
    iterations: int = DEFAULT_KMEANS_ITERATIONS,
    backend: Literal["auto", "faiss", "sklearn"] = "auto",
) -> np.ndarray:
    """``int64 [N]`` cluster index of each row after seeded k-means (Euclidean, as given).

    ``backend="auto"`` uses faiss (on the GPU when faiss-gpu sees one), else scikit-learn.
    """
    if backend not in KMEANS_BACKENDS:
        raise ValueError(f"backend must be one of {KMEANS_BACKENDS}, got {backend!r}")
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    if not 1 <= num_clusters <= x.shape[0]:
        raise ValueError(
            f"num_clusters must lie in [1, {x.shape[0]}] (at least one point per cluster), got {num_clusters}"
        )
    if backend == "auto":
        backend = "faiss" if knn.faiss is not None else "sklearn"
    seed = int(seed) % 2**31  # faiss takes a C int (any run seed is up to 64 bits); usual seeds unchanged
    if backend == "faiss":
        faiss = knn.faiss
        if faiss is None:
            raise ImportError("backend='faiss' but faiss is not importable; use backend='sklearn'")
        kmeans = faiss.Kmeans(
            x.shape[1], int(num_clusters), niter=iterations, seed=seed, gpu=knn.faiss_gpu_available()
        )
        # Only silences faiss's "please provide at least 39 points per centroid" warning, which
        # every few-images-per-class test set (SOP: ~5 per class) triggers; nothing else reads it.
        kmeans.cp.min_points_per_centroid = 1
        kmeans.train(x)
        return kmeans.index.search(x, 1)[1][:, 0].astype(np.int64)
    from sklearn.cluster import KMeans

    model = KMeans(n_clusters=int(num_clusters), n_init=1, max_iter=iterations, random_state=seed)
    return model.fit_predict(x).astype(np.int64)


def nmi_score(labels: np.ndarray, assignments: np.ndarray, *, average_method: str = "arithmetic") -> float:
    """Normalized mutual information between labels and cluster assignments, in [0, 1].

    ``average_method`` normalises MI by the min / geometric / arithmetic mean / max of the two
    entropies (scikit-learn's default and pytorch-metric-learning's: arithmetic).
    """
    if average_method not in NMI_AVERAGES:
        raise ValueError(f"nmi_average must be one of {NMI_AVERAGES}, got {average_method!r}")
    from sklearn.metrics import normalized_mutual_info_score  # ~2 s to import: only when used

    return float(normalized_mutual_info_score(labels, assignments, average_method=average_method))
