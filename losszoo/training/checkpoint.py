"""Atomic writes and training checkpoints: an interrupted run (even ``kill -9``) loses at most
the epoch in progress, and never leaves a half-written file behind."""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import re
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


def run_folder(output_dir: str | Path, loss: str, seed: int) -> Path:
    """Where a comparison in ``output_dir`` keeps the run of ``loss`` (or the untrained floor)
    and ``seed``: ``<loss>/seed<seed>``."""
    return Path(output_dir) / folder_name(loss) / f"seed{seed}"


def read_json(path: str | Path) -> Any:
    """A JSON file this project wrote; ``CorruptFileError`` naming it when it cannot be read."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise CorruptFileError(f"{path} cannot be read ({exc}); delete it to redo that run") from exc


# What a checkpoint may hold: ``torch.load(weights_only=True)`` reads these back without
# running any code (``Counter`` is MultiStepLR's milestones).
PLAIN_TYPES = (str, int, float, bool, type(None), torch.Tensor, torch.Size, torch.dtype)
CONTAINERS = (dict, list, tuple)


def check_plain(value: Any, where: str = "state") -> None:
    """Raise ``TypeError`` naming the first entry of ``value`` that is not a tensor, a plain
    value or a dict/list/tuple of them (a bug: such a checkpoint could not be read safely)."""
    if isinstance(value, dict):
        for key, item in value.items():
            check_plain(key, f"{where} key")
            check_plain(item, f"{where}[{key!r}]")
    elif isinstance(value, CONTAINERS):
        for i, item in enumerate(value):
            check_plain(item, f"{where}[{i}]")
    elif not isinstance(value, PLAIN_TYPES):
        raise TypeError(f"a checkpoint holds only tensors and plain values: {where} is a "
                        f"{type(value).__module__}.{type(value).__qualname__}")


def save_checkpoint(path: str | Path, **state: Any) -> Path:
    """Write ``state`` (tensors and plain values only, see :func:`check_plain`) atomically."""
    check_plain(state)
    # Serialised in memory first, so a full disk surfaces as an OSError of the file write (torch's
    # own writer reports it as "enforce fail at inline_container.cc").
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return atomic_write(path, lambda fh: fh.write(buffer.getbuffer()))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint this project wrote; ``CorruptFileError`` naming it when it is truncated, or
    when it holds anything but tensors and plain values (``weights_only``: a checkpoint someone
    sent you cannot run code; one that needs more is refused, not unpickled)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL (\S+)", str(exc))
        raise CorruptFileError(
            f"{path} holds more than tensors and plain values"
            f"{f' ({found.group(1)})' if found else ''}: it was not written by this losszoo "
            "version, or was crafted to run code, so it is not loaded; delete it to start that "
            "run over") from None
    except (OSError, RuntimeError, EOFError, ValueError, KeyError, ImportError) as exc:
        raise CorruptFileError(f"{path} is not a readable checkpoint ({exc}); "
                               "delete it to start that run over") from exc
    if not isinstance(state, dict) or "fingerprint" not in state:
        raise CorruptFileError(f"{path} is not a losszoo checkpoint")
    return state
