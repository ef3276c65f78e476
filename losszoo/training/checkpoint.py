"""Atomic writes and training checkpoints: an interrupted run (even ``kill -9``) loses at most
the epoch in progress, and never leaves a half-written file behind."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Write through a temporary file in the same folder, fsync it, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | Path, data: Any) -> Path:
    text = json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"
    return atomic_write(path, lambda fh: fh.write(text.encode()))


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda fh: fh.write(text.encode()))


def folder_name(name: str) -> str:
    """A registry name usable as a folder name everywhere (``pml:arcfaceloss`` -> ``pml-arcfaceloss``)."""
    return name.replace(":", "-")


def save_checkpoint(path: str | Path, **state: Any) -> Path:
    return atomic_write(path, lambda fh: torch.save(state, fh))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    # Our own files: they hold numpy RNG state and config dicts, so no weights_only.
    return torch.load(path, map_location="cpu", weights_only=False)
