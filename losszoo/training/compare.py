"""``losszoo compare``: train each loss in turn under one shared config, then report.

Each (loss, seed) run lives in ``<output>/<loss>/seed<k>/``; a run whose ``result.json`` carries
the same config fingerprint is finished and is not redone (only re-evaluated from its
checkpoint when the evaluation settings changed), and a run with only a checkpoint resumes
from it. An untrained network (same backbone, head and seed) is evaluated too, as the floor
every loss must clear. Every run is planned, and every existing file in the output folder
checked, before anything is trained or written: a refused comparison changes nothing on disk.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from losszoo.distributed import init_distributed
from losszoo.errors import ConfigError, DivergedError, OutputError
from losszoo.losses import select_losses
from losszoo.training.callbacks import Callback
from losszoo.training.checkpoint import output_lock, run_folder
from losszoo.training.config import TRAINING_ONLY, TrainConfig
from losszoo.training.divergence import diverged_record
from losszoo.training.plan import (
    RunPlan, build_model, evaluate, final_test_data, loss_name, loss_spec, plan_run,
)
from losszoo.training.logs import require_tensorboard
from losszoo.training.provenance import provenance, utc_now
from losszoo.training.records import UNTRAINED, RunRecord, read_record, write_record
from losszoo.training.report import write_report
from losszoo.training.trainer import RESULT, check_output, train

# What the untrained network's metrics do not depend on (declared in config.py).
_LOSS_SETTINGS = TRAINING_ONLY


@dataclass(frozen=True)
class PlannedRun:
    plan: RunPlan
    folder: Path
    done: RunRecord | None  # the finished record, when it can be kept as it is

    @property
    def untrained(self) -> bool:
        return self.folder.parent.name == UNTRAINED


def _finished(plan: RunPlan, folder: Path, fingerprint: str) -> RunRecord | None:
    """The run record in ``folder`` if made with these settings; refuse one made with others."""
    path = folder / RESULT
    if not path.exists():
        return None
    record = read_record(path)  # a damaged record is reported, never left out of the table
    if record.fingerprint != fingerprint:
        raise OutputError(
            f"{path} was made by a run with different settings; use another output "
            "folder, or delete that run to redo it"
        )
    return record if record.evaluation == plan.config.evaluation_settings() else None


def plan_comparison(
    base: TrainConfig, output_dir: Path, *, losses: Sequence[str] | None, seeds: int,
    loss_options: dict[str, dict[str, Any]] | None,
    loss_settings: dict[str, dict[str, Any]] | None = None,
) -> list[PlannedRun]:
    """Plan every run (untrained floor first) and check the output folder; write nothing."""
    if seeds < 1:
        raise ConfigError(f"seeds must be >= 1, got {seeds}")
    if losses is not None and not losses:
        raise ConfigError("no loss to compare: --losses is empty")
    names = select_losses(losses)
    canonical = [loss_name(name) for name in names]
    by_name: dict[str, dict[str, Any]] = {}  # an alias's options merge into its loss's, none dropped
    for name, options in (loss_options or {}).items():
        by_name.setdefault(loss_name(name), {}).update(options)
    settings_by_name = {loss_name(name): dict(values) for name, values in (loss_settings or {}).items()}
    unknown = sorted((set(by_name) | set(settings_by_name)) - set(canonical))
    if unknown:
        raise ConfigError(f"loss options given for losses not compared: {', '.join(unknown)}")

    runs = []
    seed_range = range(base.seed, base.seed + seeds)
    for seed in seed_range:
        # Nothing trains, so nothing mines nor remembers: the miner (which the base's loss may
        # refuse) and the cross-batch memory are dropped.
        plan = plan_run(base.replace(seed=seed, shard_class_weights=False, xbm=0, miner=None, miner_options={}))
        folder = run_folder(output_dir, UNTRAINED, seed)
        fingerprint = plan.config.fingerprint(exclude=_LOSS_SETTINGS)
        runs.append(PlannedRun(plan, folder, _finished(plan, folder, fingerprint)))
    for name in dict.fromkeys(canonical):
        settings = settings_by_name.get(name, {})
        for seed in seed_range:
            try:
                plan = plan_run(base.replace(
                    loss=name, seed=seed, loss_options=by_name.get(name, {}),
                    shard_class_weights=base.shard_class_weights and loss_spec(name).shards_class_weights,
                    **settings))
            except ConfigError as exc:  # say when a per-loss (e.g. tuned) setting is the cause
                if not settings:
                    raise
                given = ", ".join(f"{key} {value:.3g}" if isinstance(value, float) else f"{key} {value}"
                                  for key, value in settings.items())
                raise ConfigError(f"{name} with its per-loss settings ({given}): {exc}") from None
            folder = run_folder(output_dir, name, seed)
            done = _finished(plan, folder, plan.fingerprint())
            if done is None:
                check_output(plan, folder, resume=True)  # a checkpoint of other settings is refused
            runs.append(PlannedRun(plan, folder, done))
    return runs


def _saver(folder: Path, config: TrainConfig) -> Any:
    """Writes a run's test embeddings (embeddings.npz, items.csv) and its retrieval figure."""
    from losszoo.training.embeddings import save_embeddings as write_embeddings
    from losszoo.training.retrieval_figure import RETRIEVAL_FIGURE, retrieval_figure

    def save(arrays: Any, data: Any) -> None:
        write_embeddings(folder, arrays, data)
        retrieval_figure(folder / RETRIEVAL_FIGURE, arrays, data, seed=config.seed,
                         title=f"{config.loss}: {config.dataset} test queries ({config.backbone}, "
                               f"dim {config.dim}, seed {config.seed})")

    return save


def _diverged(run: PlannedRun, error: DivergedError, console: Console) -> RunRecord:
    """Record (and keep, in result.json) a run that diverged: a rerun would diverge again."""
    console.log(f"{run.plan.config.loss} seed {run.plan.config.seed}: {error}")
    record = diverged_record(run.plan, error)
    if init_distributed().is_main:
        write_record(run.folder / RESULT, record)
    return record


def untrained_baseline(run: PlannedRun, console: Console) -> RunRecord:
    """Metrics of the freshly initialised model: the floor for every loss."""
    plan = run.plan
    started = utc_now()
    model = build_model(plan)
    metrics = evaluate(plan, model, final_test_data(plan, model), console=console).metrics
    k = metrics.ks[0]
    console.log(f"untrained network: R@{k} {100 * metrics.recall[k]:.1f}")
    record = RunRecord.of_plan(plan, loss=UNTRAINED, fingerprint=plan.config.fingerprint(exclude=_LOSS_SETTINGS),
                               metrics=metrics, provenance=provenance(device=plan.device, started=started, model=model))
    if init_distributed().is_main:
        write_record(run.folder / RESULT, record)
    return record


def compare(
    base: TrainConfig,
    output_dir: str | Path,
    *,
    losses: Sequence[str] | None = None,
    seeds: int = 1,
    loss_options: dict[str, dict[str, Any]] | None = None,
    loss_settings: dict[str, dict[str, Any]] | None = None,
    progress: bool = True,
    console: Console | None = None,
    tuning: dict[str, Any] | None = None,
    tensorboard: bool = False,
    save_embeddings: bool = False,
    callbacks: Sequence[Callback] = (),
) -> list[RunRecord]:
    """Train every loss in ``losses`` for ``seeds`` seeds; return the run records (untrained
    baseline first) and write the report files.

    By default every registered loss is compared except adapter-namespaced ones (``pml:*``),
    which are many and run only when named. ``loss_settings`` maps a loss to shared settings
    tuned for it (``lr``, ``samples_per_class``: best.toml's ``[loss_settings.<loss>]``). Under protocol ``"holdout"`` with ``eval_every``
    the validation classes are scored during training (the report plots the curves and flags
    runs not converged) and the test classes once, at the end. ``tuning`` (trials, metric,
    split) says in the report's caption that the settings were tuned. ``callbacks``
    (:mod:`losszoo.training.callbacks`) hear of every trained run.
    """
    if base.protocol == "tune":
        raise ConfigError("compare reports test metrics: use protocol 'final' or 'holdout' "
                          "(tuning trials run through losszoo tune)")
    output_dir = Path(output_dir)
    started = utc_now()
    context = init_distributed()  # under torchrun every rank trains; rank 0 alone writes
    console = console or Console(stderr=True)
    if not context.is_main:
        console, progress = Console(quiet=True), False
    if tensorboard:
        require_tensorboard()
    runs = plan_comparison(base, output_dir, losses=losses, seeds=seeds, loss_options=loss_options,
                           loss_settings=loss_settings)
    records = []
    with output_lock(output_dir) if context.is_main else contextlib.nullcontext():
        for run in runs:
            name, seed = run.plan.config.loss, run.plan.config.seed
            if run.done is not None:
                console.log(f"{UNTRAINED if run.untrained else name} seed {seed}: finished earlier, kept")
                records.append(run.done)
            elif run.untrained:
                records.append(untrained_baseline(run, console))
            else:
                try:
                    records.append(train(run.plan, run.folder, resume=True, progress=progress,
                                         console=console, tensorboard=tensorboard,
                                         on_test=_saver(run.folder, run.plan.config) if save_embeddings else None,
                                         callbacks=callbacks))
                except DivergedError as exc:  # its row is marked; the table is still finished
                    records.append(_diverged(run, exc, console))
        if context.is_main:
            write_report(records, output_dir, ks=base.ks, console=console, tuning=tuning,
                         provenance=provenance(device=runs[0].plan.device, started=started))
    return records
