"""Omniglot (Lake et al., Science 2015): 964 background classes to train, 659 evaluation classes to test.

Sources, by ``root``:

- ``None``: the compact copy shipped in the package (``assets/omniglot28.npz``, 28x28, made by
  ``python -m losszoo.data.pack_omniglot``), loaded once and kept in memory.
- a folder holding ``images_background.zip`` / ``images_evaluation.zip`` (official archives or
  repacks of them) or their extracted folders, laid out as
  ``images_background/<Alphabet>/characterNN/<id>_<drawer>.png`` (also inside ``omniglot/`` or
  torchvision's ``omniglot-py/``). ``download=True`` fetches missing archives from the official
  address (no checksum is enforced, so repacked copies work too).

Every source yields the ink as high values (0 = paper, 1 = stroke), so that zero padding is
blank paper; classes are ``"<Alphabet>/characterNN"`` in sorted order, the same from all sources.
Augmentation: random shifts of up to 2 pixels, no mirroring (a mirrored glyph is another glyph).
"""

from __future__ import annotations

import functools
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from losszoo.data.arrays import ImageArrays
from losszoo.data.base import FileImageReader, ImageListing, ZipImageReader
from losszoo.data.registry import register_dataset
from losszoo.data.transforms import Augmentation, ImageInputSpec

SET_NAMES = {"train": "images_background", "test": "images_evaluation"}
DOWNLOAD_URL = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/{}.zip"
EMBEDDED_PATH = Path(__file__).resolve().parent / "assets" / "omniglot28.npz"
FOLDER_NAMES = ("omniglot", "omniglot-py")

# Mean and std of the embedded 28x28 background images (ink = 1); checked in the tests.
OMNIGLOT_INPUT_SPEC = ImageInputSpec(channels=1, image_size=28, resize=28, mean=(0.0780,), std=(0.2329,))


@dataclass(frozen=True)
class OmniglotImage:
    """One image: where it is (zip member or file path) and its alphabet, character and name."""

    location: str
    alphabet: str
    character: str
    name: str

    @property
    def class_name(self) -> str:
        return f"{self.alphabet}/{self.character}"


def _parse(relative: PurePosixPath, location: str) -> OmniglotImage:
    if len(relative.parts) != 3:
        raise ValueError(
            f"unexpected Omniglot entry {location!r}: expected <Alphabet>/characterNN/<id>_<drawer>.png"
        )
    alphabet, character, file_name = relative.parts
    return OmniglotImage(location, alphabet, character, PurePosixPath(file_name).stem)


def list_zip(archive: str | os.PathLike, set_name: str) -> list[OmniglotImage]:
    """The images of an Omniglot zip, sorted by member name."""
    with zipfile.ZipFile(archive) as handle:
        members = sorted(name for name in handle.namelist() if name.lower().endswith(".png"))
    prefix = set_name + "/"
    return [_parse(PurePosixPath(name.removeprefix(prefix)), name) for name in members]


def list_folder(folder: str | os.PathLike) -> list[OmniglotImage]:
    """The images of an extracted Omniglot folder, sorted by relative path."""
    folder = Path(folder)
    relatives = sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*.png"))
    return [_parse(PurePosixPath(relative), str(folder / relative)) for relative in relatives]


def _find_source(root: Path, set_name: str) -> Path | None:
    for base in (root, *(root / name for name in FOLDER_NAMES)):
        if (base / set_name).is_dir():
            return base / set_name
        if (base / f"{set_name}.zip").is_file():
            return base / f"{set_name}.zip"
    return None


def _download(root: Path, set_name: str) -> Path:
    from torchvision.datasets.utils import download_url

    url = DOWNLOAD_URL.format(set_name)
    try:
        download_url(url, str(root), filename=f"{set_name}.zip")
    except Exception as exc:  # no network, HTTP error, disk error: all end the same way
        raise FileNotFoundError(
            f"Omniglot: could not download {url} ({exc!r}). Download it by hand and put "
            f"{set_name}.zip (or its extracted folder {set_name}/) into {root}"
        ) from exc
    return root / f"{set_name}.zip"


@functools.lru_cache(maxsize=2)
def load_embedded(path: str | os.PathLike = EMBEDDED_PATH) -> dict[str, np.ndarray]:
    """The arrays of a packed Omniglot npz (see ``pack_omniglot``), read once per process."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"the embedded Omniglot copy {path} is missing; rebuild it with "
            "`python -m losszoo.data.pack_omniglot <folder with images_background.zip "
            "and images_evaluation.zip>`"
        )
    with np.load(path, allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


def _embedded_split(split: str) -> ImageArrays:
    arrays = load_embedded()
    set_index = list(arrays["set_names"]).index(SET_NAMES[split])
    in_split = arrays["class_set"][arrays["labels"]] == set_index
    return ImageArrays(arrays["images"][in_split], arrays["class_names"][arrays["labels"][in_split]].tolist())


@register_dataset(
    "omniglot",
    input_spec=OMNIGLOT_INPUT_SPEC,
    augmentation=Augmentation(horizontal_flip=False, crop_padding=2),
    description="Omniglot characters: 964 background classes (train), 659 evaluation classes (test)",
)
def load_omniglot(
    root: str | os.PathLike | None, split: str, download: bool = False
) -> ImageArrays | ImageListing:
    """Omniglot characters: 964 background classes (train), 659 evaluation classes (test)."""
    if root is None:
        return _embedded_split(split)
    root = Path(root).expanduser()
    set_name = SET_NAMES[split]
    source = _find_source(root, set_name)
    if source is None and download:
        source = _download(root, set_name)
    if source is None:
        raise FileNotFoundError(
            f"Omniglot {set_name} not found in {root} (nor in its sub-folders "
            f"{', '.join(n + '/' for n in FOLDER_NAMES)}): expected {set_name}.zip or the extracted folder "
            f"{set_name}/<Alphabet>/characterNN/*.png. Get it from {DOWNLOAD_URL.format(set_name)} "
            "or pass download=True; root=None uses the copy embedded in the package"
        )
    if source.is_dir():
        images, reader = list_folder(source), FileImageReader(invert=True)
    else:
        images, reader = list_zip(source, set_name), ZipImageReader(source, invert=True)
    if not images:
        raise FileNotFoundError(
            f"Omniglot: {source} holds no PNG images (expected <Alphabet>/characterNN/*.png)"
        )
    return ImageListing([image.location for image in images], [image.class_name for image in images], reader)
