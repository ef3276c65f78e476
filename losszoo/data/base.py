"""What every loader shares: image readers, :class:`ImageListing` and :class:`ImageListDataset`
(contiguous labels: :mod:`losszoo.data.labels`)."""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps
from torch.utils.data import Dataset

from losszoo.data.arrays import ImageArrays
from losszoo.data.decoded import cache_folder, decoded_images
from losszoo.data.labels import LabelledDataset
from losszoo.data.transforms import Augmentation, InputSpecLike, build_transform, image_mode
from losszoo.errors import DataError

# PIL's (and a zip's) errors; a decompression bomb (PIL refuses images over 2 x
# Image.MAX_IMAGE_PIXELS) is no OSError.
DECODE_ERRORS = (OSError, SyntaxError, ValueError, KeyError, Image.DecompressionBombError)


class FileImageReader:
    """Open an image file with PIL and convert it to ``mode``; optionally invert it (ink -> high)."""

    def __init__(self, invert: bool = False) -> None:
        self.invert = invert

    def _open(self, item: str | os.PathLike) -> Image.Image:
        return Image.open(item)

    def describe(self, item: str | os.PathLike) -> str:
        """Where ``item`` is, for messages."""
        return str(item)

    def __call__(self, item: str | os.PathLike, mode: str) -> Image.Image:
        try:
            with self._open(item) as image:
                image.load()
                if self.invert:
                    image = ImageOps.invert(image.convert("L"))
                return image.convert(mode)
        except DECODE_ERRORS as exc:
            raise DataError(f"cannot decode image {self.describe(item)}: {exc}") from exc

    def check_header(self, item: str | os.PathLike) -> None:
        """Read ``item``'s header only (format and size, no pixels): ``DataError`` naming it
        when it is no image, or one so large that decoding it is refused (a decompression bomb)."""
        try:
            with self._open(item):
                pass
        except DECODE_ERRORS as exc:
            raise DataError(f"cannot decode image {self.describe(item)}: {exc}") from exc


class ZipImageReader(FileImageReader):
    """Read images lazily from members of a zip archive.

    The archive is opened once per process (a ``ZipFile`` shares its file position, so
    DataLoader workers must not share the parent's handle).
    """

    def __init__(self, archive: str | os.PathLike, invert: bool = False) -> None:
        super().__init__(invert)
        self.archive = Path(archive)
        self._handle: zipfile.ZipFile | None = None
        self._pid: int | None = None

    def _open(self, item: str | os.PathLike) -> Image.Image:
        if self._handle is None or self._pid != os.getpid():
            self._handle, self._pid = zipfile.ZipFile(self.archive), os.getpid()
        return Image.open(io.BytesIO(self._handle.read(str(item))))

    def describe(self, item: str | os.PathLike) -> str:
        return f"{self.archive}:{item}"

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_handle": None, "_pid": None}


PLAIN_READER = FileImageReader()


@dataclass(frozen=True)
class ImageListing:
    """A split as listed by a loader: image locations, raw class ids, how to read them.

    ``classes`` optionally fixes the label space (see :func:`~losszoo.data.labels.contiguous_labels`).
    """

    items: Sequence[str | os.PathLike]
    raw_labels: Sequence[Hashable]
    reader: Callable[[Any, str], Image.Image] = PLAIN_READER
    classes: Sequence[Hashable] | None = None

    def build_dataset(
        self, input_spec: InputSpecLike, *, train: bool, augmentation: Augmentation
    ) -> Dataset:
        """Images read lazily from their files, or, with ``LOSSZOO_DECODED_CACHE`` set, from a
        decoded copy resized once (:mod:`losszoo.data.decoded`)."""
        folder = cache_folder()
        if folder is not None:
            return self._decoded(input_spec, folder).build_dataset(
                input_spec, train=train, augmentation=augmentation)
        return ImageListDataset(
            self.items,
            self.raw_labels,
            build_transform(input_spec, train=train, augmentation=augmentation),
            reader=self.reader,
            mode=image_mode(input_spec),
            classes=self.classes,
        )

    def _decoded(self, input_spec: InputSpecLike, folder: Path) -> ImageArrays:
        images = decoded_images(self.items, self.reader, size=input_spec.resize,
                                mode=image_mode(input_spec), folder=folder,
                                describe=getattr(self.reader, "describe", str))
        return ImageArrays(images, self.raw_labels, self.classes)


class ImageListDataset(LabelledDataset):
    """Images read lazily with PIL from a list of paths; yields ``(transform(image), label)``.

    ``labels`` are raw class ids (any sortable hashables), made contiguous here.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike],
        labels: Sequence[Hashable],
        transform: Callable[[Image.Image], Any] | None = None,
        *,
        reader: Callable[[Any, str], Image.Image] = PLAIN_READER,
        mode: str = "RGB",
        classes: Sequence[Hashable] | None = None,
    ) -> None:
        if len(paths) != len(labels):
            raise ValueError(f"{len(paths)} paths but {len(labels)} labels")
        self.paths = list(paths)
        self.transform = transform
        self.reader = reader
        self.mode = mode
        self._set_labels(labels, classes)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = self.reader(self.paths[index], self.mode)
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])
