"""Where a result came from: software versions, git commit, machine, device, times, command line
and the loss's resolved hyperparameters, so a run folder alone says how it was made.

Provenance is recorded next to a result, never inside its fingerprint: two runs of the same
settings on other machines or commits are the same run for ``--resume`` and ``compare``.
"""

from __future__ import annotations

import contextlib
import importlib
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

# Modules whose versions change results; None in the record when one is not installed.
VERSIONED_MODULES = ("torch", "torchvision", "faiss", "pytorch_metric_learning", "numpy")
GIT_TIMEOUT_S = 2.0


def utc_now() -> str:
    """The current time, ISO 8601 in UTC (seconds)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def module_version(name: str) -> str | None:
    """``name.__version__``, or None when the module is not importable."""
    try:
        module = importlib.import_module(name)
    except ImportError:
        return None
    version = getattr(module, "__version__", None)
    return None if version is None else str(version)


def git_state(folder: str | Path | None = None) -> dict[str, Any] | None:
    """``{"commit", "dirty"}`` of the checkout holding ``folder`` (default: the losszoo
    package), or None outside a git repository or without git."""
    folder = Path(folder) if folder is not None else Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True,
                                  timeout=GIT_TIMEOUT_S, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return None
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def cpu_model() -> str | None:
    """The CPU's model name (/proc/cpuinfo on Linux, else ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def device_info(device: torch.device | str | None) -> dict[str, Any]:
    """The device name, and the GPU's name and CUDA version when it is a CUDA device."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    info: dict[str, Any] = {"device": str(device), "gpu": None, "cuda": None}
    if device.type == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def loss_record(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """The canonical loss name, every constructor hyperparameter (defaults included), and where
    the loss is defined (``module``; ``file`` too for a loss from outside losszoo, e.g. a
    ``--loss-module FILE.py``: ``losszoo eval`` names it when the loss is not registered)."""
    import inspect

    from losszoo.losses import get_loss_spec

    spec = get_loss_spec(name)
    record = {"name": spec.name, "options": spec.resolve(options), "module": spec.cls.__module__}
    if not spec.cls.__module__.startswith("losszoo."):  # a plugin's, or a --loss-module file's
        with contextlib.suppress(TypeError, OSError):
            record["file"] = str(Path(inspect.getsourcefile(spec.cls)).resolve())
    return record


def provenance(*, device: torch.device | str | None, started: str, loss: str | None = None,
               loss_options: dict[str, Any] | None = None, model: Any = None) -> dict[str, Any]:
    """The provenance record of a run that started at ``started`` (ISO 8601) and ends now;
    with ``model``, whether its backbone's weights were really loaded, and from where."""
    from losszoo import __version__

    record: dict[str, Any] = {
        "losszoo": __version__,
        "git": git_state(),
        "python": platform.python_version(),
        "versions": {name: module_version(name) for name in VERSIONED_MODULES},
        "platform": platform.platform(),
        "cpu": cpu_model(),
        **device_info(device),
        "started": started,
        "finished": utc_now(),
        "command": list(sys.argv),
    }
    if loss is not None:
        record["loss"] = loss_record(loss, loss_options or {})
    if model is not None:
        weights = getattr(model, "weights", None)
        record["pretrained"] = bool(getattr(model, "is_pretrained", False))
        record["weights"] = weights.to_dict() if weights is not None else None
    return record
