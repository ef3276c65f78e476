"""CPU throughput per backbone: today's defaults beside losszoo's settings, interleaved in one run.

For each backbone at its usual size (convnet4 28 px batch 80: the Omniglot preset; resnet18 and
resnet50 224 px batch 75: the paper; timm's efficientnet_lite0, no weights needed, 224 and
160 px batch 60), images/s of a train step (forward, NormSoftmax loss, backward, SGD step) and
of embedding (eval forward, batch 256 for convnet4 else 64), model FLOPs per image
(``torch.utils.flop_counter``, forward; a train step counts 3x), the achieved GFLOP/s and its
ratio to this machine's float32 GEMM peak, measured by the same script (a 2048^3 matmul on the
same threads, best of the rounds).

Variants, each measured in a fresh process (the allocator setting is per process):

- ``default``: today's main: glibc's allocator as it comes, torch's default threads, NCHW
  (convnet4: NHWC, as shipped before);
- ``losszoo``: ``losszoo.runtime.tune_process()`` (allocator, threads) and the backbone's
  declared memory format (``Backbone.channels_last``);
- ``compile``: ``losszoo`` plus ``torch.compile`` of the backbone; its compile seconds (the first
  train and embedding calls, less a steady step) are reported apart, with the number of steps
  a run needs to earn them back;
- ``bf16``: ``losszoo`` plus bfloat16 autocast (loss in float32), only where
  ``runtime.native_bf16()`` (AMX / AVX512-BF16), or with ``--force-bf16``.

Rounds interleave every (backbone, variant) cell, so load from other processes hits all alike;
each figure is the median over rounds, ratios are to ``default`` of the same backbone. Peak RSS
is the worker process's (one backbone, one variant).

    python benchmarks/bench_cpu_train.py --rounds 3 --json docs/bench_cpu_train.json
    python benchmarks/bench_cpu_train.py --quick     # a smoke check: tiny sizes, one round
    python benchmarks/bench_cpu_train.py --quick --backbones convnet4 --variants default,compile
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # time this checkout's losszoo


@dataclass(frozen=True)
class Shape:
    """One benchmarked backbone at one input size."""

    label: str
    backbone: str
    image_size: int
    batch: int
    embed_batch: int
    dim: int = 512


SHAPES = (
    Shape("convnet4", "convnet4", 28, 80, 256, dim=64),
    Shape("resnet18", "resnet18", 224, 75, 64),
    Shape("resnet50", "resnet50", 224, 75, 64),
    Shape("efficientnet_lite0@224", "timm:efficientnet_lite0", 224, 60, 64),
    Shape("efficientnet_lite0@160", "timm:efficientnet_lite0", 160, 60, 64),
)
QUICK_SIZE = {"convnet4": 28}  # --quick: every other backbone at 64 px, batch 8
VARIANTS = ("default", "losszoo", "compile", "bf16")
SHIPPED_NHWC = ("convnet4",)  # what today's main runs channels-last


# -- one measurement, in its own process ----------------------------------------------------
def measure(shape: Shape, variant: str, seconds: float) -> dict[str, Any]:
    import torch

    from losszoo import create_loss, runtime
    from losszoo.models import create_model

    if variant != "default":
        runtime.tune_process()
    torch.manual_seed(0)
    model = create_model(shape.backbone, shape.dim, pretrained=False)
    if variant == "default" and shape.backbone not in SHIPPED_NHWC:
        model = model.to(memory_format=torch.contiguous_format)
    flops = forward_flops(model, shape)
    compile_s = 0.0
    if variant == "compile":
        model.backbone = torch.compile(model.backbone)
    loss = create_loss("normsoftmax", embedding_dim=shape.dim, num_classes=100)
    optimizer = torch.optim.SGD([*model.parameters(), *loss.parameters()], lr=0.01, momentum=0.9)
    images = torch.randn(shape.batch, model.input_spec.channels, shape.image_size, shape.image_size)
    labels = torch.randint(0, 100, (shape.batch,))
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=variant == "bf16")

    def train_step() -> None:
        with autocast:
            embeddings = model(images)
        value = loss(embeddings.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()

    embed_images = torch.randn(shape.embed_batch, *images.shape[1:])

    def embed_step() -> None:
        with torch.no_grad(), autocast:
            model(embed_images)

    model.train()
    first = timed(train_step)
    train = rate(train_step, shape.batch, seconds)
    model.eval()
    first_embed = timed(embed_step)
    embed = rate(embed_step, shape.embed_batch, seconds)
    if variant == "compile":  # the first calls compiled (train, then eval: a second graph)
        compile_s = first - shape.batch / train + first_embed - shape.embed_batch / embed
    return {"train_images_s": train, "embed_images_s": embed, "forward_flops": flops,
            "compile_s": compile_s, "threads": torch.get_num_threads(),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def forward_flops(model: Any, shape: Shape) -> float:
    """FLOPs of one image's forward pass (a multiply-add counts 2), by torch's flop counter."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    image = torch.randn(1, model.input_spec.channels, shape.image_size, shape.image_size)
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(image)
    return float(counter.get_total_flops())


def timed(step: Any) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def rate(step: Any, batch: int, seconds: float) -> float:
    """Images per second over at least 2 steps and about ``seconds``, after one warm-up step."""
    step()
    steps, start = 0, time.perf_counter()
    while steps < 2 or time.perf_counter() - start < seconds:
        step()
        steps += 1
    return steps * batch / (time.perf_counter() - start)


def gemm_gflops(seconds: float, variant: str) -> dict[str, Any]:
    """float32 GEMM GFLOP/s on this process's threads: the machine's practical peak."""
    import torch

    from losszoo import runtime

    if variant != "default":
        runtime.tune_process()
    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    per_call = 2 * n**3
    calls = rate(lambda: a @ b, 1, seconds)
    return {"gflops": calls * per_call / 1e9, "threads": torch.get_num_threads()}


# -- the interleaved driver -----------------------------------------------------------------
def worker(task: dict[str, Any]) -> None:
    if task["kind"] == "gemm":
        print(json.dumps(gemm_gflops(task["seconds"], task["variant"])))
    else:
        print(json.dumps(measure(Shape(**task["shape"]), task["variant"], task["seconds"])))


def spawn(task: dict[str, Any]) -> dict[str, Any] | None:
    done = subprocess.run([sys.executable, __file__, "--worker", json.dumps(task)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        print(f"  failed: {task.get('shape', {}).get('label', 'gemm')} {task['variant']}: "
              f"{done.stderr.strip().splitlines()[-1:]}", flush=True)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def variants(args: argparse.Namespace) -> list[str]:
    from losszoo import runtime

    chosen = args.variants.split(",")
    unknown = sorted(set(chosen) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"unknown variant(s) {unknown}; known: {','.join(VARIANTS)}")
    if "bf16" in chosen and not (runtime.native_bf16() or args.force_bf16):
        print("bf16: skipped, this CPU has neither AMX nor AVX512-BF16 (--force-bf16 to time "
              "the emulation anyway)")
        chosen.remove("bf16")
    return chosen


def shapes(args: argparse.Namespace) -> list[Shape]:
    chosen = [s for s in SHAPES if s.label in args.backbones.split(",")] if args.backbones else list(SHAPES)
    if args.quick:
        chosen = [Shape(s.label, s.backbone, QUICK_SIZE.get(s.backbone, 64), 8, 8, s.dim) for s in chosen]
    return chosen


def summarize(cells: dict[tuple[str, str], list[dict[str, Any]]], peak: float) -> list[dict[str, Any]]:
    rows = []
    for (label, variant), runs in cells.items():
        if not runs:
            continue
        med = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        base = cells.get((label, "default")) or runs
        base_train = statistics.median(r["train_images_s"] for r in base)
        base_embed = statistics.median(r["embed_images_s"] for r in base)
        train_gflops = 3 * med["forward_flops"] * med["train_images_s"] / 1e9
        row = {"backbone": label, "variant": variant, **med,
               "forward_gflops_per_image": med["forward_flops"] / 1e9,
               "train_ratio": med["train_images_s"] / base_train,
               "embed_ratio": med["embed_images_s"] / base_embed,
               "train_gflops_s": train_gflops, "train_of_peak": train_gflops / peak,
               "embed_gflops_s": med["forward_flops"] * med["embed_images_s"] / 1e9,
               "rounds": len(runs)}
        if variant == "compile" and row["train_ratio"] > 1:
            gain = 1 / base_train - 1 / med["train_images_s"]  # seconds saved per image
            row["break_even_images"] = med["compile_s"] / gain
        rows.append(row)
    return rows


def print_table(rows: list[dict[str, Any]], peak: float) -> None:
    print(f"\nfloat32 GEMM peak: {peak:.1f} GFLOP/s\n")
    print("| backbone | variant | train img/s | x default | embed img/s | x default | "
          "GFLOP/image | train GFLOP/s | of GEMM peak | peak RSS MB | compile s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['backbone']} | {r['variant']} | {r['train_images_s']:.1f} | {r['train_ratio']:.2f} | "
              f"{r['embed_images_s']:.1f} | {r['embed_ratio']:.2f} | {r['forward_gflops_per_image']:.3f} | "
              f"{r['train_gflops_s']:.1f} | {100 * r['train_of_peak']:.0f} % | {r['peak_rss_mb']:.0f} | "
              f"{r['compile_s']:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="per cell and task")
    parser.add_argument("--backbones", default="", help=f"comma-separated, from {','.join(s.label for s in SHAPES)}")
    parser.add_argument("--variants", default=None,
                        help=f"comma-separated, from {','.join(VARIANTS)} (default: all; --quick: default,losszoo)")
    parser.add_argument("--force-bf16", action="store_true")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke check: 64 px, batch 8, 1 round, 0.2 s, no compile")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(json.loads(args.worker))
    if args.quick:
        args.rounds, args.seconds = 1, 0.2
    args.variants = args.variants or ("default,losszoo" if args.quick else ",".join(VARIANTS))
    from benchmarks._common import finish, machine_info
    import torch

    from losszoo import runtime

    machine = machine_info(torch.device("cpu"), usable_cores=runtime.usable_cores(),
                           cpu_flags=sorted(f for f in runtime.cpu_flags() if "avx512" in f or "amx" in f),
                           native_bf16=runtime.native_bf16(),
                           omp_num_threads=os.environ.get("OMP_NUM_THREADS"))
    chosen, cells_shapes = variants(args), shapes(args)
    cells: dict[tuple[str, str], list[dict[str, Any]]] = {
        (s.label, v): [] for s in cells_shapes for v in chosen}
    peaks = []
    for round_ in range(args.rounds):
        print(f"round {round_ + 1}/{args.rounds}", flush=True)
        gemm = spawn({"kind": "gemm", "variant": "losszoo", "seconds": min(args.seconds, 3.0)})
        if gemm:
            peaks.append(gemm["gflops"])
        for shape in cells_shapes:
            for variant in chosen:
                result = spawn({"kind": "cell", "shape": asdict(shape), "variant": variant,
                                "seconds": args.seconds})
                if result:
                    cells[(shape.label, variant)].append(result)
                    print(f"  {shape.label} {variant}: train {result['train_images_s']:.1f} img/s, "
                          f"embed {result['embed_images_s']:.1f} img/s", flush=True)
    peak = max(peaks) if peaks else float("nan")
    rows = summarize(cells, peak)
    print_table(rows, peak)
    machine["gemm_peak_gflops"] = peak
    finish(machine, args, rows)


if __name__ == "__main__":
    main()
