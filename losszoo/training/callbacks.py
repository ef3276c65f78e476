"""Callbacks: what a training run tells the outside world, for Python users and the built-in
loggers alike (TensorBoard here, MLflow in :mod:`losszoo.training.mlflow_logger`).

Subclass :class:`Callback`, override the hooks you need (each is a no-op by default) and pass
instances to ``train(..., callbacks=[...])`` or ``compare(..., callbacks=[...])``::

    class PrintEpochs(Callback):
        def on_epoch(self, epoch: int, record: EpochRecord) -> None:
            print(epoch, record.loss)

Order of the calls in one run (rank 0 only under torchrun; a resumed run starts at the epoch
after its checkpoint and replays no step):

- ``on_run_start(folder, config, epochs_done)`` once, before the first batch;
- ``on_step(step)`` per training batch (a :class:`Step`, in batches of ``PROGRESS_EVERY``);
- ``on_evaluation(epoch, split, metrics)`` per evaluation (an ``EvaluationResult``,
  :mod:`losszoo.evaluation.results`): ``"validation"`` during training (protocols holdout and
  tune), ``"test"`` once at the end;
- ``on_epoch(epoch, record)`` after each epoch (an ``EpochRecord``: epoch, mean loss,
  validation metrics when scored), after its checkpoint is written; the last epoch's validation is
  scored after training ends, so after its ``on_epoch``;
- ``on_test(arrays, data)`` with the test embeddings and neighbours, just before the test's
  ``on_evaluation``, only for callbacks whose ``wants_test_arrays`` is true (keeping them
  costs memory);
- ``on_run_end(result, folder)`` after result.json is written (``result``: its ``RunRecord``,
  :mod:`losszoo.training.records`);
- ``close()`` always, last, also when the run failed or was interrupted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the hooks only name these types (importing records would import torch)
    from losszoo.evaluation.results import EvaluationResult
    from losszoo.training.records import EpochRecord, RunRecord


@dataclass(frozen=True)
class Step:
    """One training step: its number (from 1, over the whole run), epoch (from 1), loss,
    learning rate per parameter group, and throughput."""

    step: int
    epoch: int
    loss: float
    lrs: dict[str, float]
    images_per_s: float


class Callback:
    """The hooks of a run; every one a no-op unless overridden."""

    wants_test_arrays = False  # True: on_test receives the test embeddings and neighbours

    def on_run_start(self, folder: Path, config: dict[str, Any], epochs_done: int) -> None:
        """Before the first batch; ``epochs_done`` > 0 when resuming from a checkpoint."""

    def on_step(self, step: Step) -> None:
        """After a training step."""

    def on_epoch(self, epoch: int, record: EpochRecord) -> None:
        """After epoch ``epoch`` (from 1) and its checkpoint."""

    def on_evaluation(self, epoch: int, split: str, metrics: EvaluationResult) -> None:
        """After evaluating ``split`` ("validation" or "test") at epoch ``epoch``."""

    def on_test(self, arrays: Any, data: Any) -> None:
        """The final test evaluation's ``EvalArrays`` and ``EvalData`` (if wanted)."""

    def on_run_end(self, result: RunRecord, folder: Path) -> None:
        """After the run's result.json is written; ``result`` is its record."""

    def close(self) -> None:
        """Last call, whether the run finished or not."""


class Callbacks(Callback):
    """Several callbacks called in order as one."""

    def __init__(self, callbacks: Sequence[Callback] = ()) -> None:
        self.callbacks = list(callbacks)

    @property
    def wants_test_arrays(self) -> bool:  # type: ignore[override]
        return any(c.wants_test_arrays for c in self.callbacks)

    def on_run_start(self, folder: Path, config: dict[str, Any], epochs_done: int) -> None:
        for c in self.callbacks:
            c.on_run_start(folder, config, epochs_done)

    def on_step(self, step: Step) -> None:
        for c in self.callbacks:
            c.on_step(step)

    def on_epoch(self, epoch: int, record: EpochRecord) -> None:
        for c in self.callbacks:
            c.on_epoch(epoch, record)

    def on_evaluation(self, epoch: int, split: str, metrics: EvaluationResult) -> None:
        for c in self.callbacks:
            c.on_evaluation(epoch, split, metrics)

    def on_test(self, arrays: Any, data: Any) -> None:
        for c in self.callbacks:
            if c.wants_test_arrays:
                c.on_test(arrays, data)

    def on_run_end(self, result: RunRecord, folder: Path) -> None:
        for c in self.callbacks:
            c.on_run_end(result, folder)

    def close(self) -> None:
        for c in self.callbacks:
            c.close()


def with_test_callbacks(on_test: Callable[[Any, Any], None] | None,
                        callbacks: Sequence[Callback]) -> Callable[[Any, Any], None] | None:
    """``on_test`` followed by the ``on_test`` of every callback that wants the arrays; None
    when nobody does (then the test evaluation keeps no arrays)."""
    group = Callbacks(callbacks)
    if not group.wants_test_arrays:
        return on_test

    def both(arrays: Any, data: Any) -> None:
        if on_test is not None:
            on_test(arrays, data)
        group.on_test(arrays, data)

    return both


class TensorBoardLogger(Callback):
    """TensorBoard event files in ``<run>/tensorboard`` (``pip install losszoo[tensorboard]``):
    ``train/<column>`` per step, ``<split>/<metric>`` per evaluation at its epoch."""

    def __init__(self, folder: str | Path, purge_step: int | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

        self.writer = SummaryWriter(str(folder), purge_step=purge_step)

    def on_step(self, step: Step) -> None:
        self.writer.add_scalar("train/loss", step.loss, step.step)
        for name, lr in step.lrs.items():
            self.writer.add_scalar(f"train/lr_{name}", lr, step.step)
        self.writer.add_scalar("train/images_per_s", step.images_per_s, step.step)

    def on_evaluation(self, epoch: int, split: str, metrics: EvaluationResult) -> None:
        for key, value in metrics.scalars().items():
            self.writer.add_scalar(f"{split}/{key}", value, epoch)

    def close(self) -> None:
        self.writer.close()
