"""Build the embedded Omniglot copy ``assets/omniglot28.npz`` from the official zips.

    python -m losszoo.data.pack_omniglot /work/shared/datasets/omniglot [--output PATH] [--size 28]

Each 105x105 1-bit image is inverted (ink -> 255) and reduced to ``size x size`` with PIL's
box filter: every output pixel is the mean ink of the source pixels whose centres fall in its
3.75x3.75 source square, so thin strokes stay as grey lines instead of vanishing or
thickening (as nearest-neighbour or thresholding would).
Images are stored as uint8 grey in a deflate-compressed npz (1-bit packing was measured too:
smaller, but it throws the coverage away; see ``--report``).

Deterministic: files are read in sorted member order and the npz is written with fixed zip
timestamps, so the same zips give byte-identical output. The npz holds

- ``images`` uint8 [N, size, size], ink high; ``labels`` int16 [N] indexes ``class_names``;
- ``class_names`` ["<Alphabet>/characterNN"], ``class_set`` [C] index into ``set_names``
  (``images_background`` = train, ``images_evaluation`` = test); ``image_names`` ["<id>_<drawer>"];
- ``source_files`` and ``source_sha256`` of the zips it was made from; ``method``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from losszoo.data.omniglot import EMBEDDED_PATH, SET_NAMES, list_zip

METHOD = "invert (ink=255), PIL Image.resize(BOX) {0}x{0}->{1}x{1}, uint8"
_FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def downsample(image: Image.Image, size: int = 28) -> np.ndarray:
    """A character as uint8 ``[size, size]`` mean ink (0 = paper, 255 = fully inked)."""
    ink = ImageOps.invert(image.convert("L"))
    return np.asarray(ink.resize((size, size), Image.Resampling.BOX), dtype=np.uint8)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Like ``np.savez_compressed`` but byte-reproducible (numpy stamps the current time)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for key, value in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_FIXED_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, buffer.getvalue(), compresslevel=9)


def pack(source: Path, output: Path, size: int = 28) -> dict[str, np.ndarray]:
    """Read both zips in ``source`` and write the npz to ``output``; return its arrays."""
    set_names = [SET_NAMES["train"], SET_NAMES["test"]]
    images: list[np.ndarray] = []
    image_classes: list[str] = []
    image_names: list[str] = []
    class_set: dict[str, int] = {}
    hashes = []
    source_size = 0
    for set_index, set_name in enumerate(set_names):
        archive = source / f"{set_name}.zip"
        if not archive.is_file():
            raise FileNotFoundError(
                f"{archive} not found: pack_omniglot reads {', '.join(s + '.zip' for s in set_names)}"
            )
        hashes.append(sha256_of(archive))
        entries = list_zip(archive, set_name)
        with zipfile.ZipFile(archive) as handle:
            for entry in entries:
                with Image.open(handle.open(entry.location)) as image:
                    source_size = source_size or image.size[0]
                    images.append(downsample(image, size))
                image_classes.append(entry.class_name)
                image_names.append(entry.name)
                if class_set.setdefault(entry.class_name, set_index) != set_index:
                    raise ValueError(f"class {entry.class_name} appears in both {' and '.join(set_names)}")
    class_names = sorted(class_set)  # alphabet names of the two sets are disjoint
    class_index = {name: index for index, name in enumerate(class_names)}
    arrays = {
        "images": np.stack(images) if images else np.zeros((0, size, size), np.uint8),
        "labels": np.array([class_index[name] for name in image_classes], dtype=np.int16),
        "class_names": np.array(class_names, dtype=str),
        "class_set": np.array([class_set[name] for name in class_names], dtype=np.uint8),
        "set_names": np.array(set_names, dtype=str),
        "image_names": np.array(image_names, dtype=str),
        "source_files": np.array([f"{name}.zip" for name in set_names], dtype=str),
        "source_sha256": np.array(hashes, dtype=str),
        "method": np.array(METHOD.format(source_size, size)),
    }
    write_npz(output, arrays)
    return arrays


def _compressed_size(arrays: Mapping[str, np.ndarray]) -> int:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.tell()


def storage_report(arrays: Mapping[str, np.ndarray]) -> dict[str, int]:
    """Bytes of the image array stored as uint8 grey vs. thresholded 1-bit ``np.packbits``."""
    images = arrays["images"]
    return {
        "raw_uint8": images.nbytes,
        "uint8_compressed": _compressed_size({"images": images}),
        "bits_compressed": _compressed_size({"images": np.packbits(images >= 128, axis=-1)}),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m losszoo.data.pack_omniglot", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "source", type=Path, help="folder holding images_background.zip and images_evaluation.zip"
    )
    parser.add_argument(
        "--output", type=Path, default=EMBEDDED_PATH, help=f"npz to write (default {EMBEDDED_PATH})"
    )
    parser.add_argument("--size", type=int, default=28, help="output side in pixels (default 28)")
    parser.add_argument("--report", action="store_true", help="also print sizes of uint8 vs 1-bit storage")
    args = parser.parse_args(argv)
    arrays = pack(args.source, args.output, args.size)
    counts = np.bincount(arrays["class_set"][arrays["labels"]], minlength=2)
    classes = np.bincount(arrays["class_set"], minlength=2)
    print(f"wrote {args.output} ({args.output.stat().st_size:,} bytes)")
    for set_index, set_name in enumerate(arrays["set_names"]):
        print(f"  {set_name}: {classes[set_index]} classes, {counts[set_index]} images")
    if args.report:
        for key, value in storage_report(arrays).items():
            print(f"  images as {key}: {value:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
