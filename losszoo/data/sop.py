"""Stanford Online Products (Song et al., CVPR 2016): 11,318 classes (59,551 images) train,
11,316 classes (60,502 images) test, as listed in ``Ebay_train.txt`` / ``Ebay_test.txt``
(header ``image_id class_id super_class_id path``; paths relative to the dataset folder).
"""

from __future__ import annotations

import os
from pathlib import Path

from losszoo.data.base import ImageListing
from losszoo.data.files import check_files_exist, find_dataset_dir
from losszoo.data.lists import ListLine, check_unique, inside, read_lines
from losszoo.data.registry import register_dataset

SOURCE = "https://cvgl.stanford.edu/projects/lifted_struct/ (Stanford_Online_Products.zip)"
FOLDER_NAMES = ("Stanford_Online_Products", "sop", "SOP", "online_products")
LIST_FILES = {"train": "Ebay_train.txt", "test": "Ebay_test.txt"}
HEADER = ["image_id", "class_id", "super_class_id", "path"]


@register_dataset("sop", aliases=("stanford_online_products", "online_products"))
def load_sop(root: str | os.PathLike | None, split: str) -> ImageListing:
    """Stanford Online Products: the Ebay_train.txt / Ebay_test.txt split."""
    folder = find_dataset_dir(
        root,
        tuple(LIST_FILES.values()),
        dataset="Stanford Online Products",
        folder_names=FOLDER_NAMES,
        source=SOURCE,
    )
    rows = _read_list(folder, LIST_FILES[split])
    other = next(name for key, name in LIST_FILES.items() if key != split)
    other_classes = {row.fields[1]: row for row in _read_list(folder, other, paths=False)}
    for row in rows:
        if row.fields[1] in other_classes:
            raise row.error(f"class id {row.fields[1]} is also listed in {other} (line "
                            f"{other_classes[row.fields[1]].number}): train and test classes must differ")
    files = [inside(folder, row.fields[3], row) for row in rows]
    check_files_exist(files, dataset="Stanford Online Products", folder=folder, source=SOURCE)
    return ImageListing(files, [row.integer(1, "class_id") for row in rows])


def _read_list(folder: Path, name: str, *, paths: bool = True) -> list[ListLine]:
    """The rows of list file ``name`` after its header: integer ids, each image id (and, with
    ``paths``, each image path) once; errors name the file and line."""
    lines = read_lines(folder / name)
    if not lines or list(lines[0].fields) != HEADER:
        raise ValueError(f"{folder / name}: expected the header {' '.join(HEADER)!r}")
    rows = lines[1:]
    for row in rows:
        if len(row.fields) != len(HEADER):
            raise row.error(f"expected {len(HEADER)} fields ({' '.join(HEADER)}), got {len(row.fields)}")
        for index in range(3):
            row.integer(index, HEADER[index])
    check_unique(rows, 0, "image_id")
    if paths:
        check_unique(rows, 3, "path")
    return rows
