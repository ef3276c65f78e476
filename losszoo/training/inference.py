"""Embedding extraction and model evaluation, shared by training, ``losszoo eval`` and the
untrained baseline of ``losszoo compare``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from losszoo.distributed import distributed_embeddings
from losszoo.errors import ConfigError
from losszoo.evaluation import evaluate
from losszoo.evaluation.evaluate import Neighbors
from losszoo.evaluation.results import BINARY_KINDS, EvaluationResult, binary_key


@dataclass(frozen=True)
class EvalData:
    """What a dataset is evaluated on: queries against themselves, or against a gallery."""

    query: Dataset
    gallery: Dataset | None = None


@dataclass(frozen=True)
class EvalArrays:
    """What an evaluation computed: the (unnormalised) embeddings and labels, and the float
    neighbours its metrics came from (gallery fields None in same-set mode)."""

    embeddings: np.ndarray
    labels: np.ndarray
    neighbors: Neighbors
    gallery_embeddings: np.ndarray | None = None
    gallery_labels: np.ndarray | None = None


def resolve_device(name: str | None) -> torch.device:
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r} is not a device name (cpu, cuda, cuda:1, ...)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but CUDA is not available")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"device {name!r} asked for, but there are {torch.cuda.device_count()} CUDA devices")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device {name!r}: losszoo runs on cpu, cuda or mps")
    return device


Report = Callable[[int, int], None]  # (items done, items in all)
REPORT_EVERY_S = 10.0


def progress_lines(console: Any, label: str, every: float = REPORT_EVERY_S,
                   unit: str = "images") -> Report:
    """A :data:`Report` that logs ``label: done/total unit`` on ``console`` at most every
    ``every`` seconds (and at the end of a step that took longer): progress that shows in a log
    file too."""
    start = last = time.perf_counter()

    def report(done: int, total: int) -> None:
        nonlocal last
        now = time.perf_counter()
        if now - last >= every or (done == total and now - start >= every):
            console.log(f"{label}: {done}/{total} {unit} ({now - start:.0f} s)")
            last = now

    return report


@torch.no_grad()
def extract_embeddings(
    model: nn.Module, dataset: Dataset, *, batch_size: int = 256, workers: int = 0,
    device: torch.device | None = None, report: Report | None = None,
) -> tuple[Tensor, Tensor]:
    """Unnormalized embeddings [N, dim] (float32, CPU) and labels [N] of a whole dataset;
    ``report(done, total)`` after each batch."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    chunks, labels = [], []
    try:
        for images, targets in loader:
            chunks.append(model(images.to(device, non_blocking=True)).float().cpu())
            labels.append(torch.as_tensor(targets))
            if report is not None:
                report(sum(len(c) for c in labels), len(dataset))
    finally:
        model.train(was_training)
    return torch.cat(chunks), torch.cat(labels)


@dataclass(frozen=True)
class Evaluation:
    """What :func:`evaluate_model` returns: the metrics, and the arrays when asked to keep them."""

    metrics: EvaluationResult
    arrays: EvalArrays | None = None


def evaluate_model(
    model: nn.Module, data: EvalData, *, ks: tuple[int, ...], binary: bool = True,
    batch_size: int = 256, workers: int = 0, seed: int = 0, keep: bool = False,
    console: Any = None,
) -> Evaluation:
    """Recall@K, NMI, MAP@R and R-precision of ``model`` (with ``binary``, the retrieval ones of
    its sign codes too). ``keep=True`` keeps the arrays: embeddings, labels and neighbours.
    ``console``: progress lines of a long extraction or search (see :func:`progress_lines`)."""
    def extract(dataset: Dataset) -> tuple[Tensor, Tensor]:
        report = None if console is None else progress_lines(console, "embedding")
        return extract_embeddings(model, dataset, batch_size=batch_size, workers=workers, report=report)

    # Under torchrun each rank embeds a share of the batches; every rank gets all embeddings.
    query, query_labels = distributed_embeddings(extract, data.query, batch_size)
    gallery = gallery_labels = None
    if data.gallery is not None:
        gallery, gallery_labels = distributed_embeddings(extract, data.gallery, batch_size)

    def searching(label: str) -> Report | None:
        return None if console is None else progress_lines(console, label, unit="queries")

    where = {"gallery_embeddings": gallery, "gallery_labels": gallery_labels, "ks": ks, "seed": seed}
    # The neighbours only when asked: at SOP size they are [60k, 1001].
    found = evaluate(query, query_labels, **where, return_neighbors=keep, report=searching("neighbour search"))
    flat, neighbors = found if keep else (found, None)
    if binary:
        codes = evaluate(query, query_labels, **where, binary=True, metrics=BINARY_KINDS,
                         report=searching("binary neighbour search"))
        flat.update({binary_key(name): value for name, value in codes.items()})
    metrics = EvaluationResult.from_dict(flat, ks)
    if not keep:
        return Evaluation(metrics)
    return Evaluation(metrics, EvalArrays(query.numpy(), query_labels.numpy(), neighbors,
                                          None if gallery is None else gallery.numpy(),
                                          None if gallery_labels is None else gallery_labels.numpy()))
