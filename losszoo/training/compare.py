"""``losszoo compare``: train each loss in turn under one shared config, then report.

Each (loss, seed) run lives in ``<output>/<loss>/seed<k>/``; a run whose ``result.json`` carries
the same config fingerprint is finished and is not redone, and a run with only a checkpoint
resumes from it. An untrained network (same backbone, head and seed) is evaluated too, as the
floor every loss must clear.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from losszoo.losses import get_loss_spec, list_losses
from losszoo.training.checkpoint import folder_name, write_json
from losszoo.training.config import TrainConfig, preset_loss_options
from losszoo.training.inference import evaluate_model, resolve_device
from losszoo.training.report import write_report
from losszoo.training.trainer import RESULT, build_model, check_names, load_eval_data, train

UNTRAINED = "untrained"


def _finished(path: Path, config: TrainConfig) -> dict[str, Any] | None:
    """The run record at ``path`` if it was made with exactly these settings."""
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    return record if record.get("fingerprint") == config.fingerprint() else None


def untrained_baseline(config: TrainConfig, output_dir: Path, console: Console) -> dict[str, Any]:
    """Metrics of the freshly initialised model: the floor for every loss."""
    path = output_dir / UNTRAINED / f"seed{config.seed}" / RESULT
    done = _finished(path, config)
    if done:
        return done
    model = build_model(config, resolve_device(config.device))
    metrics = evaluate_model(model, load_eval_data(config, model), ks=config.ks,
                             binary=config.binary, workers=config.workers, seed=config.seed)
    console.log(f"untrained network: R@1 {100 * metrics['recall@1']:.1f}")
    record = {"loss": UNTRAINED, "seed": config.seed, "config": config.to_dict(),
              "fingerprint": config.fingerprint(), "metrics": metrics, "history": [],
              "train_seconds": 0.0}
    write_json(path, record)
    return record


def compare(
    base: TrainConfig,
    output_dir: str | Path,
    *,
    losses: Sequence[str] | None = None,
    seeds: int = 1,
    loss_options: dict[str, dict[str, Any]] | None = None,
    progress: bool = True,
    console: Console | None = None,
) -> list[dict[str, Any]]:
    """Train every loss in ``losses`` for ``seeds`` seeds; return the run records (untrained
    baseline first) and write the report files.

    By default every registered loss is compared except adapter-namespaced ones (``pml:*``),
    which are many and run only when named.
    """
    output_dir = Path(output_dir)
    console = console or Console(stderr=True)
    losses = losses or [name for name in list_losses() if ":" not in name]
    names = [get_loss_spec(name).name for name in losses]
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    by_name: dict[str, dict[str, Any]] = {}  # an alias's options merge into its loss's, none dropped
    for name, options in (loss_options or {}).items():
        by_name.setdefault(get_loss_spec(name).name, {}).update(options)
    loss_options = by_name
    unknown = sorted(set(loss_options) - set(names))
    if unknown:
        raise ValueError(f"loss options given for losses not compared: {', '.join(unknown)}")

    for name in names:
        check_names(base.replace(loss=name))
    records = []
    for seed in range(base.seed, base.seed + seeds):
        records.append(untrained_baseline(base.replace(seed=seed), output_dir, console))
    for name in names:
        for seed in range(base.seed, base.seed + seeds):
            options = preset_loss_options(base.dataset, name, loss_options.get(name))
            config = base.replace(loss=name, seed=seed, loss_options=options)
            run_dir = output_dir / folder_name(name) / f"seed{seed}"
            done = _finished(run_dir / RESULT, config)
            if done:
                console.log(f"{name} seed {seed}: finished earlier, kept")
                records.append(done)
                continue
            records.append(train(config, run_dir, resume=True, progress=progress, console=console))
    write_report(records, output_dir, ks=base.ks, console=console)
    return records

