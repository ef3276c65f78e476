"""The retrieval picture: for a seeded sample of queries, the query and its top-k neighbours in
a grid (one row per query), each image captioned with its class name. A neighbour of the
query's class is marked ✓ with a solid green frame, one of another class ✗ with a dashed red
frame: the mark and the line style say it without colour (in greyscale print, for colour-blind
readers). Written as PNG, SVG and PDF (losszoo.training.figures.save_figure) at a size that
reads when printed (1.5 inch per image)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from losszoo.training.figures import save_figure
from losszoo.training.inference import EvalArrays, EvalData

RETRIEVAL_FIGURE = "retrieval.png"
# (colour, frame line style, mark) of a neighbour of the query's class and of another class.
CORRECT = ("#009E73", "solid", "\u2713")
WRONG = ("#D55E00", "dashed", "\u2717")
CELL_INCHES = 1.5  # one image's width (and height, without its class-name line)
NAME_CHARS = 26  # longer class names lose their middle (the end tells classes apart: "…/character05")


def class_name(dataset: Dataset, label: int) -> str:
    """The name of class ``label`` of ``dataset`` (its ``classes`` entry), at most NAME_CHARS long."""
    classes = getattr(dataset, "classes", None)
    name = str(classes[label]) if classes is not None and 0 <= label < len(classes) else f"class {label}"
    if len(name) <= NAME_CHARS:
        return name
    head = (NAME_CHARS - 1) // 2
    return name[:head] + "\u2026" + name[len(name) - (NAME_CHARS - 1 - head):]


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
    """Draw ``queries`` seeded queries and their ``k`` nearest neighbours into ``path`` (a PNG,
    with SVG and PDF siblings); return the PNG's path and the grid shape (rows, columns) =
    (queries, k + 1)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    neighbors = arrays.neighbors.indices
    k = min(k, neighbors.shape[1])
    queries = min(queries, neighbors.shape[0])
    chosen = np.sort(np.random.default_rng(seed).choice(neighbors.shape[0], queries, replace=False))
    gallery = data.query if data.gallery is None else data.gallery
    gallery_labels = arrays.labels if arrays.gallery_labels is None else arrays.gallery_labels
    fig, axes = plt.subplots(queries, k + 1, squeeze=False,
                             figsize=(CELL_INCHES * (k + 1), (CELL_INCHES + 0.25) * queries + 0.6))
    for row, query in enumerate(chosen):
        cells = [(int(query), data.query, int(arrays.labels[query]), None)]
        cells += [(int(j), gallery, int(gallery_labels[j]), bool(gallery_labels[j] == arrays.labels[query]))
                  for j in neighbors[query, :k]]
        for column, (index, dataset, label, correct) in enumerate(cells):
            _cell(axes[row, column], _picture(dataset, index), class_name(dataset, label), correct)
            if row == 0:
                axes[row, column].set_title("query" if column == 0 else f"neighbour {column}", fontsize=8)
    key = f"{CORRECT[2]} solid frame: the query's class;  {WRONG[2]} dashed frame: another class"
    fig.suptitle(f"{title}\n{key}" if title else key, fontsize=9)
    fig.tight_layout()
    paths = save_figure(fig, path)
    plt.close(fig)
    return paths[0], (queries, k + 1)


def _cell(ax: object, picture: np.ndarray, name: str, correct: bool | None) -> None:
    """One image: its class name below, and for a neighbour its mark and frame."""
    ax.imshow(picture, cmap="gray")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(name, fontsize=6, labelpad=2)
    color, style, mark = ("black", "solid", None) if correct is None else (CORRECT if correct else WRONG)
    for spine in ax.spines.values():
        spine.set_edgecolor(color)
        spine.set_linestyle(style)
        spine.set_linewidth(1 if correct is None else 3)
    if mark is not None:
        ax.text(0.04, 0.96, mark, transform=ax.transAxes, ha="left", va="top", fontsize=11,
                fontweight="bold", color=color,
                bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.85})
