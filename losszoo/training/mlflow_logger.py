"""MLflow tracking (``--mlflow [TRACKING_URI]``, ``pip install losszoo[mlflow]``), built on the
callbacks of :mod:`losszoo.training.callbacks`.

One MLflow run per trained (loss, seed): its parameters are the run's resolved settings
(``config.*``, the loss's hyperparameters as ``config.loss_options.<name>``), its metrics the
mean training loss per epoch (``train/loss``) and every evaluation (``validation/<metric>`` at
its epoch, ``test/<metric>`` at the last one; MLflow keys allow no ``@``, so ``recall@1`` is
logged as ``recall_at_1``), its artifacts the run folder's files (result.json, history.csv,
log.csv, retrieval figures; never the checkpoint). A comparison is one parent run (named after
its output folder) whose children are its (loss, seed) runs, the untrained floor and runs kept
from an earlier invocation included; the parent holds the report's files (results.*, figures).

Default store: a local SQLite file, ``./mlruns/mlflow.db``, artifacts in ``./mlruns/artifacts``
(MLflow 3 refuses its plain-folder file store unless ``MLFLOW_ALLOW_FILE_STORE=true``); any
tracking URI MLflow accepts works (``http://host:5000``, ``sqlite:///path.db``: a SQLite store
keeps its artifacts in ``artifacts/`` beside the database).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from losszoo.errors import ConfigError
from losszoo.evaluation.results import MAP_AT_R, EvaluationResult, recall_key
from losszoo.training.callbacks import Callback
from losszoo.training.records import EpochRecord, RunRecord

DEFAULT_FOLDER = "mlruns"
EXPERIMENT = "losszoo"
SKIPPED_ARTIFACTS = {"checkpoint.pt", ".lock"}  # large, or bookkeeping
MAX_PARAM_CHARS = 500


def default_tracking_uri(folder: str | Path = DEFAULT_FOLDER) -> str:
    return f"sqlite:///{(Path(folder) / 'mlflow.db').resolve()}"


def metric_key(split: str, key: str) -> str:
    """``validation``, ``recall@1`` -> ``validation/recall_at_1`` (MLflow keys have no ``@``)."""
    return f"{split}/" + re.sub(r"[^0-9A-Za-z_\-. /]", "_", key.replace("@", "_at_"))


TREE_METRICS = tuple(metric_key("test", name) for name in (recall_key(1), MAP_AT_R))  # shown by run_tree


def flat_params(config: dict[str, Any], prefix: str = "config.") -> dict[str, str]:
    """A run's settings as MLflow parameters: nested tables flattened with dots, lists joined."""
    params: dict[str, str] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            params.update(flat_params(value, f"{prefix}{key}."))
        else:
            text = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
            params[prefix + key] = text[:MAX_PARAM_CHARS]
    return params


def _client(tracking_uri: str | None) -> Any:
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ConfigError("--mlflow needs MLflow: pip install 'losszoo[mlflow]'") from None
    return MlflowClient(tracking_uri=tracking_uri or default_tracking_uri())


def artifact_location(tracking_uri: str | None) -> str | None:
    """Where a new experiment keeps its artifacts: beside a local SQLite store (MLflow's own
    default is ``./mlruns`` under whatever folder the process runs in); a server decides for
    itself (None)."""
    uri = tracking_uri or default_tracking_uri()
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").resolve().as_uri()


def _experiment(client: Any, name: str, tracking_uri: str | None) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    return client.create_experiment(name, artifact_location=artifact_location(tracking_uri))


class MLflowLogger(Callback):
    """Logs each run it hears of as one MLflow run (a child of ``parent_run_id`` when given)."""

    def __init__(self, tracking_uri: str | None = None, *, experiment: str = EXPERIMENT,
                 parent_run_id: str | None = None) -> None:
        self.client = _client(tracking_uri)
        self.experiment_id = _experiment(self.client, experiment, tracking_uri)
        self.parent_run_id = parent_run_id
        self.run_id: str | None = None
        self.logged: set[Path] = set()  # run folders logged (live or replayed)

    # -- the callback hooks -------------------------------------------------------------------
    def on_run_start(self, folder: Path, config: dict[str, Any], epochs_done: int) -> None:
        self._start(folder, config, resumed_at=epochs_done)

    def on_epoch(self, epoch: int, record: EpochRecord) -> None:
        self._metric("train/loss", record.loss, epoch)

    def on_evaluation(self, epoch: int, split: str, metrics: EvaluationResult) -> None:
        for key, value in metrics.scalars().items():
            self._metric(metric_key(split, key), value, epoch)

    def on_run_end(self, result: RunRecord, folder: Path) -> None:
        self._artifacts(folder)
        self._end("FINISHED")

    def close(self) -> None:
        if self.run_id is not None:  # the run stopped before its result was written
            self._end("FAILED")

    # -- replay -------------------------------------------------------------------------------
    def log_record(self, record: RunRecord, folder: Path) -> None:
        """Log a finished run from its record (a run kept from an earlier invocation, the
        untrained floor): the same parameters, per-epoch metrics and artifacts as live."""
        self._start(folder, record.config, loss=record.loss)
        for entry in record.history:
            self.on_epoch(entry.epoch, entry)
            if entry.validation is not None:
                self.on_evaluation(entry.epoch, "validation", entry.validation)
        if record.metrics is not None:
            last = max((e.epoch for e in record.history), default=0)
            self.on_evaluation(last, "test", record.metrics)
        self.on_run_end(record, folder)

    # -- helpers ------------------------------------------------------------------------------
    def _start(self, folder: Path, config: dict[str, Any], *, resumed_at: int = 0,
               loss: str | None = None) -> None:
        loss = loss or config.get("loss")
        tags = {"losszoo.loss": str(loss), "losszoo.seed": str(config.get("seed")),
                "losszoo.folder": str(Path(folder).resolve())}
        if resumed_at:
            tags["losszoo.resumed_at_epoch"] = str(resumed_at)
        if self.parent_run_id:
            tags["mlflow.parentRunId"] = self.parent_run_id
        run = self.client.create_run(self.experiment_id, run_name=f"{loss}-seed{config.get('seed')}", tags=tags)
        self.run_id = run.info.run_id
        from mlflow.entities import Param

        params = [Param(k, v) for k, v in flat_params(config).items()]
        for start in range(0, len(params), 100):  # MLflow takes at most 100 parameters a batch
            self.client.log_batch(self.run_id, params=params[start:start + 100])
        self.logged.add(Path(folder).resolve())

    def _metric(self, key: str, value: float, step: int) -> None:
        if self.run_id is not None:
            self.client.log_metric(self.run_id, key, float(value), step=int(step))

    def _artifacts(self, folder: Path, run_id: str | None = None) -> None:
        """The files of ``folder`` (not its checkpoint or lock) as artifacts of ``run_id``
        (default: the current run)."""
        for path in sorted(Path(folder).iterdir()):
            if path.is_file() and path.name not in SKIPPED_ARTIFACTS and not path.name.startswith("."):
                self.client.log_artifact(run_id or self.run_id, str(path))

    def _end(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status=status)
        self.run_id = None


@contextlib.contextmanager
def mlflow_comparison(output_dir: str | Path, tracking_uri: str | None = None, *,
                      experiment: str = EXPERIMENT) -> Iterator[MLflowLogger]:
    """A parent MLflow run for the comparison in ``output_dir``; yields the logger to pass to
    ``compare(callbacks=[...])``. On leaving, runs not logged live (kept, untrained) are logged
    from their records, and the report files go to the parent run."""
    from losszoo.training.checkpoint import read_json, run_folder

    output_dir = Path(output_dir)
    logger = MLflowLogger(tracking_uri, experiment=experiment)
    parent = logger.client.create_run(logger.experiment_id, run_name=output_dir.name,
                                      tags={"losszoo.comparison": str(output_dir.resolve())})
    logger.parent_run_id = parent.info.run_id
    status = "FAILED"
    try:
        yield logger
        results = output_dir / "results.json"
        for run in read_json(results)["runs"] if results.exists() else []:
            record = RunRecord.from_dict(run)
            folder = run_folder(output_dir, record.loss, record.seed).resolve()
            if folder not in logger.logged:
                logger.log_record(record, folder)
        logger._artifacts(output_dir, parent.info.run_id)
        status = "FINISHED"
    finally:
        logger.client.set_terminated(parent.info.run_id, status=status)


def run_tree(tracking_uri: str | None = None, experiment: str = EXPERIMENT) -> list[str]:
    """The experiment's runs as indented lines (parents, then their children): for a look."""
    client = _client(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    runs = client.search_runs([found.experiment_id], order_by=["attributes.start_time ASC"])
    children: dict[str | None, list[Any]] = {}
    for run in runs:
        children.setdefault(run.data.tags.get("mlflow.parentRunId"), []).append(run)

    def lines(parent: str | None, depth: int) -> Sequence[str]:
        out: list[str] = []
        for run in children.get(parent, []):
            metrics = ", ".join(f"{k} {run.data.metrics[k]:.3f}" for k in TREE_METRICS if k in run.data.metrics)
            out.append(f"{'  ' * depth}{run.info.run_name} [{run.info.status}] {metrics}".rstrip())
            out += lines(run.info.run_id, depth + 1)
        return out

    return list(lines(None, 0))
