"""The decoded-image cache: the same items as from the files, decoded once, keyed by the file
list and size."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from losszoo.data.base import ImageListing
from losszoo.data.decoded import CACHE_ENV
from losszoo.data.transforms import PAPER_AUGMENTATION, ImageInputSpec

SPEC = ImageInputSpec(channels=3, image_size=12, resize=16, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))


@pytest.fixture
def photos(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for index in range(6):
        path = tmp_path / "photos" / f"{index}.jpg"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (23, 23, 3), dtype=np.uint8)).save(path, quality=90)
        paths.append(path)
    return ImageListing(paths, [0, 0, 1, 1, 2, 2])


@pytest.mark.parametrize("train", [False, True])
def test_items_equal_those_read_from_the_files(photos, tmp_path, monkeypatch, train):
    """Same pixels and, seeded alike, the same random crops and flips (torchvision's
    RandomCrop / RandomHorizontalFlip and the tensor path draw the same numbers)."""
    def items():
        torch.manual_seed(3)
        dataset = photos.build_dataset(SPEC, train=train, augmentation=PAPER_AUGMENTATION)
        return torch.stack([dataset[i][0] for i in range(len(dataset))]), type(dataset).__name__

    monkeypatch.delenv(CACHE_ENV, raising=False)
    files, kind = items()
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    cached, cached_kind = items()
    assert (kind, cached_kind) == ("ImageListDataset", "ArrayImageDataset")
    torch.testing.assert_close(cached, files, atol=1e-5, rtol=0)
    assert len(list((tmp_path / "cache").glob("decoded-16px-RGB-*.npy"))) == 1


def test_keyed_by_file_list_and_size(photos, tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    photos.build_dataset(SPEC, train=False, augmentation=PAPER_AUGMENTATION)
    photos.build_dataset(SPEC, train=True, augmentation=PAPER_AUGMENTATION)  # same array
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1
    bigger = ImageInputSpec(3, 16, 20, SPEC.mean, SPEC.std)
    photos.build_dataset(bigger, train=False, augmentation=PAPER_AUGMENTATION)
    Image.new("RGB", (23, 23), "red").save(photos.items[0])  # a changed file: decoded again
    first = photos.build_dataset(SPEC, train=False, augmentation=PAPER_AUGMENTATION)[0][0]
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 3
    red = (torch.tensor([1.0, 0.0, 0.0]) - torch.tensor(SPEC.mean)) / torch.tensor(SPEC.std)
    torch.testing.assert_close(first[:, 6, 6], red, atol=0.05, rtol=0)
    assert not list((tmp_path / "cache").glob("*.partial"))
