"""Detecting a diverging run at the step it happens. A learning rate or hyperparameter that is
too large (``--lr 1e10``, ``temperature=1e-30``) drives the loss, or the weights and hence the
next step's embeddings, to NaN or infinity; the run then stops with
:class:`~losszoo.errors.DivergedError` (epoch, step, last finite loss) before that epoch's
checkpoint is written, so the last good checkpoint stays as it was.

Each step's embeddings and loss are checked (one read of a scalar, as the losses' own input
check already does); the weights are checked after an epoch's last optimizer step, the one
whose damage no later forward pass would see before the checkpoint.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from losszoo.errors import DivergedError
from losszoo.training.records import DIVERGED, Divergence, RunRecord


class DivergenceGuard:
    """One epoch's watch: :meth:`loss` computes a step's loss and raises ``DivergedError`` on
    non-finite embeddings or loss; non-finite weights after the epoch's last step raise too."""

    def __init__(self, run: Any, epoch: int) -> None:
        """Watch epoch ``epoch`` (0-based) of ``run`` (a trainer ``Run``)."""
        self.run, self.epoch, self.steps = run, epoch, len(run.loader)
        previous = run.history[-1].loss if run.history else None
        self.last_finite: float | None = previous if previous is not None and math.isfinite(previous) else None
        self._step = 0
        self._hook = run.optimizer.register_step_post_hook(self._after_step)

    def loss(self, step: int, embeddings: Tensor, labels: Tensor) -> Tensor:
        """``run.step_loss(embeddings, labels)`` at step ``step`` (1-based), checked."""
        self._step = step
        if not self._everywhere(bool(torch.isfinite(embeddings.detach().sum()))
                                or bool(torch.isfinite(embeddings).all())):
            self._stop("the embeddings are no longer finite (the weights diverged at the step before)")
        value = self.run.step_loss(embeddings, labels)
        number = float(value.detach())
        if not self._everywhere(math.isfinite(number)):
            self._stop(f"the loss is {number}")
        self.last_finite = number
        return value

    def _everywhere(self, finite: bool) -> bool:
        """``finite`` on every rank (under torchrun all ranks must stop at the same step)."""
        return self.run.strategy.everywhere(finite)

    def _after_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if self._step < self.steps:
            return
        self._hook.remove()
        parameters = [*self.run.model.parameters(), *self.run.loss.parameters()]
        finite = not parameters or bool(torch.stack([torch.isfinite(p).all() for p in parameters]).all())
        if not self._everywhere(finite):  # sharded class weights differ per rank
            self._stop("the weights are no longer finite after the epoch's last step")

    def _stop(self, what: str) -> None:
        self._hook.remove()
        last = "none" if self.last_finite is None else f"{self.last_finite:.6g}"
        kept = (f"the checkpoint after epoch {self.epoch} is kept" if self.epoch
                else "no checkpoint was written")
        raise DivergedError(
            f"training diverged at epoch {self.epoch + 1}, step {self._step}: {what} (last finite "
            f"loss {last}); {kept}; lower the learning rate or change the loss options",
            epoch=self.epoch + 1, step=self._step, last_finite=self.last_finite)


def diverged_record(plan: Any, error: DivergedError) -> RunRecord:
    """The result record of a run (a ``RunPlan``'s) stopped by ``error``: no metrics,
    status "diverged" and where it happened, so a comparison marks its row and goes on."""
    return RunRecord.of_plan(plan, status=DIVERGED, diverged=Divergence(
        error.epoch, error.step, error.last_finite, str(error)))
