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


def read_partition(path: Path) -> list[tuple[str, str, str]]:
    """Rows ``(image_name, item_id, evaluation_status)`` of ``list_eval_partition.txt``."""
    lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    if len(lines) < 2 or len(lines[0]) != 1 or not lines[0][0].isdigit() or lines[1] != HEADER:
        raise ValueError(f"{path}: expected a count line, then the header {' '.join(HEADER)!r}")
    rows = [tuple(row) for row in lines[2:]]
    if any(len(row) != 3 or row[2] not in SPLITS for row in rows):
        raise ValueError(f"{path}: every row needs an image name, an item id and one of {', '.join(SPLITS)}")
    if len(rows) != int(lines[0][0]):
        raise ValueError(f"{path}: announces {lines[0][0]} images but lists {len(rows)} (truncated file?)")
    return rows  # type: ignore[return-value]


@register_dataset("inshop", splits=SPLITS, aliases=("in-shop", "deepfashion-inshop"))
def load_inshop(root: str | os.PathLike | None, split: str) -> ImageListing:
    """In-Shop clothes: train items; unseen items as query and gallery (consistent labels)."""
    folder = find_dataset_dir(
        root, (PARTITION_FILE, "img/"), dataset="In-Shop", folder_names=FOLDER_NAMES, source=SOURCE
    )
    rows = read_partition(folder / PARTITION_FILE)
    selected = [row for row in rows if row[2] == split]
    classes = None if split == "train" else sorted({item for _, item, status in rows if status != "train"})
    files = [folder / name for name, _, _ in selected]
    check_files_exist(files, dataset="In-Shop", folder=folder, source=SOURCE)
    return ImageListing(files, [item for _, item, _ in selected], classes=classes)
