"""Datasets held in memory as uint8 arrays (the embedded Omniglot copy).

When the stored images already have the spec's ``resize`` size, items skip PIL entirely:
uint8 -> float tensor, then crop (+ flip where allowed) and normalize on the tensor. Otherwise
each item goes through the ordinary PIL transforms.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from losszoo.data.labels import LabelledDataset
from losszoo.data.transforms import (
    PAPER_AUGMENTATION,
    Augmentation,
    InputSpecLike,
    TensorTransform,
    build_transform,
    image_mode,
)


@dataclass(frozen=True)
class ImageArrays:
    """A split as arrays: ``images`` uint8 ``[N, H, W]`` (grey) or ``[N, H, W, 3]``, raw labels."""

    images: np.ndarray
    raw_labels: Sequence[Hashable]
    classes: Sequence[Hashable] | None = None

    def build_dataset(
        self, input_spec: InputSpecLike, *, train: bool, augmentation: Augmentation
    ) -> ArrayImageDataset:
        return ArrayImageDataset(
            self.images,
            self.raw_labels,
            input_spec,
            train=train,
            augmentation=augmentation,
            classes=self.classes,
        )


class ArrayImageDataset(LabelledDataset):
    """``(image_tensor, label)`` items from a uint8 image array, transformed per ``input_spec``."""

    def __init__(
        self,
        images: np.ndarray,
        labels: Sequence[Hashable],
        input_spec: InputSpecLike,
        *,
        train: bool = False,
        augmentation: Augmentation = PAPER_AUGMENTATION,
        classes: Sequence[Hashable] | None = None,
    ) -> None:
        if (
            images.dtype != np.uint8
            or images.ndim not in (3, 4)
            or (images.ndim == 4 and images.shape[3] != 3)
        ):
            raise ValueError(
                f"images must be uint8 [N, H, W] or [N, H, W, 3], got {images.dtype} {images.shape}"
            )
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.channels = input_spec.channels
        height, width = images.shape[1:3]
        self.tensor_path = height == width == input_spec.resize
        if self.tensor_path:
            self.images = _to_channels_first(images, input_spec.channels)
            self.transform = TensorTransform(input_spec, train=train, augmentation=augmentation)
        else:
            self.images = torch.from_numpy(np.ascontiguousarray(images))
            self.transform = build_transform(input_spec, train=train, augmentation=augmentation)
            self.mode = image_mode(input_spec)
        self._set_labels(labels, classes)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        image = self.images[index]
        if self.tensor_path:
            if image.shape[0] != self.channels:  # grey stored once, shown as 3 equal channels
                image = image.expand(self.channels, -1, -1)
            tensor = self.transform(image)
        else:
            tensor = self.transform(Image.fromarray(image.numpy()).convert(self.mode))
        return tensor, int(self.labels[index])


def _to_channels_first(images: np.ndarray, channels: int) -> Tensor:
    """uint8 ``[N, H, W(, 3)]`` -> ``[N, C, H, W]``; RGB -> grey as PIL's ``convert("L")`` (ITU-R 601-2)."""
    if images.ndim == 3:
        return torch.from_numpy(np.ascontiguousarray(images[:, None]))
    if channels == 1:
        luma = images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return torch.from_numpy(np.round(luma).astype(np.uint8)[:, None])
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
