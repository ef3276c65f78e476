"""Losses on the global batch: every rank gathers all ranks' embeddings and labels, with
gradients flowing back, and computes the loss over the concatenated batch.

Gradient bookkeeping: ``torch.distributed.nn.functional.all_gather`` backpropagates by summing
each rank's gradient for a shard into that shard's owner. Every rank computes the same loss L
on the same global batch, so a rank's local embeddings receive ``world_size * dL/de``; DDP then
*averages* the model's gradients over ranks, which gives exactly ``dL/dtheta`` of one process on
the concatenated batch. The loss's own parameters (class weights, betas) see the whole batch on
every rank, so their gradient is already ``dL/dW``, identical on every rank; they stay outside
DDP and stay replicated.

Against pytorch-metric-learning's ``DistributedLossWrapper`` (the anchor):

* PML's gather keeps the gradient path only for the local slice (the other ranks' slices are
  detached copies) and multiplies the loss by ``world_size`` to compensate, so its returned loss
  value is ``world_size`` times the single-process value; here the value is the single-process
  value and the scaling comes from the autograd all-gather itself.
* PML's ``efficient=True`` uses only local embeddings as anchors against gathered references,
  which equals one process only for losses that are means over anchors; here the loss always
  sees the full global batch (mining included), so equality holds for every loss.
* Random choices inside a loss (the margin loss's distance-weighted sampling, class
  subsampling) are made with rank 0's generator state on every rank (:func:`synchronize_rng`),
  so replicated loss parameters get the same update everywhere.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import Tensor, nn


@contextlib.contextmanager
def quiet_deprecation() -> Iterator[None]:
    """``torch.distributed.nn.functional`` warns that it is deprecated in favour of the private
    ``_functional_collectives``; it remains the public differentiable collective API."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module="torch.distributed")
        warnings.filterwarnings("ignore", message=".*torch.distributed.nn.functional.*")
        yield


def gather_batch(embeddings: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Every rank's embeddings (differentiable) and labels, concatenated in rank order."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return embeddings, labels
    with quiet_deprecation():
        gathered = torch.cat(dist_fn.all_gather(embeddings), dim=0)
    label_parts = [torch.empty_like(labels) for _ in range(dist.get_world_size())]
    dist.all_gather(label_parts, labels.contiguous())
    return gathered, torch.cat(label_parts)


def synchronize_rng(device: torch.device | None = None) -> None:
    """Give every rank rank 0's generator state (CPU, and ``device``'s when CUDA)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return
    backend_device = torch.device("cuda", torch.cuda.current_device()) \
        if dist.get_backend() == "nccl" else torch.device("cpu")
    state = torch.get_rng_state().to(backend_device)
    dist.broadcast(state, 0)
    torch.set_rng_state(state.cpu())
    if device is not None and device.type == "cuda":
        cuda_state = torch.cuda.get_rng_state(device).to(backend_device)
        dist.broadcast(cuda_state, 0)
        torch.cuda.set_rng_state(cuda_state.cpu(), device)


class GlobalBatch(nn.Module):
    """Call ``loss`` on the gathered global batch (see the module docstring). ``loss`` stays
    the registered module (its state dict is unchanged); this wrapper owns no state."""

    def __init__(self, loss: nn.Module, device: torch.device | None = None) -> None:
        super().__init__()
        self.loss = loss
        self.device = device

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        embeddings, labels = gather_batch(embeddings, labels.to(embeddings.device))
        synchronize_rng(self.device)
        return self.loss(embeddings, labels)


def average_gradients(parameters: list[nn.Parameter]) -> None:
    """Average dense gradients over ranks (loss parameters of a loss computed per rank)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return
    for param in parameters:
        if param.grad is None:
            continue
        if param.grad.is_sparse:
            raise ValueError("a loss with sparse gradients must declare global_batch=True")
        dist.all_reduce(param.grad)
        param.grad /= dist.get_world_size()
