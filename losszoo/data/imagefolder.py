"""Your own images, one sub-folder per class (``root/<class>/<image>``), split by class:
sorted class names, the first ``train_fraction`` of them train, the rest test.

File discovery is torchvision's ``ImageFolder`` (same extensions, sorted classes and files).
"""

from __future__ import annotations

import os
from pathlib import Path

from losszoo.data.base import ImageListing
from losszoo.data.registry import register_dataset


@register_dataset("imagefolder", aliases=("folder",))
def load_imagefolder(root: str | os.PathLike | None, split: str, train_fraction: float = 0.5) -> ImageListing:
    """One sub-folder per class; the first half of the sorted classes train, the rest test."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    if root is None:
        raise ValueError("imagefolder needs root: a folder with one sub-folder of images per class")
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must lie in (0, 1), got {train_fraction}")
    folder = Path(root).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"image folder {folder} does not exist; expected {folder}/<class>/<image> files"
        )
    try:
        class_names, class_to_index = find_classes(str(folder))
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"image folder {folder}: {exc}; expected one sub-folder per class") from None
    if len(class_names) < 2:
        raise ValueError(
            f"image folder {folder} has {len(class_names)} class folder(s); a class-disjoint split needs 2+"
        )
    num_train = min(max(round(train_fraction * len(class_names)), 1), len(class_names) - 1)
    chosen = class_names[:num_train] if split == "train" else class_names[num_train:]
    samples = make_dataset(
        str(folder),
        {name: class_to_index[name] for name in chosen},
        extensions=IMG_EXTENSIONS,
        allow_empty=True,
    )
    if not samples:
        raise FileNotFoundError(
            f"image folder {folder}: no images ({', '.join(IMG_EXTENSIONS)}) in the {split} classes"
        )
    return ImageListing([path for path, _ in samples], [class_names[index] for _, index in samples])
