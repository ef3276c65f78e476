"""Image transforms of Zhai & Wu (BMVC 2019, Sec. 4.1), driven by a model's input spec.

Train: resize to ``resize x resize`` (256x256), random crop to ``image_size`` (224; 227 for
GoogleNet) and horizontal mirroring. Test: resize to ``resize x resize`` and centre crop.
Both end with ``ToTensor`` + ``Normalize(mean, std)``. Datasets whose classes are not mirror
symmetric (Omniglot characters) switch the flip off and use small random shifts instead
(random crop with zero padding), see :class:`Augmentation`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, cast, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:  # torchvision is imported when a transform is built: it costs ~2 s
    from torchvision import transforms as T

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@runtime_checkable
class InputSpecLike(Protocol):
    """What the transforms read from a model's input spec (``losszoo.models.InputSpec``)."""

    channels: int
    image_size: int
    resize: int
    mean: Sequence[float]
    std: Sequence[float]


@dataclass(frozen=True)
class ImageInputSpec:
    """A dataset's own default input spec (same fields as ``losszoo.models.InputSpec``)."""

    channels: int = 3
    image_size: int = 224
    resize: int = 256
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD


IMAGENET_INPUT_SPEC = ImageInputSpec()


@dataclass(frozen=True)
class Augmentation:
    """Training augmentation of a dataset.

    Attributes:
        horizontal_flip: mirror images at random (the paper's default; off for characters,
            whose mirror image is another glyph or none).
        crop_padding: zero padding added before the random crop, so a crop of an image that is
            already at ``image_size`` still shifts it by up to this many pixels.
    """

    horizontal_flip: bool = True
    crop_padding: int = 0


PAPER_AUGMENTATION = Augmentation()


def check_input_spec(spec: object) -> InputSpecLike:
    """Return ``spec`` if it has usable ``channels``/``image_size``/``resize``/``mean``/``std``."""
    missing = [
        name for name in ("channels", "image_size", "resize", "mean", "std") if not hasattr(spec, name)
    ]
    if missing:
        raise TypeError(
            f"input_spec {spec!r} lacks {', '.join(missing)}; pass an object with channels, "
            "image_size, resize, mean and std (e.g. model.input_spec)"
        )
    spec = cast(InputSpecLike, spec)
    if spec.channels not in (1, 3):
        raise ValueError(f"input_spec.channels must be 1 (grey) or 3 (RGB), got {spec.channels}")
    if not 0 < spec.image_size <= spec.resize:
        raise ValueError(
            "input_spec needs 0 < image_size <= resize, got "
            f"image_size={spec.image_size}, resize={spec.resize}"
        )
    if len(spec.mean) != spec.channels or len(spec.std) != spec.channels:
        raise ValueError(
            f"input_spec mean {tuple(spec.mean)} and std {tuple(spec.std)} need one value per "
            f"channel ({spec.channels})"
        )
    return spec


def image_mode(spec: InputSpecLike) -> str:
    """The PIL mode images are converted to: ``"L"`` for 1 channel, ``"RGB"`` for 3."""
    return "L" if spec.channels == 1 else "RGB"


def _crop_steps(spec: InputSpecLike, train: bool, augmentation: Augmentation) -> list:
    from torchvision import transforms as T

    if train:
        steps: list = [T.RandomCrop(spec.image_size, padding=augmentation.crop_padding or None)]
        if augmentation.horizontal_flip:
            steps.append(T.RandomHorizontalFlip())
    else:
        steps = [T.CenterCrop(spec.image_size)]
    return steps


def build_transform(
    spec: InputSpecLike, *, train: bool, augmentation: Augmentation = PAPER_AUGMENTATION
) -> T.Compose:
    """PIL image -> normalized ``[C, image_size, image_size]`` tensor (paper Sec. 4.1)."""
    from torchvision import transforms as T

    check_input_spec(spec)
    return T.Compose(
        [
            T.Resize((spec.resize, spec.resize)),
            *_crop_steps(spec, train, augmentation),
            T.ToTensor(),
            T.Normalize(tuple(spec.mean), tuple(spec.std)),
        ]
    )


class TensorTransform:
    """The same pipeline for a ``[C, resize, resize]`` tensor, without PIL.

    Equivalent to ``RandomCrop(image_size, padding) + RandomHorizontalFlip`` (train) or
    ``CenterCrop(image_size)`` (test), then ``ToTensor`` scaling (uint8 input is divided by
    255; float input is taken as [0, 1]) and ``Normalize``. Written out because torchvision's
    per-call checks cost several times the arithmetic on 28x28 images. Randomness comes from
    torch's global generator, as in torchvision (so DataLoader worker seeding applies).
    """

    def __init__(
        self, spec: InputSpecLike, *, train: bool, augmentation: Augmentation = PAPER_AUGMENTATION
    ) -> None:
        check_input_spec(spec)
        self.size = spec.image_size
        self.train = train
        self.padding = augmentation.crop_padding if train else 0
        self.flip = train and augmentation.horizontal_flip
        self.mean = torch.tensor(spec.mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(spec.std, dtype=torch.float32).view(-1, 1, 1)
        self._shift = self.mean / self.std

    def __call__(self, image: Tensor) -> Tensor:
        if self.padding:
            image = F.pad(image, (self.padding,) * 4)
        height, width = image.shape[-2:]
        if self.train:
            top = int(torch.randint(height - self.size + 1, ()))
            left = int(torch.randint(width - self.size + 1, ()))
        else:  # torchvision's CenterCrop rounding
            top, left = round((height - self.size) / 2.0), round((width - self.size) / 2.0)
        image = image[..., top : top + self.size, left : left + self.size]
        if self.flip and bool(torch.rand(()) < 0.5):
            image = image.flip(-1)
        scale = 255.0 if image.dtype == torch.uint8 else 1.0
        return image.float().div_(self.std * scale).sub_(self._shift)
