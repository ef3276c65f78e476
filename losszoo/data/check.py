"""Decode every image of a split once, to find the bad files before a long run does."""

from __future__ import annotations

from collections.abc import Callable

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
