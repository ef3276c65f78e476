"""Provenance: every result.json / results.json says how it was made (versions equal the
imported modules', the loss's resolved hyperparameters with defaults), and none of it enters
the fingerprint that --resume and compare check."""

from __future__ import annotations

import inspect
import json
import platform
import sys
from datetime import datetime

import numpy
import pytorch_metric_learning
import torch
import torchvision

import losszoo
from losszoo.cli.main import main
from losszoo.training import provenance as prov
from losszoo.training.trainer import RESULT

TINY = ["--max-classes", "5", "--batch-size", "10", "--samples-per-class", "5", "--dim", "8",
        "--epochs", "1", "--batches-per-epoch", "2", "--ks", "1,2", "--no-progress"]


def _check_common(record: dict) -> None:
    assert record["losszoo"] == losszoo.__version__
    assert record["python"] == platform.python_version()
    versions = record["versions"]
    assert versions["torch"] == torch.__version__
    assert versions["torchvision"] == torchvision.__version__
    assert versions["numpy"] == numpy.__version__
    assert versions["pytorch_metric_learning"] == pytorch_metric_learning.__version__
    try:
        import faiss
        assert versions["faiss"] == faiss.__version__
    except ImportError:
        assert versions["faiss"] is None
    assert record["device"] == "cpu" and record["gpu"] is None and record["cuda"] is None
    assert record["platform"] == platform.platform()
    started, finished = (datetime.fromisoformat(record[k]) for k in ("started", "finished"))
    assert started.utcoffset().total_seconds() == 0 and started <= finished
    assert record["command"] == sys.argv
    git = record["git"]
    assert git is None or (len(git["commit"]) == 40 and isinstance(git["dirty"], bool))


def test_module_version_of_a_missing_module_is_none():
    assert prov.module_version("no_such_module_losszoo") is None
    assert prov.module_version("numpy") == numpy.__version__


def test_git_state_outside_a_repository_is_none(tmp_path):
    assert prov.git_state(tmp_path) is None


def test_loss_record_has_canonical_name_and_every_default():
    from losszoo.losses import get_loss_spec

    record = prov.loss_record("pml:ContrastiveLoss", {"pos_margin": 0.1})
    assert record["name"] == "pml:contrastiveloss"
    pml_defaults = {name: p.default for name, p in
                    inspect.signature(pytorch_metric_learning.losses.ContrastiveLoss).parameters.items()
                    if p.default is not inspect.Parameter.empty}
    assert record["options"]["pos_margin"] == 0.1
    assert record["options"]["neg_margin"] == pml_defaults["neg_margin"]
    assert set(record["options"]) == set(get_loss_spec("pml:contrastiveloss").defaults)


def test_train_records_provenance_outside_the_fingerprint(tmp_path, monkeypatch):
    out = tmp_path / "run"
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert main(["train", "--loss", "triplet", "--loss-option", "margin=0.3", "--device", "cpu",
                 "--output", str(out), *TINY]) == 0
    record = json.loads((out / RESULT).read_text())
    _check_common(record["provenance"])
    assert record["provenance"]["loss"] == {"name": "triplet",
                                            "options": {"margin": 0.3, "mining": "semihard"},
                                            "module": "losszoo.losses.triplet"}  # no file: a built-in
    first = record["fingerprint"]
    # A rerun elsewhere (other provenance) is the same run: --resume accepts the checkpoint.
    monkeypatch.setattr(prov, "cpu_model", lambda: "another CPU")
    assert main(["train", "--loss", "triplet", "--loss-option", "margin=0.3", "--device", "cpu",
                 "--output", str(out), "--resume", *TINY]) == 0
    again = json.loads((out / RESULT).read_text())
    assert again["fingerprint"] == first and again["provenance"]["cpu"] == "another CPU"
    assert "provenance" not in again["config"]


def test_compare_results_json_has_provenance(tmp_path):
    out = tmp_path / "cmp"
    assert main(["compare", "--losses", "contrastive", "--untuned", "--device", "cpu", "--output", str(out),
                 *TINY]) == 0
    results = json.loads((out / "results.json").read_text())
    _check_common(results["provenance"])
    runs = {run["loss"]: run for run in results["runs"]}
    _check_common(runs["untrained"]["provenance"])
    assert runs["contrastive"]["provenance"]["loss"]["name"] == "contrastive"
