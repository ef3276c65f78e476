"""Run records (losszoo.training.records) and evaluation results (losszoo.evaluation.results):
written and read in one place, lossless both ways, records of earlier versions still read, a
record of a newer version refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from record_makers import run_record, scores

from losszoo.errors import CorruptFileError
from losszoo.evaluation.results import EvaluationResult, MetricsError, metric_names
from losszoo.training.records import (
    DIVERGED,
    SCHEMA_VERSION,
    Divergence,
    EpochRecord,
    RunRecord,
    read_record,
    write_record,
)

# Written by `losszoo compare --untuned --protocol holdout --eval-every 1` before records had a
# schema version (commit b88bcfb): the untrained floor, a trained run, and a diverged run.
VERSION_1 = Path(__file__).parent / "records_v1"


def _json_round_trip(record: RunRecord, tmp_path: Path) -> RunRecord:
    path = write_record(tmp_path / "result.json", record)
    return read_record(path)


def test_a_record_round_trips_through_its_file(tmp_path):
    validation = scores(0.4, 0.3, binary=0.2)
    record = run_record("triplet", 3, scores(0.6, 0.5, binary=0.45), curve=(0.1, 0.3),
                        validation=validation, splits={"train": {"classes": 5, "images": 50}},
                        provenance={"pretrained": False})
    assert _json_round_trip(record, tmp_path) == record
    written = json.loads((tmp_path / "result.json").read_text())
    assert written["schema_version"] == SCHEMA_VERSION and written["status"] == "finished"
    assert written["metrics"]["binary/map_at_r"] == 0.45 and written["history"][1]["validation"]["map_at_r"] == 0.3


def test_a_diverged_run_is_a_record_too(tmp_path):
    record = run_record("contrastive", 0, None, status=DIVERGED,
                        diverged=Divergence(epoch=1, step=2, last_finite_loss=None, message="diverged"))
    again = _json_round_trip(record, tmp_path)
    assert again == record and again.is_diverged and again.metrics is None


@pytest.mark.parametrize("name", ["untrained", "triplet", "contrastive"])
def test_a_record_written_before_schema_versions_reads_and_keeps_every_value(name):
    """Version 1 files (no schema_version, no status unless diverged) read as they are: what the
    record gives back as JSON is the file's content plus the two new keys."""
    path = VERSION_1 / name / "result.json"
    original = json.loads(path.read_text())
    assert "schema_version" not in original
    record = read_record(path)
    assert record.is_diverged is (name == "contrastive")
    expected = {"schema_version": SCHEMA_VERSION, "status": "finished", "provenance": None, **original}
    assert record.to_dict() == expected
    if not record.is_diverged:
        assert record.metrics.map_at_r == original["metrics"]["map_at_r"]
        assert record.metrics.recall[1] == original["metrics"]["recall@1"]
        assert [entry.loss for entry in record.history] == [entry["loss"] for entry in original["history"]]


def test_a_record_of_a_newer_schema_is_refused(tmp_path):
    path = write_record(tmp_path / "result.json", run_record("triplet", 0, scores(0.6, 0.5)))
    newer = {**json.loads(path.read_text()), "schema_version": SCHEMA_VERSION + 1}
    path.write_text(json.dumps(newer))
    with pytest.raises(CorruptFileError, match=f"{path} is a run record of schema version {SCHEMA_VERSION + 1}, "
                                               "newer than this losszoo reads"):
        read_record(path)


@pytest.mark.parametrize("change, problem", [
    ({"history": [{"epoch": 1}]}, "a history entry {'epoch': 1} without its epoch and loss"),
    ({"status": "paused"}, "status 'paused' is none of finished, diverged"),
    ({"seed": "0"}, "seed is '0', expected int"),
])
def test_an_incomplete_record_names_its_file_and_what_is_missing(tmp_path, change, problem):
    path = write_record(tmp_path / "result.json", run_record("triplet", 0, scores(0.6, 0.5)))
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    with pytest.raises(CorruptFileError, match=f"is not a complete run record \\({problem}\\)"):
        read_record(path)


def test_an_evaluation_result_reads_the_flat_dict_it_writes():
    result = EvaluationResult.from_dict({"recall@1": 0.5, "recall@4": 0.7, "nmi": 0.4, "nmi_average": "arithmetic",
                                         "map_at_r": 0.3, "r_precision": 0.35, "binary/recall@1": 0.45,
                                         "binary/recall@4": 0.6, "binary/map_at_r": 0.25, "binary/r_precision": 0.3})
    assert result.ks == (1, 4) and result.recall[4] == 0.7 and result.binary.map_at_r == 0.25
    assert EvaluationResult.from_dict(result.to_dict()) == result
    assert list(result.scalars()) == metric_names((1, 4), binary=True)
    assert result.value("binary/recall@4") == 0.6
    with pytest.raises(MetricsError, match="metric binary/nmi is unknown"):
        EvaluationResult.from_dict({**result.to_dict(), "binary/nmi": 0.1})
    with pytest.raises(MetricsError, match="metric binary/r_precision is None, not a number"):
        EvaluationResult.from_dict({k: v for k, v in result.to_dict().items() if k != "binary/r_precision"})


def test_a_history_entry_is_read_as_a_checkpoint_holds_it():
    entry = EpochRecord(2, 0.75, scores(0.5, 0.4))
    assert EpochRecord.from_dict(entry.to_dict()) == entry
    assert EpochRecord.from_dict({"epoch": 1, "loss": 1.5}) == EpochRecord(1, 1.5)
