"""Output faults are one-line errors naming the path, and lose nothing: a held lock, a full disk
during a checkpoint write (the previous checkpoint survives), a truncated checkpoint on eval and
--resume, a corrupt result.json in a compare folder."""

from __future__ import annotations

import errno
import fcntl
import json
import os

import pytest

from losszoo.cli.main import main
from losszoo.errors import OutputError
from losszoo.training import checkpoint as checkpoint_module
from losszoo.training.checkpoint import LOCK, output_lock, save_checkpoint

TINY = ["--max-classes", "5", "--batch-size", "10", "--samples-per-class", "5", "--dim", "8",
        "--epochs", "1", "--batches-per-epoch", "2", "--ks", "1", "--no-binary", "--no-progress"]


def _err(capsys) -> str:
    return " ".join(capsys.readouterr().err.split())


def test_a_held_lock_refuses_a_second_writer(tmp_path, capsys):
    folder = tmp_path / "run"
    folder.mkdir()
    with (folder / LOCK).open("a") as handle:  # another process's lock, as the kernel sees it
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert main(["train", "--loss", "triplet", *TINY, "--output", str(folder)]) == 2
        assert f"another losszoo process is writing {folder}" in _err(capsys)
    assert sorted(p.name for p in folder.iterdir()) == [LOCK]
    with output_lock(folder):  # released: free again
        pass


def test_a_full_disk_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, fingerprint="a", epoch=1)
    before = path.read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint_module.os, "fsync", full)
    with pytest.raises(OutputError, match=f"cannot write {path}: No space left on device"):
        save_checkpoint(path, fingerprint="b", epoch=2)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temporary file left


def test_a_truncated_checkpoint_is_named_on_eval_and_resume(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--loss", "triplet", *TINY, "--output", str(run)]) == 0
    capsys.readouterr()
    checkpoint = run / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    assert main(["eval", str(run)]) == 2
    assert f"{checkpoint} is not a readable checkpoint" in _err(capsys)
    assert main(["train", "--loss", "triplet", *TINY, "--output", str(run), "--resume"]) == 2
    assert f"{checkpoint} is not a readable checkpoint" in _err(capsys)


def test_a_corrupt_result_in_a_compare_folder_is_named(tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["compare", "--untuned", "--losses", "triplet", *TINY, "--output", str(out)]
    assert main(argv) == 0
    capsys.readouterr()
    result = out / "triplet" / "seed0" / "result.json"
    result.write_text(result.read_text()[:50])
    untrained = (out / "untrained" / "seed0" / "result.json").read_text()
    assert main(argv) == 2
    assert f"{result} cannot be read" in _err(capsys)
    assert (out / "untrained" / "seed0" / "result.json").read_text() == untrained  # nothing rewritten
    json.loads(untrained)
