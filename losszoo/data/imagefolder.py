"""Your own images, one sub-folder per class (``root/<class>/<image>``), split by class:
sorted class names, the first ``train_fraction`` of them train, the rest test.

What counts (the extensions and the sorted order of classes and files are torchvision's
``ImageFolder``'s):

- a class folder is a directory (or a link to one) directly under ``root`` whose name does not
  start with ``.`` (``.git/`` is no class) and is valid UTF-8;
- its images are the files with an image extension anywhere below it, hidden entries skipped;
- every image and sub-folder must resolve inside its class folder, and no folder or image may be
  reached twice: a link out of the class (into another class, of the other split) or a link
  loop is refused, naming it, as is a class folder without images (it would shift the split).
"""

from __future__ import annotations

import os
from pathlib import Path

from losszoo.data.base import ImageListing
from losszoo.data.registry import register_dataset
from losszoo.errors import DataError


@register_dataset("imagefolder", aliases=("folder",))
def load_imagefolder(root: str | os.PathLike | None, split: str, train_fraction: float = 0.5) -> ImageListing:
    """One sub-folder per class; the first half of the sorted classes train, the rest test."""
    if root is None:
        raise ValueError("imagefolder needs root: a folder with one sub-folder of images per class")
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must lie in (0, 1), got {train_fraction}")
    folder = Path(root).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"image folder {folder} does not exist; expected {folder}/<class>/<image> files"
        )
    class_names = class_folders(folder)
    if len(class_names) < 2:
        raise ValueError(
            f"image folder {folder} has {len(class_names)} class folder(s); a class-disjoint split needs 2+"
        )
    images = _all_images(folder, class_names)  # every class, so that the split cannot shift
    num_train = min(max(round(train_fraction * len(class_names)), 1), len(class_names) - 1)
    chosen = class_names[:num_train] if split == "train" else class_names[num_train:]
    return ImageListing([path for name in chosen for path in images[name]],
                        [name for name in chosen for _ in images[name]])


def class_folders(folder: Path) -> list[str]:
    """The sorted class folder names of ``folder`` (see the module's docstring)."""
    names = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir() and not entry.name.startswith("."))
    if not names:
        raise FileNotFoundError(f"image folder {folder}: no class folder; expected one sub-folder per class")
    for name in names:
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            raise DataError(f"image folder {folder}: class folder name {name!r} is not valid UTF-8; "
                            "rename it") from None
    return names


def _all_images(folder: Path, class_names: list[str]) -> dict[str, list[str]]:
    from torchvision.datasets.folder import IMG_EXTENSIONS

    seen: dict[str, str] = {}  # real path -> the path it was first reached by
    images = {name: _class_images(folder / name, seen, IMG_EXTENSIONS) for name in class_names}
    empty = [name for name, found in images.items() if not found]
    if empty:
        raise DataError(
            f"image folder {folder}: class folder(s) without images ({', '.join(IMG_EXTENSIONS)}): "
            f"{', '.join(empty)}; add images or remove them (they would shift the class split)")
    return images


def _class_images(class_dir: Path, seen: dict[str, str], extensions: tuple[str, ...]) -> list[str]:
    """Image paths below ``class_dir`` in torchvision's order; links are followed only inside it."""
    real_class = os.path.realpath(class_dir)
    _visit(str(class_dir), real_class, seen)
    folders: list[tuple[str, list[str]]] = []
    for dirpath, dirnames, filenames in os.walk(class_dir, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in dirnames:
            _visit(os.path.join(dirpath, name), real_class, seen)
        files = [os.path.join(dirpath, f) for f in sorted(filenames)
                 if not f.startswith(".") and f.lower().endswith(extensions)]
        for path in files:
            _visit(path, real_class, seen)
        folders.append((dirpath, files))
    return [path for _, files in sorted(folders) for path in files]


def _visit(path: str, real_class: str, seen: dict[str, str]) -> None:
    """Refuse ``path`` when it resolves outside its class folder or to something reached before."""
    real = os.path.realpath(path)
    if os.path.commonpath([real_class, real]) != real_class:
        raise DataError(f"image folder: {path} resolves outside its class folder (to {real}); "
                        "a link may not reach another class or leave the folder")
    if real in seen:
        raise DataError(f"image folder: {path} is {seen[real]} again (a link loop or a second "
                        "link): its images would count twice")
    seen[real] = path
