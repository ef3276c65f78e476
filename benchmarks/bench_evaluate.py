"""Time ``losszoo.evaluation.evaluate`` against a bare faiss search of the same k.

Default sizes are the Stanford Online Products test set's shape (60,502 images, 11,316 classes,
Recall@1/10/100/1000 as in Zhai & Wu 2019, Table 5) with random unit vectors:

- float-512 retrieval: ``evaluate`` (Recall@K, MAP@R, R-precision) vs ``IndexFlatIP`` search;
- binary-2048 retrieval: ``evaluate(binary=True)`` vs ``IndexBinaryFlat`` search on packed codes;
- float-64 retrieval: the float embedding with the same memory per item as 2048 bits;
- NMI (k-means with one cluster per class) on float-512, timed on its own.

The bare search gets ready-made input (unit rows / packed codes) and searches k + 1 neighbours,
exactly as ``evaluate`` does in same-set mode; ``evaluate`` starts from raw embeddings, so the
ratio includes normalisation/binarisation, self-exclusion and the metrics.

    python benchmarks/bench_evaluate.py --json runs/bench_evaluate.json
    python benchmarks/bench_evaluate.py --num-items 5000 --num-classes 1000 --repeats 1  # quick
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from losszoo.evaluation import binarize, evaluate, l2_normalize  # noqa: E402
from losszoo.evaluation.knn import BINARY_QUERY_BATCH  # noqa: E402

RETRIEVAL = ("recall", "map_at_r", "r_precision")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--num-items", type=int, default=60502, help="items (SOP test: 60502)")
    parser.add_argument("--num-classes", type=int, default=11316, help="classes (SOP test: 11316)")
    parser.add_argument("--dim", type=int, default=512, help="float embedding dimension")
    parser.add_argument("--binary-dim", type=int, default=2048, help="bits of the binary embedding")
    parser.add_argument("--small-dim", type=int, default=64, help="float dim with the binary's memory")
    parser.add_argument("--ks", default="1,10,100,1000", help="comma-separated Recall@K")
    parser.add_argument("--threads", type=int, default=2, help="faiss OpenMP threads")
    parser.add_argument("--repeats", type=int, default=3, help="timings per case; the minimum is kept")
    parser.add_argument("--skip-nmi", action="store_true", help="do not time NMI (k-means)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--backend", default="auto", choices=("auto", "faiss", "numkong", "torch"),
        help="evaluate's kNN backend (torch: top-k on CUDA when available; faiss: GPU with faiss-gpu)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    return parser.parse_args()


def timed(run: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def bare_float_search(unit_rows: np.ndarray, k: int) -> np.ndarray:
    index = faiss.IndexFlatIP(unit_rows.shape[1])
    index.add(unit_rows)
    return index.search(unit_rows, k)[1]


def bare_binary_search(codes: np.ndarray, k: int, query_batch_size: int | None = None) -> np.ndarray:
    index = faiss.IndexBinaryFlat(8 * codes.shape[1])
    if query_batch_size is not None:  # faiss's default is 32
        index.query_batch_size = query_batch_size
    index.add(codes)
    return index.search(codes, k)[1]


def bare_binary_search_tuned(codes: np.ndarray, k: int) -> np.ndarray:
    """The same search with the query batch evaluate uses (BINARY_QUERY_BATCH)."""
    return bare_binary_search(codes, k, BINARY_QUERY_BATCH)


def search_depth(labels: np.ndarray, ks: tuple[int, ...]) -> int:
    """The k evaluate searches in same-set mode: max(max K, max R) + 1 for the query itself."""
    max_r = int(np.bincount(labels).max()) - 1
    return max(max(ks), max_r) + 1


def retrieval_case(name, embeddings, labels, ks, repeats, *, binary, backend="auto") -> dict[str, Any]:
    k = search_depth(labels, ks)
    ready = binarize(embeddings) if binary else l2_normalize(embeddings)
    bare = bare_binary_search if binary else bare_float_search
    bare_all, tuned_all, eval_all = [], [], []
    for _ in range(repeats):  # interleaved, so load from other processes hits all alike
        bare_all.append(timed(lambda: bare(ready, k))[0])
        if binary:
            tuned_all.append(timed(lambda: bare_binary_search_tuned(ready, k))[0])
        seconds, metrics = timed(
            lambda: evaluate(embeddings, labels, ks=ks, metrics=RETRIEVAL, binary=binary, backend=backend)
        )
        eval_all.append(seconds)
    bare_s, eval_s = min(bare_all), min(eval_all)
    line = f"{name:>12}: bare faiss search (k={k}) {bare_s:7.2f} s"
    if binary:
        line += f" | same, query_batch_size={BINARY_QUERY_BATCH} {min(tuned_all):7.2f} s"
    print(f"{line} | evaluate {eval_s:7.2f} s | ratio {eval_s / bare_s:.3f}", flush=True)
    case = {
        "search_k": k,
        "bare_search_s": bare_s,
        "evaluate_s": eval_s,
        "ratio": eval_s / bare_s,
        "bare_search_all_s": bare_all,
        "evaluate_all_s": eval_all,
        "metrics": metrics,
    }
    if binary:
        case["bare_search_tuned_s"] = min(tuned_all)
        case["bare_search_tuned_all_s"] = tuned_all
        case["ratio_to_tuned"] = eval_s / min(tuned_all)
    return case


def main() -> None:
    args = parse_args()
    faiss.omp_set_num_threads(args.threads)
    ks = tuple(int(k) for k in args.ks.split(","))
    rng = np.random.default_rng(args.seed)
    labels = rng.permutation(np.arange(args.num_items) % args.num_classes)

    def unit_vectors(dim: int) -> np.ndarray:
        return l2_normalize(rng.standard_normal((args.num_items, dim), dtype=np.float32))

    print(
        f"{args.num_items} items, {args.num_classes} classes, ks={ks}, faiss {faiss.__version__}, "
        f"{args.threads} threads, {os.cpu_count()} CPUs",
        flush=True,
    )
    cases: dict[str, Any] = {}
    float_embeddings = unit_vectors(args.dim)
    cases[f"float{args.dim}"] = retrieval_case(
        f"float-{args.dim}", float_embeddings, labels, ks, args.repeats, binary=False, backend=args.backend
    )
    cases[f"binary{args.binary_dim}"] = retrieval_case(
        f"binary-{args.binary_dim}", unit_vectors(args.binary_dim), labels, ks, args.repeats, binary=True, backend=args.backend
    )
    cases[f"float{args.small_dim}"] = retrieval_case(
        f"float-{args.small_dim}", unit_vectors(args.small_dim), labels, ks, args.repeats, binary=False, backend=args.backend
    )
    binary, small = cases[f"binary{args.binary_dim}"], cases[f"float{args.small_dim}"]
    binary_vs_small = {
        "evaluate": binary["evaluate_s"] / small["evaluate_s"],
        "bare_search": binary["bare_search_s"] / small["bare_search_s"],
    }
    print(
        f"binary-{args.binary_dim} / float-{args.small_dim} retrieval time: "
        f"evaluate {binary_vs_small['evaluate']:.2f}, bare search {binary_vs_small['bare_search']:.2f}",
        flush=True,
    )

    nmi: dict[str, Any] | None = None
    if not args.skip_nmi:
        nmi_s, nmi_result = timed(lambda: evaluate(float_embeddings, labels, metrics=("nmi",)))
        print(f"NMI (k-means, {args.num_classes} clusters, float-{args.dim}): {nmi_s:.1f} s", flush=True)
        nmi = {"seconds": nmi_s, "result": nmi_result}

    config = {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}
    figures = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "faiss_threads": args.threads,
            "faiss": faiss.__version__,
            "numpy": np.__version__,
        },
        "config": config,
        "retrieval": cases,
        f"binary{args.binary_dim}_over_float{args.small_dim}": binary_vs_small,
        "nmi_float": nmi,
    }
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
