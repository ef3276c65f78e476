"""--mlflow against a local MLflow store (SQLite file): what a comparison logged is read back
(skipped without the mlflow extra)."""

from __future__ import annotations

import json

import pytest

from losszoo.cli.main import main

mlflow = pytest.importorskip("mlflow", reason="the mlflow extra is not installed")

TINY = ["--max-classes", "5", "--batch-size", "10", "--samples-per-class", "5", "--dim", "8",
        "--epochs", "2", "--batches-per-epoch", "1", "--ks", "1,2", "--no-progress", "--device", "cpu",
        "--no-binary", "--protocol", "holdout", "--eval-every", "1", "--val-fraction", "0.4", "--untuned"]


def test_compare_logs_one_child_run_per_loss_and_seed(tmp_path):
    from mlflow.tracking import MlflowClient

    from losszoo.training.mlflow_logger import flat_params, run_tree

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = tmp_path / "cmp"
    assert main(["compare", "--losses", "triplet", "--output", str(out), "--mlflow", uri, *TINY]) == 0
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("losszoo")
    runs = {run.info.run_name: run for run in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {"cmp", "untrained-seed0", "triplet-seed0"}
    parent = runs["cmp"].info.run_id
    assert all(runs[name].data.tags["mlflow.parentRunId"] == parent for name in ("untrained-seed0", "triplet-seed0"))

    child = runs["triplet-seed0"]
    record = json.loads((out / "triplet" / "seed0" / "result.json").read_text())
    assert child.info.status == "FINISHED"
    assert child.data.params["config.loss"] == "triplet" and child.data.params["config.dim"] == "8"
    assert child.data.params == flat_params(record["config"])  # every resolved setting
    history = client.get_metric_history(child.info.run_id, "validation/map_at_r")
    assert [m.step for m in history] == [e["epoch"] for e in record["history"]] == [1, 2]
    assert [m.value for m in history] == pytest.approx([e["validation"]["map_at_r"] for e in record["history"]])
    assert [m.step for m in client.get_metric_history(child.info.run_id, "train/loss")] == [1, 2]
    assert child.data.metrics["test/recall_at_1"] == pytest.approx(record["metrics"]["recall@1"])
    assert child.info.artifact_uri.startswith((tmp_path / "artifacts").as_uri())  # beside the store
    files = {f.path for f in client.list_artifacts(child.info.run_id)}
    assert {"result.json", "history.csv", "log.csv"} <= files and "checkpoint.pt" not in files
    assert {"results.json", "results.md", "map_at_r.png", "recall_at_k.pdf"} <= {
        f.path for f in client.list_artifacts(parent)}

    # Run again: every run is kept, and the new parent still gets its children (from records).
    assert main(["compare", "--losses", "triplet", "--output", str(out), "--mlflow", uri, *TINY]) == 0
    names = [line.split(" [")[0] for line in run_tree(uri)]
    assert names[0] == names[3] == "cmp"  # two parents, each followed by its two children
    assert sorted(names[1:3]) == sorted(names[4:6]) == ["  triplet-seed0", "  untrained-seed0"]
