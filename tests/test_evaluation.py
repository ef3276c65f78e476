"""Retrieval and clustering metrics against brute force written here and pytorch-metric-learning.

Brute force: full distance matrices and explicit loops. Exact ties (duplicated embeddings) make
the neighbour order ambiguous, so the brute force ranks every query twice: with positives first
among (near-)ties and with positives last. Every metric here only grows when a positive moves up,
so the two rankings bound any valid answer; the tests assert ours lies between them per query and
that the bounds coincide for most queries (there the check is exact).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

from losszoo.evaluation import (
    average_precision_at_r,
    binarize,
    count_relevant,
    drop_self,
    evaluate,
    hits_at_k,
    kmeans_assignments,
    knn,
    nearest_neighbors,
    nmi_score,
    r_precision,
    relevance,
)

KS = (1, 2, 4, 8)
COSINE_TIE_TOLERANCE = 1e-5  # float32 faiss vs float64 here: closer than this counts as a tie
HAMMING_TIE_TOLERANCE = 0.5  # integer distances: only exact ties


# ----------------------------------------------------------------------------- data


def clustered(rng: np.random.Generator, sizes: list[int], dim: int, spread: float):
    """Gaussian blobs, one per class, shuffled; ``sizes`` of 1 give singleton classes."""
    centers = rng.standard_normal((len(sizes), dim))
    labels = np.repeat(np.arange(len(sizes)), sizes)
    embeddings = centers[labels] + spread * rng.standard_normal((len(labels), dim))
    order = rng.permutation(len(labels))
    return embeddings[order], labels[order]


def with_duplicates(rng: np.random.Generator, embeddings: np.ndarray, labels: np.ndarray):
    """Exact ties: copies inside a class, a class of identical items, and cross-class duplicates."""
    embeddings, labels = embeddings.copy(), labels.copy()
    for _ in range(6):  # an item overwritten by another item of its class
        cls = rng.choice([c for c in np.unique(labels) if (labels == c).sum() >= 3])
        source, target = rng.choice(np.flatnonzero(labels == cls), size=2, replace=False)
        embeddings[target] = embeddings[source]
    identical = np.repeat(rng.standard_normal((1, embeddings.shape[1])), 5, axis=0)
    crossed = embeddings[:3]  # copies of three items, under a new label they share
    embeddings = np.concatenate([embeddings, identical, crossed])
    labels = np.concatenate([labels, np.full(5, labels.max() + 1), np.full(3, labels.max() + 2)])
    return embeddings, labels


@pytest.fixture
def same_set_data():
    rng = np.random.default_rng(1)
    sizes = [1, 1, 2, 2, 3, 4, 5, 6, 7, 8, 9, 10, 3, 6, 12, 2, 1, 5, 8, 4]
    return with_duplicates(rng, *clustered(rng, sizes, dim=8, spread=1.1))


@pytest.fixture
def query_gallery_data():
    """In-Shop-like: queries and gallery disjoint; some query classes are absent from the gallery."""
    rng = np.random.default_rng(2)
    embeddings, labels = clustered(rng, [6] * 18 + [1, 1, 2], dim=8, spread=1.0)
    is_query = np.zeros(len(labels), dtype=bool)
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        is_query[members[: max(1, len(members) // 3)]] = True
    return embeddings[is_query], labels[is_query], embeddings[~is_query], labels[~is_query]


# ------------------------------------------------------------------- brute force


def cosine_distances(queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    distances = np.empty((len(queries), len(gallery)))
    for i, a in enumerate(queries):
        for j, b in enumerate(gallery):
            norms = math.sqrt(float(a @ a)) * math.sqrt(float(b @ b))
            distances[i, j] = 1.0 - float(a @ b) / norms if norms > 0 else 1.0
    return distances


def hamming_distances(query_bits: np.ndarray, gallery_bits: np.ndarray) -> np.ndarray:
    distances = np.empty((len(query_bits), len(gallery_bits)))
    for i, a in enumerate(query_bits):
        for j, b in enumerate(gallery_bits):
            distances[i, j] = int(np.count_nonzero(a != b))
    return distances


def brute_force_bounds(distances, query_labels, gallery_labels, *, same_set, tie_tolerance):
    """Per-query (lower, upper) Recall@K hits, R-precision, AP@R, and R (NaN where R = 0)."""
    num_queries = len(query_labels)
    bounds = {name: np.full((2, num_queries), np.nan) for name in [*(f"recall@{k}" for k in KS), "rp", "ap"]}
    num_relevant = np.zeros(num_queries, dtype=int)
    for i in range(num_queries):
        candidates = [j for j in range(len(gallery_labels)) if not (same_set and j == i)]
        positive = [bool(gallery_labels[j] == query_labels[i]) for j in candidates]
        r = sum(positive)
        num_relevant[i] = r
        for bound, sign in ((0, +1.0), (1, -1.0)):  # 0: positives last among ties, 1: first
            ranking = sorted(
                range(len(candidates)),
                key=lambda t: distances[i, candidates[t]] + sign * tie_tolerance * positive[t],
            )
            ranked_positive = [positive[t] for t in ranking]
            for k in KS:
                bounds[f"recall@{k}"][bound, i] = float(any(ranked_positive[:k]))
            if r == 0:
                continue
            bounds["rp"][bound, i] = sum(ranked_positive[:r]) / r
            hits, precision_sum = 0, 0.0
            for rank in range(r):
                if ranked_positive[rank]:
                    hits += 1
                    precision_sum += hits / (rank + 1)
            bounds["ap"][bound, i] = precision_sum / r
    return bounds, num_relevant


def assert_within(ours: np.ndarray, lower_upper: np.ndarray, *, min_exact_fraction: float) -> None:
    lower, upper = lower_upper
    scored = ~np.isnan(lower)
    assert np.array_equal(np.isnan(ours), ~scored), "NaN exactly where R = 0"
    assert np.all(ours[scored] >= lower[scored] - 1e-12)
    assert np.all(ours[scored] <= upper[scored] + 1e-12)
    assert np.mean(lower[scored] == upper[scored]) >= min_exact_fraction


def check_against_brute_force(queries, query_labels, gallery, gallery_labels, *, binary, backend="faiss"):
    same_set = gallery is None
    reference, reference_labels = (queries, query_labels) if same_set else (gallery, gallery_labels)
    if binary:
        distances = hamming_distances(queries > 0, reference > 0)
        tolerance, metric = HAMMING_TIE_TOLERANCE, "hamming"
        rows, rows_gallery = binarize(queries), None if same_set else binarize(gallery)
    else:
        distances = cosine_distances(queries, reference)
        tolerance, metric = COSINE_TIE_TOLERANCE, "cosine"
        rows, rows_gallery = queries, gallery
    bounds, brute_r = brute_force_bounds(
        distances, query_labels, reference_labels, same_set=same_set, tie_tolerance=tolerance
    )

    num_relevant = count_relevant(query_labels, None if same_set else gallery_labels)
    np.testing.assert_array_equal(num_relevant, brute_r)
    k = max(max(KS), int(num_relevant.max()))
    neighbors = nearest_neighbors(rows, k, gallery=rows_gallery, metric=metric, backend=backend)
    relevant = relevance(reference_labels[neighbors], query_labels)
    exact = 0.6 if binary else 0.9
    for k_ in KS:
        assert_within(hits_at_k(relevant, k_).astype(float), bounds[f"recall@{k_}"], min_exact_fraction=exact)
    assert_within(r_precision(relevant, num_relevant), bounds["rp"], min_exact_fraction=exact)
    assert_within(average_precision_at_r(relevant, num_relevant), bounds["ap"], min_exact_fraction=exact)

    result = evaluate(
        queries,
        query_labels,
        gallery_embeddings=gallery,
        gallery_labels=gallery_labels,
        ks=KS,
        metrics=("recall", "map_at_r", "r_precision"),
        binary=binary,
        backend=backend,
    )
    names = {**{f"recall@{k_}": f"recall@{k_}" for k_ in KS}, "map_at_r": "ap", "r_precision": "rp"}
    for key, name in names.items():
        lower, upper = np.nanmean(bounds[name], axis=1)
        assert lower - 1e-12 <= result[key] <= upper + 1e-12, (key, lower, result[key], upper)
    return bounds


# ------------------------------------------------------------- brute-force checks


@pytest.mark.parametrize("backend", ["faiss", "torch"])
def test_same_set_matches_brute_force(same_set_data, backend):
    embeddings, labels = same_set_data
    bounds = check_against_brute_force(embeddings, labels, None, None, binary=False, backend=backend)
    assert 0.2 < np.mean(bounds["recall@1"][0]) < 0.95, "data should make some queries miss"


@pytest.mark.parametrize("backend", ["faiss", "torch"])
def test_query_gallery_matches_brute_force(query_gallery_data, backend):
    queries, query_labels, gallery, gallery_labels = query_gallery_data
    check_against_brute_force(queries, query_labels, gallery, gallery_labels, binary=False, backend=backend)


BINARY_BACKENDS = ["faiss", "torch"] + (["numkong"] if knn.numkong is not None else [])


@pytest.mark.parametrize("backend", BINARY_BACKENDS)
def test_binary_matches_brute_force_hamming(backend):
    rng = np.random.default_rng(3)
    embeddings, labels = clustered(rng, [2, 3, 5, 8, 1, 6, 4, 7, 9, 5, 3, 6], dim=256, spread=3.0)
    check_against_brute_force(embeddings, labels, None, None, binary=True, backend=backend)
    queries, gallery = embeddings[:20], embeddings[20:]
    check_against_brute_force(queries, labels[:20], gallery, labels[20:], binary=True, backend=backend)


def test_query_never_finds_itself_through_a_tie():
    """The query's duplicate carries another label: excluding by distance would keep the query."""
    rng = np.random.default_rng(4)
    embeddings = rng.standard_normal((6, 4))
    embeddings[1] = embeddings[0]
    labels = np.array([0, 1, 0, 2, 3, 4])
    neighbors = nearest_neighbors(embeddings, 1)
    assert neighbors[0, 0] == 1 and neighbors[1, 0] == 0
    codes_neighbors = nearest_neighbors(binarize(embeddings), 1, metric="hamming")
    assert codes_neighbors[0, 0] == 1 and codes_neighbors[1, 0] == 0
    many = np.repeat(embeddings[:2], 12, axis=0)  # 12 identical copies, beyond k + 1 = 5
    assert not np.any(nearest_neighbors(many, 4) == np.arange(24)[:, None])
    # Queries 0 and 1 would hit through themselves (a tie at distance 0); they must miss, so only
    # query 2 can hit (its nearest neighbours are the tied 0 (label 0) and 1 (label 1)).
    for seed in range(4):
        result = evaluate(embeddings, labels, ks=(1,), metrics=("recall",), seed=seed)
        assert result["recall@1"] <= 1 / 6


def test_drop_self_removes_own_index_else_last():
    indices = np.array([[3, 0, 5], [2, 4, 7], [1, 9, 8]])
    expected = np.array([[3, 5], [2, 4], [9, 8]])
    np.testing.assert_array_equal(drop_self(indices, np.array([0, 1, 1])), expected)


def test_duplicated_class_is_perfect_and_never_self():
    embeddings = np.repeat(np.eye(3, 5), 6, axis=0)  # three classes of six identical vectors
    labels = np.repeat(np.arange(3), 6)
    result = evaluate(embeddings, labels, ks=(1, 5), metrics=("recall", "map_at_r", "r_precision"))
    assert result == {"recall@1": 1.0, "recall@5": 1.0, "map_at_r": 1.0, "r_precision": 1.0}


# ------------------------------------------------------ pytorch-metric-learning


def pml_calculator(**kwargs) -> AccuracyCalculator:
    """Aligned with ours: k='max_bin_count' searches deep enough for R (its MAP@R/R-precision are
    wrong otherwise), avg_of_avgs=False averages over queries, CPU. Its default FaissKNN uses L2
    distance, so it gets L2-normalised embeddings, whose L2 order is our cosine order."""
    return AccuracyCalculator(k="max_bin_count", avg_of_avgs=False, device=torch.device("cpu"), **kwargs)


def test_retrieval_matches_pytorch_metric_learning_same_set():
    rng = np.random.default_rng(5)
    embeddings, labels = clustered(rng, [3, 5, 8, 2, 6, 4, 7, 9, 5, 3, 6, 4] * 2, dim=16, spread=1.1)
    unit = torch.nn.functional.normalize(torch.from_numpy(embeddings).float(), dim=1)
    pml = pml_calculator(include=("precision_at_1", "mean_average_precision_at_r", "r_precision"))
    theirs = pml.get_accuracy(unit, torch.from_numpy(labels))
    ours = evaluate(embeddings, labels, ks=(1,), metrics=("recall", "map_at_r", "r_precision"))
    assert 0.3 < ours["recall@1"] < 0.95
    assert ours["recall@1"] == pytest.approx(theirs["precision_at_1"], abs=1e-12)
    assert ours["map_at_r"] == pytest.approx(theirs["mean_average_precision_at_r"], abs=1e-12)
    assert ours["r_precision"] == pytest.approx(theirs["r_precision"], abs=1e-12)


def test_singletons_match_pytorch_metric_learning():
    """PML drops "lone" queries (R = 0) from precision@1, MAP@R and R-precision. We drop them from
    MAP@R and R-precision only; Recall@K counts them as misses. So hits agree, denominators differ."""
    rng = np.random.default_rng(6)
    embeddings, labels = clustered(rng, [4, 1, 6, 1, 5, 3, 1, 7, 2, 5], dim=12, spread=1.2)
    unit = torch.nn.functional.normalize(torch.from_numpy(embeddings).float(), dim=1)
    pml = pml_calculator(include=("precision_at_1", "mean_average_precision_at_r", "r_precision"))
    theirs = pml.get_accuracy(unit, torch.from_numpy(labels))
    ours = evaluate(embeddings, labels, ks=(1,), metrics=("recall", "map_at_r", "r_precision"))
    num_lone = 3
    their_hits = theirs["precision_at_1"] * (len(labels) - num_lone)
    assert ours["recall@1"] * len(labels) == pytest.approx(their_hits)
    assert ours["map_at_r"] == pytest.approx(theirs["mean_average_precision_at_r"], abs=1e-12)
    assert ours["r_precision"] == pytest.approx(theirs["r_precision"], abs=1e-12)


def test_query_gallery_matches_pytorch_metric_learning(query_gallery_data):
    queries, query_labels, gallery, gallery_labels = query_gallery_data
    keep = count_relevant(query_labels, gallery_labels) > 0  # PML's precision@1 skips R = 0
    queries, query_labels = queries[keep], query_labels[keep]

    def unit(x):
        return torch.nn.functional.normalize(torch.from_numpy(x).float(), dim=1)

    pml = pml_calculator(include=("precision_at_1", "mean_average_precision_at_r", "r_precision", "NMI"))
    theirs = pml.get_accuracy(
        unit(queries), torch.from_numpy(query_labels), unit(gallery), torch.from_numpy(gallery_labels), False
    )
    ours = evaluate(
        queries, query_labels, gallery_embeddings=gallery, gallery_labels=gallery_labels, ks=(1,), seed=1234
    )
    assert ours["recall@1"] == pytest.approx(theirs["precision_at_1"], abs=1e-12)
    assert ours["map_at_r"] == pytest.approx(theirs["mean_average_precision_at_r"], abs=1e-12)
    assert ours["r_precision"] == pytest.approx(theirs["r_precision"], abs=1e-12)
    assert ours["nmi"] == pytest.approx(theirs["NMI"], abs=1e-12)  # both cluster the queries


def test_nmi_matches_pytorch_metric_learning():
    """Two checks. (1) The scoring step: PML scores OUR cluster assignments (its kmeans_func).
    (2) The whole pipeline: PML's FaissKMeans(niter=20) uses faiss's default seed 1234; ours with
    seed=1234 and the same 20 iterations must give the same clusters, hence the same NMI."""
    rng = np.random.default_rng(7)
    embeddings, labels = clustered(rng, [12, 9, 15, 10, 8, 11, 14, 7], dim=6, spread=1.3)
    unit = torch.nn.functional.normalize(torch.from_numpy(embeddings).float(), dim=1)
    ours = evaluate(embeddings, labels, metrics=("nmi",), seed=0)
    assert ours["nmi_average"] == "arithmetic" and 0.2 < ours["nmi"] < 0.99

    def our_kmeans(x, num_clusters):
        return torch.from_numpy(kmeans_assignments(x.numpy(), num_clusters, seed=0))

    scoring_only = pml_calculator(include=("NMI",), kmeans_func=our_kmeans)
    scored_by_pml = scoring_only.get_accuracy(unit, torch.from_numpy(labels))["NMI"]
    assert ours["nmi"] == pytest.approx(scored_by_pml, abs=1e-12)

    whole = pml_calculator(include=("NMI",)).get_accuracy(unit, torch.from_numpy(labels))["NMI"]
    assert evaluate(embeddings, labels, metrics=("nmi",), seed=1234)["nmi"] == pytest.approx(whole, abs=1e-12)


@pytest.mark.parametrize("average", ["min", "geometric", "arithmetic", "max"])
def test_nmi_score_matches_entropy_formula(average):
    rng = np.random.default_rng(8)
    labels, clusters = rng.integers(0, 5, 300), rng.integers(0, 4, 300)
    clusters[:150] = labels[:150] % 4  # some dependence

    def entropy(values):
        p = np.array([np.mean(values == v) for v in np.unique(values)])
        return -float(np.sum(p * np.log(p)))

    mutual_information = 0.0
    for a in np.unique(labels):
        for b in np.unique(clusters):
            p_ab = np.mean((labels == a) & (clusters == b))
            if p_ab > 0:
                mutual_information += p_ab * math.log(p_ab / (np.mean(labels == a) * np.mean(clusters == b)))
    h_labels, h_clusters = entropy(labels), entropy(clusters)
    normaliser = {
        "min": min(h_labels, h_clusters),
        "max": max(h_labels, h_clusters),
        "arithmetic": (h_labels + h_clusters) / 2,
        "geometric": math.sqrt(h_labels * h_clusters),
    }[average]
    expected = mutual_information / normaliser
    assert nmi_score(labels, clusters, average_method=average) == pytest.approx(expected)


# ----------------------------------------------------------------------- binary


def test_binarize_packs_sign_bits():
    rng = np.random.default_rng(9)
    embeddings = rng.standard_normal((5, 2048)).astype(np.float32)
    embeddings[0, :10] = 0.0  # zero is not positive
    codes = binarize(torch.from_numpy(embeddings))
    assert codes.dtype == np.uint8 and codes.shape == (5, 256)
    np.testing.assert_array_equal(np.unpackbits(codes, axis=1).astype(bool), embeddings > 0)
    assert binarize(np.ones((2, 13))).shape == (2, 2)


def test_binary_mode_sees_only_signs():
    """Binary NMI clusters the ±1 codes; binary retrieval ranks by Hamming distance of the signs."""
    rng = np.random.default_rng(10)
    embeddings, labels = clustered(rng, [10, 12, 8, 9, 11], dim=32, spread=1.2)
    signs = np.where(embeddings > 0, 1.0, -1.0)
    rescaled = signs * rng.uniform(0.1, 5.0, signs.shape)  # magnitudes change, signs do not
    binary = evaluate(embeddings, labels, binary=True)
    assert evaluate(rescaled, labels, binary=True) == binary
    as_float = evaluate(signs, labels)  # cosine of ±1 codes orders as Hamming distance does
    assert as_float["nmi"] == binary["nmi"]
    assert binary != evaluate(embeddings, labels), "binary mode must differ from float mode here"


def brute_force_hamming_order(codes: np.ndarray, gallery: np.ndarray | None, k: int) -> np.ndarray:
    """The contract of the exact backends: ascending (Hamming distance, gallery id), self excluded."""
    bits = np.unpackbits(codes, axis=1).astype(np.int64)
    gallery_bits = bits if gallery is None else np.unpackbits(gallery, axis=1).astype(np.int64)
    distances = (bits[:, None, :] != gallery_bits[None, :, :]).sum(axis=2)
    order = []
    for i, row in enumerate(distances):
        ids = [j for j in range(len(row)) if gallery is not None or j != i]
        order.append(sorted(ids, key=lambda j: (row[j], j))[:k])
    return np.array(order)


@pytest.mark.parametrize("backend", [b for b in BINARY_BACKENDS if b != "torch"])
@pytest.mark.parametrize("distinct_codes", [3, 12, 200])
def test_exact_hamming_order_with_heavy_ties(backend, distinct_codes, monkeypatch):
    """Few distinct codes: tie groups far larger than k cross the k-th boundary in every row."""
    monkeypatch.setattr(knn, "NUMKONG_BLOCK_ROWS", 7)  # several blocks, a ragged last one
    rng = np.random.default_rng(distinct_codes)
    alphabet = np.packbits(rng.random((distinct_codes, 2048)) < rng.random((distinct_codes, 1)), axis=1)
    codes = alphabet[rng.integers(0, distinct_codes, 90)]
    for k in (1, 5, 37, 89):
        np.testing.assert_array_equal(
            nearest_neighbors(codes, k, metric="hamming", backend=backend), brute_force_hamming_order(codes, None, k)
        )
    queries, gallery = codes[:25], codes[25:]
    np.testing.assert_array_equal(
        nearest_neighbors(queries, 65, gallery=gallery, metric="hamming", backend=backend),
        brute_force_hamming_order(queries, gallery, 65),
    )


@pytest.mark.skipif(knn.numkong is None, reason="numkong not installed")
def test_numkong_is_the_auto_binary_backend_and_matches_faiss():
    rng = np.random.default_rng(5)
    codes = binarize(rng.standard_normal((300, 100)))  # 100 bits: padding bits, many ties
    found = nearest_neighbors(codes, 40, metric="hamming")
    np.testing.assert_array_equal(found, nearest_neighbors(codes, 40, metric="hamming", backend="numkong"))
    np.testing.assert_array_equal(found, nearest_neighbors(codes, 40, metric="hamming", backend="faiss"))
    # A cosine request under backend="numkong" is served by faiss/torch.
    embeddings = rng.standard_normal((50, 8))
    np.testing.assert_array_equal(
        nearest_neighbors(embeddings, 5, backend="numkong"), nearest_neighbors(embeddings, 5, backend="faiss")
    )


# --------------------------------------------------------- backends and inputs


def test_faiss_and_torch_backends_agree(monkeypatch):
    monkeypatch.setattr(knn, "TORCH_BLOCK_BYTES", 4 * 200 * 9)  # 9 query rows per matmul block
    rng = np.random.default_rng(11)
    embeddings, labels = clustered(rng, [5, 7, 3, 9, 6, 4, 8] * 3, dim=32, spread=1.5)
    np.testing.assert_array_equal(
        nearest_neighbors(embeddings, 10, backend="faiss"), nearest_neighbors(embeddings, 10, backend="torch")
    )
    metrics = ("recall", "map_at_r", "r_precision")
    assert evaluate(embeddings, labels, metrics=metrics, backend="faiss") == pytest.approx(
        evaluate(embeddings, labels, metrics=metrics, backend="torch"), abs=1e-12
    )
    codes = binarize(embeddings)
    bits = np.unpackbits(codes, axis=1)
    for backend in ("faiss", "torch"):  # Hamming ties may be ordered differently: compare distances
        found = nearest_neighbors(codes, 10, metric="hamming", backend=backend)
        distances = np.array(
            [[np.count_nonzero(bits[i] != bits[j]) for j in row] for i, row in enumerate(found)]
        )
        brute = np.sort(hamming_distances(bits, bits) + np.diag(np.full(len(bits), np.inf)), axis=1)[:, :10]
        np.testing.assert_array_equal(distances, brute)


def test_without_faiss_falls_back_to_torch_and_sklearn(monkeypatch):
    rng = np.random.default_rng(12)
    embeddings, labels = clustered(rng, [6] * 5, dim=8, spread=0.05)
    expected = evaluate(embeddings, labels, metrics=("recall", "map_at_r"))
    monkeypatch.setattr(knn, "faiss", None)
    assert knn.resolve_backend("auto") == "torch"
    with pytest.raises(ImportError, match="faiss is not importable"):
        evaluate(embeddings, labels, backend="faiss")
    assert evaluate(embeddings, labels, metrics=("recall", "map_at_r")) == expected
    assert evaluate(embeddings, labels, metrics=("nmi",))["nmi"] == pytest.approx(1.0)


def test_inputs_torch_chunks_scale_and_json(same_set_data, monkeypatch):
    embeddings, labels = same_set_data
    reference = evaluate(embeddings, labels)
    recalls = ["recall@1", "recall@2", "recall@4", "recall@8"]
    assert list(reference) == [*recalls, "nmi", "nmi_average", "map_at_r", "r_precision"]
    assert json.loads(json.dumps(reference)) == reference
    assert all(type(v) is float and 0.0 <= v <= 1.0 for k, v in reference.items() if k != "nmi_average")
    # torch input, another scale (cosine ignores it), tiny search calls and blocks change nothing
    monkeypatch.setattr(knn, "BLOCK_ELEMENTS", 40)
    as_tensors = evaluate(torch.from_numpy(embeddings).double() * 7.0, torch.from_numpy(labels), chunk_size=7)
    assert as_tensors.keys() == reference.keys() and as_tensors["nmi_average"] == "arithmetic"
    for key in reference.keys() - {"nmi_average"}:
        assert as_tensors[key] == pytest.approx(reference[key], abs=1e-12), key


@pytest.mark.filterwarnings("error")
def test_zero_vectors_give_finite_results():
    embeddings = np.zeros((8, 4))
    embeddings[4:] = np.eye(4)
    labels = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    result = evaluate(embeddings, labels, ks=(1, 2))
    assert all(np.isfinite(v) for k, v in result.items() if k != "nmi_average")
    assert np.all(np.isfinite(knn.l2_normalize(embeddings)))


GALLERY, GALLERY_LABELS = np.ones((5, 4)), np.zeros(5, dtype=int)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"labels": np.zeros(9, dtype=int)}, ValueError, "9 entries but there are 10"),
        ({"embeddings": np.full((10, 4), np.nan)}, ValueError, "NaN or inf"),
        ({"embeddings": np.full((10, 4), np.inf)}, ValueError, "NaN or inf"),
        ({"embeddings": np.full((10, 4), 1e300)}, ValueError, "NaN or inf"),
        ({"embeddings": np.ones(10)}, ValueError, "2-D"),
        ({"embeddings": np.ones((10, 4, 1))}, ValueError, "2-D"),
        ({"labels": np.zeros(10)}, TypeError, "integers"),
        ({"gallery_embeddings": GALLERY}, ValueError, "gallery_embeddings given without gallery_labels"),
        ({"gallery_labels": GALLERY_LABELS}, ValueError, "gallery_labels given without gallery_embeddings"),
        ({"gallery_embeddings": GALLERY[:, :3], "gallery_labels": GALLERY_LABELS}, ValueError, "dimension"),
        ({"ks": (1, 10)}, ValueError, r"K=\[10\] is impossible: each query can retrieve only 9"),
        ({"ks": (0,)}, ValueError, "positive integers"),
        ({"gallery_embeddings": GALLERY, "gallery_labels": GALLERY_LABELS, "ks": (6,)}, ValueError, "only 5"),
        ({"metrics": ("recall", "accuracy")}, ValueError, "metrics must be"),
        ({"nmi_average": "harmonic"}, ValueError, "nmi_average must be"),
        ({"backend": "annoy"}, ValueError, "backend must be"),
        ({"labels": np.arange(10), "metrics": ("map_at_r",)}, ValueError, "no query has a gallery item"),
    ],
)
def test_rejects_bad_input(kwargs, error, match):
    rng = np.random.default_rng(13)
    arguments = {"embeddings": rng.standard_normal((10, 4)), "labels": np.repeat(np.arange(5), 2), **kwargs}
    with pytest.raises(error, match=match):
        evaluate(arguments.pop("embeddings"), arguments.pop("labels"), **arguments)


def test_k_up_to_gallery_size_is_accepted():
    rng = np.random.default_rng(14)
    embeddings, labels = rng.standard_normal((10, 4)), np.repeat(np.arange(5), 2)
    assert evaluate(embeddings, labels, ks=(9,), metrics=("recall",)) == {"recall@9": 1.0}
    # query/gallery mode excludes nothing: each query finds its own copy in the gallery first
    result = evaluate(
        embeddings[:3], labels[:3], gallery_embeddings=embeddings, gallery_labels=labels, ks=(1, 10)
    )
    assert result["recall@1"] == 1.0 and result["recall@10"] == 1.0


@pytest.mark.parametrize("binary", [False, True])
def test_ties_are_broken_at_random_not_in_dataset_order(binary):
    """50 identical embeddings, a class of 5 listed before a class of 45. Broken in index order,
    every query's first neighbour would be item 0 or 1 (the small class): R@1 = 5/50. Broken at
    random, R@1 is the chance of drawing one's own class: (5*4 + 45*44) / (50*49) ~ 0.82."""
    embeddings = np.ones((50, 8), dtype=np.float32)
    labels = np.array([0] * 5 + [1] * 45)
    recall = [evaluate(embeddings, labels, ks=(1,), metrics=("recall",), binary=binary,
                       seed=seed)["recall@1"] for seed in range(5)]
    assert 0.7 < np.mean(recall) < 0.95


def test_search_progress_reports_every_block_and_changes_no_metric():
    """``report`` sees the searched query count grow to the total; chunked searching for
    progress gives the same metrics (float and binary) as one search, up to summation order."""
    embeddings, labels = clustered(np.random.default_rng(3), [6] * 40, dim=16, spread=0.8)
    for binary in (False, True):
        calls: list[tuple[int, int]] = []
        reported = evaluate(embeddings, labels, ks=KS, binary=binary, chunk_size=50,
                            report=lambda done, total: calls.append((done, total)))
        whole = evaluate(embeddings, labels, ks=KS, binary=binary)
        assert reported.pop("nmi_average") == whole.pop("nmi_average")
        assert reported == pytest.approx(whole, rel=1e-12)  # sums taken per chunk: last-bit order
        assert [done for done, _ in calls] == list(range(50, 240, 50)) + [240]
        assert {total for _, total in calls} == {240}
    assert knn.progress_chunk_size(100_000, k=1000) == 5000  # about 20 calls
    assert knn.progress_chunk_size(500, k=10) == 4096  # never below faiss's query block
    assert knn.progress_chunk_size(10**9, k=1000) == knn.SEARCH_RESULT_BYTES // (12 * 1001)
