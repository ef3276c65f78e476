"""A run's record (its ``result.json``), written and read back here only: a comparison keeps
finished runs, so a record is parsed and checked as it is read, and one whose metrics cannot be
read is reported, naming the file, never silently left out of a table.

The JSON keeps the flat metric names of :mod:`losszoo.evaluation.results` (``recall@1``,
``binary/map_at_r``); ``schema_version`` says which layout a file has (absent: version 1, the
records written before it existed, which read the same).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from losszoo.errors import CorruptFileError
from losszoo.evaluation.results import EvaluationResult, MetricsError
from losszoo.training.checkpoint import read_json, write_json

SCHEMA_VERSION = 2  # 2: schema_version and status written in every record
UNTRAINED = "untrained"  # the loss name of a comparison's floor runs: the network before training
FINISHED, DIVERGED = "finished", "diverged"  # a record's status: trained to the end, or stopped on a non-finite value
STATUSES = (FINISHED, DIVERGED)


class RecordError(ValueError):
    """A dict that is not a complete run record (the message says what is missing)."""


class NewerRecordError(RecordError):
    """A run record of a schema version this losszoo does not know (a newer one wrote it)."""


@dataclass(frozen=True)
class EpochRecord:
    """One trained epoch (from 1): its mean training loss, and the validation metrics when
    the validation classes were scored after it."""

    epoch: int
    loss: float
    validation: EvaluationResult | None = None

    def to_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {"epoch": self.epoch, "loss": self.loss}
        if self.validation is not None:
            found["validation"] = self.validation.to_dict()
        return found

    @classmethod
    def from_dict(cls, data: Any) -> EpochRecord:
        if not isinstance(data, Mapping) or not isinstance(data.get("epoch"), int) \
                or not isinstance(data.get("loss"), (int, float)):
            raise RecordError(f"a history entry {data!r} without its epoch and loss")
        validation = data.get("validation")
        return cls(data["epoch"], float(data["loss"]),
                   None if validation is None else _metrics(validation, "validation"))


@dataclass(frozen=True)
class Divergence:
    """Where a diverged run stopped (see :mod:`losszoo.training.divergence`)."""

    epoch: int
    step: int
    last_finite_loss: float | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "step": self.step, "last_finite_loss": self.last_finite_loss,
                "message": self.message}


@dataclass(frozen=True)
class RunRecord:
    """The result of one (loss, seed) run: its settings (``config``, ``TrainConfig.to_dict``)
    and their ``fingerprint``, the test ``metrics`` (None under protocol ``"tune"`` and for a
    diverged run), the final ``validation`` metrics (holdout and tune), the evaluation settings
    the metrics were computed under, the per-epoch ``history``, the split sizes, and the
    provenance (:mod:`losszoo.training.provenance`; not in the fingerprint). A run stopped on a
    non-finite value is a record too: status ``"diverged"``, no metrics, and where it stopped."""

    loss: str
    seed: int
    config: dict[str, Any]
    fingerprint: str
    evaluation: dict[str, Any]  # TrainConfig.evaluation_settings(): ks, binary
    metrics: EvaluationResult | None = None
    validation: EvaluationResult | None = None
    history: tuple[EpochRecord, ...] = ()
    train_seconds: float = 0.0
    splits: dict[str, Any] | None = None
    provenance: dict[str, Any] | None = None
    status: str = FINISHED
    diverged: Divergence | None = None

    @classmethod
    def of_plan(cls, plan: Any, **fields: Any) -> RunRecord:
        """A record of ``plan``'s run (a ``RunPlan``): its loss, seed, settings, fingerprint,
        evaluation settings and split sizes, then ``fields`` (which may override any of them)."""
        config = plan.config
        return cls(**{"loss": config.loss, "seed": config.seed, "config": config.to_dict(),
                      "fingerprint": plan.fingerprint(), "evaluation": config.evaluation_settings(),
                      "splits": plan.split_sizes(), **fields})

    @property
    def is_diverged(self) -> bool:
        return self.status == DIVERGED

    @property
    def ks(self) -> tuple[int, ...]:
        return tuple(self.evaluation["ks"])

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``result.json``."""
        found = {
            "schema_version": SCHEMA_VERSION, "status": self.status, "loss": self.loss, "seed": self.seed,
            "config": self.config, "fingerprint": self.fingerprint, "evaluation": self.evaluation,
            "metrics": None if self.metrics is None else self.metrics.to_dict(),
            "validation": None if self.validation is None else self.validation.to_dict(),
            "history": [entry.to_dict() for entry in self.history], "train_seconds": self.train_seconds,
            "splits": self.splits, "provenance": self.provenance,
        }
        if self.diverged is not None:
            found["diverged"] = self.diverged.to_dict()
        return found

    @classmethod
    def from_dict(cls, data: Any) -> RunRecord:
        """The record a ``result.json`` object holds, of any schema version up to
        :data:`SCHEMA_VERSION`; :class:`RecordError` saying what makes it unusable."""
        if not isinstance(data, Mapping):
            raise RecordError(f"it holds a {type(data).__name__}, not a record")
        version = data.get("schema_version", 1)  # 1: written before records had a version
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise NewerRecordError(f"is a run record of schema version {version!r}, newer than this losszoo "
                                   f"reads ({SCHEMA_VERSION}): upgrade losszoo, or delete it to redo that run")
        if not isinstance(data.get("fingerprint"), str):
            raise RecordError("no fingerprint")
        evaluation = data.get("evaluation")
        if not isinstance(evaluation, dict) or not _integers(evaluation.get("ks")):
            raise RecordError("no evaluation settings")
        status = data.get("status", FINISHED)
        if status not in STATUSES:
            raise RecordError(f"status {status!r} is none of {', '.join(STATUSES)}")
        outcome = _diverged(data) if status == DIVERGED else _finished(data, evaluation["ks"])
        history = _typed(data, "history", list, optional=True) or ()
        return cls(loss=_typed(data, "loss", str), seed=_typed(data, "seed", int),
                   config=_typed(data, "config", dict), fingerprint=data["fingerprint"], evaluation=evaluation,
                   history=tuple(EpochRecord.from_dict(entry) for entry in history),
                   train_seconds=float(_typed(data, "train_seconds", (int, float), optional=True) or 0.0),
                   splits=_typed(data, "splits", dict, optional=True),
                   provenance=_typed(data, "provenance", dict, optional=True), status=status, **outcome)


def read_record(path: str | Path) -> RunRecord:
    """The run record in ``path``; ``CorruptFileError`` naming it when it is not one, or one
    written by a newer losszoo (a schema version above :data:`SCHEMA_VERSION`)."""
    data = read_json(path)
    try:
        return RunRecord.from_dict(data)
    except NewerRecordError as exc:
        raise CorruptFileError(f"{path} {exc}") from None
    except RecordError as exc:
        raise CorruptFileError(f"{path} is not a complete run record ({exc}); delete it to redo that run") from None


def write_record(path: str | Path, record: RunRecord) -> Path:
    """Write ``record`` to ``path`` (atomically), as :func:`read_record` reads it."""
    return write_json(path, record.to_dict())


def _finished(data: Mapping[str, Any], ks: list[int]) -> dict[str, Any]:
    """The test and validation metrics of a finished run's record."""
    if not isinstance(data.get("metrics"), dict):
        raise RecordError("no metrics")
    validation = data.get("validation")
    return {"metrics": _metrics(data["metrics"], "test", ks),
            "validation": None if validation is None else _metrics(validation, "validation")}


def _diverged(data: Mapping[str, Any]) -> dict[str, Any]:
    """Where a diverged run's record says it stopped."""
    where = data.get("diverged")
    if not isinstance(where, dict):
        raise RecordError("a diverged run without its step")
    return {"diverged": Divergence(_typed(where, "epoch", int), _typed(where, "step", int),
                                   _typed(where, "last_finite_loss", (int, float), optional=True),
                                   _typed(where, "message", str, optional=True) or "")}


def _metrics(flat: Any, split: str, ks: list[int] | None = None) -> EvaluationResult:
    try:
        return EvaluationResult.from_dict(flat, ks)
    except MetricsError as exc:
        raise RecordError(str(exc) if split == "test" else f"{split} {exc}") from None


def _typed(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], *, optional: bool = False) -> Any:
    value = data.get(key)
    if (value is None and optional) or (isinstance(value, kind) and not isinstance(value, bool)):
        return value
    names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
    raise RecordError(f"{key} is {value!r}, expected {names}")


def _integers(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, int) for v in value)
