"""NormSoftmax class subsampling at scale (Zhai & Wu 2019, Sec. 4.5): step time and peak memory.

    OMP_NUM_THREADS=1 python benchmarks/bench_class_subsample.py [--device cpu|cuda]
        [--steps 20] [--json results.json] [--only full-10k,sub-1M]

Cases: full softmax over 10k classes, and r = 1% subsampling at 10k, 100k and 1M classes (the
softmax then runs over ceil(r * C) = 100, 1,000 and 10,000 classes). Batch 75 = 15 classes x
5 samples, dim 512, temperature 0.05, float32. Each phase of each case (below) runs in its own
process, so that its peak memory (``ru_maxrss``; ``torch.cuda.max_memory_allocated`` on CUDA)
is its own. Times are wall-clock: run it on an otherwise idle machine.

Three step times per case, each the median over ``--steps`` timed steps after warm-up:

- ``loss``: ``loss(x, labels).backward()``, the cost the subsampling is about;
- ``train``: that plus ``torch.optim.SGD.step()`` as the trainer runs it by default (momentum
  0.9; weight decay 1e-4 on dense class weights, none on sparse ones, which SGD cannot decay),
  in steady state: for the subsampled cases the momentum buffer is first filled as after a long
  run (every class sampled at least once), since its size, and with it the cost of SGD's sparse
  update, grows with the rows touched so far;
- ``lazy``: the same with ``LazySparseSGD`` (``--lazy-momentum``), which updates only the
  sampled rows (for full-10k, whose gradient is dense, it is SGD).

ratio = time / the full-10k case's ``train`` time (the full softmax's real step). Goal: sub-1M
within 2x of full-10k.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # time this checkout's losszoo
from _common import finish, machine_info  # noqa: E402  (benchmarks/, the script's folder)
from losszoo.losses import NormSoftmax  # noqa: E402
from losszoo.training.optim import LazySparseSGD  # noqa: E402

DIM, BATCH, PER_CLASS = 512, 75, 5
CASES = {  # name -> (classes, r)
    "full-10k": (10_000, 1.0),
    "sub-10k": (10_000, 0.01),
    "sub-100k": (100_000, 0.01),
    "sub-1M": (1_000_000, 0.01),
}
BASELINE = "full-10k"


def batch(num_classes: int, step: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(step)
    labels = torch.randperm(num_classes, generator=g)[: BATCH // PER_CLASS].repeat_interleave(PER_CLASS)
    x = torch.randn(BATCH, DIM, generator=g)
    return x.to(device).requires_grad_(True), labels.to(device)


def fill_momentum(loss: NormSoftmax, optimizer: torch.optim.SGD) -> None:
    """Put SGD's momentum buffer in the state it reaches once every class has been sampled.

    SGD keeps a sparse (coalesced) buffer for sparse gradients; after enough steps it holds a
    row for every class. One step on a sparse gradient over all rows gets it there directly.
    """
    weight = loss.proxies.weight
    rows = torch.arange(loss.num_classes, device=weight.device)
    weight.grad = torch.sparse_coo_tensor(rows[None], torch.zeros_like(weight), weight.shape).coalesce()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


PHASES = {"loss": None, "train": torch.optim.SGD, "lazy": LazySparseSGD}


def run_phase(name: str, phase: str, steps: int, device: torch.device) -> dict:
    """Time one phase of one case in this process; its peak memory is this process's."""
    num_classes, ratio = CASES[name]
    torch.manual_seed(0)
    loss = NormSoftmax(DIM, num_classes, temperature=0.05, class_subsample=ratio).to(device)
    optimizer = None
    if PHASES[phase] is not None:
        sparse = loss.sparse_gradients
        optimizer = PHASES[phase](loss.parameters(), lr=0.01, momentum=0.9, weight_decay=0.0 if sparse else 1e-4)
        if sparse and phase == "train":
            fill_momentum(loss, optimizer)

    def step(i: int) -> float:
        x, labels = batch(num_classes, i, device)
        sync(device)
        start = time.perf_counter()
        loss(x, labels).backward()
        if optimizer is not None:
            optimizer.step()
        loss.proxies.weight.grad = None
        sync(device)
        return time.perf_counter() - start

    for i in range(3):  # warm-up
        step(i)
    figures = {f"{phase}_ms": 1e3 * statistics.median(step(i) for i in range(steps))}
    if optimizer is not None:
        buffer = optimizer.state[loss.proxies.weight]["momentum_buffer"]
        figures[f"{phase}_momentum_rows"] = buffer._nnz() if buffer.is_sparse else buffer.shape[0]
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    if device.type == "cuda":
        peak_mib = torch.cuda.max_memory_allocated(device) / 2**20
    return {f"{phase}_peak_mib": peak_mib, **figures}


def run_case(name: str, steps: int, device: str) -> dict:
    """Every phase of one case, each in a fresh process."""
    num_classes, ratio = CASES[name]
    row = {"case": name, "classes": num_classes, "r": ratio,
           "softmax_classes": math.ceil(Fraction(str(ratio)) * num_classes),
           "weights_mib": num_classes * DIM * 4 / 2**20}
    for phase in PHASES:
        command = [sys.executable, __file__, "--case", name, "--phase", phase, "--steps", str(steps),
                   "--device", device]
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        row.update(json.loads(out.strip().splitlines()[-1]))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--only", default="", help="comma-separated case names")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one phase of a case,
    parser.add_argument("--phase", help=argparse.SUPPRESS)  # print its JSON
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("CUDA is not available")
    device = torch.device(args.device)
    if args.case:
        print(json.dumps(run_phase(args.case, args.phase, args.steps, device)))
        return

    unknown = set(args.only.split(",")) - set(CASES) if args.only else set()
    if unknown:
        parser.error(f"unknown case(s) {sorted(unknown)}; known: {', '.join(CASES)}")
    names = [n for n in CASES if not args.only or n in args.only.split(",")]
    machine = machine_info(device)
    print(f"{'case':<9} {'classes':>9} {'r':>5} {'weights MiB':>11} {'loss ms':>8} {'train ms':>9} "
          f"{'ratio':>6} {'lazy ms':>8} {'ratio':>6}  peak MiB loss/train/lazy")
    rows = [run_case(name, args.steps, args.device) for name in names]
    base = next((r for r in rows if r["case"] == BASELINE), None)
    for row in rows:
        for phase in ("train", "lazy"):
            row[f"{phase}_ratio"] = row[f"{phase}_ms"] / base["train_ms"] if base else None
        ratios = [f"{row[p + '_ratio']:>6.2f}" if base else f"{'-':>6}" for p in ("train", "lazy")]
        print(f"{row['case']:<9} {row['classes']:>9} {row['r']:>5g} {row['weights_mib']:>11.0f} "
              f"{row['loss_ms']:>8.2f} {row['train_ms']:>9.2f} {ratios[0]} {row['lazy_ms']:>8.2f} {ratios[1]} "
              f" {row['loss_peak_mib']:.0f}/{row['train_peak_mib']:.0f}/{row['lazy_peak_mib']:.0f}")
    finish(machine, args, rows)


if __name__ == "__main__":
    main()
