"""Cross-batch memory (Wang et al., "Cross-Batch Memory for Embedding Learning", CVPR 2020).

A FIFO of the last ``size`` embeddings and labels (detached). From iteration ``start`` on, each
step enqueues the batch, then computes the loss with the batch's embeddings as anchors against
every embedding in the memory (the batch's own included, each anchor's own copy excluded), so
pair losses see far more pairs than one batch holds. Before ``start`` the wrapped loss runs on
the batch alone and nothing is enqueued: early embeddings drift too fast to be useful (the
paper's "slow drift" argument, Sec. 3).

The memory is registered buffers, so it is part of the loss's ``state_dict`` and therefore of
the checkpoint: a resumed run continues with the same memory. Under torchrun the harness hands
the loss the gathered global batch, so every rank enqueues the same embeddings and holds the
same memory.

A loss supports the memory by defining ``compute_against(embeddings, labels, references,
reference_labels, is_self)``: its equation with the batch as anchors against the references,
``is_self`` [B, M] marking each anchor's own copy. The semantics follow pytorch-metric-learning's
``CrossBatchMemory`` (enqueue first, then anchors against the whole memory).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from losszoo.errors import ConfigError
from losszoo.losses.base import MetricLoss, supports_memory
from losszoo.losses.registry import LossSpec, list_losses

__all__ = ["CrossBatchMemory", "check_memory", "supports_memory"]


def check_memory(loss: LossSpec, settings: Any) -> None:
    """Refuse, before any work, a memory that ``loss`` cannot use: a loss whose spec does not
    declare ``supports_memory``, a miner (the memory makes the pairs), a memory smaller than a
    batch. ``settings`` has ``xbm``, ``batch_size`` and ``miner`` (a ``TrainConfig``)."""
    if not loss.supports_memory:
        able = list_losses(namespaced=False, where=lambda spec: spec.supports_memory)
        raise ConfigError(f"--xbm: loss {loss.name!r} cannot use a cross-batch memory (no pairs of "
                          f"a sample with other samples' embeddings); losses that can: {', '.join(able)}")
    if settings.miner:
        raise ConfigError("--xbm with --miner: the cross-batch memory makes its own pairs; use one of them")
    if settings.xbm < settings.batch_size:
        raise ConfigError(f"--xbm {settings.xbm} is smaller than the batch ({settings.batch_size}): "
                          "the memory must hold at least one global batch")


class CrossBatchMemory(MetricLoss):
    """``loss`` against a FIFO memory of the last ``size`` embeddings, from step ``start`` on.

    Args:
        loss: a loss whose class defines ``compute_against`` (:func:`supports_memory`).
        embedding_dim: D, the width of the embeddings the memory holds.
        size: M, how many embeddings the memory holds (at least the batch size).
        start: the first training step (counted from 0) that uses the memory.
    """

    miner_refusal = "it pairs the batch with the memory itself"

    def __init__(self, loss: nn.Module, embedding_dim: int, size: int, start: int = 0) -> None:
        super().__init__()
        if not supports_memory(type(loss)):
            raise ConfigError(f"{type(loss).__name__} cannot use a cross-batch memory: it does not "
                              "define its loss against reference embeddings (compute_against)")
        if size < 1 or start < 0 or embedding_dim < 1:
            raise ConfigError(f"cross-batch memory: size and embedding_dim must be >= 1 and start "
                              f">= 0, got size {size}, embedding_dim {embedding_dim}, start {start}")
        self.loss, self.size, self.start = loss, size, start
        self.register_buffer("memory", torch.zeros(size, embedding_dim))
        self.register_buffer("memory_labels", torch.full((size,), -1, dtype=torch.long))  # -1: empty
        self.register_buffer("position", torch.zeros((), dtype=torch.long))  # the next slot written
        self.register_buffer("step", torch.zeros((), dtype=torch.long))  # training steps taken

    @property
    def sparse_gradients(self) -> bool:
        return bool(getattr(self.loss, "sparse_gradients", False))

    def compute(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        if not self.training:  # evaluation: the loss alone, the memory untouched
            return self.loss(embeddings, labels)
        step = int(self.step)
        self.step += 1
        if step < self.start:
            return self.loss(embeddings, labels)
        slots = self.enqueue(embeddings, labels)
        filled = self.memory_labels >= 0
        is_self = torch.zeros(len(labels), self.size, dtype=torch.bool, device=labels.device)
        is_self[torch.arange(len(labels), device=labels.device), slots] = True
        return self.loss.compute_against(
            embeddings, labels, self.memory[filled].to(embeddings.dtype), self.memory_labels[filled],
            is_self[:, filled])

    @torch.no_grad()
    def enqueue(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        """Write the batch over the oldest entries; return the slots written."""
        if len(labels) > self.size:
            raise ValueError(f"cross-batch memory of {self.size} cannot hold a batch of {len(labels)}")
        slots = (int(self.position) + torch.arange(len(labels), device=labels.device)) % self.size
        self.memory[slots] = embeddings.detach().to(self.memory.dtype)
        self.memory_labels[slots] = labels
        self.position.copy_((self.position + len(labels)) % self.size)
        return slots
