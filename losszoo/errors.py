"""The project's own errors: faults a user can fix, each reported by the CLI as one line.

Anything else that escapes a command is a bug and keeps its traceback (``losszoo.cli.main``).
Each class also derives from the builtin a caller would expect (``ValueError``,
``FileNotFoundError``...), so ``except ValueError`` keeps working.
"""

from __future__ import annotations


class LosszooError(Exception):
    """Base class: a problem with the user's input, data or files, not a bug."""


class ConfigError(LosszooError, ValueError):
    """A setting, name or hyperparameter that is unknown, of the wrong type or out of range."""


class DataError(LosszooError, ValueError):
    """A dataset that cannot be read or cannot support the requested run (names the file)."""


class OutputError(LosszooError, OSError):
    """An output folder or file that cannot be written, is locked, or holds other settings."""


class CorruptFileError(LosszooError, ValueError):
    """A checkpoint or result file that exists but cannot be read (names the path)."""


class DivergedError(LosszooError, FloatingPointError):
    """Training produced a non-finite loss (or weights): the run stopped at that step.

    ``epoch`` and ``step`` (1-based) say where; ``last_finite`` is the last finite loss seen
    (None when there was none)."""

    def __init__(self, message: str, *, epoch: int, step: int, last_finite: float | None) -> None:
        super().__init__(message)
        self.epoch, self.step, self.last_finite = epoch, step, last_finite
