"""A bad image is an error naming the file; `losszoo check-data` decodes a dataset once and lists
every bad file (exit 1), or reports none (exit 0)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from losszoo.cli.main import main
from losszoo.data.base import FileImageReader
from losszoo.errors import DataError


def _folder(root: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    for name in ("alpha", "bravo", "charlie", "delta"):
        for k in range(3):
            path = root / name / f"{k}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (14, 20, 3), dtype=np.uint8)).save(path)
    not_an_image = root / "alpha" / "3.jpg"
    not_an_image.write_bytes(b"this is not a JPEG")
    truncated = root / "delta" / "3.png"
    truncated.write_bytes((root / "delta" / "0.png").read_bytes()[:60])
    return not_an_image, truncated


def test_a_bad_image_is_an_error_naming_the_file(tmp_path):
    not_an_image, truncated = _folder(tmp_path)
    for path in (not_an_image, truncated):
        with pytest.raises(DataError, match=f"cannot decode image {path}"):
            FileImageReader()(path, "RGB")


def test_check_data_lists_every_bad_file(tmp_path, capsys):
    not_an_image, truncated = _folder(tmp_path)
    assert main(["check-data", "--dataset", "imagefolder", "--data-root", str(tmp_path)]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert f"train: cannot decode image {not_an_image}" in out  # alpha, bravo: training classes
    assert f"test: cannot decode image {truncated}" in out  # charlie, delta: test classes
    assert out.count("cannot decode image") == 2


def test_check_data_on_good_data_exits_0(tmp_path, capsys):
    _folder(tmp_path)
    for bad in ("alpha/3.jpg", "delta/3.png"):
        (tmp_path / bad).unlink()
    assert main(["check-data", "--dataset", "imagefolder", "--data-root", str(tmp_path)]) == 0
    assert "cannot decode" not in capsys.readouterr().out


def test_colour_images_into_a_grey_backbone_are_announced(tmp_path):
    import io

    from rich.console import Console

    from losszoo.training.config import TrainConfig
    from losszoo.training.trainer import train

    _folder(tmp_path)
    for bad in ("alpha/3.jpg", "delta/3.png"):
        (tmp_path / bad).unlink()
    buffer = io.StringIO()
    config = TrainConfig(loss="triplet", dataset="imagefolder", data_root=str(tmp_path), backbone="convnet4",
                         pretrained=False, dim=8, batch_size=4, samples_per_class=2, epochs=1,
                         warmup_epochs=0, batches_per_epoch=1, ks=(1,), binary=False, lr_milestones=(1,))
    train(config, tmp_path / "run", progress=False, console=Console(file=buffer, width=300))
    assert "note: imagefolder images have 3 channel(s) and convnet4 takes 1: they are converted (to grey)" \
        in buffer.getvalue()
