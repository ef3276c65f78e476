"""A diverging run is caught at the step it happens: train stops with one line (epoch, step,
last finite loss) and keeps the last good checkpoint; tune records the trial as failed and goes
on; compare marks the row "diverged" and finishes the table. Damaged run records are reported."""

from __future__ import annotations

import json

import pytest
import torch

from losszoo.cli.main import main
from losszoo.errors import CorruptFileError, DivergedError
from losszoo.hyperparams import Uniform
from losszoo.losses import MetricLoss, register_loss
from losszoo.training.config import build_config
from losszoo.training.records import read_record
from losszoo.training.trainer import train
from losszoo.tuning import tune

TINY = dict(max_classes=5, batch_size=10, samples_per_class=5, dim=8, ks=(1,), epochs=2,
            batches_per_epoch=3, binary=False)
TINY_ARGS = ["--max-classes", "5", "--batch-size", "10", "--samples-per-class", "5", "--dim", "8",
             "--epochs", "1", "--batches-per-epoch", "2", "--ks", "1", "--no-binary", "--no-progress"]


def _err(capsys) -> str:
    return " ".join(capsys.readouterr().err.split())


def _register_nan_after(calls: int, name: str = "nan-after") -> None:
    """A loss that is 1.5 (times a learnable 1) for ``calls`` steps, then NaN."""

    @register_loss(name, sampler="class_balanced")
    class NanAfter(MetricLoss):
        def __init__(self) -> None:
            super().__init__()
            self.seen = 0

        def forward(self, embeddings, labels):
            self.seen += 1
            value = 1.5 + 0 * embeddings.sum()
            return value * float("nan") if self.seen > calls else value


def test_train_stops_at_the_step_and_keeps_the_last_good_checkpoint(tmp_path, loss_registry):
    _register_nan_after(4)  # epoch 1: steps 1-3 finite; epoch 2: step 1 finite, step 2 NaN
    run = tmp_path / "run"
    with pytest.raises(DivergedError, match=r"epoch 2, step 2: the loss is nan \(last finite loss 1\.5\); "
                                            "the checkpoint after epoch 1 is kept") as caught:
        train(build_config({**TINY, "loss": "nan-after"}), run, progress=False)
    assert (caught.value.epoch, caught.value.step, caught.value.last_finite) == (2, 2, 1.5)
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["next_epoch"] == 1 and not (run / "result.json").exists()


def test_a_diverging_train_is_one_line_and_writes_no_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "--loss", "contrastive", "--loss-option", "margin=1e30", *TINY_ARGS, "--output", str(run)]
    assert main(argv) == 2
    err = _err(capsys)
    assert err.startswith("error: training diverged at epoch 1, step 1: the loss is nan") and "Traceback" not in err
    assert "no checkpoint was written" in err
    assert not (run / "checkpoint.pt").exists() and not (run / "result.json").exists()


def test_exploding_weights_are_caught_before_the_next_loss_sees_them(tmp_path, capsys):
    assert main(["train", "--loss", "normsoftmax", "--lr", "1e30", *TINY_ARGS, "--epochs", "2",
                 "--output", str(tmp_path / "run")]) == 2
    assert "training diverged at epoch" in _err(capsys)  # not "embeddings contain NaN or inf"


def test_compare_marks_the_diverged_row_and_finishes_the_table(tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["compare", "--untuned", "--losses", "triplet,contrastive", "--loss-option",
            "contrastive.margin=1e30", *TINY_ARGS, "--output", str(out)]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    rows = {row["loss"]: row for row in results["summary"]}
    assert rows["contrastive"]["diverged"] == 1 and rows["contrastive"]["seeds"] == 0
    assert rows["triplet"]["diverged"] == 0 and "recall@1" in rows["triplet"]
    assert [r["loss"] for r in results["runs"]] == ["untrained", "triplet", "contrastive"]
    assert results["runs"][2]["diverged"]["step"] == 1
    assert "| contrastive (diverged 1/1) |" in (out / "results.md").read_text()
    capsys.readouterr()
    assert main(argv) == 0  # a rerun keeps the diverged record instead of diverging again
    assert "contrastive seed 0: finished earlier, kept" in _err(capsys)


def test_a_diverging_trial_is_failed_and_the_study_goes_on(tmp_path, loss_registry):
    @register_loss("nan-above", sampler="class_balanced", search_space={"level": Uniform(0.0, 1.0)})
    class NanAbove(MetricLoss):
        """NaN for level > 0.5 (its default, the first trial); a finite loss otherwise."""

        def __init__(self, level: float = 0.9) -> None:
            super().__init__()
            self.level = level

        def forward(self, embeddings, labels):
            value = embeddings.pow(2).mean()
            return value * float("nan") if self.level > 0.5 else value

    results = tune(build_config({**TINY, "epochs": 1, "protocol": "tune", "max_classes": 10}), tmp_path,
                   losses=["nan-above"], trials=4)
    states = [row["state"] for row in results[0].trials]
    assert states[0] == "DIVERGED" and "COMPLETE" in states and len(states) == 4
    assert results[0].loss_options["level"] <= 0.5


@pytest.mark.parametrize("content, problem", [
    ("[]", "it holds a list, not a record"),
    ('{"fingerprint": "f", "evaluation": {"ks": [1]}, "metrics": {"nmi": 0.5, "map_at_r": 0.1}}',
     "metric recall@1 is None, not a number"),
    ('{"fingerprint": "f", "evaluation": {"ks": [1]}, "metrics": {"recall@1": "high", "nmi": 0.5, "map_at_r": 0.1}}',
     "metric recall@1 is 'high', not a number"),
])
def test_a_damaged_result_is_reported_not_dropped(tmp_path, content, problem):
    path = tmp_path / "result.json"
    path.write_text(content)
    with pytest.raises(CorruptFileError, match=f"{path} is not a complete run record \\({problem}\\)"):
        read_record(path)


def test_a_result_without_metrics_in_a_compare_folder_is_named(tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["compare", "--untuned", "--losses", "triplet", *TINY_ARGS, "--output", str(out)]
    assert main(argv) == 0
    result = out / "triplet" / "seed0" / "result.json"
    record = json.loads(result.read_text())
    del record["metrics"]
    result.write_text(json.dumps(record))
    before = (out / "results.json").read_text()
    capsys.readouterr()
    assert main(argv) == 2
    assert f"{result} is not a complete run record (no metrics)" in _err(capsys)
    assert (out / "results.json").read_text() == before  # the table is not rewritten without it
