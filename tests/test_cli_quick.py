"""The command line answers fast and prints complete output when piped: ``--help`` never
imports torch, defaults are shown, tables become plain Markdown off a terminal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from losszoo.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ("list", "train", "eval", "compare", "tune", "check-data")


def run_python(code: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=env, timeout=300, cwd=ROOT)


HELP_PROBE = """
import runpy, sys
sys.argv = ["losszoo", *sys.argv[1:]]
try:
    runpy.run_module("losszoo", run_name="__main__")
except SystemExit:
    pass
print("TORCH_IMPORTED" if "torch" in sys.modules else "NO_TORCH")
"""


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"], ["eval", "--help"], ["--version"]])
def test_help_does_not_import_torch(args):
    done = run_python(HELP_PROBE, *args)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("NO_TORCH"), done.stdout[-300:]


def test_version_and_help_text(capsys):
    from losszoo import __version__

    with pytest.raises(SystemExit):
        build_parser().parse_args(["--version"])
    assert capsys.readouterr().out.strip() == f"losszoo {__version__}"
    for command in COMMANDS:
        with pytest.raises(SystemExit):
            build_parser().parse_args([command, "--help"])
        text = capsys.readouterr().out
        assert "``" not in text and "`" not in text, command
        if command not in ("list", "check-data"):
            assert "(default: 1,2,4,8)" in text.replace("\n", " ")  # --ks shows its default
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    train_help = " ".join(capsys.readouterr().out.split())
    assert "--lr LR base learning rate (default: 0.01)" in train_help
    assert "(default: 512; 64 on the embedded omniglot)" in train_help


def test_eval_help_shows_only_what_eval_uses(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["eval", "--help"])
    text = capsys.readouterr().out
    for used in ("--dataset", "--data-root", "--ks", "--no-binary", "--backbone", "--device"):
        assert used in text
    for unused in ("--lr", "--epochs", "--batch-size", "--miner", "--sampler", "--warmup-epochs",
                   "--no-progress", "--eval-every"):
        assert unused not in text, unused


def test_piped_list_is_complete_markdown():
    """Off a terminal the tables are Markdown with every cell whole; ``*`` tables the zoo's own
    losses and points to ``pml:*`` without importing PML (or torchvision: both are slow imports),
    ``pml:*`` tables the adapted losses with their defaults."""
    from losszoo.cli.list_cmd import loss_rows
    from losszoo.losses import list_losses

    probe = ("import sys; from losszoo.cli.main import main; code = main(['list', 'losses', sys.argv[1]]); "
             "print('SLOW_IMPORTS', sorted(m for m in ('pytorch_metric_learning', 'torchvision') if m in sys.modules)); "
             "sys.exit(code)")
    for pattern, tabled in (("*", list_losses("*", namespaced=False)), ("pml:*", list_losses("pml:*"))):
        done = run_python(probe, pattern)
        assert done.returncode == 0, done.stderr
        out = done.stdout
        assert "| name | aliases | group | sampler | defaults | search space | tags | capabilities |" in out
        assert "…" not in out  # rich's ellipsis: nothing cut
        for row in loss_rows(tabled):
            assert "| " + " | ".join(row) + " |" in out, row[0]
        if pattern == "*":
            assert not any(name in out for name in list_losses("pml:*"))
            assert "losszoo list losses 'pml:*'" in " ".join(out.split())
            assert "SLOW_IMPORTS []" in out
        else:
            assert "SLOW_IMPORTS ['pytorch_metric_learning']" in out


def test_compare_table_is_markdown_off_a_terminal(tmp_path):
    import io

    from rich.console import Console

    from record_makers import run_record, scores

    from losszoo.training.report import to_markdown, write_report

    record = run_record("triplet", 0, scores(0.5, 0.3, nmi=0.4),
                        config={"epochs": 1, "warmup_epochs": 0, "protocol": "final", "dataset": "omniglot",
                                "backbone": "convnet4", "dim": 64})
    buffer = io.StringIO()
    rows = write_report([record], tmp_path, ks=(1,), console=Console(file=buffer, width=20))
    assert to_markdown(rows, (1,)).splitlines()[-1] in buffer.getvalue()


def test_protocol_and_validation_split_options_reach_the_config():
    from losszoo.cli.options import config_from_args

    args = build_parser().parse_args(["train", "--protocol", "holdout", "--val-fraction", "0.25",
                                      "--val-folds", "4", "--val-fold", "3", "--val-seed", "7",
                                      "--eval-every", "1"])
    config, _ = config_from_args(args)
    assert (config.protocol, config.val_fraction, config.val_folds, config.val_fold, config.val_seed,
            config.eval_every) == ("holdout", 0.25, 4, 3, 7, 1)
    with pytest.raises(SystemExit):  # tuning trials run through losszoo tune only
        build_parser().parse_args(["train", "--protocol", "tune"])


MY_LOSSES = '''
from losszoo.losses import MetricLoss, register_loss


@register_loss("mycenter", sampler="class_balanced", tags=("pair",))
class MyCenter(MetricLoss):
    """Mean squared distance of each embedding to its class mean (a toy loss)."""

    def compute(self, embeddings, labels):
        means = {int(c): embeddings[labels == c].mean(0) for c in labels.unique()}
        return sum(((embeddings[labels == c] - m) ** 2).sum() for c, m in means.items()) / len(labels)
'''


def test_loss_module_registers_a_local_files_losses_for_one_command(tmp_path, capsys, loss_registry):
    from losszoo.cli.main import main

    path = tmp_path / "my_losses.py"
    path.write_text(MY_LOSSES)
    assert main(["list", "losses", "my*", "--loss-module", str(path)]) == 0
    assert "mycenter" in capsys.readouterr().out
    assert main(["list", "losses", "--loss-module", str(tmp_path / "missing.py")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "--loss-module" in err and "missing.py: no such file" in err


def test_loss_module_train_uses_the_new_loss(tmp_path, loss_registry):
    import json

    from losszoo.cli.main import main

    path = tmp_path / "my_losses.py"
    path.write_text(MY_LOSSES)
    out = tmp_path / "run"
    assert main(["train", "--loss-module", str(path), "--loss", "mycenter", "--max-classes", "5",
                 "--batch-size", "10", "--samples-per-class", "5", "--dim", "8", "--epochs", "1",
                 "--batches-per-epoch", "2", "--ks", "1", "--no-binary", "--no-progress",
                 "--output", str(out)]) == 0
    assert json.loads((out / "result.json").read_text())["loss"] == "mycenter"
