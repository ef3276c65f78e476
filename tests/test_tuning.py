"""losszoo tune on a slice of the embedded Omniglot: tiny budgets (2 trials, 1 epoch of 2 batches)."""

from __future__ import annotations

import json
import re
import signal

import optuna
import pytest

from helpers import cli_process, wait_for_file
import losszoo.training.plan as plan_module
from losszoo.cli.main import main
from losszoo.hyperparams import LogUniform
from losszoo.losses import MetricLoss, register_loss
from losszoo.training.config import build_config, read_toml
from losszoo.tuning import search_space, tune

TINY = dict(max_classes=10, batch_size=20, samples_per_class=5, dim=16, ks=(1, 2), epochs=2,
            batches_per_epoch=2, binary=False, protocol="tune")
# The same slice as command-line options, with one epoch.
TINY_ARGS = ["--max-classes", "10", "--batch-size", "20", "--samples-per-class", "5", "--dim", "16",
             "--ks", "1,2", "--epochs", "1", "--batches-per-epoch", "2", "--no-progress", "--no-binary"]


@pytest.fixture
def no_test_split(monkeypatch):
    """Any listing of a split other than train (the test split, In-Shop's query/gallery) fails."""
    original = plan_module._read_split

    def guarded(dataset, split, config):
        if split != plan_module.TRAIN_SPLIT:
            raise AssertionError(f"tuning read the {split} split")
        return original(dataset, split, config)

    monkeypatch.setattr(plan_module, "_read_split", guarded)


def _finished(study_db, loss):
    study = optuna.load_study(study_name=f"losszoo-{loss}", storage=f"sqlite:///{study_db}")
    return study, [t for t in study.trials if t.state.is_finished()]


def test_tune_never_reads_test_and_resumes_without_repeating(tmp_path, no_test_split):
    base = build_config(TINY)
    tune(base, tmp_path, losses=["normsoftmax"], trials=1)
    study, first = _finished(tmp_path / "study.db", "normsoftmax")
    assert len(first) == 1
    study.ask()  # a trial left RUNNING by a killed worker: not counted as finished
    tune(base, tmp_path, losses=["normsoftmax"], trials=2)
    study, after = _finished(tmp_path / "study.db", "normsoftmax")
    assert len(after) == 2 and after[0].params == first[0].params and after[0].value == first[0].value
    rows = json.loads((tmp_path / "normsoftmax" / "trials.json").read_text())
    assert [r["state"] for r in rows].count("RUNNING") == 1
    assert all(r["curve"] for r in rows if r["state"] == "COMPLETE")
    assert (tmp_path / "normsoftmax" / "best_so_far.svg").exists()
    tune(base, tmp_path, losses=["normsoftmax"], trials=3)  # extended by one more process
    study, extended = _finished(tmp_path / "study.db", "normsoftmax")
    # Each process used to seed one fresh sampler, so its first proposal repeated the previous
    # process's first proposal (trial 2's, here).
    assert len(extended) == 3 and extended[2].params != extended[1].params
    best = read_toml(tmp_path / "best.toml")
    assert set(best["loss_options"]["normsoftmax"]) == {"temperature"}
    assert set(best["loss_settings"]["normsoftmax"]) <= {"lr", "samples_per_class"}


def test_plugin_loss_search_space_is_tuned(tmp_path, loss_registry, no_test_split):
    import torch

    @register_loss("toy-scaled", sampler="class_balanced", search_space={"scale": LogUniform(0.5, 2.0)})
    class ToyScaled(MetricLoss):
        def __init__(self, scale: float = 1.0):
            super().__init__()
            self.scale = scale

        def forward(self, embeddings, labels):
            same = (labels[:, None] == labels[None]).float()
            sim = torch.nn.functional.normalize(embeddings, dim=1) @ torch.nn.functional.normalize(embeddings, dim=1).T
            return self.scale * ((1 - same) * sim.clamp(min=0) - same * sim).mean()

    assert "loss.scale" in search_space("toy-scaled", 20)
    results = tune(build_config({**TINY, "epochs": 1}), tmp_path, losses=["toy-scaled"], trials=2)
    assert 0.5 <= results[0].loss_options["scale"] <= 2.0
    assert len([r for r in results[0].trials if r["state"] in ("COMPLETE", "PRUNED")]) == 2


def test_best_toml_round_trips_into_compare(tmp_path):
    assert main(["tune", "--losses", "triplet", "--trials", "1", "-o", str(tmp_path / "t"), *TINY_ARGS]) == 0
    best = read_toml(tmp_path / "t" / "best.toml")
    assert "losszoo tune" in (tmp_path / "t" / "best.toml").read_text().splitlines()[1]
    # The schedule travels in best.toml: compare given only the file trains the tuned schedule.
    assert main(["compare", "--config", str(tmp_path / "t" / "best.toml"), "--losses", "triplet",
                 "-o", str(tmp_path / "c"), "--no-progress", "--ks", "1,2"]) == 0
    record = json.loads((tmp_path / "c" / "triplet" / "seed0" / "result.json").read_text())
    for key, value in dict(max_classes=10, batch_size=20, dim=16, epochs=1, batches_per_epoch=2).items():
        assert best[key] == value and record["config"][key] == value
    assert len(best["tuning"]["curves"]["triplet"]) == 1  # one epoch, one validation point
    assert record["config"]["lr"] == pytest.approx(best["loss_settings"]["triplet"]["lr"])
    for key, value in best["loss_options"]["triplet"].items():
        assert record["config"]["loss_options"][key] == pytest.approx(value)
    report = (tmp_path / "c" / "results.md").read_text()
    assert report.startswith("tuned: 1 trials") and "best tuning trial of the same schedule" in report


def test_first_trial_is_the_untuned_setting(tmp_path, no_test_split):
    """Trial 0 is what the base config would train (defaults, preset, shared lr and batch
    composition), so the tuned setting can only beat the untuned one on validation classes."""
    base = build_config({**TINY, "epochs": 1, "lr": 0.02})
    tune(base, tmp_path, losses=["cosface"], trials=1)
    _, trials = _finished(tmp_path / "study.db", "cosface")
    assert trials[0].params == {"loss.scale": 64.0, "loss.margin": 0.35, "common.lr": 0.02,
                                "common.samples_per_class": 5}


def _open_after(barrier, url: str, queue) -> None:
    from losszoo.tuning.study import open_storage

    barrier.wait()
    try:
        open_storage(url)
        queue.put("ok")
    except Exception as exc:  # reported to the parent, which asserts on it
        queue.put(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")


def test_workers_started_together_share_a_new_sqlite_study(tmp_path):
    """Two workers opening one new SQLite database at the same instant (the two-worker tune of
    benchmarks/tune_omniglot.sh) race to create Optuna's tables; open_storage retries the
    loser (optuna/optuna#1092). Forked after importing optuna, released by one barrier, several
    rounds; with ``optuna.storages.RDBStorage(url)`` in place of open_storage, one worker failed
    with "table studies already exists" in 10 of 15 such rounds here."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    for round_ in range(4):
        url = f"sqlite:///{tmp_path / f'race{round_}.db'}"
        barrier, queue = context.Barrier(2), context.Queue()
        workers = [context.Process(target=_open_after, args=(barrier, url, queue)) for _ in range(2)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
        assert [queue.get(timeout=5) for _ in workers] == ["ok", "ok"]


@pytest.mark.parametrize("epochs, first_prunable", [(8, 4), (6, 3), (5, 3), (1, 1)])
def test_median_pruner_waits_for_half_the_schedule(epochs, first_prunable):
    """Optuna's own MedianPruner decides (epochs are reported from 1): two finished trials at
    0.9 every epoch, then one at 0.1 is kept before epoch ceil(epochs / 2) and pruned from it."""
    from losszoo.tuning.study import median_pruner

    study = optuna.create_study(direction="maximize", pruner=median_pruner(epochs))
    for _ in range(2):
        trial = study.ask()
        for epoch in range(1, epochs + 1):
            trial.report(0.9, epoch)
        study.tell(trial, 0.9)
    trial = study.ask()
    decisions = []
    for epoch in range(1, epochs + 1):
        trial.report(0.1, epoch)
        decisions.append(trial.should_prune())
    assert decisions == [epoch >= first_prunable for epoch in range(1, epochs + 1)]


def test_the_pruner_counts_warm_up_epochs_in_the_schedule(tmp_path, monkeypatch, no_test_split):
    """Validation epochs are numbered with the warm-up ones (a head-only warm-up is epoch 1), so
    the pruner's "half the schedule" is half of warm-up + epochs."""
    from losszoo.tuning import study as study_module

    asked = []
    monkeypatch.setattr(study_module, "median_pruner", lambda epochs: asked.append(epochs) or None)
    tune(build_config({**TINY, "warmup_epochs": 1, "epochs": 1}), tmp_path, losses=["normsoftmax"], trials=1)
    assert asked == [2]  # with (5, 3) above: cub100's 1 + 4 epochs prune from epoch 3


def test_warm_start_is_the_second_trial_and_counts_in_the_budget(tmp_path, no_test_split):
    """A previous tune's best (best.toml) is tried right after the untuned setting; a best that
    is the untuned setting is not tried twice (the next trial is the sampler's)."""
    previous = tmp_path / "previous.toml"
    previous.write_text('[loss_options.normsoftmax]\ntemperature = 0.1\n'
                        '[loss_settings.normsoftmax]\nlr = 0.04\nsamples_per_class = 4\n'
                        '[loss_options.cosface]\nscale = 64.0\nmargin = 0.35\n'
                        '[loss_settings.cosface]\nlr = 0.01\nsamples_per_class = 5\n')
    assert main(["tune", "--losses", "normsoftmax,cosface", "--trials", "2", "--warm-start", str(previous),
                 "-o", str(tmp_path / "t"), *TINY_ARGS]) == 0
    _, normsoftmax = _finished(tmp_path / "t" / "study.db", "normsoftmax")
    assert normsoftmax[0].params == {"loss.temperature": 0.05, "common.lr": 0.01, "common.samples_per_class": 5}
    assert normsoftmax[1].params == {"loss.temperature": 0.1, "common.lr": 0.04, "common.samples_per_class": 4}
    _, cosface = _finished(tmp_path / "t" / "study.db", "cosface")  # its best was the untuned point
    assert len(cosface) == 2 and cosface[1].params != cosface[0].params


def test_warm_start_must_cover_every_loss_and_is_checked_first(tmp_path, capsys):
    previous = tmp_path / "previous.toml"
    previous.write_text('[loss_settings.normsoftmax]\nlr = 0.04\n')
    out = tmp_path / "t"
    assert main(["tune", "--losses", "normsoftmax,triplet", "--trials", "1", "--warm-start", str(previous),
                 "-o", str(out)]) == 2
    assert re.search(r"previous.toml: no loss_options.<loss> or loss_settings.<loss> table for triplet\b",
                     capsys.readouterr().err)
    previous.write_text('[loss_settings.normsoftmax]\nlearning_rate = 0.04\n')
    assert main(["tune", "--losses", "normsoftmax", "--trials", "1", "--warm-start", str(previous),
                 "-o", str(out)]) == 2
    assert "unknown key(s) loss_settings.normsoftmax.learning_rate" in capsys.readouterr().err
    previous.write_text('[loss_settings.normsoftmax]\nepochs = 3\n')  # a setting, but not one tuned
    assert main(["tune", "--losses", "normsoftmax", "--trials", "1", "--warm-start", str(previous),
                 "-o", str(out)]) == 2
    assert "warm start for normsoftmax: unknown shared setting(s) epochs" in capsys.readouterr().err
    assert not out.exists()  # nothing written before the check


def test_compare_tune_takes_the_same_warm_start(tmp_path, capsys):
    previous = tmp_path / "previous.toml"
    previous.write_text('[loss_options.normsoftmax]\ntemperature = 0.1\n'
                        '[loss_settings.normsoftmax]\nlr = 0.04\nsamples_per_class = 4\n')
    out = tmp_path / "c"
    assert main(["compare", "--losses", "normsoftmax", "--warm-start", str(previous), "-o", str(out), *TINY_ARGS]) == 2
    assert "--warm-start needs --tune" in capsys.readouterr().err and not out.exists()
    assert main(["compare", "--losses", "normsoftmax", "--tune", "2", "--warm-start", str(previous),
                 "-o", str(out), *TINY_ARGS]) == 0
    _, trials = _finished(out / "tune" / "study.db", "normsoftmax")
    assert trials[1].params == {"loss.temperature": 0.1, "common.lr": 0.04, "common.samples_per_class": 4}


def test_tune_warns_what_it_cannot_tune_and_numbers_trials_as_their_folders(tmp_path, loss_registry):
    from rich.console import Console

    @register_loss("toy-fixed", sampler="class_balanced")  # no search_space declared
    class ToyFixed(MetricLoss):
        def __init__(self, margin: float = 0.2):
            super().__init__()
            self.margin = margin

        def forward(self, embeddings, labels):
            return self.margin * embeddings.pow(2).mean()

    console = Console(record=True, width=400)
    tune(build_config({**TINY, "epochs": 1}), tmp_path, losses=["toy-fixed"], trials=2, console=console)
    text = console.export_text()
    assert re.search(r"toy-fixed declares no search space: only the shared (lr, samples_per_class|"
                     r"samples_per_class, lr) are tuned", text)
    assert "its own hyperparameters (margin) keep their defaults" in text
    assert re.search(r"the validation split holds only \d classes", text)  # 10 classes, a fraction held out
    numbers = [int(n) for n in re.findall(r"toy-fixed: trial (\d+) \(", text)]
    folders = sorted(int(p.name.removeprefix("trial")) for p in (tmp_path / "toy-fixed").glob("trial*")
                     if p.is_dir())
    assert numbers == folders == [0, 1]
    rows = json.loads((tmp_path / "toy-fixed" / "trials.json").read_text())
    assert [r["number"] for r in rows] == [0, 1]


def test_no_warning_for_a_declared_space_and_enough_validation_classes():
    from types import SimpleNamespace

    from losszoo.tuning.advice import search_space_warnings, validation_warnings

    assert search_space_warnings(["normsoftmax", "triplet"], ["lr"]) == []
    plan = SimpleNamespace(split_sizes=lambda: {"validation": {"classes": 40, "images": 800}})
    assert validation_warnings(plan) == []


def test_sigterm_fails_the_running_trial_so_that_the_rerun_runs_it_again(tmp_path):
    # The last --epochs and --batches-per-epoch win: a trial far too long to finish.
    proc = cli_process("tune", "--losses", "normsoftmax", "--trials", "1", "--output", str(tmp_path),
                       *TINY_ARGS, "--epochs", "2", "--batches-per-epoch", "100000")
    wait_for_file(proc, tmp_path / "normsoftmax" / "trial0", timeout=120)  # the trial has begun
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 130
    assert "rerun the same command" in proc.stderr.read().decode()
    study = optuna.load_study(study_name="losszoo-normsoftmax", storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL]  # not left RUNNING


def test_the_sigterm_handler_is_restored_after_each_command():
    before = signal.getsignal(signal.SIGTERM)
    assert main(["list", "losses"]) == 0
    assert signal.getsignal(signal.SIGTERM) is before
