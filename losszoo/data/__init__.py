"""Datasets with class-disjoint splits. Importing this package registers every built-in loader.

>>> from losszoo.data import load_split
>>> train = load_split("omniglot", "train")  # the embedded 28x28 copy
>>> train.num_classes, len(train)
(964, 19280)
"""

from losszoo.data import cars, cub, imagefolder, inshop, omniglot, sop  # noqa: F401  (registration)
from losszoo.data.arrays import ArrayImageDataset, ImageArrays
from losszoo.data.base import ImageListDataset, ImageListing
from losszoo.data.labels import contiguous_labels
from losszoo.data.registry import (
    DATASETS,
    DatasetSpec,
    get_dataset_spec,
    list_datasets,
    load_split,
    register_dataset,
)
from losszoo.data.subset import ClassSubset, first_classes
from losszoo.data.transforms import (
    Augmentation,
    ImageInputSpec,
    InputSpecLike,
    build_transform,
)

__all__ = [
    "DATASETS",
    "ArrayImageDataset",
    "Augmentation",
    "ClassSubset",
    "DatasetSpec",
    "ImageArrays",
    "ImageInputSpec",
    "ImageListDataset",
    "ImageListing",
    "InputSpecLike",
    "build_transform",
    "contiguous_labels",
    "first_classes",
    "get_dataset_spec",
    "list_datasets",
    "load_split",
    "register_dataset",
]
