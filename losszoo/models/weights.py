"""A backbone's weights from a local file (``--weights FILE``), loaded offline and strictly.

The file is a state dict saved with ``torch.save``: the backbone's own (``model.backbone``
as losszoo builds it), or the full network's with its classifier (``Backbone.head_keys``:
e.g. torchvision's ``fc.``), whose keys are dropped. It is read with ``weights_only=True``,
so a pickle that would run code is refused, and loaded strictly: missing or unexpected keys
and shape mismatches are refused in one line that names them. Its sha256 goes into the run's
provenance (:class:`WeightsRecord`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from losszoo.errors import LosszooError

if TYPE_CHECKING:
    from losszoo.models.registry import Backbone

SHOWN_KEYS = 3  # keys named per kind of mismatch in an error line


class WeightsError(LosszooError, ValueError):
    """A weights file that cannot be read or does not fit the network (names the file)."""


@dataclass(frozen=True)
class WeightsRecord:
    """Where a backbone's weights came from: ``source`` (e.g. ``"file"``,
    ``"torchvision IMAGENET1K_V1"``), the file read and its sha256."""

    source: str
    path: str
    sha256: str

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


def read_state_dict(path: str | Path) -> tuple[dict[str, Tensor], str]:
    """The state dict in ``path`` (read with ``weights_only=True``) and the file's sha256."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    data = path.read_bytes()
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise WeightsError(f"{path}: refused: it holds Python objects other than tensors, which "
                           f"weights-only loading does not run ({_first_line(exc)})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise WeightsError(f"{path}: not a readable torch.save file (truncated or damaged?): "
                           f"{_first_line(exc)}") from None
    if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()):
        raise WeightsError(f"{path}: not a state dict (a dict of tensors by name), got "
                           f"{type(state).__name__}")
    return state, hashlib.sha256(data).hexdigest()


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_hash_prefix(path: Path, digest: str) -> None:
    """A file named ``<name>-<hex>.<ext>`` must have a sha256 starting with ``<hex>``
    (torchvision's convention for its hub cache, also the Lite packages')."""
    match = re.search(r"-([a-f0-9]{6,})\.", path.name)
    if match and not digest.startswith(match.group(1)):
        raise WeightsError(f"{path}: sha256 {digest[:12]}... does not start with {match.group(1)} "
                           "as its name says: a damaged or replaced file")


def load_weights(backbone: Backbone, path: str | Path, *, name: str) -> Backbone:
    """``backbone`` with the state dict of ``path`` loaded strictly (see the module doc)."""
    state, digest = read_state_dict(path)
    expected = backbone.module.state_dict()
    state = {k: v for k, v in state.items()
             if k in expected or not k.startswith(tuple(backbone.head_keys))}
    problems = mismatches(state, expected)
    if problems:
        raise WeightsError(f"{path} does not fit backbone {name}: {problems}")
    backbone.module.load_state_dict(state, strict=True)
    record = WeightsRecord(source="file", path=str(Path(path).resolve()), sha256=digest)
    return dataclasses.replace(backbone, pretrained=True, weights=record)


def mismatches(state: dict[str, Tensor], expected: dict[str, Any]) -> str:
    """Missing keys, unexpected keys and shape mismatches of ``state``, in words ("" if none)."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}" for k in expected
              if k in state and state[k].shape != expected[k].shape]
    parts = [f"{label} {len(items)} ({', '.join(items[:SHOWN_KEYS])}"
             f"{', ...' if len(items) > SHOWN_KEYS else ''})"
             for label, items in (("missing", missing), ("unexpected", unexpected),
                                  ("wrong shape", shapes)) if items]
    return "; ".join(parts)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
