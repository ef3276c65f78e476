"""How a run spreads over processes, chosen once per run (:func:`choose_strategy`).

- :class:`SingleProcess`: one process, the loss as built.
- :class:`Replicated`: under torchrun, every rank holds the whole model and loss; BatchNorm
  statistics span the ranks, DDP averages the model's gradients, and the loss sees the gathered
  global batch when its spec says ``global_batch`` (else it runs per rank and its own
  parameters' gradients are averaged like the model's).
- :class:`Sharded`: ``shard_class_weights``: each rank holds its rows of the class weights
  (:class:`~losszoo.distributed.sharded.ShardedClassLoss`, which gathers the global batch
  itself); checkpoints hold the gathered rows, in the replicated layout. The model is handled
  as :class:`Replicated` does under torchrun, left alone in one process.

The trainer asks its strategy at each such point and branches on nothing else, so a step of
any strategy equals one process's step on the global batch (``docs/distributed.md``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from losszoo.distributed import DistContext, GlobalBatch, convert_batchnorm
from losszoo.distributed.losses import average_gradients
from losszoo.distributed.sharded import ShardedClassLoss

State = dict[str, Any]


class SingleProcess:
    """One process: nothing to gather, average or shard."""

    name = "single"

    def __init__(self, context: DistContext, device: torch.device) -> None:
        self.context, self.device = context, device

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """The model as the run trains it (before any phase)."""
        return model

    def prepare_loss(self, loss: nn.Module, step_loss: nn.Module, global_batch: bool) -> tuple[nn.Module, nn.Module]:
        """``(loss, step_loss)``: the module whose parameters train and are saved, and the one a
        step calls (``loss``, or it fed by a miner). ``global_batch``: the spec's declaration."""
        return loss, step_loss

    def forward_model(self, model: nn.Module, warm: bool, current: nn.Module | None) -> nn.Module:
        """The model a step of phase ``warm`` calls, given the ``current`` one (kept if it fits)."""
        return current if current is not None else model

    def after_backward(self, loss: nn.Module) -> None:
        """Called after each backward pass, before the optimiser steps."""

    def everywhere(self, flag: bool) -> bool:
        """``flag`` on every rank (all ranks must stop at the same step)."""
        return flag

    def loss_state(self, loss: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[State, State]:
        """The loss's and the optimiser's state dicts for a checkpoint (a collective for some)."""
        return loss.state_dict(), optimizer.state_dict()

    def load_loss_state(self, loss: nn.Module, optimizer: torch.optim.Optimizer, state: State) -> None:
        """Restore the loss's and the optimiser's state from a checkpoint's ``state``."""
        loss.load_state_dict(state["loss"])
        optimizer.load_state_dict(state["optimizer"])


class Replicated(SingleProcess):
    """Under torchrun, the whole model and loss on every rank."""

    name = "replicated"

    def __init__(self, context: DistContext, device: torch.device) -> None:
        super().__init__(context, device)
        self._phase: bool | None = None  # the phase (warm-up or not) the DDP wrapper was built for
        self._local_loss = False  # the loss runs per rank (its spec: global_batch=False)

    def prepare_model(self, model: nn.Module) -> nn.Module:
        return convert_batchnorm(model, self.device)

    def prepare_loss(self, loss: nn.Module, step_loss: nn.Module, global_batch: bool) -> tuple[nn.Module, nn.Module]:
        self._local_loss = not global_batch
        # A global-batch loss (and its miner) sees every rank's embeddings, gathered.
        return loss, step_loss if self._local_loss else GlobalBatch(step_loss, self.device)

    def forward_model(self, model: nn.Module, warm: bool, current: nn.Module | None) -> nn.Module:
        if self._phase == warm and current is not None:
            return current
        self._phase = warm  # DDP fixes its parameter set when built: once per phase
        ids = [torch.cuda.current_device()] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def after_backward(self, loss: nn.Module) -> None:
        if self._local_loss:  # a per-rank loss's own parameters, averaged as DDP does the model's
            average_gradients(list(loss.parameters()))

    def everywhere(self, flag: bool) -> bool:
        tensor = torch.tensor([float(flag)], device=self.device)
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MIN)
        return bool(tensor.item())


class Sharded(Replicated):
    """This rank's rows of the class weights; the model as :class:`Replicated` under torchrun."""

    name = "sharded"

    def prepare_model(self, model: nn.Module) -> nn.Module:
        return super().prepare_model(model) if self.context.distributed else model

    def prepare_loss(self, loss: nn.Module, step_loss: nn.Module, global_batch: bool) -> tuple[nn.Module, nn.Module]:
        self._local_loss = False  # a shard's gradient is its own: never averaged
        sharded = ShardedClassLoss(loss, self.context.rank, self.context.world_size).to(self.device)
        return sharded, sharded

    def forward_model(self, model: nn.Module, warm: bool, current: nn.Module | None) -> nn.Module:
        if not self.context.distributed:
            return SingleProcess.forward_model(self, model, warm, current)
        return super().forward_model(model, warm, current)

    def everywhere(self, flag: bool) -> bool:
        return super().everywhere(flag) if self.context.distributed else flag

    def loss_state(self, loss: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[State, State]:
        return loss.gathered_state(optimizer)  # every rank calls it, rank 0 writes it

    def load_loss_state(self, loss: nn.Module, optimizer: torch.optim.Optimizer, state: State) -> None:
        loss.load_gathered_state(state["loss"], state["optimizer"], optimizer)


def choose_strategy(shard_class_weights: bool, context: DistContext, device: torch.device) -> SingleProcess:
    """The run's one strategy: sharded class weights if asked for, else replicated under
    torchrun, else a single process."""
    if shard_class_weights:
        return Sharded(context, device)
    return Replicated(context, device) if context.distributed else SingleProcess(context, device)
