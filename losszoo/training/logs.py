"""Per-run logs: ``log.csv`` (one row per training step: step, epoch, loss, learning rate per
parameter group, images/s), ``history.csv`` (one row per evaluation: epoch, split, metrics),
and the run's callbacks (:mod:`losszoo.training.callbacks`), through which the optional
loggers write: TensorBoard event files (``--tensorboard``, ``pip install losszoo[tensorboard]``),
MLflow runs (``--mlflow``).

Resume-safe: a run resumed from a checkpoint keeps only the ``log.csv`` rows of the epochs that
checkpoint holds (the rows of the epoch that was interrupted are dropped, then written again),
and ``history.csv`` is rewritten whole from the checkpointed history, so after ``kill -9`` and
``--resume`` no row is missing or duplicated.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from losszoo.errors import ConfigError, OutputError
from losszoo.evaluation.results import EvaluationResult
from losszoo.training.callbacks import Callback, Callbacks, Step, TensorBoardLogger
from losszoo.training.checkpoint import atomic_write, write_text
from losszoo.training.records import EpochRecord, RunRecord

STEP_LOG = "log.csv"
HISTORY = "history.csv"
TENSORBOARD = "tensorboard"


def require_tensorboard() -> None:
    """``ConfigError`` (before any work) when ``--tensorboard`` cannot write: no tensorboard."""
    if importlib.util.find_spec("tensorboard") is None:
        raise ConfigError("--tensorboard needs the tensorboard package: pip install 'losszoo[tensorboard]'")


def step_columns(groups: Sequence[str]) -> list[str]:
    return ["step", "epoch", "loss", *(f"lr_{name}" for name in groups), "images_per_s"]


class RunLog:
    """The logs of one run in ``folder``; ``epochs_done`` epochs already trained (resume).
    ``callbacks`` hear of every step, epoch and evaluation (``config``: the run's settings, for
    their ``on_run_start``)."""

    def __init__(self, folder: str | Path, groups: Sequence[str], *, epochs_done: int = 0,
                 tensorboard: bool = False, callbacks: Sequence[Callback] = (),
                 config: dict[str, Any] | None = None) -> None:
        self.folder = Path(folder)
        self.groups = list(groups)
        self.columns = step_columns(groups)
        with self._writing():
            self._keep_rows(epochs_done)
            self.handle = (self.folder / STEP_LOG).open("a", newline="")
            self.writer = csv.writer(self.handle, lineterminator="\n")
            if self.handle.tell() == 0:
                self.writer.writerow(self.columns)
                self.handle.flush()
        hooks = list(callbacks)
        if tensorboard:
            require_tensorboard()
            hooks.insert(0, TensorBoardLogger(self.folder / TENSORBOARD, purge_step=self._purge_step()))
        self.callbacks = Callbacks(hooks)
        self.callbacks.on_run_start(self.folder, config or {}, epochs_done)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """A failed write of log.csv (read-only file, full disk) is an ``OutputError`` naming it."""
        try:
            yield
        except OSError as exc:
            raise OutputError(f"cannot write {self.folder / STEP_LOG}: {exc.strerror or exc}") from None

    def _keep_rows(self, epochs_done: int) -> None:
        """Rewrite log.csv with the rows of the first ``epochs_done`` epochs only (a header of
        other columns, e.g. other parameter groups, starts it over)."""
        path = self.folder / STEP_LOG
        self.last_step = 0
        if not path.exists():
            return
        with path.open(newline="") as fh:
            rows = list(csv.reader(fh))
        kept: list[list[str]] = []
        if rows and rows[0] == self.columns and epochs_done > 0:
            for row in rows[1:]:
                try:
                    if len(row) == len(self.columns) and int(row[1]) <= epochs_done:
                        kept.append(row)
                except ValueError:  # a line cut by kill -9
                    continue
        self.last_step = int(kept[-1][0]) if kept else 0
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows([self.columns, *kept])
        write_text(path, buffer.getvalue())

    def _purge_step(self) -> int | None:
        return self.last_step + 1 if self.last_step else None

    def steps(self, rows: Sequence[Sequence[float]]) -> None:
        """Append step rows (values in ``columns`` order); flushed, so a crash loses none."""
        with self._writing():
            self.writer.writerows([[int(r[0]), int(r[1]), *(f"{v:.6g}" for v in r[2:])] for r in rows])
            self.handle.flush()
        for row in rows:
            self.callbacks.on_step(Step(int(row[0]), int(row[1]), float(row[2]),
                                        dict(zip(self.groups, map(float, row[3:-1]))), float(row[-1])))

    def history(self, history: Sequence[EpochRecord], test: tuple[int, EvaluationResult] | None = None) -> Path:
        """Rewrite history.csv: each epoch's validation metrics, and the final test metrics."""
        entries = [(e.epoch, "validation", e.validation.scalars()) for e in history if e.validation is not None]
        if test is not None:
            entries.append((test[0], "test", test[1].scalars()))
        keys = list(dict.fromkeys(k for _, _, m in entries for k in m))
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["epoch", "split", *keys])
        for epoch, split, metrics in entries:
            writer.writerow([epoch, split, *(metrics.get(k, "") for k in keys)])
        return atomic_write(self.folder / HISTORY, lambda fh: fh.write(buffer.getvalue().encode()))

    def evaluation(self, epoch: int, split: str, metrics: EvaluationResult) -> None:
        """One evaluation's metrics, to the callbacks."""
        self.callbacks.on_evaluation(epoch, split, metrics)

    def epoch(self, record: EpochRecord) -> None:
        """An epoch's history record (epoch, mean loss, validation), to the callbacks."""
        self.callbacks.on_epoch(record.epoch, record)

    def finish(self, result: RunRecord) -> None:
        """The run's result record (written to result.json), to the callbacks."""
        self.callbacks.on_run_end(result, self.folder)

    def close(self) -> None:
        self.handle.close()
        self.callbacks.close()
