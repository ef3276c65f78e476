"""CARS196 (Krause et al., 2013) with the metric-learning split of Song et al. (CVPR 2016):
classes 1-98 (8,054 images) train, classes 99-196 (8,131 images) test; the file's own
``test`` flag (a classification split) is ignored.

Layout: ``cars_annos.mat`` and ``car_ims/`` in ``root`` (or ``root/cars196/`` ...). The .mat
holds ``annotations``, a 1xN struct array with fields ``relative_im_path``
(``car_ims/000001.jpg``), ``bbox_x1``..``bbox_y2``, ``class`` (1..196) and ``test``.
"""

from __future__ import annotations

import os

import numpy as np

from losszoo.data.base import ImageListing
from losszoo.data.files import check_files_exist, find_dataset_dir
from losszoo.data.lists import ListLine, check_range, check_unique, inside
from losszoo.data.registry import register_dataset

SOURCE = "https://ai.stanford.edu/~jkrause/cars/car_dataset.html (car_ims.tgz and cars_annos.mat)"
FOLDER_NAMES = ("cars196", "CARS196", "Cars196", "cars", "stanford_cars")
LAST_TRAIN_CLASS = 98
ALL_CLASSES = range(1, 197)


@register_dataset("cars196", aliases=("cars", "cars-196"))
def load_cars196(root: str | os.PathLike | None, split: str) -> ImageListing:
    """CARS196: classes 1-98 train, 99-196 test."""
    from scipy.io import loadmat

    folder = find_dataset_dir(
        root, ("cars_annos.mat", "car_ims/"), dataset="CARS196", folder_names=FOLDER_NAMES, source=SOURCE
    )
    annotations = loadmat(folder / "cars_annos.mat", squeeze_me=True)["annotations"]
    names = annotations.dtype.names or ()
    if not {"relative_im_path", "class"} <= set(names):
        raise ValueError(
            f"{folder / 'cars_annos.mat'}: 'annotations' lacks relative_im_path/class fields (has {names})"
        )
    mat = folder / "cars_annos.mat"
    entries = [ListLine(mat, number, (str(path), str(label)), unit="annotation") for number, (path, label)
               in enumerate(zip(np.atleast_1d(annotations["relative_im_path"]),
                                np.atleast_1d(annotations["class"])), 1)]
    check_unique(entries, 0, "relative_im_path")
    classes = [check_range(entry, entry.integer(1, "class"), ALL_CLASSES, "class") for entry in entries]
    in_train = split == "train"
    keep = [i for i, label in enumerate(classes) if (label <= LAST_TRAIN_CLASS) == in_train]
    files = [inside(folder, entries[i].fields[0], entries[i]) for i in keep]
    check_files_exist(files, dataset="CARS196", folder=folder, source=SOURCE)
    return ImageListing(files, [classes[i] for i in keep])
