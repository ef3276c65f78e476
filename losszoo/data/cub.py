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
from losszoo.data.lists import ListLine, check_range, check_unique, inside, read_lines
from losszoo.data.registry import register_dataset

SOURCE = "https://www.vision.caltech.edu/datasets/cub_200_2011/ (CUB_200_2011.tgz)"
FOLDER_NAMES = ("CUB_200_2011", "cub200", "CUB200", "cub")
TRAIN_CLASSES = range(1, 101)
ALL_CLASSES = range(1, 201)


def _read_pairs(path: Path, value: str, *, integer_values: bool = False) -> list[ListLine]:
    """``<image_id> <value>`` lines (space-separated, the archive's format), each image id once;
    an error naming the file and line of the first that is not."""
    lines = read_lines(path, maxsplit=1)
    for line in lines:
        fields = line.fields
        if len(fields) != 2 or not _is_integer(fields[0]) or (integer_values and not _is_integer(fields[1])):
            raise line.error(f"expected '<image_id> {value}' separated by a space, got {' '.join(fields)!r}")
    check_unique(lines, 0, "image id")
    return lines


def _is_integer(text: str) -> bool:
    return text.isascii() and text.isdigit()


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
    image_lines = _read_pairs(folder / "images.txt", "<relative path>")
    check_unique(image_lines, 1, "image path")
    paths = {line.fields[0]: inside(folder / "images", line.fields[1], line) for line in image_lines}
    classes = {line.fields[0]: check_range(line, line.integer(1, "the class id"), ALL_CLASSES, "class id")
               for line in _read_pairs(folder / "image_class_labels.txt", "<class id>", integer_values=True)}
    if set(paths) != set(classes):
        raise ValueError(
            f"CUB-200-2011 in {folder}: images.txt and image_class_labels.txt list different image ids"
        )
    keep = (lambda c: c in TRAIN_CLASSES) if split == "train" else (lambda c: c not in TRAIN_CLASSES)
    image_ids = sorted((i for i in paths if keep(classes[i])), key=int)
    files = [paths[i] for i in image_ids]
    check_files_exist(files, dataset="CUB-200-2011", folder=folder, source=SOURCE)
    return ImageListing(files, [classes[i] for i in image_ids])
