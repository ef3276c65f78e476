"""Forward+backward time of every zoo loss against its pytorch-metric-learning counterpart.

    OMP_NUM_THREADS=1 python benchmarks/bench_losses.py [--device cpu|cuda] [--threads 1]
        [--rounds 7] [--json results.json] [--only triplet,margin]

Both implementations get identical inputs: the same float32 embeddings [B, 512] (Gaussian
class centres plus noise, so that positives are nearer than negatives but mining still finds
many triplets), the same labels, and the same initial class weights (copied). One timed step
is ``loss(x, labels).backward()`` after setting every gradient to None, miners included.

Labels are class-balanced: batch 75 = 15 classes x 5 samples, batch 256 = 64 classes x 4,
N-pair: N classes x 2 (batch 75 -> 74 = 37 x 2, 256 = 128 x 2, the ``npair`` sampler's layout).
The batch's classes are drawn from C = 100 (CUB-like) or 11,318 (SOP-like) classes; C only
changes the cost of the losses with class weights (NormSoftmax, CosFace, Proxy-NCA, and Margin's
per-class beta), so the pair losses are timed once per batch size.

Timing: ``torch.utils.benchmark.Timer`` on the process's CPU time by default on CPU with one
thread (``--clock cpu``: time the other processes of a shared machine take from the core is
not counted; wall-clock time otherwise, and on CUDA), warm-up calls first, then ``--rounds`` rounds that
alternate ours and PML's (so that load changes on a shared machine hit both alike), each round
one block of calls lasting about ``--block-ms``; the figure is the median per-call time over
the rounds. ratio = ours / PML.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from pytorch_metric_learning import distances as pml_distances
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning import miners as pml_miners
from torch import Tensor, nn
from torch.utils.benchmark import Timer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # time this checkout's losszoo
from _common import finish, machine_info  # noqa: E402  (benchmarks/, the script's folder)
from losszoo.losses import (  # noqa: E402
    Contrastive,
    CosFace,
    LiftedStructure,
    Margin,
    NormSoftmax,
    NPair,
    ProxyNCA,
    Triplet,
)

DIM = 512
BATCHES = {75: 5, 256: 4}  # batch size -> samples per class
CLASS_COUNTS = (100, 11318)

LossFn = Callable[[Tensor, Tensor], Tensor]


@dataclass
class Pair:
    """Our loss and PML's, each as a callable plus the modules whose parameters it trains."""

    ours: LossFn
    theirs: LossFn
    modules: tuple[nn.Module, ...]
    note: str = ""


def with_miner(loss: nn.Module, miner: nn.Module) -> LossFn:
    return lambda x, y: loss(x, y, miner(x, y))


def copy_class_weights(ours: Tensor, theirs: Tensor) -> None:
    with torch.no_grad():
        theirs.copy_(ours if theirs.shape == ours.shape else ours.T)


def normsoftmax(c: int) -> Pair:
    ours = NormSoftmax(DIM, c, temperature=0.05)
    theirs = pml_losses.NormalizedSoftmaxLoss(c, DIM, temperature=0.05)
    copy_class_weights(ours.proxies.weight, theirs.W)
    return Pair(ours, theirs, (ours, theirs))


def cosface(c: int) -> Pair:
    ours = CosFace(DIM, c, scale=64.0, margin=0.35)
    theirs = pml_losses.CosFaceLoss(c, DIM, margin=0.35, scale=64)
    copy_class_weights(ours.proxies.weight, theirs.W)
    return Pair(ours, theirs, (ours, theirs))


def proxynca(c: int, include_positive: bool) -> Pair:
    ours = ProxyNCA(DIM, c, scale=1.0, include_positive=include_positive)
    theirs = pml_losses.ProxyNCALoss(c, DIM, softmax_scale=1)
    copy_class_weights(ours.proxies.weight, theirs.proxies)
    note = "" if include_positive else "paper form (positive not in denominator); PML has only the other"
    return Pair(ours, theirs, (ours, theirs), note)


def triplet(c: int) -> Pair:
    ours = Triplet(margin=0.2, mining="semihard")
    loss = pml_losses.TripletMarginLoss(margin=0.2)
    miner = pml_miners.TripletMarginMiner(margin=0.2, type_of_triplets="semihard")
    return Pair(ours, with_miner(loss, miner), ())


def margin(c: int) -> Pair:
    ours = Margin(DIM, c, alpha=0.2, beta=1.2, beta_mode="class")
    loss = pml_losses.MarginLoss(margin=0.2, beta=1.2, learn_beta=True, num_classes=c)
    miner = pml_miners.DistanceWeightedMiner(cutoff=0.5, nonzero_loss_cutoff=1.4)
    return Pair(ours, with_miner(loss, miner), (ours, loss))


def npair(c: int) -> Pair:
    theirs = pml_losses.NPairsLoss(distance=pml_distances.DotProductSimilarity(normalize_embeddings=False))
    return Pair(NPair(), theirs, (), "ours adds Sohn's L2 penalty (l2_reg=0.002)")


def lifted(c: int) -> Pair:
    theirs = pml_losses.LiftedStructureLoss(
        neg_margin=1, pos_margin=0, distance=pml_distances.LpDistance(normalize_embeddings=False)
    )
    return Pair(LiftedStructure(alpha=1.0), theirs, ())


def contrastive(c: int) -> Pair:
    theirs = pml_losses.ContrastiveLoss(pos_margin=0, neg_margin=1.0)
    note = "PML: unsquared terms, positive/negative means over non-zero terms"
    return Pair(Contrastive(margin=1.0), theirs, (), note)


# name -> (factory, depends on the number of classes, PML counterpart)
CASES: dict[str, tuple[Callable[[int], Pair], bool, str]] = {
    "normsoftmax": (normsoftmax, True, "NormalizedSoftmaxLoss(temperature=0.05)"),
    "cosface": (cosface, True, "CosFaceLoss(margin=0.35, scale=64)"),
    "proxynca+": (lambda c: proxynca(c, True), True, "ProxyNCALoss(softmax_scale=1)"),
    "proxynca": (lambda c: proxynca(c, False), True, "ProxyNCALoss(softmax_scale=1)"),
    "triplet": (triplet, False, "TripletMarginLoss(0.2) + TripletMarginMiner(semihard)"),
    "margin": (margin, True, "MarginLoss(0.2, beta=1.2, learn_beta, C) + DistanceWeightedMiner"),
    "npair": (npair, False, "NPairsLoss(DotProductSimilarity(normalize_embeddings=False))"),
    "lifted": (lifted, False, "LiftedStructureLoss(1, 0, LpDistance(normalize_embeddings=False))"),
    "contrastive": (contrastive, False, "ContrastiveLoss(pos_margin=0, neg_margin=1.0)"),
}


def make_batch(name: str, batch: int, num_classes: int, device: torch.device, seed: int = 0):
    """Class-balanced labels drawn from ``num_classes`` classes and clustered embeddings."""
    g = torch.Generator().manual_seed(seed)
    per_class = 2 if name == "npair" else BATCHES[batch]
    classes = torch.randperm(num_classes, generator=g)[: batch // per_class]
    labels = classes.repeat_interleave(per_class)
    centres = torch.randn(num_classes, DIM, generator=g)
    x = centres[labels] + 2.0 * torch.randn(len(labels), DIM, generator=g)
    return x.to(device), labels.to(device)


def timed_step(fn: LossFn, x: Tensor, labels: Tensor, parameters: list[Tensor]) -> Callable[[], None]:
    def step() -> None:
        x.grad = None
        for p in parameters:
            p.grad = None
        fn(x, labels).backward()

    return step


def time_pair(steps: dict[str, Callable[[], None]], *, threads: int, warmup: int, rounds: int,
              block_ms: float, clock: Callable[[], float]) -> dict[str, list[float]]:
    """Per-call seconds of each step: ``rounds`` alternating blocks, after warm-up."""
    timers = {
        k: Timer("step()", globals={"step": s}, num_threads=threads, timer=clock) for k, s in steps.items()
    }
    numbers = {}
    for key, timer in timers.items():
        timer.timeit(warmup)
        per_call = timer.timeit(max(1, warmup)).mean
        numbers[key] = max(1, int(block_ms * 1e-3 / per_call))
    results: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(rounds):
        for key, timer in timers.items():
            results[key].append(timer.timeit(numbers[key]).mean)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--block-ms", type=float, default=200.0)
    parser.add_argument(
        "--clock", choices=("cpu", "wall"), default=None,
        help="cpu: process CPU time (default on CPU with 1 thread: robust to other processes "
        "sharing the cores); wall: wall-clock time (default otherwise, always on CUDA)",
    )
    parser.add_argument("--only", default="", help="comma-separated case names")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("CUDA is not available")
    device = torch.device(args.device)
    if args.clock is None:
        args.clock = "cpu" if device.type == "cpu" and args.threads == 1 else "wall"
    if args.clock == "cpu" and (device.type == "cuda" or args.threads != 1):
        parser.error("--clock cpu measures a single CPU thread: use --device cpu --threads 1")
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(args.threads)
    names = [n for n in CASES if not args.only or n in args.only.split(",")]

    machine = machine_info(device, pytorch_metric_learning=__import__("pytorch_metric_learning").__version__,
                           clock=args.clock)
    header = f"{'loss':<12} {'batch':>5} {'classes':>7} {'ours ms':>9} {'PML ms':>9} {'ratio':>6}  spread ours/PML %"
    print(header)
    rows = []
    for name in names:
        factory, uses_classes, counterpart = CASES[name]
        for batch in BATCHES:
            for num_classes in CLASS_COUNTS if uses_classes else CLASS_COUNTS[-1:]:
                torch.manual_seed(0)
                pair = factory(num_classes)
                for module in pair.modules:
                    module.to(device)
                parameters = [p for m in pair.modules for p in m.parameters()]
                x, labels = make_batch(name, batch, num_classes, device)
                x.requires_grad_(True)
                torch.manual_seed(0)
                values = {"ours": float(pair.ours(x, labels).detach()), "pml": float(pair.theirs(x, labels).detach())}
                steps = {
                    "ours": timed_step(pair.ours, x, labels, parameters),
                    "pml": timed_step(pair.theirs, x, labels, parameters),
                }
                times = time_pair(steps, threads=args.threads, warmup=args.warmup, rounds=args.rounds,
                                  block_ms=args.block_ms, clock=clock)
                med = {k: statistics.median(v) for k, v in times.items()}
                spread = {k: 100 * (max(v) - min(v)) / med[k] for k, v in times.items()}
                row = {
                    "loss": name, "pml": counterpart, "batch": len(labels),
                    "classes": num_classes if uses_classes else None,
                    "ours_ms": 1e3 * med["ours"], "pml_ms": 1e3 * med["pml"],
                    "ratio": med["ours"] / med["pml"],
                    "ours_rounds_ms": [1e3 * t for t in times["ours"]],
                    "pml_rounds_ms": [1e3 * t for t in times["pml"]],
                    "value_ours": values["ours"], "value_pml": values["pml"], "note": pair.note,
                }
                rows.append(row)
                classes = str(num_classes) if uses_classes else "-"
                print(f"{name:<12} {len(labels):>5} {classes:>7} {row['ours_ms']:>9.3f} {row['pml_ms']:>9.3f} "
                      f"{row['ratio']:>6.2f}  {spread['ours']:.0f}/{spread['pml']:.0f}", flush=True)
    finish(machine, args, rows)


if __name__ == "__main__":
    main()
