"""Files a user may receive from someone else (checkpoints, saved embeddings) are read without
running code: a checkpoint carrying a pickle payload is refused with one line, through every
command that reads one, and the payload never runs."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from losszoo.cli.main import main
from losszoo.errors import CorruptFileError
from losszoo.training.checkpoint import check_plain, load_checkpoint, save_checkpoint

TINY = ["--max-classes", "5", "--batch-size", "10", "--samples-per-class", "5", "--dim", "8",
        "--epochs", "1", "--batches-per-epoch", "2", "--ks", "1", "--no-binary", "--no-progress"]


class Payload:
    """Unpickling this calls ``open(marker, "w")``: the file exists iff the payload ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (self.marker, "w")


def _plant(path, marker) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"fingerprint": "x", "config": {}, "payload": Payload(str(marker))}, path)


def _err(capsys) -> str:
    return " ".join(capsys.readouterr().err.split())


def test_the_payload_would_run_under_a_plain_unpickler(tmp_path):
    """The test's premise: without weights_only, loading this file runs the payload."""
    marker = tmp_path / "ran"
    _plant(tmp_path / "evil.pt", marker)
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("command", ["eval", "train --resume", "compare"])
def test_a_malicious_checkpoint_runs_no_code(tmp_path, capsys, command):
    marker = tmp_path / "ran"
    if command == "eval":
        run = tmp_path / "run"
        argv = ["eval", str(run)]
    elif command == "train --resume":
        run = tmp_path / "run"
        argv = ["train", "--loss", "triplet", *TINY, "--output", str(run), "--resume"]
    else:  # a run folder inside a comparison, with a checkpoint and no result yet
        run = tmp_path / "cmp" / "triplet" / "seed0"
        argv = ["compare", "--untuned", "--losses", "triplet", *TINY, "--output", str(tmp_path / "cmp")]
    checkpoint = run / "checkpoint.pt"
    _plant(checkpoint, marker)
    assert main(argv) == 2
    err = _err(capsys)
    assert f"{checkpoint} holds more than tensors and plain values (io.open)" in err, err
    assert not marker.exists()
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt"]  # nothing written


def test_a_checkpoint_holds_only_tensors_and_plain_values(tmp_path):
    path = tmp_path / "checkpoint.pt"
    milestones = torch.optim.lr_scheduler.MultiStepLR(
        torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1), [2, 3]).state_dict()
    save_checkpoint(path, fingerprint="f", scheduler=milestones, weights=torch.ones(2), history=[{"a": 1.0}])
    state = load_checkpoint(path)
    assert state["scheduler"]["milestones"] == {2: 1, 3: 1} and state["history"] == [{"a": 1.0}]
    with pytest.raises(TypeError, match=r"state\['rng'\] is a numpy.ndarray"):
        check_plain({"rng": np.zeros(3)})
    assert not list(tmp_path.glob("*.tmp"))


def test_a_trained_runs_checkpoint_loads_with_weights_only(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--loss", "normsoftmax", *TINY, "--output", str(run)]) == 0
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert {"model", "optimizer", "scheduler", "config", "history"} <= set(state)


def test_an_old_checkpoint_with_numpy_state_is_refused_with_one_line(tmp_path):
    """Checkpoints that carried numpy RNG state (an earlier format) are refused, not unpickled."""
    path = tmp_path / "checkpoint.pt"
    buffer = io.BytesIO()
    torch.save({"fingerprint": "f", "numpy_rng": np.random.get_state()}, buffer)
    path.write_bytes(buffer.getvalue())
    with pytest.raises(CorruptFileError, match="holds more than tensors and plain values"):
        load_checkpoint(path)


def test_saved_embeddings_are_read_without_pickle(tmp_path):
    from losszoo.training.embeddings import EMBEDDINGS, load_embeddings

    np.savez(tmp_path / EMBEDDINGS, embeddings=np.array([object()], dtype=object))
    (tmp_path / "items.csv").write_text("split,index,label,class,path\n")
    with pytest.raises(CorruptFileError, match=f"{tmp_path / EMBEDDINGS}.*pickled objects"):
        load_embeddings(tmp_path)
