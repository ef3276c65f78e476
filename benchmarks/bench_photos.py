"""Real photos on a CPU: images/s of the JPEG pipeline (decode + resize + augmentation, one
process) against EfficientNet-Lite0's train step (forward, backward, SGD step) at the image
sizes a CPU fine-tuning would use, from the JPEG files and from the decoded cache
(``LOSSZOO_DECODED_CACHE``, losszoo/data/decoded.py). ``load/step`` is the share of a step
that loading the same images costs when done in the training process (``--workers 0``); with
workers it is the share of the CPU the workers take from the step.

    python benchmarks/bench_photos.py --data-root ../shared/datasets/cub100 --sizes 128 160 \\
        --batch 60 --steps 5 --images 300 --json docs/bench_photos.json

Needs timm (the step runs without the weights package: random init costs the same).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import finish, machine_info  # noqa: E402

from losszoo.data.base import ImageListing  # noqa: E402
from losszoo.data.cub import load_cub200  # noqa: E402
from losszoo.data.decoded import CACHE_ENV  # noqa: E402
from losszoo.data.transforms import PAPER_AUGMENTATION  # noqa: E402
from losszoo.models import create_model  # noqa: E402
from losszoo.models.efficientnet_lite import VARIANTS  # noqa: E402


def pipeline_rate(listing, spec, cache: str | None) -> float:
    """Images/s of ``dataset[i]`` over the listing (decode, resize, random crop, flip,
    normalize; from the decoded copy in ``cache`` when given, decoded before timing)."""
    if cache:
        os.environ[CACHE_ENV] = cache
    else:
        os.environ.pop(CACHE_ENV, None)
    dataset = listing.build_dataset(spec, train=True, augmentation=PAPER_AUGMENTATION)
    dataset[0]  # torchvision imported, first file opened
    start = time.perf_counter()
    for index in range(len(dataset)):
        dataset[index]
    return len(dataset) / (time.perf_counter() - start)


def step_rate(size: int, batch: int, steps: int) -> float:
    """Images/s of lite0's train step on ``batch`` images of ``size`` px (after one warm-up step)."""
    model = create_model("efficientnet_lite0", 128, pretrained=False).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images = torch.randn(batch, 3, size, size)

    def step() -> None:
        loss = model(images).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default="../shared/datasets/cub100")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 160])
    parser.add_argument("--batch", type=int, default=60)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--images", type=int, default=300, help="photos through the pipeline per size")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    machine = machine_info(torch.device("cpu"))
    full = load_cub200(args.data_root, "train")
    listing = ImageListing(full.items[:args.images], full.raw_labels[:args.images])
    base = VARIANTS[0].input_spec
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for size in args.sizes:
            spec = replace(base, image_size=size, resize=round(base.resize * size / base.image_size))
            train = step_rate(size, args.batch, args.steps)
            row = {"size": size, "resize": spec.resize, "step_images_per_s": train}
            for source, folder in (("files", None), ("decoded", cache)):
                load = pipeline_rate(listing, spec, folder)
                row |= {f"{source}_images_per_s": load, f"{source}_load_per_step": train / load}
                print(f"{size} px (resize {spec.resize}), {source}: pipeline {load:.0f} img/s, "
                      f"lite0 train step {train:.1f} img/s, load/step {train / load:.1%}", flush=True)
            rows.append(row)
    finish(machine, args, rows)


if __name__ == "__main__":
    main()
