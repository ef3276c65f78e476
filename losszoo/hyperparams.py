"""Typed, constrained hyperparameters and their search ranges, declared once next to each loss.

A loss's hyperparameters are its constructor's keyword arguments. Their *type* comes from the
constructor's type hints (or, without one, from the default value); their *constraint* and
*search range* are declared in the loss's registration::

    @register_loss("normsoftmax", hyperparameters={
        "temperature": Hyper(gt=0, search=LogUniform(0.01, 0.2)),
        "class_subsample": Hyper(gt=0, le=1),
    })

Every value, whether it comes from the Python API, ``--loss-option`` or a TOML file, goes
through :meth:`Hyper.coerce`: booleans accept ``true/false/yes/no/1/0`` and nothing else,
integers reject ``2.5``, floats must be finite (NaN and inf are refused unless ``finite=False``),
then the bounds and choices apply, all with one message format naming the loss and parameter.
"""

from __future__ import annotations

import math
import numbers
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, Union

from losszoo.errors import ConfigError

_TRUE = ("true", "yes", "1")
_FALSE = ("false", "no", "0")


class Trial(Protocol):
    """The part of ``optuna.trial.Trial`` a search range uses (no optuna import here)."""

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float: ...
    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False) -> int: ...
    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...


@dataclass(frozen=True)
class Uniform:
    """A float drawn uniformly from [low, high]."""

    low: float
    high: float

    def suggest(self, trial: Trial, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high)

    def __contains__(self, value: object) -> bool:
        return isinstance(value, (int, float)) and self.low <= value <= self.high

    def __str__(self) -> str:
        return f"uniform[{self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class LogUniform:
    """A positive float whose logarithm is uniform on [log low, log high]."""

    low: float
    high: float

    def suggest(self, trial: Trial, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, log=True)

    def __contains__(self, value: object) -> bool:
        return isinstance(value, (int, float)) and self.low <= value <= self.high

    def __str__(self) -> str:
        return f"log-uniform[{self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class IntRange:
    """An integer in [low, high] (log-spaced with ``log=True``)."""

    low: int
    high: int
    log: bool = False

    def suggest(self, trial: Trial, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, log=self.log)

    def __contains__(self, value: object) -> bool:
        return isinstance(value, int) and self.low <= value <= self.high

    def __str__(self) -> str:
        return f"{'log-' if self.log else ''}int[{self.low}, {self.high}]"


@dataclass(frozen=True)
class Choice:
    """One of a fixed set of values."""

    values: tuple[Any, ...]

    def suggest(self, trial: Trial, name: str) -> Any:
        return trial.suggest_categorical(name, list(self.values))

    def __contains__(self, value: object) -> bool:
        return value in self.values

    def __str__(self) -> str:
        return "{" + ", ".join(map(str, self.values)) + "}"


SearchRange = Union[Uniform, LogUniform, IntRange, Choice]


@dataclass(frozen=True)
class Hyper:
    """One hyperparameter: its type, constraint and (optionally) search range.

    Attributes:
        kind: ``bool``, ``int``, ``float``, ``str``, ``"number"`` (int or float, kept as given),
            or ``None`` (any value; no coercion). Filled from the constructor when not given.
        gt, ge, lt, le: bounds (numbers only).
        choices: the accepted values (strings, say), when the set is closed.
        optional: whether ``None`` is accepted.
        finite: floats must be finite (NaN never passes a bound either).
        search: the range a tuner draws from (:mod:`losszoo.tuning`); None: not tuned.
    """

    kind: Any = None
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    choices: tuple[Any, ...] | None = None
    optional: bool = False
    finite: bool = True
    search: SearchRange | None = None

    def coerce(self, value: Any, name: str, owner: str) -> Any:
        """``value`` converted to this parameter's type and checked; ``ConfigError`` otherwise."""
        where = f"{owner}: {name}"
        if value is None:
            if self.optional or self.kind is None:
                return None
            raise ConfigError(f"{where} must be {self._describe_kind()}, got None")
        value = self._convert(value, where)
        if isinstance(value, float) and self.finite and not math.isfinite(value):
            raise ConfigError(f"{where} must be a finite number, got {value}")
        for bound, holds, symbol in (
            (self.gt, lambda v, b: v > b, ">"), (self.ge, lambda v, b: v >= b, ">="),
            (self.lt, lambda v, b: v < b, "<"), (self.le, lambda v, b: v <= b, "<="),
        ):
            if bound is not None and not holds(value, bound):
                raise ConfigError(f"{where} must be {symbol} {bound:g}, got {value}")
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"{where} must be one of {', '.join(map(repr, self.choices))}, got {value!r}")
        return value

    def describe(self) -> str:
        """The constraint in words, e.g. ``"float > 0"`` (for listings and docs)."""
        parts = [self._describe_kind()]
        for bound, symbol in ((self.gt, ">"), (self.ge, ">="), (self.lt, "<"), (self.le, "<=")):
            if bound is not None:
                parts.append(f"{symbol} {bound:g}")
        if self.choices is not None:
            parts.append("in {" + ", ".join(map(str, self.choices)) + "}")
        return " ".join(parts) + (" or None" if self.optional else "")

    def _describe_kind(self) -> str:
        if isinstance(self.kind, type):
            return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(
                self.kind, self.kind.__name__)
        return "a number" if self.kind == "number" else "a value"

    def _convert(self, value: Any, where: str) -> Any:
        kind = self.kind
        if kind is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, numbers.Integral) and value in (0, 1):
                return bool(value)
            if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
                return value.strip().lower() in _TRUE
            raise ConfigError(f"{where} must be a boolean (true/false, yes/no, 1/0), got {value!r}")
        if kind is int:
            if isinstance(value, str):
                value = _parse_number(value, where, "an integer")
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ConfigError(f"{where} must be an integer, got {value!r}")
            if isinstance(value, numbers.Integral):
                return int(value)
            if math.isfinite(value) and float(value).is_integer():
                return int(value)
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        if kind in (float, "number"):
            if isinstance(value, str):
                value = _parse_number(value, where, "a number")
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ConfigError(f"{where} must be a number, got {value!r}")
            if kind is float or not isinstance(value, numbers.Integral):
                return float(value)
            return int(value)
        if kind is str:
            if not isinstance(value, str):
                raise ConfigError(f"{where} must be a string, got {value!r}")
            return value
        return value


def _parse_number(text: str, where: str, expected: str) -> float | int:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{where} must be {expected}, got {text!r}") from None


def kind_of(annotation: Any, default: Any) -> tuple[Any, bool]:
    """(kind, optional) from a resolved type hint, or from the default when there is none."""
    if annotation is not None:
        optional = False
        origin = typing.get_origin(annotation)
        if origin in (Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            optional = len(members) < len(typing.get_args(annotation))
            annotation = members[0] if len(members) == 1 else None
        if annotation in (bool, int, float, str):
            return annotation, optional
        return None, optional
    if isinstance(default, bool):
        return bool, False
    if isinstance(default, float):
        return float, False
    if isinstance(default, int):
        return "number", False
    if isinstance(default, str):
        return str, False
    return None, default is None


def complete(declared: Hyper | None, annotation: Any, default: Any) -> Hyper:
    """A declaration with its type filled from the constructor (hint, else default)."""
    declared = declared or Hyper()
    if declared.kind is not None:
        return declared
    kind, optional = kind_of(annotation, default)
    return replace(declared, kind=kind, optional=declared.optional or optional)


def resolve(
    hyperparameters: Mapping[str, Hyper], defaults: Mapping[str, Any], overrides: Mapping[str, Any],
    owner: str,
) -> dict[str, Any]:
    """Every hyperparameter's value: the defaults updated by ``overrides``, each coerced and checked.

    Unknown names are refused, listing the accepted ones.
    """
    unknown = sorted(set(overrides) - set(hyperparameters))
    if unknown:
        accepted = ", ".join(sorted(hyperparameters)) or "none"
        raise ConfigError(
            f"{owner} has no hyperparameter {', '.join(map(repr, unknown))}; accepted: {accepted}"
        )
    values = {**defaults, **overrides}
    return {name: hyper.coerce(values[name], name, owner) for name, hyper in hyperparameters.items()}
