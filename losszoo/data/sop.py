"""Stanford Online Products (Song et al., CVPR 2016): 11,318 classes (59,551 images) train,
11,316 classes (60,502 images) test, as listed in ``Ebay_train.txt`` / ``Ebay_test.txt``
(header ``image_id class_id super_class_id path``; paths relative to the dataset folder).
"""

from __future__ import annotations

import os

from losszoo.data.base import ImageListing
from losszoo.data.files import check_files_exist, find_dataset_dir
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
    list_file = folder / LIST_FILES[split]
    lines = [line.split() for line in list_file.read_text().splitlines() if line.strip()]
    if not lines or lines[0] != HEADER:
        raise ValueError(f"{list_file}: expected the header {' '.join(HEADER)!r}")
    rows = lines[1:]
    if any(len(row) != len(HEADER) for row in rows):
        raise ValueError(f"{list_file}: every row needs {len(HEADER)} fields ({' '.join(HEADER)})")
    files = [folder / row[3] for row in rows]
    check_files_exist(files, dataset="Stanford Online Products", folder=folder, source=SOURCE)
    return ImageListing(files, [int(row[1]) for row in rows])
