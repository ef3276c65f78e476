"""Time building one epoch of batches for CUB- and SOP-sized label sets (prints figures).

    OMP_NUM_THREADS=1 python benchmarks/bench_samplers.py [--repeats 20]

CUB-200-2011 train: 100 classes, 5,864 images (~59 each), batch 75 = 3 classes x 25.
Stanford Online Products train: 11,318 classes, 59,551 images (2-12 each), batch 75 = 15 x 5.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # time this checkout's losszoo
from losszoo.samplers import create_sampler  # noqa: E402

# name, classes, images, smallest class, samples per class (the paper's S)
LABEL_SETS = [("CUB-like", 100, 5864, 50, 25), ("SOP-like", 11318, 59551, 2, 5)]
BATCH_SIZE = 75


def synthetic_labels(num_classes: int, num_items: int, min_per_class: int, seed: int = 0) -> np.ndarray:
    """Shuffled labels: every class gets ``min_per_class`` items, the rest spread at random."""
    rng = np.random.default_rng(seed)
    extra = rng.multinomial(num_items - num_classes * min_per_class, np.full(num_classes, 1 / num_classes))
    return rng.permutation(np.repeat(np.arange(num_classes), min_per_class + extra))


def milliseconds(function, repeats: int) -> tuple[float, float]:
    """Median and best wall time of ``function()`` over ``repeats`` calls, in ms."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.processor() or platform.machine()}")
    print(f"{'labels':<9} {'sampler':<15} {'batches':>7} {'init ms':>8} {'epoch ms (median/best)':>23} "
          f"{'iterate ms':>11}")
    for label_set, num_classes, num_items, min_per_class, per_class in LABEL_SETS:
        labels = synthetic_labels(num_classes, num_items, min_per_class)
        for name in ("class_balanced", "npair", "random"):
            def build():
                return create_sampler(name, labels, batch_size=BATCH_SIZE, samples_per_class=per_class)

            init_ms, _ = milliseconds(build, args.repeats)
            sampler = build()
            epochs = iter(range(10**9))
            epoch_median, epoch_best = milliseconds(lambda: sampler.epoch_batches(next(epochs)), args.repeats)
            iterate_ms, _ = milliseconds(lambda: list(sampler), args.repeats)  # + conversion to lists
            print(f"{label_set:<9} {name:<15} {len(sampler):>7} {init_ms:>8.2f} "
                  f"{epoch_median:>14.2f} / {epoch_best:<6.2f} {iterate_ms:>11.2f}")


if __name__ == "__main__":
    main()
