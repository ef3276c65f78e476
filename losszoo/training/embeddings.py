"""Saved test embeddings: ``embeddings.npz`` (embeddings, labels, item indices, and the
neighbour ids and distances the evaluation's kNN search found) and ``items.csv`` (one row per
item: split, index, label, class name, image path; the path is empty for array-backed data such
as the embedded Omniglot), so results can be analysed without re-running.

In query/gallery mode (In-Shop) the gallery is saved too (``gallery_*`` arrays) and the
neighbour ids index the gallery."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from losszoo.errors import CorruptFileError
from losszoo.evaluation.evaluate import Neighbors
from losszoo.training.checkpoint import atomic_write
from losszoo.training.inference import EvalArrays, EvalData

EMBEDDINGS = "embeddings.npz"
ITEMS = "items.csv"


def item_paths(dataset: Dataset) -> list[str]:
    """Each item's image path (through class subsets), or "" where the dataset has none."""
    if hasattr(dataset, "indices") and hasattr(dataset, "dataset"):  # a ClassSubset
        inner = item_paths(dataset.dataset)
        return [inner[int(i)] for i in dataset.indices]
    paths = getattr(dataset, "paths", None)
    return [str(p) for p in paths] if paths is not None else [""] * len(dataset)


def _rows(split: str, labels: np.ndarray, dataset: Dataset) -> list[tuple[Any, ...]]:
    classes = getattr(dataset, "classes", None)
    return [(split, i, int(label), "" if classes is None else str(classes[int(label)]), path)
            for i, (label, path) in enumerate(zip(labels, item_paths(dataset)))]


def save_embeddings(folder: str | Path, arrays: EvalArrays, data: EvalData) -> list[Path]:
    """Write embeddings.npz and items.csv into ``folder``; return their paths."""
    folder = Path(folder)
    content: dict[str, Any] = {
        "embeddings": arrays.embeddings, "labels": arrays.labels,
        "indices": np.arange(len(arrays.labels)),
        "neighbor_indices": arrays.neighbors.indices, "neighbor_distances": arrays.neighbors.distances,
        "metric": np.array(arrays.neighbors.metric),
    }
    rows = _rows("query" if data.gallery is not None else "test", arrays.labels, data.query)
    if arrays.gallery_embeddings is not None:
        content.update(gallery_embeddings=arrays.gallery_embeddings, gallery_labels=arrays.gallery_labels)
        rows += _rows("gallery", arrays.gallery_labels, data.gallery)
    npz = atomic_write(folder / EMBEDDINGS, lambda fh: np.savez_compressed(fh, **content))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["split", "index", "label", "class", "path"])
    writer.writerows(rows)
    # A file or class name that is not UTF-8 (the OS hands it over as surrogates) is written as
    # its own bytes, so the path in items.csv still opens the image.
    items = atomic_write(folder / ITEMS, lambda fh: fh.write(buffer.getvalue().encode(errors="surrogateescape")))
    return [npz, items]


def load_embeddings(folder: str | Path) -> tuple[EvalArrays, list[dict[str, str]]]:
    """The arrays and the item rows written by :func:`save_embeddings`; a file holding pickled
    objects (which could run code) or missing arrays is refused, naming it."""
    folder = Path(folder)
    path = folder / EMBEDDINGS
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = EvalArrays(
                npz["embeddings"], npz["labels"],
                Neighbors(npz["neighbor_indices"], npz["neighbor_distances"], str(npz["metric"])),
                npz["gallery_embeddings"] if "gallery_embeddings" in npz else None,
                npz["gallery_labels"] if "gallery_labels" in npz else None,
            )
    except ValueError as exc:  # numpy refuses object arrays without allow_pickle
        raise CorruptFileError(f"{path} holds pickled objects, which are not loaded ({exc})") from None
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise CorruptFileError(f"{path} is not a readable embeddings file ({exc})") from None
    with (folder / ITEMS).open(newline="", encoding="utf-8", errors="surrogateescape") as fh:
        return arrays, list(csv.DictReader(fh))
