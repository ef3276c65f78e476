"""A run trained with ``--loss-module``: ``losszoo eval`` says which module to pass (the run
records where its loss was defined); ``check-data`` takes no ``--loss-module``."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from losszoo.cli.main import main

TINY = ["--max-classes", "5", "--batch-size", "10", "--samples-per-class", "5", "--dim", "8",
        "--epochs", "1", "--batches-per-epoch", "1", "--ks", "1", "--no-progress", "--device", "cpu",
        "--no-binary"]


@pytest.fixture
def loss_file(tmp_path, loss_registry):
    path = tmp_path / "my_loss.py"
    path.write_text(textwrap.dedent("""
        import losszoo
        from losszoo.losses.contrastive import Contrastive

        @losszoo.register_loss("my-contrastive", sampler="class_balanced")
        class MyContrastive(Contrastive):
            pass
    """))
    before = set(sys.modules)
    yield path
    for name in set(sys.modules) - before:
        del sys.modules[name]


def test_eval_of_a_loss_module_run_names_the_module(tmp_path, loss_file, capsys):
    run = tmp_path / "run"
    assert main(["train", "--loss-module", str(loss_file), "--loss", "my-contrastive", "-o", str(run), *TINY]) == 0
    source = json.loads((run / "result.json").read_text())["provenance"]["loss"]
    assert source["module"] == "losszoo_user.my_loss" and source["file"] == str(loss_file.resolve())
    from losszoo.losses.registry import LOSSES

    LOSSES.remove("my-contrastive")  # a fresh process: the loss is not registered
    capsys.readouterr()
    assert main(["eval", str(run)]) == 2
    error = capsys.readouterr().err
    assert "trained with loss 'my-contrastive'" in error and f"--loss-module {loss_file.resolve()}" in error
    assert main(["eval", str(run), "--loss-module", str(loss_file)]) == 0


def test_check_data_has_no_loss_module_option(capsys):
    with pytest.raises(SystemExit):
        main(["check-data", "--loss-module", "x.py"])
    assert "unrecognized arguments: --loss-module" in capsys.readouterr().err
