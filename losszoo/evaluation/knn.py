"""Exact k-nearest-neighbour search for retrieval metrics: cosine (float) and Hamming (binary codes).

Two interchangeable backends return the same neighbours up to the order of exact ties:

- ``"faiss"``: ``IndexFlatIP`` on L2-normalised float32 rows (cosine similarity),
  ``IndexFlatL2`` on the rows as they are (``"euclidean"``), or
  ``IndexBinaryFlat`` on packed bits (Hamming distance); on the GPU when faiss-gpu sees one.
- ``"numkong"``: Hamming distances only, by NumKong's (SimSIMD's successor) packed-bit kernels,
  then an exact top-k on ``distance * gallery_size + id`` keys; the default for binary codes when
  ``numkong`` is installed (``pip install losszoo[binary]``), about 3x faster than
  ``IndexBinaryFlat`` on AVX2 (docs/performance.md). Cosine requests fall back to faiss/torch.
- ``"torch"``: a chunked matmul followed by ``topk`` (on CUDA when available), used when faiss
  is not importable. Hamming distance becomes ``bits - 2 * hamming`` = dot product of ±1 codes.

Tie order: the faiss and numkong backends return neighbours in ascending ``(distance, gallery id)``
order, exact ties by the lower id (faiss's heaps break ties by id); ``evaluate`` permutes the items
with a seeded permutation first, which makes that a seeded random tie order.

When the gallery is the query set, the query is excluded by INDEX, not by distance (Zhai & Wu 2019,
Sec. 4: "excluding the query image itself"): ``k + 1`` neighbours are searched and the query's own
index is dropped wherever it appears, else the last one is dropped. A duplicate of the query at
distance 0 therefore still counts as a neighbour, and the query can never find itself.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import numpy as np
import torch

from losszoo.evaluation.inputs import as_embedding_matrix, is_positive_int

try:
    import faiss
except ImportError:  # pragma: no cover - the fallback is tested by setting knn.faiss = None
    faiss = None
try:
    import numkong
except ImportError:  # pragma: no cover - optional: pip install losszoo[binary]
    numkong = None

Backend = Literal["auto", "faiss", "numkong", "torch"]
Metric = Literal["cosine", "euclidean", "hamming"]

BACKENDS = ("auto", "faiss", "numkong", "torch")
METRICS = ("cosine", "euclidean", "hamming")
# Queries per search call by default: as many as keep its results (float32 + int64 per neighbour)
# within this budget. faiss searches many queries at once faster than the same in small calls.
SEARCH_RESULT_BYTES = 2**30
# Results are handed out (self excluded) in blocks of about this many neighbour ids, small
# enough to stay in cache for the label look-ups and comparisons that follow.
BLOCK_ELEMENTS = 2**20
# The torch backend materialises a [rows, gallery] similarity block; this bounds its size.
TORCH_BLOCK_BYTES = 256 * 2**20
# faiss GPU brute-force k-selection supports k <= 2048.
FAISS_GPU_MAX_K = 2048
# IndexBinaryFlat scans the gallery for `query_batch_size` queries per parallel region (faiss
# default 32); larger batches mean fewer thread barriers, measured 1.2-2x faster on 2 busy cores.
BINARY_QUERY_BATCH = 4096
# numkong backend: queries per distance block (a [rows, gallery] uint32 matrix, 7.7 MB at SOP
# size, allocated once per thread and reused). 32 rows: 0.61x float-64's time at the SOP shape on
# an AVX-512 VPOPCNTDQ CPU, against 0.72-0.82x for 64 to 512 (docs/performance.md).
NUMKONG_BLOCK_ROWS = 32


def faiss_gpu_available() -> bool:
    """Whether faiss was built with GPU support and sees at least one GPU."""
    return faiss is not None and hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def resolve_backend(backend: str) -> str:
    """``"auto"`` -> ``"faiss"`` when importable, else ``"torch"``; checks the name.

    (For Hamming search, :func:`iter_neighbors` prefers ``"numkong"`` under ``"auto"``.)"""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        return "faiss" if faiss is not None else "torch"
    if backend == "numkong" and numkong is None:
        raise ImportError("backend='numkong' but numkong is not importable; pip install 'numkong>=7.8'")
    if backend == "faiss" and faiss is None:
        raise ImportError(
            "backend='faiss' but faiss is not importable; install faiss-cpu or use backend='torch'"
        )
    return backend


def l2_normalize(embeddings: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32, a new array); all-zero rows stay zero, never NaN.

    A zero row then has cosine similarity 0 with every item.
    """
    x = np.asarray(embeddings, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, np.finfo(np.float32).tiny)


def binarize(embeddings: Any) -> np.ndarray:
    """Binary codes of Zhai & Wu (2019), Sec. 4.3: each dimension thresholded at zero (x > 0 -> 1).

    Returns packed bits, ``uint8 [N, ceil(D / 8)]`` (``np.packbits``; 2048 dims -> 256 bytes, the
    memory of 64 float32 dims). Padding bits are 0 in every code, so Hamming distances are unchanged.
    """
    return np.packbits(as_embedding_matrix(embeddings) > 0, axis=1)


def drop_self(indices: np.ndarray, query_ids: np.ndarray) -> np.ndarray:
    """``[n, k + 1]`` neighbour ids -> ``[n, k]``: each row loses its own id wherever it appears,
    else its last column (the query sat beyond the k + 1 searched, tied at distance 0)."""
    is_self = indices == np.asarray(query_ids)[:, None]
    is_self[~is_self.any(axis=1), -1] = True
    num_rows, num_columns = indices.shape
    return indices[~is_self].reshape(num_rows, num_columns - 1)


class _FaissSearcher:
    """A flat (exact) faiss index over the gallery; GPU when available and ``k`` allows it."""

    def __init__(self, gallery: np.ndarray, metric: str, k: int) -> None:
        if metric == "cosine":
            index = faiss.IndexFlatIP(gallery.shape[1])
        elif metric == "euclidean":
            index = faiss.IndexFlatL2(gallery.shape[1])
        else:
            index = faiss.IndexBinaryFlat(8 * gallery.shape[1])
            index.query_batch_size = BINARY_QUERY_BATCH
        if faiss_gpu_available() and k <= FAISS_GPU_MAX_K:
            index = self._to_gpu(index, metric)
        index.add(gallery)
        self.index = index

    def _to_gpu(self, index: Any, metric: str) -> Any:
        try:
            self.resources = faiss.StandardGpuResources()
            if metric != "hamming":
                return faiss.index_cpu_to_gpu(self.resources, 0, index)
            return faiss.GpuIndexBinaryFlat(self.resources, index.d)
        except (RuntimeError, AttributeError) as error:
            warnings.warn(f"faiss GPU index unavailable ({error}); searching on the CPU", stacklevel=3)
            return index

    def __call__(self, queries: np.ndarray, k: int) -> np.ndarray:
        return self.index.search(queries, k)[1]


class _NumkongHammingSearcher:
    """Exact Hamming top-k: NumKong distance blocks, then selection on ``distance * n + id``.

    Keys are unique, so ``partition`` + ``sort`` yields exactly the ``k`` smallest
    ``(distance, id)`` pairs in order: ties at the k-th distance keep the lowest ids, never a
    cut-off at random. Blocks run on a thread pool (the kernels and numpy's partition release
    the GIL). Each thread computes its blocks' distances, keys and partition in place in one
    buffer of its own: a fresh [rows, gallery] array per block costs as much in page faults
    as the distances themselves (glibc maps and unmaps blocks that large).
    """

    def __init__(self, gallery: np.ndarray) -> None:
        self.size = gallery.shape[0]
        self.packed = numkong.hammings_pack(gallery, dtype="uint1")
        max_key = (8 * gallery.shape[1] + 1) * self.size
        self.key_dtype = np.uint32 if max_key < 2**32 else np.uint64
        self.ids = np.arange(self.size, dtype=self.key_dtype)
        self.threads = max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
        self.buffers = threading.local()

    def _distances(self, queries: np.ndarray) -> np.ndarray:
        """``uint32 [rows, gallery]`` Hamming distances, in this thread's reused buffer."""
        out = getattr(self.buffers, "out", None)
        if out is None or out.shape[0] != queries.shape[0]:
            out = self.buffers.out = numkong.zeros((queries.shape[0], self.size), dtype="uint32")
        return np.asarray(numkong.hammings_packed(queries, self.packed, out=out))

    def _block(self, queries: np.ndarray, k: int) -> np.ndarray:
        keys = self._distances(queries).astype(self.key_dtype, copy=False)
        keys *= self.key_dtype(self.size)
        keys += self.ids
        if k < self.size:
            keys.partition(k - 1, axis=1)  # in place
            keys = keys[:, :k]
        keys = np.sort(keys, axis=1)
        return (keys % self.key_dtype(self.size)).astype(np.int64)

    def __call__(self, queries: np.ndarray, k: int) -> np.ndarray:
        starts = range(0, queries.shape[0], NUMKONG_BLOCK_ROWS)
        with ThreadPoolExecutor(self.threads) as pool:
            blocks = pool.map(lambda start: self._block(queries[start : start + NUMKONG_BLOCK_ROWS], k), starts)
            return np.concatenate(list(blocks), axis=0)


def _unpack_signs(codes: np.ndarray) -> np.ndarray:
    """Packed bits -> ±1 float32, so that dot product = bits - 2 * Hamming distance."""
    return np.unpackbits(codes, axis=1).astype(np.float32) * 2.0 - 1.0


class _TorchSearcher:
    """Exact top-k by chunked matmul: the fallback when faiss is not importable."""

    def __init__(self, gallery: np.ndarray, metric: str) -> None:
        self.metric = metric
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.gallery = torch.from_numpy(self._as_float(gallery)).to(self.device)
        # Euclidean: ranking by -||q - g||^2 is ranking by 2 q.g - ||g||^2 (||q||^2 is per row).
        self.offset = (self.gallery * self.gallery).sum(dim=1) if metric == "euclidean" else None

    def _as_float(self, rows: np.ndarray) -> np.ndarray:
        return _unpack_signs(rows) if self.metric == "hamming" else rows

    def __call__(self, queries: np.ndarray, k: int) -> np.ndarray:
        block_rows = max(1, TORCH_BLOCK_BYTES // (4 * self.gallery.shape[0]))
        found = []
        for start in range(0, queries.shape[0], block_rows):
            block = torch.from_numpy(self._as_float(queries[start : start + block_rows])).to(self.device)
            similarity = block @ self.gallery.T
            if self.offset is not None:
                similarity = 2.0 * similarity - self.offset
            found.append(similarity.topk(k, dim=1).indices.cpu())
        return torch.cat(found).numpy()


def _prepare(rows: np.ndarray | Any, metric: str, name: str) -> np.ndarray:
    if metric == "cosine":
        return l2_normalize(as_embedding_matrix(rows, name))
    if metric == "euclidean":
        return np.ascontiguousarray(as_embedding_matrix(rows, name), dtype=np.float32)
    codes = np.asarray(rows)
    if codes.dtype != np.uint8 or codes.ndim != 2:
        raise TypeError(
            f"metric='hamming' expects packed binary codes (uint8 [N, bytes], see binarize), "
            f"got {codes.dtype} with shape {codes.shape}"
        )
    return np.ascontiguousarray(codes)


def progress_chunk_size(num_queries: int, k: int, steps: int = 20) -> int:
    """Queries per search call when progress is shown: about ``steps`` calls, but no fewer than
    4096 queries a call (faiss's flat search multiplies 4096-query blocks anyway) and no more
    than the results budget allows."""
    return max(1, min(max(4096, -(-num_queries // steps)), SEARCH_RESULT_BYTES // (12 * (k + 1))))


def iter_neighbors(
    queries: np.ndarray | Any,
    k: int,
    *,
    gallery: np.ndarray | Any | None = None,
    metric: Metric = "cosine",
    backend: Backend = "auto",
    chunk_size: int | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(first_query, neighbour_ids[rows, k])`` over consecutive query blocks, nearest first.

    ``gallery=None`` searches the query set itself and excludes each query by index. ``metric``
    ``"cosine"`` takes float rows (normalised here), ``"euclidean"`` float rows as they are;
    ``"hamming"`` takes packed codes from
    :func:`binarize`. The index is built once, then queried ``chunk_size`` queries at a time
    (default: results within ``SEARCH_RESULT_BYTES``), so memory stays bounded for any size.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if not is_positive_int(k):
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if chunk_size is not None and not is_positive_int(chunk_size):
        raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size!r}")
    if metric == "hamming" and backend == "auto" and numkong is not None:
        backend = "numkong"
    backend = resolve_backend(backend)
    if backend == "numkong" and metric != "hamming":
        backend = resolve_backend("auto")  # numkong serves Hamming search only
    same_set = gallery is None
    query_rows = _prepare(queries, metric, "queries")
    gallery_rows = query_rows if same_set else _prepare(gallery, metric, "gallery")
    if query_rows.shape[1] != gallery_rows.shape[1]:
        raise ValueError(
            f"queries and gallery differ in width: {query_rows.shape[1]} vs {gallery_rows.shape[1]}"
        )
    search_k = int(k) + 1 if same_set else int(k)
    if search_k > gallery_rows.shape[0]:
        available = gallery_rows.shape[0] - int(same_set)
        raise ValueError(f"k={k} exceeds the {available} gallery items each query can retrieve")

    if backend == "numkong":
        searcher: Any = _NumkongHammingSearcher(gallery_rows)
    elif backend == "faiss":
        searcher = _FaissSearcher(gallery_rows, metric, search_k)
    else:
        searcher = _TorchSearcher(gallery_rows, metric)
    search_rows = int(chunk_size or max(1, SEARCH_RESULT_BYTES // (12 * search_k)))
    block_rows = max(1, BLOCK_ELEMENTS // search_k)
    for start in range(0, query_rows.shape[0], search_rows):
        indices = np.asarray(searcher(query_rows[start : start + search_rows], search_k), dtype=np.int64)
        for offset in range(0, indices.shape[0], block_rows):
            block = indices[offset : offset + block_rows]
            first = start + offset
            if same_set:
                block = drop_self(block, np.arange(first, first + block.shape[0]))
            yield first, block


def nearest_neighbors(
    queries: np.ndarray | Any,
    k: int,
    *,
    gallery: np.ndarray | Any | None = None,
    metric: Metric = "cosine",
    backend: Backend = "auto",
    chunk_size: int | None = None,
) -> np.ndarray:
    """``int64 [num_queries, k]`` gallery ids of each query's k nearest neighbours (see
    :func:`iter_neighbors`)."""
    chunks = [
        indices
        for _, indices in iter_neighbors(
            queries, k, gallery=gallery, metric=metric, backend=backend, chunk_size=chunk_size
        )
    ]
    return np.concatenate(chunks, axis=0)
