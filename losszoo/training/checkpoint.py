"""Atomic writes and training checkpoints: an interrupted run (even ``kill -9``) loses at most
the epoch in progress, and never leaves a half-written file behind."""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import torch

from losszoo.errors import CorruptFileError, OutputError

LOCK = ".losszoo.lock"


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Write through a temporary file in the same folder, fsync it, then rename over ``path``.

    The file honours the umask (``mkstemp`` alone would make it 0600). A failed write (read-only
    folder, full disk) leaves any previous ``path`` untouched and raises ``OutputError`` naming it.
    """
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def output_lock(folder: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (a ``.losszoo.lock`` file, released by the kernel
    even after ``kill -9``), so that two processes never write one output folder."""
    import fcntl

    folder = Path(folder)
    lock = folder / LOCK
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = lock.open("a")
    except OSError as exc:
        raise OutputError(f"cannot write {folder}: {exc.strerror or exc}") from exc
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputError(
                f"another losszoo process is writing {folder} (it holds {lock}); wait for it "
                "to finish or use another output folder"
            ) from None
        yield


def write_json(path: str | Path, data: Any) -> Path:
    text = json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"
    return atomic_write(path, lambda fh: fh.write(text.encode()))


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda fh: fh.write(text.encode()))


def folder_name(name: str) -> str:
    """A registry name usable as a folder name everywhere (``pml:arcfaceloss`` -> ``pml-arcfaceloss``)."""
    return name.replace(":", "-")


def read_json(path: str | Path) -> Any:
    """A JSON file this project wrote; ``CorruptFileError`` naming it when it cannot be read."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise CorruptFileError(f"{path} cannot be read ({exc}); delete it to redo that run") from exc


def save_checkpoint(path: str | Path, **state: Any) -> Path:
    # Serialised in memory first, so a full disk surfaces as an OSError of the file write (torch's
    # own writer reports it as "enforce fail at inline_container.cc").
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return atomic_write(path, lambda fh: fh.write(buffer.getbuffer()))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint this project wrote; ``CorruptFileError`` naming it when it is truncated."""
    try:
        # Our own files: they hold numpy RNG state and config dicts, so no weights_only.
        state = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError, ValueError, KeyError, ImportError,
            pickle.UnpicklingError) as exc:
        raise CorruptFileError(f"{path} is not a readable checkpoint ({exc}); "
                               "delete it to start that run over") from exc
    if not isinstance(state, dict) or "fingerprint" not in state:
        raise CorruptFileError(f"{path} is not a losszoo checkpoint")
    return state
