"""``evaluate(..., distance=...)`` against pytorch-metric-learning's AccuracyCalculator on random
unnormalised embeddings: Euclidean with its default FaissKNN, cosine with CustomKNN(CosineSimilarity)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_metric_learning.distances import CosineSimilarity
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from pytorch_metric_learning.utils.inference import CustomKNN

from losszoo.evaluation import evaluate


def random_set(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 12, 300)
    centers = rng.normal(size=(12, 16))
    scales = rng.uniform(0.2, 5.0, size=(300, 1))  # norms vary a lot: cosine and L2 ranks differ
    return ((centers[labels] + 1.5 * rng.normal(size=(300, 16))) * scales).astype(np.float32), labels


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
@pytest.mark.parametrize("backend", ["faiss", "torch"])
def test_precision_at_1_and_map_at_r_equal_accuracy_calculator(distance, backend):
    x, labels = random_set(0)
    knn_func = None if distance == "euclidean" else CustomKNN(CosineSimilarity())
    calculator = AccuracyCalculator(include=("precision_at_1", "mean_average_precision_at_r"),
                                    knn_func=knn_func, device=torch.device("cpu"))
    theirs = calculator.get_accuracy(torch.from_numpy(x), torch.from_numpy(labels))
    ours = evaluate(x, labels, ks=(1,), metrics=("recall", "map_at_r"), distance=distance, backend=backend)
    assert ours["recall@1"] == pytest.approx(theirs["precision_at_1"], abs=1e-6)
    assert ours["map_at_r"] == pytest.approx(theirs["mean_average_precision_at_r"], abs=1e-6)


def test_distances_differ_on_unnormalised_embeddings_and_agree_on_normalised_ones():
    x, labels = random_set(1)
    cos = evaluate(x, labels, metrics=("map_at_r",))
    l2 = evaluate(x, labels, metrics=("map_at_r",), distance="euclidean")
    assert cos["map_at_r"] != pytest.approx(l2["map_at_r"], abs=1e-3)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    assert evaluate(unit, labels, metrics=("map_at_r",), distance="euclidean")["map_at_r"] == \
        pytest.approx(cos["map_at_r"], abs=1e-6)
    with pytest.raises(ValueError, match="distance must be one of"):
        evaluate(x, labels, distance="manhattan")
