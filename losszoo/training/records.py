"""Reading a run's ``result.json`` back (a comparison keeps finished runs): a record whose
metrics cannot be read is reported, naming the file, never silently left out of a table."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from losszoo.errors import CorruptFileError
from losszoo.training.checkpoint import read_json
from losszoo.training.divergence import DIVERGED

# The metrics every table row shows, besides Recall@K for the record's own ks.
TABLE_METRICS = ("nmi", "map_at_r")


def read_record(path: str | Path) -> dict[str, Any]:
    """The run record in ``path``; ``CorruptFileError`` naming it when it is not one."""
    record = read_json(path)
    problem = record_problem(record)
    if problem:
        raise CorruptFileError(f"{path} is not a complete run record ({problem}); delete it to redo that run")
    return record


def record_problem(record: Any) -> str | None:
    """What makes ``record`` unusable in a table, or None."""
    if not isinstance(record, dict):
        return f"it holds a {type(record).__name__}, not a record"
    if not isinstance(record.get("fingerprint"), str):
        return "no fingerprint"
    evaluation = record.get("evaluation")
    if not isinstance(evaluation, dict) or not _integers(evaluation.get("ks")):
        return "no evaluation settings"
    if record.get("status") == DIVERGED:
        return None if isinstance(record.get("diverged"), dict) else "a diverged run without its step"
    metrics = record.get("metrics")
    if not isinstance(metrics, dict):
        return "no metrics"
    for key in (*(f"recall@{k}" for k in evaluation["ks"]), *TABLE_METRICS):
        if not _finite(metrics.get(key)):
            return f"metric {key} is {metrics.get(key)!r}, not a number"
    odd = [key for key, value in metrics.items() if not (isinstance(value, str) or _finite(value))]
    return f"metric {odd[0]} is {metrics[odd[0]]!r}" if odd else None


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integers(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, int) for v in value)
