"""End to end: the ``losszoo`` command on a slice of the embedded Omniglot copy.

Every run here keeps the first 10 classes of each split (``--max-classes``) and a few batches
per epoch, so a whole comparison takes seconds on a CPU.
"""

from __future__ import annotations

import importlib
import json
import signal
import urllib.error
from pathlib import Path

import pytest
import torch

from helpers import cli_process, wait_for_file
from losszoo.cli.main import main
from losszoo.training.trainer import CHECKPOINT, RESULT

TINY = ["--max-classes", "10", "--batch-size", "20", "--samples-per-class", "5",
        "--dim", "16", "--ks", "1,2,4", "--no-progress"]


def run_cli(*args: str) -> int:
    return main([*args])


@pytest.mark.slow
def test_compare_two_losses_writes_every_output(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert run_cli("compare", "--losses", "normsoftmax,triplet", "--epochs", "1",
                   "--batches-per-epoch", "3", "--output", str(out), *TINY) == 0
    for name in ("results.json", "results.csv", "results.md", "recall_at_k.png",
                 "float_vs_binary_r1.png"):
        assert (out / name).stat().st_size > 0, name
    results = json.loads((out / "results.json").read_text())
    assert [row["loss"] for row in results["summary"]] == ["untrained", "normsoftmax", "triplet"]
    for row in results["summary"]:
        for key in ("recall@1", "recall@4", "nmi", "map_at_r", "binary/recall@1"):
            assert 0.0 <= row[key] <= 1.0, (row["loss"], key)
    assert "| normsoftmax" in (out / "results.md").read_text()
    assert (out / "results.csv").read_text().splitlines()[0].startswith("loss,seeds,")
    assert "results:" in capsys.readouterr().out


@pytest.mark.slow
def test_compare_resumes_without_redoing_finished_runs(tmp_path, monkeypatch):
    out = tmp_path / "cmp"
    args = ["compare", "--losses", "normsoftmax,contrastive", "--untuned", "--epochs", "1",
            "--batches-per-epoch", "2", "--output", str(out), *TINY]
    assert run_cli(*args) == 0
    finished = json.loads((out / "normsoftmax" / "seed0" / RESULT).read_text())
    # Interrupt the second loss's run: only its checkpoint is left, as after kill -9.
    (out / "contrastive" / "seed0" / RESULT).unlink()

    trained = []
    compare_module = importlib.import_module("losszoo.training.compare")
    real_train = compare_module.train
    monkeypatch.setattr(compare_module, "train",
                        lambda plan, *a, **k: trained.append(plan.config.loss) or real_train(plan, *a, **k))
    assert run_cli(*args) == 0
    assert trained == ["contrastive"]  # normsoftmax was finished and is kept as it was
    assert json.loads((out / "normsoftmax" / "seed0" / RESULT).read_text()) == finished
    assert (out / "contrastive" / "seed0" / RESULT).exists()



def test_compare_refuses_to_mix_settings_in_one_folder(tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["compare", "--losses", "normsoftmax", "--epochs", "1", "--output", str(out), *TINY]
    assert run_cli(*args, "--batches-per-epoch", "1") == 0
    capsys.readouterr()
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert run_cli(*args, "--batches-per-epoch", "2") == 2
    assert "different settings" in capsys.readouterr().err
    # Refused before anything was written: the untrained floor's result too is as it was.
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


@pytest.mark.slow
def test_kill_9_then_resume_matches_an_uninterrupted_run(tmp_path, one_thread):
    train_args = ["train", "--loss", "normsoftmax", "--epochs", "3", "--batches-per-epoch", "30",
                  "--no-binary", *TINY]
    whole, broken = tmp_path / "whole", tmp_path / "broken"

    proc = cli_process(*train_args, "--output", str(broken))
    wait_for_file(proc, broken / CHECKPOINT)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (broken / RESULT).exists(), "the run finished before it could be killed"
    killed_at = torch.load(broken / CHECKPOINT, weights_only=True)["next_epoch"]
    assert 1 <= killed_at < 3

    assert run_cli(*train_args, "--output", str(broken), "--resume") == 0
    assert run_cli(*train_args, "--output", str(whole)) == 0

    a, b = (json.loads((d / RESULT).read_text()) for d in (whole, broken))
    assert a["metrics"] == b["metrics"]
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]
    state_a, state_b = (torch.load(d / CHECKPOINT, weights_only=True)["model"] for d in (whole, broken))
    for key in state_a:
        assert torch.equal(state_a[key], state_b[key]), key


@pytest.mark.slow
def test_eval_reproduces_the_metrics_of_a_trained_run(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert run_cli("train", "--loss", "npair", "--epochs", "1", "--batches-per-epoch", "3",
                   "--output", str(run_dir), *TINY) == 0
    assert run_cli("eval", str(run_dir), "--output", str(tmp_path / "eval.json")) == 0
    trained = json.loads((run_dir / RESULT).read_text())["metrics"]
    assert json.loads((tmp_path / "eval.json").read_text()) == trained
    assert "recall@1" in capsys.readouterr().out


def test_lazy_momentum_trains_subsampled_class_weights_with_a_dense_buffer(tmp_path):
    run_dir = tmp_path / "run"
    assert run_cli("train", "--loss", "normsoftmax", "--loss-option", "class_subsample=0.5",
                   "--lazy-momentum", "--epochs", "1", "--batches-per-epoch", "3",
                   "--output", str(run_dir), *TINY) == 0
    from losszoo.training.checkpoint import load_checkpoint

    state = load_checkpoint(run_dir / CHECKPOINT)
    assert state["config"]["lazy_momentum"] is True
    class_weights = state["loss"]["proxies.weight"]
    buffers = [s["momentum_buffer"] for s in state["optimizer"]["state"].values()]
    lazy = [b for b in buffers if b.shape == class_weights.shape]
    assert len(lazy) == 1 and not lazy[0].is_sparse and lazy[0].abs().sum() > 0


def test_many_subsampled_classes_without_lazy_momentum_get_a_hint(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(importlib.import_module("losszoo.training.trainer"), "LAZY_MOMENTUM_HINT_CLASSES", 10)
    args = ["train", "--loss", "normsoftmax", "--loss-option", "class_subsample=0.5", "--epochs", "1",
            "--batches-per-epoch", "1", *TINY]
    assert run_cli(*args, "--output", str(tmp_path / "a")) == 0
    assert "--lazy-momentum" in capsys.readouterr().err
    assert run_cli(*args, "--lazy-momentum", "--output", str(tmp_path / "b")) == 0
    assert "--lazy-momentum" not in capsys.readouterr().err


def test_eval_needs_a_checkpoint(tmp_path, capsys):
    assert run_cli("eval", str(tmp_path)) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_a_finished_checkpoint_without_resume_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / CHECKPOINT).write_bytes(b"")
    assert run_cli("train", "--epochs", "1", "--batches-per-epoch", "1", "--output", str(out),
                   *TINY) == 2
    assert "--resume" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch-size", "21"], "multiple of samples_per_class"),
        (["--losses", "normsoftmx"], "Did you mean 'normsoftmax'"),
        (["--backbone", "resnet5"], "unknown backbone"),
        (["--dataset", "cub200", "--data-root", "/nonexistent/cub", "--backbone", "resnet18",
          "--no-pretrained"], "/nonexistent/cub"),
        (["--dataset", "nosuchset"], "unknown dataset"),
        (["--epochs", "0"], "epochs must be >= 1"),
        (["--max-classes", "0"], "max_classes must be >= 1"),
    ],
)
def test_bad_settings_give_clear_errors(tmp_path, capsys, args, message):
    code = run_cli("compare", "--output", str(tmp_path / "x"), *TINY, *args)
    assert code == 2
    assert message in capsys.readouterr().err.replace("\n", " ")


def test_offline_pretrained_weights_give_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty weights cache

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("no network in this test")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    config = tmp_path / "pretrained.toml"  # the Omniglot preset trains from scratch
    config.write_text("pretrained = true\n")
    assert run_cli("train", "--config", str(config), "--backbone", "resnet18", *TINY,
                   "--output", str(tmp_path / "x")) == 2
    err = capsys.readouterr().err.replace("\n", " ")
    assert "resnet18" in err and "--no-pretrained" in err


def test_bad_config_file_gives_clear_errors(tmp_path, capsys):
    bad_key = tmp_path / "bad.toml"
    bad_key.write_text('dataset = "omniglot"\nbatchsize = 10\n')
    assert run_cli("train", "--config", str(bad_key), "--output", str(tmp_path / "x")) == 2
    assert "unknown key(s) batchsize (batchsize: did you mean 'batch_size'?)" in capsys.readouterr().err
    not_toml = tmp_path / "broken.toml"
    not_toml.write_text("dataset = \n")
    assert run_cli("train", "--config", str(not_toml), "--output", str(tmp_path / "x")) == 2
    assert "not valid TOML" in capsys.readouterr().err
    assert run_cli("train", "--config", str(tmp_path / "missing.toml")) == 2
    assert "config file not found" in capsys.readouterr().err


def test_command_line_wins_over_config_file(tmp_path):
    from losszoo.cli.main import build_parser
    from losszoo.cli.options import config_from_args

    path = tmp_path / "c.toml"
    path.write_text('dim = 32\nlr = 0.5\nlosses = ["triplet"]\n')
    args = build_parser().parse_args(["compare", "--config", str(path), "--dim", "8"])
    config, table = config_from_args(args)
    assert (config.dim, config.lr, config.backbone) == (8, 0.5, "convnet4")  # omniglot preset
    assert table["losses"] == ["triplet"]


def test_loss_options_are_the_papers_unless_given():
    """No dataset changes a loss's defaults silently: tuned values come from a preset file."""
    from losszoo.cli.main import build_parser
    from losszoo.cli.options import config_from_args, parse_loss_options

    args = build_parser().parse_args(["train", "--loss", "cosface"])
    assert config_from_args(args)[0].loss_options == {}
    config, _ = config_from_args(args, loss_options=parse_loss_options(["scale=64", "margin=0.2"]))
    assert config.loss_options == {"scale": 64, "margin": 0.2}


def test_compare_gives_each_loss_its_preset_options(tmp_path, monkeypatch):
    compare_module = importlib.import_module("losszoo.training.compare")
    seen = []

    def fake_train(plan, *args, **kwargs):
        options = plan.config.loss_options  # resolved: every hyperparameter filled in
        seen.append((plan.config.loss, {k: options[k] for k in ("scale", "margin")}))
        raise StopIteration  # stop before any training

    monkeypatch.setattr(compare_module, "train", fake_train)
    monkeypatch.setattr(compare_module, "untrained_baseline", lambda *a, **k: {})
    from losszoo.training import build_config
    base = build_config({"max_classes": 10, "batch_size": 20})
    for losses, options in ((["cosface"], None), (["lmcl"], {"lmcl": {"margin": 0.1}}),
                            (["cosface"], {"lmcl": {"margin": 0.1}, "cosface": {"scale": 64}})):
        with pytest.raises(StopIteration):
            compare_module.compare(base, tmp_path, losses=losses, loss_options=options, progress=False)
    # the paper's scale 64 and margin 0.35; alias and name both kept
    assert seen == [("cosface", {"scale": 64.0, "margin": 0.35}), ("cosface", {"scale": 64.0, "margin": 0.1}),
                    ("cosface", {"scale": 64, "margin": 0.1})]


def test_compare_loss_options_from_command_line_win_over_the_config_file(tmp_path, monkeypatch, capsys):
    # The command imports compare when it runs (a fast --help), so patch it where it lives.
    compare_module = importlib.import_module("losszoo.training.compare")
    seen = {}
    monkeypatch.setattr(compare_module, "compare", lambda *a, **k: seen.update(k["loss_options"]))
    path = tmp_path / "c.toml"
    path.write_text("[loss_options.cosface]\nscale = 30.0\nmargin = 0.2\n")
    assert run_cli("compare", "--config", str(path), "--loss-option", "cosface.scale=64",
                   "--loss-option", "triplet.margin=0.1", "--output", str(tmp_path)) == 0
    # command line > config file > tuned preset (which gives triplet its tuned mining too)
    assert seen["cosface"] == {"scale": 64, "margin": 0.2} and seen["triplet"]["margin"] == 0.1
    assert run_cli("compare", "--loss-option", "scale=64", "--output", str(tmp_path)) == 2
    assert "LOSS.NAME=VALUE" in capsys.readouterr().err


def test_a_tuned_setting_that_does_not_fit_the_batch_is_named(tmp_path, capsys):
    """The shipped preset tunes samples_per_class per loss for its batch of 80; under another
    batch size the error says which loss's tuned setting does not fit (nothing is written)."""
    from losszoo.training.config import read_toml, tuned_preset

    tuned = read_toml(tuned_preset("omniglot"))["loss_settings"]
    loss, settings = next((name, values) for name, values in tuned.items() if 20 % values["samples_per_class"])
    out = tmp_path / "cmp"
    assert run_cli("compare", "--losses", loss, "--batch-size", "20", "--output", str(out)) == 2
    err = capsys.readouterr().err
    assert f"{loss} with its per-loss settings" in err
    assert f"samples_per_class {settings['samples_per_class']}" in err and not out.exists()


@pytest.mark.parametrize("config", sorted((Path(__file__).parents[1] / "benchmarks" / "configs").glob("*.toml")))
def test_paper_configs_are_valid(config):
    from losszoo.cli.main import build_parser
    from losszoo.cli.options import config_from_args
    from losszoo.losses import get_loss_spec

    args = build_parser().parse_args(["compare", "--config", str(config)])
    train_config, table = config_from_args(args)
    assert train_config.backbone == "resnet50" and train_config.pretrained
    assert train_config.dim in (128, 512, 2048)
    for name in table.get("losses", []):
        get_loss_spec(name)


def test_list_shows_every_kind(capsys):
    assert run_cli("list") == 0
    out = capsys.readouterr().out
    for word in ("normsoftmax", "lmcl", "class_balanced", "npair", "resnet50", "convnet4",
                 "omniglot", "cub200"):
        assert word in out, word
