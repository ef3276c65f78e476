"""Harness overhead: images/s of the trainer's epoch loop against a bare training loop.

Both loops train the same model, loss and optimizer on the same DataLoader (so data loading
costs the same); the bare loop calls the loss's equation directly (no input checks), does no
progress bar, no ``.item()`` and no bookkeeping. Goal: the harness within 5% of the bare loop.

    python benchmarks/bench_harness.py                      # embedded Omniglot, convnet4, batch 80
    python benchmarks/bench_harness.py --loss triplet --batches 60 --rounds 5 --json out.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
from rich.progress import Progress

from losszoo.training.config import build_config
from losszoo.training.plan import plan_run
from losszoo.training.trainer import _train_epoch, build_run


def bare_epoch(run) -> float:
    """Seconds for one epoch of plain forward / backward / step over ``run.loader``."""
    run.model.train()
    run.loss.train()
    start = time.perf_counter()
    for images, labels in run.loader:
        images, labels = images.to(run.device), labels.to(run.device)
        value = run.loss.compute(run.model(images), labels)
        run.optimizer.zero_grad(set_to_none=True)
        value.backward()
        run.optimizer.step()
    if run.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def harness_epoch(run, epoch: int) -> float:
    """Seconds for one epoch of the trainer's own loop (progress bar on, as for a user)."""
    before = run.train_seconds
    with Progress(transient=True) as bar:
        _train_epoch(run, epoch, bar)
    if run.device.type == "cuda":
        torch.cuda.synchronize()
    return run.train_seconds - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loss", default="normsoftmax")
    parser.add_argument("--dataset", default="omniglot")
    parser.add_argument("--backbone", default=None, help="default: the dataset preset's")
    parser.add_argument("--batches", type=int, default=40, help="batches per timed epoch")
    parser.add_argument("--rounds", type=int, default=5, help="alternating bare/harness epochs")
    parser.add_argument("--device", default=None)
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args()

    config = build_config({"loss": args.loss, "dataset": args.dataset, "backbone": args.backbone,
                           "batches_per_epoch": args.batches, "warmup_epochs": 0,
                           "device": args.device})
    run = build_run(plan_run(config))
    images = args.batches * config.batch_size
    bare_epoch(run)  # warm-up: allocator, oneDNN kernels
    bare, harness = [], []
    for round_ in range(args.rounds):
        bare.append(images / bare_epoch(run))
        harness.append(images / harness_epoch(run, round_))
    bare_rate, harness_rate = statistics.median(bare), statistics.median(harness)
    figures = {
        "loss": args.loss, "dataset": args.dataset, "backbone": config.backbone,
        "batch_size": config.batch_size, "batches": args.batches, "rounds": args.rounds,
        "device": str(run.device), "torch_threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "bare_images_per_s": bare_rate, "harness_images_per_s": harness_rate,
        "harness_over_bare": harness_rate / bare_rate,
    }
    print(f"{args.loss} on {args.dataset}/{config.backbone}, batch {config.batch_size}, "
          f"{args.batches} batches x {args.rounds} rounds, {run.device}, "
          f"{torch.get_num_threads()} threads")
    print(f"bare loop : {bare_rate:8.1f} images/s  (rounds: {', '.join(f'{r:.0f}' for r in bare)})")
    print(f"harness   : {harness_rate:8.1f} images/s  (rounds: {', '.join(f'{r:.0f}' for r in harness)})")
    print(f"harness / bare = {harness_rate / bare_rate:.3f}  (goal >= 0.95)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(figures, fh, indent=2)


if __name__ == "__main__":
    main()
