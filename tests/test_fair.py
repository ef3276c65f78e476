"""Fair by construction (issue 28): each way a comparison could be unfair or inconsistent
without a word, tried as a user would, on a slice of the embedded Omniglot copy.

Most tests stop ``losszoo compare`` where it hands its plan to training (``capture``), so they
check what would train without training it."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
import torch
from record_makers import run_record, scores

from losszoo.cli.main import main
from losszoo.errors import ConfigError
from losszoo.losses import MetricLoss, register_loss
from losszoo.training.config import read_toml

TINY = ["--max-classes", "10", "--batch-size", "20", "--samples-per-class", "5", "--dim", "16",
        "--ks", "1,2", "--epochs", "1", "--batches-per-epoch", "2", "--no-progress", "--no-binary"]

# A hand-written best.toml (the format losszoo tune writes) for normsoftmax and triplet: tuned
# values that differ from every default, so a value applied to the wrong loss, or lost, shows.
BEST_TOML = """
losses = ["normsoftmax", "triplet"]
dataset = "omniglot"
batch_size = 20
samples_per_class = 5
epochs = 1
batches_per_epoch = 2
lr = 0.01
max_classes = 10
dim = 16

[tuning]
trials = 2
metric = "map_at_r"

[loss_options.normsoftmax]
temperature = 0.33

[loss_settings.normsoftmax]
lr = 0.00122
samples_per_class = 2

[loss_options.triplet]
margin = 0.37

[loss_settings.triplet]
lr = 0.0731
samples_per_class = 4
"""

# TrainConfig()'s fingerprint, and the untrained floor's, as main computed them before issue 28.
PAPER_DEFAULTS_FINGERPRINT, PAPER_DEFAULTS_FLOOR_FINGERPRINT = "38f9b14543c3", "cae658b79d75"


@pytest.fixture
def capture(monkeypatch):
    """``compare`` runs nothing: it records each trained run's planned config (``"runs"``),
    the untrained floor's (``"untrained"``) and the report's ``tuning`` argument."""
    compare_module = importlib.import_module("losszoo.training.compare")
    seen: dict = {"runs": [], "untrained": []}

    def fake_train(plan, *args, **kwargs):
        seen["runs"].append(plan.config)
        return {"loss": plan.config.loss, "seed": plan.config.seed, "metrics": None}

    original = compare_module.compare

    def spy(*args, **kwargs):
        seen["tuning"] = kwargs.get("tuning")
        return original(*args, **kwargs)

    monkeypatch.setattr(compare_module, "train", fake_train)
    monkeypatch.setattr(compare_module, "untrained_baseline",
                        lambda run, console: seen["untrained"].append(run.plan.config) or {})
    monkeypatch.setattr(compare_module, "write_report", lambda *a, **k: [])
    monkeypatch.setattr(compare_module, "compare", spy)
    return seen


def _trained(seen: dict) -> dict:
    return {config.loss: config for config in seen["runs"]}


@pytest.fixture
def mycosine(loss_registry):
    @register_loss("mycosine", sampler="class_balanced")
    class MyCosine(MetricLoss):
        def forward(self, embeddings, labels):
            e = torch.nn.functional.normalize(embeddings, dim=1)
            same = (labels[:, None] == labels[None]).float()
            return ((1 - same) * (e @ e.T).clamp(min=0) - same * (e @ e.T)).mean()

    return "mycosine"


# -- tuned and untuned losses are not mixed -----------------------------------------------------
def test_a_loss_the_preset_did_not_tune_is_refused_beside_tuned_ones(tmp_path, capsys, capture, mycosine):
    """The documented plugin command ran the plugin at its defaults under a "tuned" caption."""
    assert main(["compare", "--losses", "normsoftmax,mycosine", "-o", str(tmp_path), *TINY]) == 2
    err = capsys.readouterr().err
    assert "mycosine: not tuned in" in err and "--allow-untuned mycosine" in err
    assert not capture["runs"] and not tmp_path.joinpath("mycosine").exists()


def test_allow_untuned_marks_the_row_and_the_caption(tmp_path, capture, mycosine):
    from losszoo.training.report import caption, write_report

    assert main(["compare", "--losses", "normsoftmax,mycosine", "--allow-untuned", "mycosine",
                 "-o", str(tmp_path / "c"), *TINY]) == 0
    tuning = capture["tuning"]
    assert tuning["untuned"] == ["mycosine"] and tuning["trials"] == 6  # the shipped preset's budget
    assert _trained(capture)["mycosine"].lr == 0.01  # the shared default, not a tuned lr
    records = [run_record(loss, 0, scores(r, r / 2), config={"epochs": 1, "warmup_epochs": 0})
               for loss, r in (("normsoftmax", 0.6), ("mycosine", 0.5))]
    text = caption(records, tuning)
    assert text.startswith("tuned: 6 trials") and "NOT tuned (per-loss defaults, --allow-untuned): mycosine" in text
    write_report(records, tmp_path / "r", ks=(1,), tuning=tuning)
    rows = (tmp_path / "r" / "results.md").read_text().splitlines()
    assert any(row.startswith("| mycosine (untuned) |") for row in rows)
    assert any(row.startswith("| normsoftmax") and "untuned" not in row for row in rows)


def test_best_toml_records_its_losses_and_compare_trains_only_those(tmp_path, capture):
    best = tmp_path / "best.toml"
    best.write_text(BEST_TOML)
    assert main(["compare", "--config", str(best), "-o", str(tmp_path / "c"), "--no-progress"]) == 0
    assert sorted(_trained(capture)) == ["normsoftmax", "triplet"]


# -- one precedence, per-loss settings included ---------------------------------------------------
def test_a_flag_wins_over_a_loss_s_tuned_setting_and_the_caption_says_which_rows(tmp_path, capture):
    best = tmp_path / "best.toml"
    best.write_text(BEST_TOML)
    assert main(["compare", "--config", str(best), "--losses", "normsoftmax,triplet", "--lr", "0.05",
                 "--samples-per-class", "4", "-o", str(tmp_path / "c"), "--no-progress"]) == 0
    trained = _trained(capture)
    assert (trained["normsoftmax"].lr, trained["normsoftmax"].samples_per_class) == (0.05, 4)
    assert (trained["triplet"].lr, trained["triplet"].samples_per_class) == (0.05, 4)
    assert trained["normsoftmax"].loss_options["temperature"] == 0.33  # the rest stays tuned
    assert capture["tuning"]["by_hand"] == {"normsoftmax": ["lr", "samples_per_class"],
                                            "triplet": ["lr", "samples_per_class"]}
    from losszoo.training.report import caption

    assert "set by hand over the tuned values: normsoftmax (lr, samples_per_class)" in caption([], capture["tuning"])


def test_a_flag_wins_over_the_shipped_preset_s_per_loss_setting(tmp_path, capture):
    """``--batch-size 12 --samples-per-class 3`` was refused: the preset's triplet
    samples_per_class 5 overrode the flag."""
    assert main(["compare", "--losses", "triplet", "--batch-size", "12", "--samples-per-class", "3",
                 "--max-classes", "10", "--epochs", "1", "--batches-per-epoch", "1", "--no-progress",
                 "-o", str(tmp_path)]) == 0
    triplet = _trained(capture)["triplet"]
    preset = read_toml(Path(importlib.import_module("losszoo.training.config").tuned_preset("omniglot")))
    assert (triplet.batch_size, triplet.samples_per_class) == (12, 3)
    assert triplet.lr == pytest.approx(preset["loss_settings"]["triplet"]["lr"])  # not given: tuned
    assert capture["tuning"]["by_hand"] == {"triplet": ["samples_per_class"]}


def test_a_config_file_wins_over_the_tuned_preset(tmp_path, capture):
    plain = tmp_path / "plain.toml"
    plain.write_text("lr = 0.05\nmax_classes = 20\nepochs = 1\nbatches_per_epoch = 1\n")
    assert main(["compare", "--config", str(plain), "--losses", "triplet", "--no-progress",
                 "-o", str(tmp_path / "c")]) == 0
    triplet = _trained(capture)["triplet"]
    assert triplet.lr == 0.05 and triplet.batch_size == 80  # the file, then the dataset preset
    assert capture["tuning"]["by_hand"] == {"triplet": ["lr"]}


# -- unknown keys and nested tables ------------------------------------------------------------
@pytest.mark.parametrize("text, message", [
    ("[training]\nlr = 0.1\n", "table 'training' is not one losszoo reads"),
    ('output = "x"\n', "unknown key(s) output"),
    ("[tuning]\ntrails = 2\n", "tuning.trails: did you mean 'trials'"),
    ("[loss_settings.triplet]\nlrr = 0.1\n", "loss_settings.triplet.lrr: did you mean 'lr'"),
    ("[loss_options]\nmargin = 0.1\n[loss_options.triplet]\nmargin = 0.2\n", "mixes per-loss tables"),
])
@pytest.mark.parametrize("command", ["train", "compare", "tune"])
def test_unknown_keys_and_tables_in_any_toml_are_refused(tmp_path, capsys, text, message, command):
    path = tmp_path / "c.toml"
    path.write_text(text)
    assert main([command, "--config", str(path), "-o", str(tmp_path / "out"), *TINY]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# -- the README's miner command ------------------------------------------------------------------
@pytest.mark.slow
def test_the_readme_miner_command_runs(tmp_path):
    """``losszoo compare --untuned --miner pml:MultiSimilarityMiner --losses triplet,contrastive``
    failed: the untrained baseline was planned with the base's default loss (normsoftmax, which
    takes no miner) and the miner kept."""
    out = tmp_path / "c"
    assert main(["compare", "--untuned", "--miner", "pml:MultiSimilarityMiner", "--losses",
                 "triplet,contrastive", "-o", str(out), *TINY]) == 0
    untrained = json.loads((out / "untrained" / "seed0" / "result.json").read_text())
    assert untrained["config"]["miner"] is None
    plain = tmp_path / "plain"
    assert main(["compare", "--untuned", "--losses", "triplet", "-o", str(plain), *TINY]) == 0
    same = json.loads((plain / "untrained" / "seed0" / "result.json").read_text())
    assert same["fingerprint"] == untrained["fingerprint"]  # the floor does not depend on the miner
    assert same["metrics"] == untrained["metrics"]
    for loss in ("triplet", "contrastive"):
        record = json.loads((out / loss / "seed0" / "result.json").read_text())
        assert record["config"]["miner"] == "pml:MultiSimilarityMiner"


# -- a study keeps one schedule ------------------------------------------------------------------
def test_a_study_refuses_trials_of_another_schedule(tmp_path, capsys):
    import optuna

    out = tmp_path / "t"
    assert main(["tune", "--losses", "triplet", "--trials", "1", "-o", str(out), *TINY]) == 0
    best = read_toml(out / "best.toml")
    assert best["losses"] == ["triplet"] and best["epochs"] == 1
    stamp = (out / "best.toml").stat().st_mtime_ns
    assert main(["tune", "--losses", "triplet", "--trials", "2", "-o", str(out), *TINY[:-6],
                 "--epochs", "2", "--batches-per-epoch", "2", "--no-progress", "--no-binary"]) == 2
    err = capsys.readouterr().err
    assert "epochs 1 (now 2)" in err and "another schedule" in err
    study = optuna.load_study(study_name="losszoo-triplet", storage=f"sqlite:///{out / 'study.db'}")
    assert len(study.trials) == 1 and (out / "best.toml").stat().st_mtime_ns == stamp


# -- what the mutation check of issue 28 found unguarded ------------------------------------------
def test_tuned_settings_reach_their_own_loss_through_a_hand_written_best_toml(tmp_path, capture):
    """Every value of BEST_TOML differs from the defaults and between the two losses: each
    loss trains with its own (a value applied to the other loss, or dropped, fails here)."""
    best = tmp_path / "best.toml"
    best.write_text(BEST_TOML)
    assert main(["compare", "--config", str(best), "-o", str(tmp_path / "c"), "--no-progress"]) == 0
    trained = _trained(capture)
    normsoftmax, triplet = trained["normsoftmax"], trained["triplet"]
    assert (normsoftmax.lr, normsoftmax.samples_per_class, normsoftmax.loss_options["temperature"]) == \
        (0.00122, 2, 0.33)
    assert (triplet.lr, triplet.samples_per_class, triplet.loss_options["margin"]) == (0.0731, 4, 0.37)
    assert "temperature" not in triplet.loss_options and "margin" not in normsoftmax.loss_options
    assert capture["tuning"] == {"trials": 2, "metric": "map_at_r"}  # nothing untuned, nothing by hand


def test_the_untrained_floor_is_planned_and_evaluated_per_seed(tmp_path, monkeypatch):
    """Each seed row's floor is the network that seed initialises (the mutation check planned
    every row with the first seed and no test saw it)."""
    compare_module = importlib.import_module("losszoo.training.compare")
    monkeypatch.setattr(compare_module, "train", lambda plan, *a, **k: {"loss": plan.config.loss,
                                                                        "seed": plan.config.seed, "metrics": None})
    monkeypatch.setattr(compare_module, "write_report", lambda *a, **k: [])
    out = tmp_path / "c"
    assert main(["compare", "--untuned", "--losses", "triplet", "--seeds", "2", "--seed", "3",
                 "-o", str(out), *TINY]) == 0
    floors = [json.loads((out / "untrained" / f"seed{seed}" / "result.json").read_text()) for seed in (3, 4)]
    assert [f["seed"] for f in floors] == [f["config"]["seed"] for f in floors] == [3, 4]
    assert floors[0]["fingerprint"] != floors[1]["fingerprint"]
    assert floors[0]["metrics"] != floors[1]["metrics"]  # two initialisations, two floors


def test_a_fingerprint_leaves_out_exactly_its_exclusions():
    """The untrained floor's fingerprint excludes the loss settings (its metrics do not depend
    on them): a floor is kept across comparisons that differ only there, and only there."""
    from losszoo.training.compare import _LOSS_SETTINGS
    from losszoo.training.config import EVALUATION_ONLY, TrainConfig

    base = TrainConfig(dataset="omniglot")
    for change in (dict(lr=0.5), dict(loss="triplet"), dict(samples_per_class=5, batch_size=10),
                   dict(miner="pml:MultiSimilarityMiner")):
        other = base.replace(**change)
        assert other.fingerprint() != base.fingerprint(), change
        assert other.fingerprint(exclude=_LOSS_SETTINGS) == base.fingerprint(exclude=_LOSS_SETTINGS), change
    assert base.replace(ks=(1,), workers=3).fingerprint() == base.fingerprint()  # EVALUATION_ONLY
    assert set(EVALUATION_ONLY) >= {"ks", "workers"}
    for change in (dict(dim=32), dict(seed=1), dict(backbone="resnet18")):
        assert base.replace(**change).fingerprint(exclude=_LOSS_SETTINGS) != base.fingerprint(exclude=_LOSS_SETTINGS)


def test_fingerprints_of_existing_runs_do_not_change():
    """A finished or interrupted run is recognised by its fingerprint (resume, compare keeping
    finished runs): these are the fingerprints of runs written before issue 28, recomputed."""
    from losszoo.training.compare import _LOSS_SETTINGS
    from losszoo.training.config import TrainConfig

    assert TrainConfig().fingerprint() == PAPER_DEFAULTS_FINGERPRINT
    assert TrainConfig().fingerprint(exclude=_LOSS_SETTINGS) == PAPER_DEFAULTS_FLOOR_FINGERPRINT


@pytest.mark.parametrize("classes, fraction", [(10, 0.2), (13, 0.2), (11, 0.2), (964, 0.2), (7, 0.5), (30, 0.15)])
def test_the_number_of_validation_classes_is_round_f_times_n(classes, fraction):
    from losszoo.data.splits import validation_classes

    held_out = validation_classes(classes, fraction=fraction, seed=1)
    assert len(held_out) == round(fraction * classes)
    assert len(set(held_out)) == len(held_out) and set(held_out) <= set(range(classes))


def test_a_holdout_run_validates_on_round_f_times_n_training_classes():
    from losszoo.training.config import TrainConfig
    from losszoo.training.plan import plan_run

    plan = plan_run(TrainConfig(max_classes=13, protocol="holdout", val_fraction=0.2, batch_size=10,
                                samples_per_class=5))
    assert len(plan.validation_classes) == round(0.2 * 13) == 3
    assert plan.split_sizes()["train"]["classes"] == 10


# -- one declaration per setting -----------------------------------------------------------------
def _options(command: str) -> dict:
    from losszoo.cli.main import build_parser

    subparsers = next(a for a in build_parser()._actions if a.choices and "train" in a.choices)
    return subparsers.choices[command]._option_string_actions


def test_every_setting_is_declared_once_next_to_its_field_with_a_flag():
    """Every TrainConfig field carries one Setting; its flag is unique, and train or compare
    offers it; every list of settings is derived from the declarations."""
    from dataclasses import fields

    from losszoo.cli.options import EVAL_SETTINGS
    from losszoo.training import config as config_module
    from losszoo.training.config import Setting, TrainConfig, declarations

    declared = declarations()
    assert list(declared) == [f.name for f in fields(TrainConfig)]
    assert all(isinstance(f.metadata["setting"], Setting) for f in fields(TrainConfig))
    flags = [d.flag for d in declared.values()]
    assert len(set(flags)) == len(flags)
    offered = set(_options("train")) | set(_options("compare"))
    assert set(flags) <= offered, set(flags) - offered
    for role, names in (("evaluation_only", config_module.EVALUATION_ONLY), ("trains", config_module.TRAINING_ONLY),
                        ("schedule", config_module.SCHEDULE), ("tuned", config_module.TUNED_SHARED),
                        ("eval_command", config_module.EVAL_COMMAND)):
        assert set(names) == {name for name, d in declared.items() if getattr(d, role)}, role
    assert EVAL_SETTINGS == {"config", *config_module.EVAL_COMMAND}
    assert set(_options("eval")) >= {declared[name].flag for name in config_module.EVAL_COMMAND}
    assert "--lr" not in _options("eval")


def test_each_flag_sets_its_own_field():
    """Each declared flag, given a value other than the default, lands in its field alone."""
    from losszoo.cli.main import build_parser
    from losszoo.cli.options import command_line_settings, config_from_args
    from losszoo.training.config import declarations

    samples = {int: "3", float: "0.5", str: "x"}
    for name, declared in declarations().items():
        if declared.command_option:
            continue
        if declared.check is None:  # a table: repeated NAME=VALUE
            argv, expected = [declared.flag, "k=2"], {"k": 2}
        elif declared.const is not None:  # --no-amp, --lazy-momentum
            argv, expected = [declared.flag], declared.const
        elif declared.items:
            argv, expected = [declared.flag, "3,5"], (3, 5)
        else:
            raw = declared.choices[-1] if declared.choices else samples[declared.check.kind]
            argv, expected = [declared.flag, raw], declared.check.coerce(raw, name, "test")
        given = command_line_settings(build_parser().parse_args(["train", *argv]))
        assert {k: v for k, v in given.items() if v is not None} == {name: expected}, name
    config, _ = config_from_args(build_parser().parse_args(["train", "--lr", "0.5", "--no-amp"]))
    assert (config.lr, config.amp, config.dim) == (0.5, False, 64)  # dim: the omniglot preset


# -- the comparison spec ---------------------------------------------------------------------------
def test_the_comparison_spec_round_trips_through_toml(tmp_path, mycosine):
    """Tuned rows, a row set by hand over its tuned values, an allowed untuned row and a schedule
    other than tuned for: written, read back, equal; and an untuned spec stays untuned (the
    shipped preset is not layered under it when read back)."""
    from losszoo.training.spec import BY_HAND, TUNED, UNTUNED, ComparisonSpec, load_comparison

    best = tmp_path / "best.toml"
    best.write_text(BEST_TOML.replace('losses = ["normsoftmax", "triplet"]',
                                      'losses = ["normsoftmax", "triplet", "mycosine"]'))
    spec = load_comparison(command_line={"lr": 0.05, "epochs": 2}, config_file=best, allow_untuned=["mycosine"],
                           loss_options={"triplet": {"margin": 0.4}})
    assert [(e.name, e.provenance, e.by_hand) for e in spec.losses] == [
        ("normsoftmax", TUNED, ("lr",)), ("triplet", TUNED, ("lr", "margin")), ("mycosine", UNTUNED, ())]
    assert spec.tuning["changed"] == ["epochs", "lr"] and spec.base.lr == 0.05
    written = tmp_path / "spec.toml"
    written.write_text(spec.to_toml())
    assert ComparisonSpec.from_toml(written) == spec

    untuned = load_comparison(command_line={"max_classes": 10}, untuned=True, losses=["triplet", "mycosine"],
                              loss_options={"triplet": {"margin": 0.3}})
    assert [e.provenance for e in untuned.losses] == [BY_HAND, UNTUNED] and untuned.tuning is None
    written.write_text(untuned.to_toml())
    assert ComparisonSpec.from_toml(written) == untuned


def test_a_named_preset_is_the_tuned_source_below_files_and_flags(tmp_path, monkeypatch):
    """``--preset NAME`` reads presets/NAME.toml as the tuned source: its per-loss values hold
    unless a config file or a flag sets them (the row says so); with ``untuned`` only its shared
    settings remain; an unknown name, a path, or a second tuned source is refused."""
    from losszoo.cli.list_cmd import list_presets
    from losszoo.training import config as config_module
    from losszoo.training.spec import TUNED, load_comparison

    presets = tmp_path / "presets"
    presets.mkdir()
    (presets / "tiny-cpu.toml").write_text(BEST_TOML)
    monkeypatch.setattr(config_module, "PRESET_FOLDER", presets)
    assert list_presets() == ["tiny-cpu"] and list_presets("omni*") == []

    spec = load_comparison(command_line={}, preset="tiny-cpu")
    assert spec.source == str(presets / "tiny-cpu.toml") and spec.tuning["trials"] == 2
    assert spec.loss_settings()["triplet"] == {"lr": 0.0731, "samples_per_class": 4}
    assert spec.loss_options()["normsoftmax"] == {"temperature": 0.33} and spec.base.dim == 16

    plain = tmp_path / "plain.toml"
    plain.write_text("samples_per_class = 2\nseeds = 2\n")
    spec = load_comparison(command_line={"lr": 0.05}, config_file=plain, preset="tiny-cpu")
    assert [(e.name, e.provenance, e.by_hand) for e in spec.losses] == [
        ("normsoftmax", TUNED, ("lr", "samples_per_class")), ("triplet", TUNED, ("lr", "samples_per_class"))]
    assert (spec.base.lr, spec.base.samples_per_class, spec.seeds, spec.loss_settings()) == (0.05, 2, 2, {})

    untuned = load_comparison(command_line={}, preset="tiny-cpu", untuned=True)
    assert untuned.tuning is None and untuned.loss_settings() == {} and untuned.loss_options() == {}
    assert (untuned.base.dim, untuned.base.batch_size, untuned.names) == (16, 20, ["normsoftmax", "triplet"])

    for name in ("nope", "../presets/tiny-cpu", "omniglot"):
        with pytest.raises(ConfigError, match="no shipped preset .*the presets are: tiny-cpu"):
            load_comparison(command_line={}, preset=name)
    best = tmp_path / "best.toml"
    best.write_text(BEST_TOML)
    with pytest.raises(ConfigError, match="both hold tuned settings"):
        load_comparison(command_line={}, config_file=best, preset="tiny-cpu")


def test_run_comparison_does_what_the_command_does(tmp_path, capture):
    """``losszoo compare ARGS`` and ``run_comparison(load_comparison(...))`` from the Python API
    plan the same runs and caption."""
    from losszoo.training.spec import ComparisonSpec, load_comparison, run_comparison

    best = tmp_path / "best.toml"
    best.write_text(BEST_TOML)
    assert main(["compare", "--config", str(best), "--lr", "0.05", "-o", str(tmp_path / "cli"),
                 "--no-progress"]) == 0
    from_cli = (list(capture["runs"]), list(capture["untrained"]), capture["tuning"])
    capture["runs"].clear(), capture["untrained"].clear()
    spec = load_comparison(command_line={"lr": 0.05}, config_file=best)
    run_comparison(spec, tmp_path / "api", progress=False)
    assert (capture["runs"], capture["untrained"], capture["tuning"]) == from_cli
    capture["runs"].clear(), capture["untrained"].clear()
    (tmp_path / "spec.toml").write_text(spec.to_toml())  # the spec as a file, run by the command
    assert main(["compare", "--config", str(tmp_path / "spec.toml"), "-o", str(tmp_path / "file"),
                 "--no-progress"]) == 0
    assert (capture["runs"], capture["untrained"], capture["tuning"]) == from_cli
    assert ComparisonSpec.from_toml(tmp_path / "spec.toml") == spec


@pytest.mark.parametrize("binary", [False, True])
def test_metric_names_are_the_metrics_an_evaluation_reports(binary):
    """One function names the metrics (a tuner's --metric is checked against it): exactly the
    numbers evaluate_model returns."""
    from torch.utils.data import TensorDataset

    from losszoo.evaluation import metric_names
    from losszoo.training.inference import EvalData, evaluate_model

    g = torch.Generator().manual_seed(0)
    data = EvalData(TensorDataset(torch.randn(20, 6, generator=g), torch.arange(20) % 4))
    metrics = evaluate_model(torch.nn.Linear(6, 4), data, ks=(1, 3), binary=binary).metrics
    assert metric_names((1, 3), binary=binary) == [k for k, v in metrics.to_dict().items() if isinstance(v, float)]
    assert metric_names((1, 3), binary=binary) == list(metrics.scalars())


def test_allow_untuned_takes_a_group(tmp_path, capsys, capture, loss_registry):
    """A group the preset did not tune is refused beside its tuned losses, naming the losses
    to allow, and ``--allow-untuned GROUP`` marks exactly that group's losses."""
    from losszoo.losses import select_losses

    for name in ("mycosine-a", "mycosine-b"):
        @register_loss(name, sampler="class_balanced", group="mine")
        class MyCosine(MetricLoss):
            def forward(self, embeddings, labels):
                return embeddings.pow(2).mean()

    args = ["compare", "--losses", "normsoftmax,mine", "--seeds", "1", "-o", str(tmp_path), *TINY]
    assert main(args) == 2
    assert "--allow-untuned mycosine-a,mycosine-b" in capsys.readouterr().err
    assert main([*args, "--allow-untuned", "mine"]) == 0
    assert capture["tuning"]["untuned"] == select_losses(["mine"]) == ["mycosine-a", "mycosine-b"]
