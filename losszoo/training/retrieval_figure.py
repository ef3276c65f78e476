"""The retrieval picture: for a seeded sample of queries, the query and its top-k neighbours in
a grid (one row per query), each neighbour framed green (same class) or red (another class)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from losszoo.training.checkpoint import atomic_write
from losszoo.training.inference import EvalArrays, EvalData

RETRIEVAL_FIGURE = "retrieval.png"
CORRECT, WRONG = "#1a9850", "#d73027"


def _picture(dataset: Dataset, index: int) -> np.ndarray:
    """Item ``index`` as the model saw it (evaluation transform), rescaled to [0, 1] for display."""
    image = np.asarray(dataset[int(index)][0], dtype=np.float32)
    if image.ndim == 3:
        image = np.moveaxis(image, 0, -1)
        if image.shape[-1] == 1:
            image = image[..., 0]
    low, high = float(image.min()), float(image.max())
    return (image - low) / (high - low) if high > low else np.zeros_like(image)


def retrieval_figure(path: str | Path, arrays: EvalArrays, data: EvalData, *, queries: int = 8,
                     k: int = 5, seed: int = 0, title: str | None = None) -> tuple[Path, tuple[int, int]]:
    """Draw ``queries`` seeded queries and their ``k`` nearest neighbours into a PNG at
    ``path``; return the path and the grid shape (rows, columns) = (queries, k + 1)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    neighbors = arrays.neighbors.indices
    k = min(k, neighbors.shape[1])
    queries = min(queries, neighbors.shape[0])
    chosen = np.sort(np.random.default_rng(seed).choice(neighbors.shape[0], queries, replace=False))
    gallery = data.query if data.gallery is None else data.gallery
    gallery_labels = arrays.labels if arrays.gallery_labels is None else arrays.gallery_labels
    fig, axes = plt.subplots(queries, k + 1, figsize=(1.3 * (k + 1), 1.3 * queries), squeeze=False)
    for row, query in enumerate(chosen):
        cells = [(int(query), data.query, None)]
        cells += [(int(j), gallery, gallery_labels[j] == arrays.labels[query]) for j in neighbors[query, :k]]
        for column, (index, dataset, correct) in enumerate(cells):
            ax = axes[row, column]
            ax.imshow(_picture(dataset, index), cmap="gray")
            ax.set_xticks([])
            ax.set_yticks([])
            color = "black" if correct is None else (CORRECT if correct else WRONG)
            for spine in ax.spines.values():
                spine.set_edgecolor(color)
                spine.set_linewidth(1 if correct is None else 4)
            if row == 0:
                ax.set_title("query" if column == 0 else f"#{column}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    out = atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=80))
    plt.close(fig)
    return out, (queries, k + 1)
