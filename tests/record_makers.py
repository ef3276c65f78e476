"""Hand-made run records (:mod:`losszoo.training.records`) for the tests of what reads them:
the report, its caption and figures."""

from __future__ import annotations

from typing import Any

from losszoo.evaluation.results import BinaryScores, EvaluationResult
from losszoo.training.records import EpochRecord, RunRecord

CONFIG = {"epochs": 3, "warmup_epochs": 0, "protocol": "holdout", "dataset": "omniglot",
          "backbone": "convnet4", "dim": 64, "max_classes": None}


def scores(recall1: float, map_at_r: float, *, nmi: float = 0.5, binary: float | None = None) -> EvaluationResult:
    """An evaluation at K = 1 (R-precision = MAP@R); ``binary``: every binary metric."""
    return EvaluationResult({1: recall1}, nmi, "arithmetic", map_at_r, map_at_r,
                            None if binary is None else BinaryScores({1: binary}, binary, binary))


def run_record(loss: str, seed: int, metrics: EvaluationResult | None, *, curve: tuple[float, ...] = (),
               config: dict[str, Any] | None = None, **fields: Any) -> RunRecord:
    """A finished run evaluated at K = 1; ``curve``: its validation MAP@R per epoch."""
    history = tuple(EpochRecord(epoch, 1.0, scores(v, v)) for epoch, v in enumerate(curve, 1))
    return RunRecord(loss=loss, seed=seed, config=dict(CONFIG if config is None else config), fingerprint="f",
                     evaluation={"ks": [1], "binary": False}, metrics=metrics, history=history,
                     train_seconds=1.0, **fields)
