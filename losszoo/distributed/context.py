"""Who this process is in a ``torchrun`` launch: rank, world size, device."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

# Variables torchrun sets for every worker.
_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class DistContext:
    """This process's place in the run; ``world_size == 1`` means no process group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device | None = None  # None: keep the config's device choice

    @property
    def is_main(self) -> bool:
        """Rank 0 alone prints progress and writes results and checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1 or dist.is_initialized()

    def barrier(self) -> None:
        if dist.is_initialized():
            dist.barrier()


def single_process() -> DistContext:
    return DistContext()


def launched_by_torchrun() -> bool:
    return all(name in os.environ for name in _ENV)


def init_distributed(timeout_minutes: float = 30.0) -> DistContext:
    """Join the process group torchrun describes (NCCL on CUDA, Gloo on CPU); without
    torchrun's variables, the single-process context. Idempotent."""
    if not launched_by_torchrun():
        return single_process()
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo",
                                timeout=datetime.timedelta(minutes=timeout_minutes))
    return DistContext(rank, world_size, local_rank, device)


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
