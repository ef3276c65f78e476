"""What every benchmark script records: the machine it ran on, and the JSON file it writes."""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path
from typing import Any

import torch


def machine_info(device: torch.device, **extra: Any) -> dict[str, Any]:
    """Versions, device, threads and the load average before the run; printed as one line."""
    machine = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        **extra,
        "loadavg_before": os.getloadavg(),
    }
    print(", ".join(f"{k} {v}" for k, v in machine.items()))
    return machine


def finish(machine: dict[str, Any], args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    """Record the load average after the run and write ``args.json`` when it is set."""
    machine["loadavg_after"] = os.getloadavg()
    print(f"load average before {machine['loadavg_before']}, after {machine['loadavg_after']}")
    path: Path | None = args.json
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"machine": machine, "args": vars(args) | {"json": str(path)},
                                    "rows": rows}, indent=1))
