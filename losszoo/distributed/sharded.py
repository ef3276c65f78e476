"""Class weights sharded across ranks (model-parallel softmax, as in Partial FC: An et al.,
"Partial FC: Training 10 Million Identities on a Single Machine", ICCVW 2021).

Rank r holds rows ``[start_r, stop_r)`` of the class weights W [C, D] (about C / N rows). A step
gathers the global batch's embeddings (differentiable), computes the logits against its own
rows only, and combines the shards into the softmax normaliser with a distributed
log-sum-exp (a max all-reduce for stability, then a differentiable sum all-reduce), so the loss
equals the replicated loss on the global batch while no rank ever holds C x D weights or
B x C logits. Proxy-Anchor (no softmax) sums each proxy's own term of its eq. 4 per shard and
adds the sums over the ranks. Optimiser state lives with the shard (every SGD update, weight decay and
``LazySparseSGD``'s lazy momentum is row-wise), so it is per shard too.

Gradients: every rank computes the same loss L; each all-reduce sums, in backward, the same
upstream gradient from N ranks, so a shard's rows receive ``N * dL/dW``; a ``1/N`` gradient
scale on the shard makes it exact. The embeddings' gradient arrives ``N`` times too, as for
every global-batch loss, and DDP's averaging over ranks removes it.

Class subsampling (Zhai & Wu 2019, Sec. 4.5) is per shard: each shard keeps the batch classes
it owns plus random others of its own rows, ``ceil(r * C_shard)`` in all. The classes drawn
therefore differ from a single process's draw (same distribution, another sample).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
import torch.nn.functional as F
from torch import Tensor, nn

from losszoo.distributed.losses import gather_batch, quiet_deprecation
from losszoo.losses.proxies import cosine_logits, sample_other_classes
from losszoo.losses.proxyanchor import ProxyAnchor
from losszoo.losses.proxynca import ProxyNCA
from losszoo.losses.registry import spec_of


def shard_bounds(num_classes: int, rank: int, world_size: int) -> tuple[int, int]:
    """Rows ``[start, stop)`` of rank ``rank``: C split as evenly as possible."""
    edges = np.linspace(0, num_classes, world_size + 1).round().astype(int)
    return int(edges[rank]), int(edges[rank + 1])


class _ScaleGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor: Tensor, factor: float) -> Tensor:  # type: ignore[override]
        ctx.factor = factor
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        return grad * ctx.factor, None


class ShardedClassLoss(nn.Module):
    """NormSoftmax, CosFace, ArcFace, Proxy-NCA or Proxy-Anchor with this rank's shard of ``loss``'s class weights.

    Built from the replicated loss (same initial rows), called with the rank's local
    embeddings and labels; ``weight`` is the shard [stop - start, D], a parameter of its own.
    It takes ``loss`` over: ``loss`` keeps its hyperparameters and logit function for the
    shard's use, and its full C x D weights are released, so no rank holds them after this.
    """

    def __init__(self, loss: nn.Module, rank: int, world_size: int) -> None:
        super().__init__()
        spec = spec_of(loss)
        if spec is None or not spec.shards_class_weights:  # declared at registration
            raise TypeError(f"class weights of {type(loss).__name__} cannot be sharded")
        self.rank, self.world_size = rank, world_size
        self.num_classes = loss.num_classes
        self.start, self.stop = shard_bounds(loss.num_classes, rank, world_size)
        full = loss.proxies.weight
        self.weight = nn.Parameter(full.detach()[self.start:self.stop].clone())
        # A fresh empty tensor, not a view: a view would keep the full storage alive.
        loss.proxies.weight = nn.Parameter(full.new_empty(0, full.shape[1]), requires_grad=False)
        # Not a submodule: the optimiser, the state dict and .to() never see the template.
        object.__setattr__(self, "template", loss)

    @property
    def sparse_gradients(self) -> bool:
        return getattr(self.template, "class_subsample", 1.0) < 1.0

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        embeddings, labels = gather_batch(embeddings, labels.to(embeddings.device, torch.long))
        owned = (labels >= self.start) & (labels < self.stop)
        local_targets = torch.where(owned, labels - self.start, 0)
        ratio = getattr(self.template, "class_subsample", 1.0) if self.training else 1.0
        weights, targets = self._select(local_targets[owned], ratio)
        weights = _ScaleGradient.apply(weights, 1.0 / self.world_size)
        if isinstance(self.template, ProxyAnchor):
            return self._proxy_anchor(cosine_logits(embeddings, weights), labels)
        if targets is not None:
            local_targets = local_targets.clone()
            local_targets[owned] = targets
        logits = self._logits(cosine_logits(embeddings, weights), local_targets, owned)
        exclude_target = isinstance(self.template, ProxyNCA) and not self.template.include_positive
        target_logit = (logits.gather(1, local_targets[:, None]).squeeze(1) * owned)
        if exclude_target:  # Proxy-NCA: the positive proxy is not in the denominator
            mask = F.one_hot(local_targets, logits.shape[1]).bool() & owned[:, None]
            logits = logits.masked_fill(mask, float("-inf"))
        return (distributed_logsumexp(logits) - _sum_over_ranks(target_logit)).mean()

    def _proxy_anchor(self, similarity: Tensor, labels: Tensor) -> Tensor:
        """Proxy-Anchor's eq. 4: each shard's sums over its proxies, added over the ranks."""
        rows = torch.arange(self.start, self.stop, device=labels.device)
        pull, push, with_positives = self.template.proxy_sums(similarity, labels[:, None] == rows[None, :])
        pull, push = _sum_over_ranks(torch.stack([pull, push]))
        if dist.is_initialized():
            dist.all_reduce(with_positives)
        return pull / with_positives + push / self.num_classes

    def _select(self, owned_labels: Tensor, ratio: float) -> tuple[Tensor, Tensor | None]:
        if ratio >= 1.0:
            return self.weight, None
        rows_here = self.stop - self.start
        present = torch.unique(owned_labels)
        target = max(math.ceil(Fraction(str(ratio)) * rows_here), present.numel())
        others = sample_other_classes(present, target - present.numel(), rows_here)
        rows = torch.cat([present, others]).sort().values
        return F.embedding(rows, self.weight, sparse=True), torch.searchsorted(rows, owned_labels)

    def _logits(self, cosine: Tensor, targets: Tensor, owned: Tensor) -> Tensor:
        if isinstance(self.template, ProxyNCA):
            return -2.0 * self.template.scale**2 * (1.0 - cosine)
        # The template's logits need a target column for every row: rows whose class lives on
        # another shard point at an extra, discarded column.
        extra = torch.zeros(cosine.shape[0], 1, dtype=cosine.dtype, device=cosine.device)
        columns = torch.where(owned, targets, cosine.shape[1])
        return self.template.logits(torch.cat([cosine, extra], dim=1), columns)[:, :-1]

    def full_weight(self) -> Tensor:
        """All C rows, gathered from every shard (for a checkpoint or an equality check)."""
        return self.gather_rows(self.weight)

    @torch.no_grad()
    def gather_rows(self, rows: Tensor) -> Tensor:
        """Every shard's ``rows`` [stop - start, ...] concatenated into [C, ...] (a collective:
        every rank calls it)."""
        if not dist.is_initialized() or self.world_size == 1:
            return rows.detach().clone()
        sizes = [shard_bounds(self.num_classes, r, self.world_size) for r in range(self.world_size)]
        longest = max(stop - start for start, stop in sizes)  # Gloo gathers equal sizes only
        padded = rows.new_zeros(longest, *rows.shape[1:])
        padded[: self.stop - self.start] = rows.detach()
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded)
        return torch.cat([part[: stop - start] for part, (start, stop) in zip(parts, sizes)])

    # -- checkpoints: the replicated loss's layout, whatever the number of ranks ---------------
    def gathered_state(self, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
        """The loss's and ``optimizer``'s state dicts with the shard's rows (and their momentum)
        gathered into all C rows, keyed as the replicated loss's (``proxies.weight``); every
        rank calls it, rank 0 writes it."""
        loss_state = {"proxies.weight": self.full_weight()}
        rows = self.stop - self.start
        state = _map_entry(optimizer.state_dict(), _parameter_index(optimizer, self.weight),
                           lambda value: self.gather_rows(value) if _is_rows(value, rows) else value)
        return loss_state, state

    def load_gathered_state(self, loss_state: dict, optimizer_state: dict,
                            optimizer: torch.optim.Optimizer) -> None:
        """Take this shard's rows from a :meth:`gathered_state` (or a replicated run's state)."""
        rows = slice(self.start, self.stop)
        with torch.no_grad():
            self.weight.copy_(loss_state["proxies.weight"][rows])
        optimizer.load_state_dict(_map_entry(
            optimizer_state, _parameter_index(optimizer, self.weight),
            lambda value: value[rows] if _is_rows(value, self.num_classes) else value))


def _is_rows(value: object, rows: int) -> bool:
    """Whether an optimiser state value is a tensor with ``rows`` rows (one per class row)."""
    return torch.is_tensor(value) and value.dim() > 0 and value.shape[0] == rows


def _map_entry(state: dict, index: int, convert: Callable[[Any], Any]) -> dict:
    """``state`` (an optimiser state dict) with ``convert`` applied to every value of parameter
    ``index``'s entry (unchanged when that parameter has no state yet)."""
    entry = state["state"].get(index)
    if entry is None:
        return state
    return {**state, "state": {**state["state"], index: {k: convert(v) for k, v in entry.items()}}}


def _parameter_index(optimizer: torch.optim.Optimizer, parameter: nn.Parameter) -> int:
    """``parameter``'s key in ``optimizer.state_dict()["state"]`` (its place over all groups)."""
    flat = [p for group in optimizer.param_groups for p in group["params"]]
    return next(i for i, p in enumerate(flat) if p is parameter)


def _sum_over_ranks(tensor: Tensor) -> Tensor:
    if not dist.is_initialized():
        return tensor
    with quiet_deprecation():
        return dist_fn.all_reduce(tensor)


def distributed_logsumexp(logits: Tensor) -> Tensor:
    """log sum_j exp(logits[:, j]) over the columns of every rank's ``logits`` [B, K_r]."""
    peak = logits.detach().amax(dim=1)
    if dist.is_initialized():
        dist.all_reduce(peak, op=dist.ReduceOp.MAX)
    peak = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))
    total = _sum_over_ranks(torch.exp(logits - peak[:, None]).sum(dim=1))
    return torch.log(total) + peak
