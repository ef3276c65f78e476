"""Embedding extraction and model evaluation, shared by training, ``losszoo eval`` and the
untrained baseline of ``losszoo compare``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from losszoo.distributed import distributed_embeddings
from losszoo.evaluation import evaluate
from losszoo.evaluation.evaluate import Neighbors


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
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but CUDA is not available")
    return device


@torch.no_grad()
def extract_embeddings(
    model: nn.Module, dataset: Dataset, *, batch_size: int = 256, workers: int = 0,
    device: torch.device | None = None,
) -> tuple[Tensor, Tensor]:
    """Unnormalized embeddings [N, dim] (float32, CPU) and labels [N] of a whole dataset."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    chunks, labels = [], []
    try:
        for images, targets in loader:
            chunks.append(model(images.to(device, non_blocking=True)).float().cpu())
            labels.append(torch.as_tensor(targets))
    finally:
        model.train(was_training)
    return torch.cat(chunks), torch.cat(labels)


def evaluate_model(
    model: nn.Module, data: EvalData, *, ks: tuple[int, ...], binary: bool = True,
    batch_size: int = 256, workers: int = 0, seed: int = 0, keep: bool = False,
) -> dict[str, Any] | tuple[dict[str, Any], EvalArrays]:
    """Recall@K, NMI, MAP@R and R-precision of ``model``; binary ones prefixed ``binary/``.
    ``keep=True`` returns ``(metrics, EvalArrays)``: embeddings, labels and neighbours too."""
    def extract(dataset: Dataset) -> tuple[Tensor, Tensor]:
        return extract_embeddings(model, dataset, batch_size=batch_size, workers=workers)

    # Under torchrun each rank embeds a share of the batches; every rank gets all embeddings.
    query, query_labels = distributed_embeddings(extract, data.query, batch_size)
    gallery = gallery_labels = None
    if data.gallery is not None:
        gallery, gallery_labels = distributed_embeddings(extract, data.gallery, batch_size)
    metrics = evaluate(query, query_labels, gallery_embeddings=gallery,
                       gallery_labels=gallery_labels, ks=ks, seed=seed, return_neighbors=keep)
    if keep:  # the neighbours only when asked: at SOP size they are [60k, 1001]
        metrics, neighbors = metrics
    if binary:
        binary_metrics = evaluate(query, query_labels, gallery_embeddings=gallery,
                                  gallery_labels=gallery_labels, ks=ks, binary=True, seed=seed,
                                  metrics=("recall", "map_at_r", "r_precision"))
        metrics.update({f"binary/{k}": v for k, v in binary_metrics.items()})
    if keep:
        return metrics, EvalArrays(query.numpy(), query_labels.numpy(), neighbors,
                                   None if gallery is None else gallery.numpy(),
                                   None if gallery_labels is None else gallery_labels.numpy())
    return metrics
