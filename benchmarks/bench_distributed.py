"""Distributed training figures: step time and images/s for 1 vs 2 ranks (DDP, global-batch
loss), and peak memory per rank with replicated vs sharded class weights.

    python benchmarks/bench_distributed.py                       # 1M classes, D 128
    python benchmarks/bench_distributed.py --classes 10000 --steps 5 --dim 64

Processes are spawned here (Gloo on CPU, NCCL on CUDA, one GPU per rank); each rank uses
``--threads`` torch threads, so 2 ranks need 2x the cores of 1 rank to scale.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from losszoo.distributed import GlobalBatch, convert_batchnorm  # noqa: E402
from losszoo.distributed.sharded import ShardedClassLoss  # noqa: E402
from losszoo.losses import create_loss  # noqa: E402
from losszoo.models import create_model  # noqa: E402


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _rss_mib() -> float:
    """Resident memory now (Linux /proc): the steady state, after transient allocations."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _worker(rank: int, world: int, init: str, args: argparse.Namespace, mode: str, out: dict) -> None:
    torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", rank) if cuda else torch.device("cpu")
    dist.init_process_group("nccl" if cuda else "gloo", init_method=f"file://{init}",
                            rank=rank, world_size=world)
    torch.manual_seed(0)
    start_rss = _peak_rss_mib()
    model = convert_batchnorm(create_model("convnet4", args.dim, pretrained=False), device).to(device)
    ddp = nn.parallel.DistributedDataParallel(model, device_ids=[rank] if cuda else None)
    loss = create_loss("normsoftmax", embedding_dim=args.dim, num_classes=args.classes,
                       class_subsample=args.subsample).to(device)
    if mode == "sharded":
        step_loss = ShardedClassLoss(loss, rank, world)  # releases the full weights
        loss_params = [step_loss.weight]
    else:
        step_loss, loss_params = GlobalBatch(loss, device), list(loss.parameters())
    from losszoo.training.optim import LazySparseSGD
    optimizer = LazySparseSGD([{"params": list(model.parameters())},
                               {"params": loss_params, "weight_decay": 0.0}],
                              lr=0.01, momentum=0.9, weight_decay=1e-4)
    local = args.batch // world
    images = torch.randn(local, 1, 28, 28, device=device)
    labels = torch.randint(args.classes, (local,), device=device)
    times = []
    for step in range(args.steps + 1):
        if cuda:
            torch.cuda.synchronize()
        began = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        step_loss(ddp(images), labels).backward()
        optimizer.step()
        if cuda:
            torch.cuda.synchronize()
        if step:  # the first step allocates buffers
            times.append(time.perf_counter() - began)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if cuda else _peak_rss_mib() - start_rss
    steady = torch.cuda.memory_allocated(device) / 2**20 if cuda else _rss_mib() - start_rss
    out[(mode, world, rank)] = (sum(times) / len(times), peak, steady)
    dist.destroy_process_group()


def run(args: argparse.Namespace, mode: str, world: int) -> dict:
    manager = mp.Manager()
    out = manager.dict()
    with tempfile.TemporaryDirectory() as folder:
        mp.spawn(_worker, args=(world, os.path.join(folder, "init"), args, mode, out), nprocs=world)
    return dict(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--classes", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--batch", type=int, default=64, help="global batch")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per rank")
    parser.add_argument("--subsample", type=float, default=0.01, help="class_subsample r")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved 1-rank/2-rank rounds")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load {os.getloadavg()}, "
          f"C {args.classes:,}, D {args.dim}, global batch {args.batch}, r {args.subsample}")
    for round_ in range(args.repeats):  # interleaved: the load on a shared machine drifts
        for mode, world in (("replicated", 1), ("replicated", 2), ("sharded", 2)):
            result = run(args, mode, world)
            step = max(result[(mode, world, r)][0] for r in range(world))
            peaks = ", ".join(f"{result[(mode, world, r)][1]:.0f}" for r in range(world))
            steady = ", ".join(f"{result[(mode, world, r)][2]:.0f}" for r in range(world))
            print(f"round {round_} {mode:10s} ranks {world}: step {1000 * step:.1f} ms, "
                  f"{args.batch / step:.0f} img/s, memory per rank (MiB) peak {peaks}, "
                  f"after the steps {steady}")


if __name__ == "__main__":
    main()
