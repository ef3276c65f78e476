"""Reading a dataset's list files (CUB's images.txt, SOP's Ebay_*.txt, In-Shop's partition)
strictly: every problem is an error naming the file and line, never a silently wrong split.

A listed path must stay inside its root folder: no absolute path, no ``..``, no symlink out of
it, so that a list file cannot make a run read (or train on) files elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from pathlib import Path

from losszoo.errors import DataError


@dataclass(frozen=True)
class ListLine:
    """One non-blank line of a list file: where it is, and its whitespace-separated fields."""

    path: Path
    number: int
    fields: tuple[str, ...]
    unit: str = "line"  # what ``number`` counts (CARS196 lists annotations in a .mat)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.number}" if self.unit == "line" else f"{self.path} {self.unit} {self.number}"

    def error(self, problem: str) -> DataError:
        return DataError(f"{self.where}: {problem}")

    def integer(self, index: int, what: str) -> int:
        """Field ``index`` as a non-negative integer; an error naming ``what`` otherwise."""
        value = self.fields[index]
        if not value.isascii() or not value.isdigit():
            raise self.error(f"{what} must be an integer, got {value!r}")
        return int(value)


def read_lines(path: Path, *, maxsplit: int = -1) -> list[ListLine]:
    """The non-blank lines of text file ``path``, split on whitespace (at most ``maxsplit``
    times); an error naming file and line for a byte that is not UTF-8."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 text (byte {data[exc.start]:#04x})") from None
    return [ListLine(path, number, tuple(line.split(None, maxsplit)))
            for number, line in enumerate(text.splitlines(), 1) if line.strip()]


def inside(root: Path, relative: str, line: ListLine) -> Path:
    """``root / relative``, refused (naming the line) when it would resolve outside ``root``:
    an absolute path, a ``..`` component or a symlink that leaves it."""
    if os.path.isabs(relative) or ".." in Path(relative).parts:
        raise line.error(f"path {relative!r} leaves {root}: listed paths must be relative and "
                         "stay inside it")
    path = root / relative
    real_root = os.path.realpath(root)
    if os.path.commonpath([real_root, os.path.realpath(path)]) != real_root:
        raise line.error(f"path {relative!r} leads outside {root} through a symlink "
                         f"(to {os.path.realpath(path)})")
    return path


def check_unique(lines: Iterable[ListLine], key: int, what: str) -> None:
    """Refuse a value of field ``key`` listed twice (e.g. an image id: the last would win),
    naming both lines."""
    seen: dict[Hashable, ListLine] = {}
    for line in lines:
        value = line.fields[key]
        if value in seen:
            raise line.error(f"{what} {value!r} is listed twice (also at line {seen[value].number})")
        seen[value] = line


def check_range(line: ListLine, value: int, allowed: range, what: str) -> int:
    """``value`` if it lies in ``allowed``; an error naming the line otherwise."""
    if value not in allowed:
        raise line.error(f"{what} {value} is out of range {allowed.start}..{allowed.stop - 1}")
    return value
