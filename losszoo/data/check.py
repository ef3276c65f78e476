"""Decode every image of a split once, to find the bad files before a long run does."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

from losszoo.errors import DataError


def bad_images(source: object, report: Callable[[int, int], None] | None = None) -> list[str]:
    """The decode errors of every listed image of ``source`` (an ``ImageListing``; array-backed
    sources have nothing to decode and give none), one message per bad file, naming it."""
    items, reader = getattr(source, "items", None), getattr(source, "reader", None)
    if items is None or reader is None:
        return []
    bad = []
    for done, item in enumerate(items, 1):
        try:
            reader(item, "RGB")
        except DataError as exc:
            bad.append(str(exc))
        if report is not None:
            report(done, len(items))
    return bad


def bad_headers(source: object, classes: Collection[Any] | None = None) -> list[str]:
    """The header errors of every listed image of ``source`` (of raw class ids ``classes``
    only, if given): format and size only, no pixels, fast enough to run when a run is planned,
    so that a bad test image fails before training."""
    items, reader = getattr(source, "items", None), getattr(source, "reader", None)
    check = getattr(reader, "check_header", None)
    if items is None or check is None:
        return []
    if classes is not None:
        items = [item for item, label in zip(items, source.raw_labels) if label in classes]
    key = (type(reader), getattr(reader, "archive", None), tuple(map(str, items)))
    if key not in _CHECKED:  # every plan of a comparison lists the same files: read them once
        _CHECKED[key] = _read_headers(check, items)
    return list(_CHECKED[key])


_CHECKED: dict[tuple[Any, ...], tuple[str, ...]] = {}


def _read_headers(check: Callable[[Any], None], items: Sequence[Any]) -> tuple[str, ...]:
    bad = []
    for item in items:
        try:
            check(item)
        except DataError as exc:
            bad.append(str(exc))
    return tuple(bad)
