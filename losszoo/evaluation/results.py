"""The metrics an evaluation reports, by name, and :class:`EvaluationResult`, their typed form.

The names are those of :func:`losszoo.evaluation.evaluate`'s dict (``recall@1``, ``nmi``,
``map_at_r``, ...) and of every file a run writes; binary (sign-code) metrics carry the prefix
``binary/``. :func:`metric_names` is the one list of them a tuner's metric, a log line or a table
column is checked against; ``to_dict``/``from_dict`` convert to and from the flat dict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

RECALL, NMI, MAP_AT_R, R_PRECISION = "recall", "nmi", "map_at_r", "r_precision"
NMI_AVERAGE = "nmi_average"  # the one non-float entry: the NMI normalisation's name
METRIC_KINDS = (RECALL, NMI, MAP_AT_R, R_PRECISION)  # what evaluate(metrics=...) selects from
# Binary (sign) codes are scored by retrieval only: clustering them (NMI) says little.
BINARY_KINDS = (RECALL, MAP_AT_R, R_PRECISION)
BINARY_PREFIX = "binary/"
_RECALL_PREFIX = "recall@"


def recall_key(k: int) -> str:
    """``recall@K``: the name of Recall@K."""
    return f"{_RECALL_PREFIX}{k}"


def binary_key(name: str) -> str:
    """``binary/<name>``: the name of a metric of the sign codes."""
    return BINARY_PREFIX + name


def metric_names(ks: Sequence[int], *, binary: bool) -> list[str]:
    """The names of the float metrics an evaluation at ``ks`` reports (with ``binary``, the
    binary ones too), in the order of its dict."""
    def names(kinds: Sequence[str]) -> list[str]:
        return [name for kind in kinds for name in ([recall_key(k) for k in ks] if kind == RECALL else [kind])]

    found = names(METRIC_KINDS)
    return found + [binary_key(name) for name in names(BINARY_KINDS)] if binary else found


class MetricsError(ValueError):
    """A metrics dict that is not a complete evaluation result (the message says what is wrong)."""


@dataclass(frozen=True)
class BinaryScores:
    """The retrieval metrics of the sign-binarised embeddings (Hamming distance)."""

    recall: Mapping[int, float]  # Recall@K by K
    map_at_r: float
    r_precision: float

    def scalars(self) -> dict[str, float]:
        return {**{recall_key(k): v for k, v in self.recall.items()},
                MAP_AT_R: self.map_at_r, R_PRECISION: self.r_precision}


@dataclass(frozen=True)
class EvaluationResult:
    """Recall@K, NMI (and its normalisation), MAP@R and R-precision of one evaluation, and
    optionally the same retrieval metrics of its binary codes."""

    recall: Mapping[int, float]  # Recall@K by K, in the order of the evaluation's ks
    nmi: float
    nmi_average: str
    map_at_r: float
    r_precision: float
    binary: BinaryScores | None = None

    @property
    def ks(self) -> tuple[int, ...]:
        return tuple(self.recall)

    def scalars(self) -> dict[str, float]:
        """Every number by its name (``recall@1``, ..., ``binary/map_at_r``), in
        :func:`metric_names` order."""
        found = {**{recall_key(k): v for k, v in self.recall.items()}, NMI: self.nmi,
                 MAP_AT_R: self.map_at_r, R_PRECISION: self.r_precision}
        if self.binary is not None:
            found.update({binary_key(name): v for name, v in self.binary.scalars().items()})
        return found

    def value(self, name: str) -> float:
        """The metric called ``name`` (one of :func:`metric_names`)."""
        found = self.scalars()
        if name not in found:
            raise KeyError(f"no metric {name!r} in this result (it has {', '.join(found)})")
        return found[name]

    def to_dict(self) -> dict[str, float | str]:
        """The flat dict of :func:`~losszoo.evaluation.evaluate` (binary ones prefixed), as a
        run's files hold it."""
        flat: dict[str, float | str] = {}
        for name, value in self.scalars().items():
            flat[name] = value
            if name == NMI:  # the normalisation NMI was computed with, beside it
                flat[NMI_AVERAGE] = self.nmi_average
        return flat

    @classmethod
    def from_dict(cls, flat: Any, ks: Sequence[int] | None = None) -> EvaluationResult:
        """The result a flat dict holds (``to_dict``'s or ``evaluate``'s with every metric);
        ``ks``: the Recall@K it must have (default: those it has). :class:`MetricsError`
        naming the first metric missing, not a finite number, or unknown."""
        if not isinstance(flat, Mapping):
            raise MetricsError(f"the metrics are a {type(flat).__name__}, not a dict")
        own = [_k(key) for key in flat if isinstance(key, str) and key.startswith(_RECALL_PREFIX)]
        ks = list(own if ks is None else ks)
        recall = {k: _number(flat, recall_key(k)) for k in ks}
        nmi, map_at_r = _number(flat, NMI), _number(flat, MAP_AT_R)
        r_precision = _number(flat, R_PRECISION)
        average = flat.get(NMI_AVERAGE)
        if not isinstance(average, str):
            raise MetricsError(f"metric {NMI_AVERAGE} is {average!r}, not a name")
        binary = None
        if any(isinstance(key, str) and key.startswith(BINARY_PREFIX) for key in flat):
            binary = BinaryScores({k: _number(flat, binary_key(recall_key(k))) for k in ks},
                                  _number(flat, binary_key(MAP_AT_R)), _number(flat, binary_key(R_PRECISION)))
        result = cls(recall, nmi, average, map_at_r, r_precision, binary)
        unknown = [key for key in flat if key not in result.to_dict()]
        if unknown:
            raise MetricsError(f"metric {unknown[0]} is unknown (expected {', '.join(result.to_dict())})")
        return result


def _k(key: str) -> int:
    k = key.removeprefix(_RECALL_PREFIX)
    if not k.isdigit() or int(k) < 1:
        raise MetricsError(f"metric {key} names no K")
    return int(k)


def _number(flat: Mapping[str, Any], key: str) -> float:
    value = flat.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise MetricsError(f"metric {key} is {value!r}, not a number")
    return float(value)
