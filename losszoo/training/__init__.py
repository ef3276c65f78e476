"""The shared harness: one trainer for every loss, and the comparison built on it.

The names below are imported on first use, so that importing a light submodule
(``losszoo.training.config``) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "TrainConfig": "config", "build_config": "config", "compare": "compare",
    "evaluate_model": "inference", "extract_embeddings": "inference", "train": "trainer",
    "ComparisonSpec": "spec", "load_comparison": "spec", "run_comparison": "spec",
    "RunRecord": "records", "read_record": "records", "write_record": "records",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(f"losszoo.training.{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'losszoo.training' has no attribute {name!r}")
