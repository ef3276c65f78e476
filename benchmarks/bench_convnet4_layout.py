"""ConvNet4 (the embedded Omniglot backbone) in NCHW vs channels-last (NHWC) memory layout.

    python benchmarks/bench_convnet4_layout.py [--repeats 20] [--json out.json]

Times one training step (forward + backward, batch 80) and one embedding batch (forward, 256)
per layout, interleaved round by round so that a load change hits both layouts alike; prints
the median seconds and the NCHW / NHWC ratio. The shipped model uses NHWC.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # time this checkout's losszoo
from benchmarks._common import finish, machine_info  # noqa: E402
from losszoo.models.convnet4 import ConvNet4  # noqa: E402

LAYOUTS = {"nchw": torch.contiguous_format, "nhwc": torch.channels_last}


def step(net: torch.nn.Module, images: torch.Tensor, train: bool) -> float:
    start = time.perf_counter()
    if train:
        net(images).square().sum().backward()
    else:
        with torch.no_grad():
            net(images)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    machine = machine_info(torch.device("cpu"))
    torch.manual_seed(0)
    nets = {}
    for name, layout in LAYOUTS.items():
        # The shipped class is NHWC; convolutions follow the weights' layout.
        nets[name] = ConvNet4().to(memory_format=layout)
    rows = []
    for task, batch, train in (("train step", 80, True), ("embed", 256, False)):
        images = {name: torch.randn(batch, 1, 28, 28).contiguous(memory_format=layout)
                  for name, layout in LAYOUTS.items()}
        times: dict[str, list[float]] = {name: [] for name in LAYOUTS}
        for round_ in range(args.repeats + 3):
            for name, net in nets.items():
                net.train(train)
                seconds = step(net, images[name], train)
                if round_ >= 3:  # warm-up rounds
                    times[name].append(seconds)
        medians = {name: statistics.median(values) for name, values in times.items()}
        ratio = medians["nchw"] / medians["nhwc"]
        print(f"{task} (batch {batch}): NCHW {medians['nchw'] * 1e3:.1f} ms, "
              f"NHWC {medians['nhwc'] * 1e3:.1f} ms, NCHW/NHWC {ratio:.2f}")
        rows.append({"task": task, "batch": batch, **{f"{k}_s": v for k, v in medians.items()},
                     "ratio_nchw_over_nhwc": ratio})
    finish(machine, args, rows)


if __name__ == "__main__":
    main()
