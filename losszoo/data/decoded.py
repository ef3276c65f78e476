"""A decoded, resized uint8 copy of a file-listed split on disk, so that JPEGs are decoded once.

On a CPU, decoding and resizing a photo costs a sizeable share of a small network's train step
(benchmarks/bench_photos.py). The transforms resize every image to ``resize x resize`` before
any random step (transforms.py), so that resize can be done once: the split is decoded and
resized into one ``.npy`` array (``[N, R, R, 3]`` or ``[N, R, R]``), after which items take the
tensor path of :class:`~losszoo.data.arrays.ArrayImageDataset` (crop, flip, normalize), the
same pipeline as from the files.

Opt-in: set ``LOSSZOO_DECODED_CACHE`` to a folder. A cache file is named by a hash of the
file list (paths, sizes, modification times), the size and the colour mode, so a changed data
set or another size never reads a stale copy. Written to a temporary file and renamed, so an
interrupted decode leaves nothing half-written.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

CACHE_ENV = "LOSSZOO_DECODED_CACHE"
REPORT_EVERY_S = 10.0


def cache_folder() -> Path | None:
    """The folder named by ``LOSSZOO_DECODED_CACHE``, or None (no cache)."""
    value = os.environ.get(CACHE_ENV)
    return Path(value).expanduser() if value else None


def cache_key(items: Sequence[Any], size: int, mode: str, describe: Callable[[Any], str] = str) -> str:
    """A hash of what the decoded array depends on: each file's path, size and mtime, the
    side ``size`` and the PIL ``mode``."""
    digest = hashlib.sha256(f"{size} {mode} {len(items)}\n".encode())
    for item in items:
        path = Path(item)
        stat = path.stat() if path.is_file() else None  # members of an archive: their names
        digest.update(f"{describe(item)} {stat.st_size if stat else ''} "
                      f"{stat.st_mtime_ns if stat else ''}\n".encode())
    return digest.hexdigest()[:20]


def decoded_images(items: Sequence[Any], reader: Callable[[Any, str], Image.Image], *, size: int,
                   mode: str, folder: Path, describe: Callable[[Any], str] = str,
                   log: Callable[[str], None] = print) -> np.ndarray:
    """uint8 ``[N, size, size(, 3)]``: ``items`` read with ``reader`` and resized as
    ``transforms.build_transform`` resizes them, from ``folder`` when already decoded there."""
    path = folder / f"decoded-{size}px-{mode}-{cache_key(items, size, mode, describe)}.npy"
    if path.is_file():
        return np.load(path, mmap_mode="r")
    shape = (len(items), size, size) + ((3,) if mode == "RGB" else ())
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial")
    array = np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8, shape=shape)
    started = last = time.perf_counter()
    try:
        for index, item in enumerate(items):
            image = reader(item, mode).resize((size, size), Image.BILINEAR)  # torchvision's Resize
            array[index] = np.asarray(image)
            if time.perf_counter() - last >= REPORT_EVERY_S:
                last = time.perf_counter()
                log(f"decoding {len(items)} images to {size} px for {path}: {index + 1} done "
                    f"({(index + 1) / (last - started):.0f} img/s)")
        array.flush()
        del array
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return np.load(path, mmap_mode="r")
