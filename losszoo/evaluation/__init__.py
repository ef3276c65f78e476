"""Retrieval and clustering evaluation: Recall@K, NMI, MAP@R, R-precision, float or binary.

    >>> from losszoo.evaluation import evaluate
    >>> evaluate(embeddings, labels)  # doctest: +SKIP
    {'recall@1': ..., 'recall@2': ..., 'recall@4': ..., 'recall@8': ..., 'nmi': ...,
     'nmi_average': 'arithmetic', 'map_at_r': ..., 'r_precision': ...}
"""

from losszoo.evaluation.clustering import NMI_AVERAGES, kmeans_assignments, nmi_score
from losszoo.evaluation.evaluate import METRIC_NAMES, evaluate
from losszoo.evaluation.knn import (
    binarize,
    drop_self,
    faiss_gpu_available,
    iter_neighbors,
    l2_normalize,
    nearest_neighbors,
)
from losszoo.evaluation.metrics import (
    average_precision_at_r,
    count_relevant,
    hits_at_k,
    r_precision,
    relevance,
)
from losszoo.evaluation.results import BinaryScores, EvaluationResult, metric_names

__all__ = [
    "METRIC_NAMES",
    "NMI_AVERAGES",
    "BinaryScores",
    "EvaluationResult",
    "average_precision_at_r",
    "binarize",
    "count_relevant",
    "drop_self",
    "evaluate",
    "faiss_gpu_available",
    "hits_at_k",
    "iter_neighbors",
    "kmeans_assignments",
    "l2_normalize",
    "metric_names",
    "nearest_neighbors",
    "nmi_score",
    "r_precision",
    "relevance",
]
