"""What a backbone expects of its input images; the data transforms read it."""

from __future__ import annotations

from dataclasses import dataclass

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class InputSpec:
    """Image preprocessing a backbone was built for.

    Attributes:
        channels: colour channels (3 for ImageNet nets, 1 for grey images).
        image_size: side of the square crop fed to the network.
        resize: side the image is resized to before cropping (``>= image_size``).
        mean: per-channel mean subtracted after scaling pixels to [0, 1].
        std: per-channel standard deviation divided by after subtracting ``mean``.
    """

    channels: int
    image_size: int
    resize: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))
        if self.channels < 1:
            raise ValueError(f"channels must be >= 1, got {self.channels}")
        if not 0 < self.image_size <= self.resize:
            raise ValueError(
                f"need 0 < image_size <= resize, got image_size={self.image_size}, "
                f"resize={self.resize}"
            )
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(
                f"mean and std need one value per channel ({self.channels}), "
                f"got mean={self.mean}, std={self.std}"
            )
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std must be > 0, got {self.std}")


def imagenet_input_spec(image_size: int = 224, resize: int = 256) -> InputSpec:
    """The usual ImageNet preprocessing: resize to 256, crop 224 (Zhai & Wu, Sec. 4.1)."""
    return InputSpec(channels=3, image_size=image_size, resize=resize,
                     mean=IMAGENET_MEAN, std=IMAGENET_STD)
