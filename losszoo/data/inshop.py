"""In-Shop Clothes Retrieval (Liu et al., DeepFashion, CVPR 2016): 3,997 items (25,882 images)
train; 3,985 unseen items split into query (14,218 images) and gallery (12,612 images).

Layout: ``Eval/list_eval_partition.txt`` (first line the image count, second the header
``image_name item_id evaluation_status``, then one row per image) and ``img/``. Query and gallery
are labelled over the union of their items, so a label means the same item in both splits.
"""

from __future__ import annotations

import os
from pathlib import Path

from losszoo.data.base import ImageListing
from losszoo.data.files import check_files_exist, find_dataset_dir
from losszoo.data.lists import ListLine, check_unique, inside, read_lines
from losszoo.data.registry import register_dataset

SOURCE = (
    "https://mmlab.ie.cuhk.edu.hk/projects/DeepFashion/InShopRetrieval.html "
    "(img.zip, list_eval_partition.txt)"
)
FOLDER_NAMES = (
    "inshop",
    "InShop",
    "In-shop",
    "In-shop Clothes Retrieval Benchmark",
    "In-shop_Clothes_Retrieval_Benchmark",
    "In_shop_Clothes_Retrieval_Benchmark",
)
PARTITION_FILE = "Eval/list_eval_partition.txt"
HEADER = ["image_name", "item_id", "evaluation_status"]
SPLITS = ("train", "query", "gallery")


def read_partition(path: Path) -> list[ListLine]:
    """Rows ``(image_name, item_id, evaluation_status)`` of ``list_eval_partition.txt``, each
    image once and each item in train or in query/gallery, never both; errors name the line."""
    lines = read_lines(path)
    if len(lines) < 2 or len(lines[0].fields) != 1 or not lines[0].fields[0].isdigit() \
            or list(lines[1].fields) != HEADER:
        raise ValueError(f"{path}: expected a count line, then the header {' '.join(HEADER)!r}")
    rows = lines[2:]
    for row in rows:
        if len(row.fields) != 3 or row.fields[2] not in SPLITS:
            raise row.error(f"expected an image name, an item id and one of {', '.join(SPLITS)}, "
                            f"got {' '.join(row.fields)!r}")
    if len(rows) != int(lines[0].fields[0]):
        raise ValueError(f"{path}: announces {lines[0].fields[0]} images but lists {len(rows)} (truncated file?)")
    check_unique(rows, 0, "image")
    trained = {row.fields[1]: row for row in rows if row.fields[2] == "train"}
    for row in rows:
        if row.fields[2] != "train" and row.fields[1] in trained:
            raise row.error(f"item {row.fields[1]} is also a training item (line "
                            f"{trained[row.fields[1]].number}): test items must be unseen")
    return rows


@register_dataset("inshop", splits=SPLITS, aliases=("in-shop", "deepfashion-inshop"))
def load_inshop(root: str | os.PathLike | None, split: str) -> ImageListing:
    """In-Shop clothes: train items; unseen items as query and gallery (consistent labels)."""
    folder = find_dataset_dir(
        root, (PARTITION_FILE, "img/"), dataset="In-Shop", folder_names=FOLDER_NAMES, source=SOURCE
    )
    rows = read_partition(folder / PARTITION_FILE)
    selected = [row for row in rows if row.fields[2] == split]
    classes = None if split == "train" else sorted({row.fields[1] for row in rows if row.fields[2] != "train"})
    files = [inside(folder, row.fields[0], row) for row in selected]
    check_files_exist(files, dataset="In-Shop", folder=folder, source=SOURCE)
    return ImageListing(files, [row.fields[1] for row in selected], classes=classes)
