"""Per loss, one Optuna study with the same trial budget, on validation classes only.

Protocol (Musgrave et al., "A Metric Learning Reality Check", ECCV 2020): every trial trains
with ``protocol="tune"`` (the test split is never listed nor read) and is scored on the
validation classes carved from the training classes, every epoch; Optuna's TPE sampler
(seeded per trial) proposes settings and its MedianPruner stops trials whose validation metric
falls below the median of earlier trials at the same epoch, from half the schedule on. The
study lives in an RDB storage (SQLite in the output folder by default, any SQLAlchemy URL with
``storage=``), so a killed tune resumes (finished COMPLETE/PRUNED trials are counted and only
the remainder runs; a trial interrupted by Ctrl-C or SIGTERM is marked FAIL and one left
RUNNING by kill -9 is not counted: both run again) and workers on several machines can join
one study.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from losszoo.errors import ConfigError, DivergedError, OutputError
from losszoo.hyperparams import Choice, LogUniform, SearchRange
from losszoo.losses import get_loss_spec
from losszoo.samplers import uses_samples_per_class
from losszoo.training.checkpoint import folder_name, write_json, write_text
from losszoo.training.config import SCHEDULE, TUNED_SHARED, TrainConfig, toml_string, toml_value
from losszoo.evaluation.results import MAP_AT_R, EvaluationResult, metric_names
from losszoo.training.records import DIVERGED
from losszoo.training.plan import loss_name, plan_run
from losszoo.training.trainer import train
from losszoo.tuning.storage import check_storage
from losszoo.tuning.advice import search_space_warnings, validation_warnings

# Shared knobs that interact with every loss (Musgrave et al. 2020 tune lr per loss; the batch
# composition, classes per batch vs samples per class at a fixed batch size, follows
# powerful-benchmarker's sampler settings). samples_per_class values that do not divide the
# batch size are skipped when the space is built.
LR_RANGE = LogUniform(1e-4, 1e-1)
SAMPLES_PER_CLASS = (2, 4, 5, 8, 10, 16, 20, 25)
COMMON_PREFIX = "common."
COMMON_SHARED = TUNED_SHARED  # the shared settings a trial may change (declared in config.py)
DEFAULT_METRIC = MAP_AT_R


def common_space(
    batch_size: int, train_classes: int | None = None, *, samples_per_class: bool = True
) -> dict[str, SearchRange]:
    """Learning rate (log-uniform) and, when the sampler uses it (``samples_per_class``),
    samples per class among the divisors of ``batch_size`` that leave 2 to ``train_classes``
    classes per batch."""
    most = train_classes or batch_size
    divisors = tuple(s for s in SAMPLES_PER_CLASS if batch_size % s == 0 and 2 <= batch_size // s <= most)
    space: dict[str, SearchRange] = {"lr": LR_RANGE}
    if samples_per_class and len(divisors) > 1:
        space["samples_per_class"] = Choice(divisors)
    return space


COMMON_SPACE = common_space(80)  # the embedded Omniglot preset's batch of 80


def search_space(
    loss: str, batch_size: int, train_classes: int | None = None, *, sampler: str | None = None
) -> dict[str, SearchRange]:
    """The loss's declared space (``loss.<name>``) plus the common one (``common.<name>``);
    ``samples_per_class`` only if the run's sampler (``sampler``, else the loss's own) uses it."""
    spec = get_loss_spec(loss)
    space = {f"loss.{name}": rng for name, rng in spec.search_space.items()}
    common = common_space(batch_size, train_classes,
                          samples_per_class=uses_samples_per_class(sampler or spec.sampler))
    space.update({COMMON_PREFIX + name: rng for name, rng in common.items()})
    return space


@dataclass(frozen=True)
class TuneResult:
    loss: str
    best_value: float
    loss_options: dict[str, Any]
    loss_settings: dict[str, Any]
    trials: list[dict[str, Any]]
    curve: list[float]  # the best trial's validation metric per epoch (the convergence check)


def starting_point(base: TrainConfig, loss: str, space: dict[str, SearchRange]) -> dict[str, Any]:
    """The settings ``base`` would train ``loss`` with (its defaults, the dataset preset, the
    shared lr and batch composition), restricted to the values inside ``space``. Tried first,
    so a tuned setting can only beat the untuned one on the validation classes; values outside
    ``space`` are left to the sampler."""
    resolved = get_loss_spec(loss).resolve(base.loss_options)
    values = {f"loss.{k}": v for k, v in resolved.items()}
    values.update({COMMON_PREFIX + k: getattr(base, k) for k in COMMON_SHARED})
    return {key: values[key] for key, rng in space.items() if key in values and values[key] in rng}


def warm_config(base: TrainConfig, loss: str, options: dict[str, Any], settings: dict[str, Any]) -> TrainConfig:
    """``base`` training ``loss`` with a previous tune's best ``options`` and shared ``settings``
    (best.toml's ``[loss_options.<loss>]`` and ``[loss_settings.<loss>]``), checked."""
    unknown = sorted(set(settings) - set(COMMON_SHARED))
    if unknown:
        raise ConfigError(f"warm start for {loss}: unknown shared setting(s) {', '.join(unknown)} "
                          f"(expected {', '.join(COMMON_SHARED)})")
    config = base.replace(loss=loss, protocol="tune", loss_options={**base.loss_options, **options}, **settings)
    plan_run(config)  # names and values checked; listings only
    return config


def _split(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    options = {k.removeprefix("loss."): v for k, v in params.items() if k.startswith("loss.")}
    settings = {k.removeprefix(COMMON_PREFIX): v for k, v in params.items() if k.startswith(COMMON_PREFIX)}
    return options, settings


def check_metric(metric: str, base: TrainConfig) -> None:
    """``metric`` is one the validation evaluation of ``base`` reports (ConfigError if not)."""
    names = metric_names(base.ks, binary=base.binary)
    if metric not in names:
        raise ConfigError(f"cannot tune on metric {metric!r}; the validation evaluation reports "
                          f"{', '.join(names)}")


def tune_loss(
    base: TrainConfig, loss: str, output_dir: Path, *, trials: int, metric: str = DEFAULT_METRIC,
    storage: str | None = None, sampler_seed: int = 0, console: Console | None = None,
    warm_start: TrainConfig | None = None,
) -> TuneResult:
    """Run the remainder of ``trials`` finished trials of ``loss``'s study; return the best.
    A new study tries the untuned setting first, then ``warm_start`` (e.g. a previous tune's
    best, :func:`warm_config`) unless it is the same point; both count in ``trials``."""
    import optuna

    console = console or Console(stderr=True)
    check_metric(metric, base)
    name = loss_name(loss)
    folder = output_dir / folder_name(name)
    folder.mkdir(parents=True, exist_ok=True)
    storage = open_storage(storage or study_url(output_dir))
    probe = plan_run(base.replace(loss=name, protocol="tune"))  # listings only: no image read
    space = search_space(name, base.batch_size,
                         probe.splits["train"].num_classes - len(probe.validation_classes), sampler=probe.sampler)
    study = optuna.create_study(
        study_name=f"losszoo-{name}", storage=storage, direction="maximize", load_if_exists=True,
        sampler=trial_sampler(sampler_seed, 0),
        pruner=median_pruner(base.total_epochs))
    check_study_schedule(study, base, str(output_dir))
    study.set_user_attr(SCHEDULE_ATTR, schedule_of(base))
    if not study.trials:  # a new study: its first trial is the untuned setting
        study.enqueue_trial(starting_point(base, name, space))
        if warm_start is not None:
            study.enqueue_trial(starting_point(warm_start, name, space), skip_if_exists=True)

    def objective(trial: optuna.Trial) -> float:
        options, settings = _split({key: rng.suggest(trial, key) for key, rng in space.items()})
        config = base.replace(loss=name, protocol="tune", eval_every=1,
                              loss_options={**base.loss_options, **options}, **settings)
        plan = plan_run(config)

        def report(epoch: int, metrics: EvaluationResult) -> None:
            trial.report(metrics.value(metric), epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()

        record = train(plan, folder / f"trial{trial.number}", progress=False, console=console,
                       on_validation=report)
        return record.validation.value(metric)

    while (done := _trials_done(study)) < trials:
        best = _best_value(study)
        trial = study.ask()
        # Numbered as its folder (trial<N>/), trials.csv and the figure: Optuna's number, from 0.
        console.log(f"{name}: trial {trial.number} ({done} of {trials} finished)"
                    + (f", best {metric} {100 * best:.2f}" if best is not None else ""))
        # Proposals drawn at each suggest come from a sampler seeded by the trial's number: one
        # sampler seeded once per process would replay its first proposals in a resumed or
        # extended study, and in every worker that joins it.
        study.sampler = trial_sampler(sampler_seed, trial.number)
        try:
            value = objective(trial)
        except optuna.TrialPruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        except DivergedError as exc:  # a failed trial that counts: the study goes on
            console.log(f"{name}: trial {trial.number} failed: {exc}")
            trial.set_user_attr(DIVERGED, str(exc))
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        except BaseException:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        else:
            study.tell(trial, value)
    rows = trial_rows(study, metric)
    write_text(folder / "trials.csv", _csv(rows))
    write_json(folder / "trials.json", rows)
    _plot_best_so_far(rows, folder / "best_so_far.png", name, metric, base)
    complete = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))]
    if not complete:
        raise ConfigError(f"{name}: no trial completed (all pruned or diverged); raise the budget "
                          "or narrow the search space")
    options, settings = _split(study.best_trial.params)
    console.log(f"{name}: best {metric} {100 * study.best_value:.2f} with {study.best_trial.params}")
    curve = [value for _, value in sorted(study.best_trial.intermediate_values.items())]
    return TuneResult(name, float(study.best_value), options, settings, rows, curve)


def _trials_done(study: Any) -> int:
    """Trials that count against the budget: complete, pruned, or failed by diverging (an
    interrupted trial, also FAIL, is run again)."""
    import optuna

    states = optuna.trial.TrialState
    return sum(t.state in (states.COMPLETE, states.PRUNED)
               or (t.state == states.FAIL and DIVERGED in t.user_attrs)
               for t in study.get_trials(deepcopy=False))


def median_pruner(epochs: int) -> Any:
    """Optuna's MedianPruner, comparing a trial with the median of earlier ones (after 2
    finished trials) from epoch ceil(epochs / 2) on. Optuna prunes at any reported step >=
    ``n_warmup_steps``, and epochs are reported from 1, warm-up epochs included (``epochs`` is
    the whole schedule, ``TrainConfig.total_epochs``): with ``n_warmup_steps=1`` (before
    2026-12-03) a trial could be stopped after its first epoch, which stops the slow starters,
    e.g. a NormSoftmax that climbs most after the lr drop, before their curves say anything."""
    import optuna

    return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=max(1, -(-epochs // 2)))


def trial_sampler(sampler_seed: int, trial_number: int) -> Any:
    """Optuna's TPE sampler for one trial, seeded by (``sampler_seed``, ``trial_number``). TPE
    rebuilds its model from the study's finished trials at every suggestion, so only the seed
    of its random draws is per trial; trial numbers are unique in a study, so workers and
    resumed runs never repeat a proposal, and each trial's proposals are reproducible."""
    import numpy as np
    import optuna

    seed = int(np.random.SeedSequence([sampler_seed, trial_number]).generate_state(1)[0])
    return optuna.samplers.TPESampler(seed=seed)


def study_url(output_dir: Path) -> str:
    """The default storage: an SQLite file in the output folder."""
    return f"sqlite:///{(Path(output_dir) / 'study.db').resolve()}"


def open_storage(url: str, *, attempts: int = 5) -> Any:
    """Optuna's RDB storage at ``url``. Workers started together on a new database race to
    create its tables, and the loser fails with "table ... already exists" (optuna/optuna#1092:
    the maintainers advise creating it from one process first); that failure is retried, by
    when the winner has made the tables."""
    import optuna
    import sqlalchemy.exc

    for attempt in range(1, attempts):
        try:
            return optuna.storages.RDBStorage(url)
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError,
                sqlalchemy.exc.ProgrammingError) as exc:
            if not (isinstance(exc, sqlalchemy.exc.IntegrityError) or "already exists" in str(exc)):
                raise
            time.sleep(0.2 * attempt)
    try:
        return optuna.storages.RDBStorage(url)
    except sqlalchemy.exc.SQLAlchemyError as exc:  # e.g. a read-only folder or database
        reason = str(exc.orig if getattr(exc, "orig", None) else exc).splitlines()[0]
        raise OutputError(f"cannot open the study storage {url}: {reason}") from None


def _best_value(study: Any) -> float | None:
    try:
        return float(study.best_value)
    except ValueError:
        return None


def trial_rows(study: Any, metric: str) -> list[dict[str, Any]]:
    """Each trial: number, state (DIVERGED: failed on a non-finite loss), value, parameters, and
    its validation curve (epoch -> metric)."""
    return [{"number": t.number, "state": "DIVERGED" if DIVERGED in t.user_attrs else t.state.name,
             "value": t.value, metric: t.value,
             "params": dict(t.params), "curve": {int(k): v for k, v in t.intermediate_values.items()}}
            for t in study.get_trials(deepcopy=False)]


def _csv(rows: Sequence[dict[str, Any]]) -> str:
    keys = sorted({k for row in rows for k in row["params"]})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["number", "state", "value", *keys, "curve"])
    for row in rows:
        writer.writerow([row["number"], row["state"], row["value"], *(row["params"].get(k) for k in keys),
                         json.dumps(row["curve"])])
    return buffer.getvalue()


def _plot_best_so_far(rows: Sequence[dict[str, Any]], path: Path, loss: str, metric: str,
                      config: TrainConfig) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from losszoo.training.figures import PALETTE, save_figure
    from losszoo.training.report import metric_label

    best, xs, ys = None, [], []
    for row in rows:
        if row["state"] == "COMPLETE" and row["value"] is not None:
            best = row["value"] if best is None else max(best, row["value"])
        if best is not None:
            xs.append(row["number"])
            ys.append(100 * best)
    fig, ax = plt.subplots(figsize=(5, 3.5), layout="constrained")
    ax.step(xs, ys, where="post", marker="o", color=PALETTE[3])
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    label = metric_label(metric)
    ax.set(xlabel="trial (its folder: trial<N>)", ylabel=f"best validation {label} so far (%)")
    ax.set_title(f"{config.dataset}, {config.backbone}, dim {config.dim}, {config.epochs} epochs, "
                 f"seed {config.seed}", fontsize=8)
    fig.suptitle(f"{loss}: best validation {label} over the trials", fontsize=10)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    save_figure(fig, path)
    plt.close(fig)


def tune(
    base: TrainConfig, output_dir: str | Path, *, losses: Sequence[str], trials: int,
    metric: str = DEFAULT_METRIC, storage: str | None = None, sampler_seed: int = 0,
    command: str | None = None, console: Console | None = None,
    warm_start: dict[str, tuple[dict[str, Any], dict[str, Any]]] | None = None,
) -> list[TuneResult]:
    """Tune every loss with the same budget; write ``best.toml`` in ``output_dir``.
    ``warm_start`` maps a loss to a previous tune's best (loss options, shared settings), tried
    as the second trial of its new study (it counts in ``trials``, like every trial)."""
    if trials < 1:
        raise ConfigError(f"trials must be >= 1, got {trials}")
    if not losses:
        raise ConfigError("no loss to tune: --losses is empty")
    check_metric(metric, base)
    names = [loss_name(loss) for loss in losses]
    starts: dict[str, TrainConfig] = {}
    for name in names:  # every name and setting checked before the first file is written
        plan = plan_run(base.replace(loss=name, protocol="tune"))
        if name in (warm_start or {}):
            starts[name] = warm_config(base, name, *warm_start[name])
    console = console or Console(stderr=True)
    # every loss shares the class-disjoint validation split: the last plan speaks for all
    for line in search_space_warnings(names, COMMON_SHARED) + validation_warnings(plan):
        console.log(f"warning: {line}")
    output_dir = Path(output_dir)
    check_storage(storage or study_url(output_dir), folder_made=storage is None)
    _check_existing_studies(output_dir, storage, names, base)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot write {output_dir}: {exc.strerror or exc}") from None
    results = [tune_loss(base, name, output_dir, trials=trials, metric=metric, storage=storage,
                         sampler_seed=sampler_seed, console=console, warm_start=starts.get(name))
               for name in names]
    write_best_toml(output_dir / "best.toml", results, command=command,
                    tuning={"trials": trials, "metric": metric}, base=base)
    return results


def _check_existing_studies(output_dir: Path, storage: str | None, names: Sequence[str],
                            base: TrainConfig) -> None:
    """Before any trial runs: each existing study of ``names`` was run under ``base``'s schedule."""
    import optuna

    database = output_dir / "study.db"
    if storage is None and not database.exists():
        return
    opened = open_storage(storage or f"sqlite:///{database.resolve()}")
    existing = set(optuna.get_all_study_names(opened))
    for name in names:
        if f"losszoo-{name}" in existing:
            study = optuna.load_study(study_name=f"losszoo-{name}", storage=opened)
            check_study_schedule(study, base, str(output_dir))


SCHEDULE_ATTR = "losszoo_schedule"  # a study's user attribute: the schedule its trials ran under


def schedule_of(base: TrainConfig) -> dict[str, Any]:
    """The schedule settings of ``base`` (``SCHEDULE``: the settings a tune ran under that
    compare must share for the tuned values to hold), as plain values."""
    return json.loads(json.dumps({key: getattr(base, key) for key in SCHEDULE}, default=list))


def check_study_schedule(study: Any, base: TrainConfig, where: str) -> None:
    """Refuse to add trials of another schedule to ``study`` (its first trials recorded theirs)."""
    recorded = study.user_attrs.get(SCHEDULE_ATTR)
    if recorded is None:
        return
    wanted = schedule_of(base)
    changed = [key for key in wanted if recorded.get(key) != wanted[key]]
    if changed:
        what = ", ".join(f"{key} {recorded.get(key)!r} (now {wanted[key]!r})" for key in changed)
        raise ConfigError(f"{where}: its study {study.study_name!r} ran trials with {what}: trials of "
                          "another schedule would mix in one study; use another --output (or --storage)")


def write_best_toml(path: Path, results: Sequence[TuneResult], *, command: str | None,
                    tuning: dict[str, Any], base: TrainConfig | None = None) -> Path:
    """The tuned schedule (top-level keys), then ``[loss_options.<loss>]`` and
    ``[loss_settings.<loss>]`` tables `losszoo compare --config` reads, and each best trial's
    validation curve under ``[tuning.curves]``."""
    lines = ["# Best hyperparameters per loss, tuned on validation classes by losszoo tune.",
             f"# command: {toml_string(command) if command else '(Python API)'}", ""]
    lines.append(f"losses = {toml_value([result.loss for result in results])}")
    if base is not None:  # the study schedule: compare says when it runs another
        for key in SCHEDULE:
            value = getattr(base, key)
            if value is not None and not isinstance(value, dict):  # tables follow
                lines.append(f"{key} = {toml_value(value)}")
    lines.append("")
    if base is not None and base.miner_options:
        lines += ["[miner_options]", *(f"{key} = {toml_value(v)}" for key, v in base.miner_options.items()), ""]
    lines += ["[tuning]", f"trials = {tuning['trials']}", f"metric = {toml_value(tuning['metric'])}", ""]
    lines.append("[tuning.curves]  # best trial's validation metric per epoch")
    lines += [f"{toml_string(r.loss)} = [{', '.join(f'{v:.4f}' for v in r.curve)}]" for r in results]
    lines.append("")
    for result in results:
        for table, values in (("loss_options", result.loss_options), ("loss_settings", result.loss_settings)):
            lines.append(f"[{table}.{toml_string(result.loss)}]")
            lines += [f"{key} = {toml_value(value)}" for key, value in values.items()]
            lines.append("")
    return write_text(path, "\n".join(lines))
