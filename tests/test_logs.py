"""Run logs: log.csv (one row per step) and history.csv (one row per evaluation), complete and
without duplicates after kill -9 and --resume; TensorBoard event files when the extra is there."""

from __future__ import annotations

import csv
import importlib.util
import json
import signal
import time

import pytest

from helpers import cli_process, wait_for_file
from losszoo.cli.main import main
from losszoo.training.config import build_config
from losszoo.training.logs import HISTORY, STEP_LOG, RunLog
from losszoo.training.trainer import CHECKPOINT, RESULT, train

TINY = ["--max-classes", "5", "--batch-size", "10", "--samples-per-class", "5", "--dim", "8",
        "--ks", "1,2", "--no-progress", "--device", "cpu"]


def _rows(path):
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_step_log_and_history_of_a_holdout_run(tmp_path):
    out = tmp_path / "run"
    config = build_config({"loss": "normsoftmax", "epochs": 2, "batches_per_epoch": 3,
                           "protocol": "holdout", "eval_every": 1, "max_classes": 8, "dim": 8,
                           "batch_size": 10, "samples_per_class": 5, "ks": (1, 2), "device": "cpu"})
    train(config, out, progress=False)
    steps = _rows(out / STEP_LOG)
    assert [int(r["step"]) for r in steps] == list(range(1, 7))
    assert [int(r["epoch"]) for r in steps] == [1, 1, 1, 2, 2, 2]
    assert {"loss", "lr_backbone", "lr_head", "lr_loss", "images_per_s"} <= set(steps[0])
    record = json.loads((out / RESULT).read_text())
    for epoch in (1, 2):  # the mean of an epoch's step losses is the epoch's loss
        losses = [float(r["loss"]) for r in steps if int(r["epoch"]) == epoch]
        assert sum(losses) / len(losses) == pytest.approx(record["history"][epoch - 1]["loss"], rel=1e-4)
    assert all(float(r["images_per_s"]) > 0 for r in steps)
    history = _rows(out / HISTORY)
    assert [(int(r["epoch"]), r["split"]) for r in history] == [(1, "validation"), (2, "validation"),
                                                                (2, "test")]
    assert float(history[-1]["map_at_r"]) == pytest.approx(record["metrics"]["map_at_r"])
    assert float(history[1]["recall@1"]) == pytest.approx(record["validation"]["recall@1"])


def test_resume_drops_the_rows_of_the_interrupted_epoch(tmp_path):
    log = RunLog(tmp_path, ["head"])
    log.steps([(1, 1, 0.5, 0.01, 100.0), (2, 1, 0.4, 0.01, 100.0), (3, 2, 0.3, 0.01, 100.0)])
    log.handle.write("4,2,0.2")  # a row cut by kill -9
    log.close()
    RunLog(tmp_path, ["head"], epochs_done=1).close()
    assert [r["step"] for r in _rows(tmp_path / STEP_LOG)] == ["1", "2"]
    RunLog(tmp_path, ["head"]).close()  # a fresh run starts the log over
    assert _rows(tmp_path / STEP_LOG) == []


@pytest.mark.slow
def test_kill_9_then_resume_logs_every_step_once(tmp_path, one_thread):
    args = ["train", "--loss", "normsoftmax", "--epochs", "3", "--batches-per-epoch", "30",
            "--no-binary", *TINY]
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    proc = cli_process(*args, "--output", str(broken))
    wait_for_file(proc, broken / CHECKPOINT)  # killed during the second epoch at the latest
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (broken / RESULT).exists(), "the run finished before it could be killed"
    assert main([*args, "--output", str(broken), "--resume"]) == 0
    assert main([*args, "--output", str(whole)]) == 0
    a, b = (_rows(d / STEP_LOG) for d in (whole, broken))
    assert [int(r["step"]) for r in b] == list(range(1, 91))
    keep = ("step", "epoch", "loss", "lr_head")
    assert [[r[k] for k in keep] for r in a] == [[r[k] for k in keep] for r in b]
    assert _rows(whole / HISTORY) == _rows(broken / HISTORY)


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None,
                    reason="the tensorboard extra is not installed")
def test_tensorboard_event_files(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--loss", "triplet", "--epochs", "1", "--batches-per-epoch", "2",
                 "--tensorboard", "--output", str(out), *TINY]) == 0
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    # The TensorBoard logger is a callback: what it wrote is what log.csv and result.json hold.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    with (out / STEP_LOG).open() as fh:
        rows = list(csv.DictReader(fh))
    assert [e.step for e in events.Scalars("train/loss")] == [int(r["step"]) for r in rows]
    assert [e.value for e in events.Scalars("train/loss")] == pytest.approx([float(r["loss"]) for r in rows])
    metrics = json.loads((out / "result.json").read_text())["metrics"]
    assert events.Scalars("test/map_at_r")[0].value == pytest.approx(metrics["map_at_r"])
