"""CUB-200-2011 (Wah et al., 2011) with the metric-learning split of Song et al. (CVPR 2016):
classes 1-100 (5,864 images) train, classes 101-200 (5,924 images) test.

Layout: ``images.txt`` (``<image_id> <relative path>``), ``image_class_labels.txt``
(``<image_id> <class_id>``) and ``images/``, directly in ``root`` or in ``root/CUB_200_2011/``.
"""

from __future__ import annotations

import os
from pathlib import Path

from losszoo.data.base import ImageListing
from losszoo.data.files import check_files_exist, find_dataset_dir
from losszoo.data.registry import register_dataset

SOURCE = "https://www.vision.caltech.edu/datasets/cub_200_2011/ (CUB_200_2011.tgz)"
FOLDER_NAMES = ("CUB_200_2011", "cub200", "CUB200", "cub")
TRAIN_CLASSES = range(1, 101)


def _read_pairs(path: Path, *, integer_values: bool = False) -> dict[str, str]:
    """``<image_id> <value>`` lines (space-separated, the archive's format); ValueError naming
    the file and line of the first that is not."""
    pairs = {}
    for line_number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            fields = line.split(maxsplit=1)
            if len(fields) != 2 or not fields[0].isdigit() or (integer_values and not fields[1].strip().isdigit()):
                value = "<class id>" if integer_values else "<value>"
                raise ValueError(f"{path}:{line_number}: expected '<image_id> {value}' separated by a "
                                 f"space, got {line!r}")
            pairs[fields[0]] = fields[1].strip()
    return pairs


@register_dataset("cub200", aliases=("cub", "cub-200-2011"))
def load_cub200(root: str | os.PathLike | None, split: str) -> ImageListing:
    """CUB-200-2011 birds: classes 1-100 train, 101-200 test."""
    folder = find_dataset_dir(
        root,
        ("images.txt", "image_class_labels.txt", "images/"),
        dataset="CUB-200-2011",
        folder_names=FOLDER_NAMES,
        source=SOURCE,
    )
    paths = _read_pairs(folder / "images.txt")
    classes = _read_pairs(folder / "image_class_labels.txt", integer_values=True)
    if set(paths) != set(classes):
        raise ValueError(
            f"CUB-200-2011 in {folder}: images.txt and image_class_labels.txt list different image ids"
        )
    keep = (lambda c: c in TRAIN_CLASSES) if split == "train" else (lambda c: c not in TRAIN_CLASSES)
    image_ids = sorted((i for i in paths if keep(int(classes[i]))), key=int)
    files = [folder / "images" / paths[i] for i in image_ids]
    check_files_exist(files, dataset="CUB-200-2011", folder=folder, source=SOURCE)
    return ImageListing(files, [int(classes[i]) for i in image_ids])
