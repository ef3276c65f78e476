"""Input that used to train silently into a wrong result, or end in a raw traceback, is refused
with one line naming the problem and the option or file, before any file is written."""

from __future__ import annotations

import pytest

from losszoo.cli.main import main
from losszoo.losses import get_loss_spec, list_losses

TINY = ["--max-classes", "5", "--batch-size", "10", "--samples-per-class", "5", "--dim", "8",
        "--epochs", "1", "--batches-per-epoch", "2", "--ks", "1", "--no-binary", "--no-progress"]

BAD = [
    # A pair or triplet loss (or a miner) on batches of one sample per class trains with loss 0.
    (["train", "--loss", "triplet", "--batch-size", "5", "--samples-per-class", "1"],
     "loss 'triplet' needs positive pairs"),
    (["compare", "--untuned", "--losses", "normsoftmax,margin", "--batch-size", "5", "--samples-per-class", "1"],
     "loss 'margin' needs positive pairs"),
    (["train", "--loss", "pml:contrastiveloss", "--batch-size", "5", "--samples-per-class", "1"],
     "loss 'pml:contrastiveloss' needs positive pairs"),
    # Miner options are checked like loss options: a NaN epsilon mined nothing, loss 0 throughout.
    (["train", "--loss", "triplet", "--miner", "pml:MultiSimilarityMiner", "--miner-option", "epsilon=nan"],
     "miner MultiSimilarityMiner: epsilon must be a finite number, got nan"),
    (["train", "--loss", "triplet", "--miner", "pml:TripletMarginMiner", "--miner-option", "margin=wide"],
     "miner TripletMarginMiner: margin must be a number, got 'wide'"),
]


@pytest.mark.parametrize("argv, named", BAD, ids=[" ".join(a[:6]) for a, _ in BAD])
def test_refused_before_any_file_is_written(tmp_path, capsys, argv, named):
    _assert_refused_before_any_output(tmp_path, capsys, argv, named)


def _assert_refused_before_any_output(tmp_path, capsys, argv: list[str], named: str) -> None:
    """The command exits 2 with one error naming ``named`` and creates no output folder."""
    output = tmp_path / "out"
    assert main([argv[0], *TINY, *argv[1:], "--output", str(output)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("error:") and named in err, err
    assert not output.exists()


def test_a_miner_option_from_a_config_file_is_checked_too(tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text('loss = "triplet"\nminer = "pml:MultiSimilarityMiner"\n[miner_options]\nepsilon = nan\n')
    assert main(["train", "--config", str(config), *TINY, "--output", str(tmp_path / "out")]) == 2
    assert "epsilon must be a finite number, got nan" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_pair_losses_declare_that_they_need_positives_and_classifiers_do_not():
    needs = {name for name in list_losses(namespaced=False) if get_loss_spec(name).needs_positive_pairs}
    assert {"contrastive", "triplet", "margin", "lifted", "npair", "multisimilarity", "supcon"} <= needs
    assert not needs & {"normsoftmax", "cosface", "proxynca", "arcface", "proxyanchor"}


def test_a_classification_loss_trains_with_one_sample_per_class(tmp_path):
    assert main(["train", "--loss", "normsoftmax", *TINY, "--batch-size", "5", "--samples-per-class", "1",
                 "--output", str(tmp_path / "out")]) == 0


def test_best_toml_escapes_what_it_writes_and_reads_back(tmp_path):
    """A newline in --output (the command recorded in best.toml) and a quote, a backslash and a
    control character in a written value used to make a best.toml that is not TOML."""
    from losszoo.training.config import read_toml
    from losszoo.training.config import toml_string

    out = tmp_path / 'odd\n"name'
    tiny = ["--max-classes", "10", "--batch-size", "20", "--samples-per-class", "5", "--dim", "8",
            "--ks", "1", "--epochs", "1", "--batches-per-epoch", "1", "--no-progress", "--no-binary"]
    assert main(["tune", "--losses", "normsoftmax", "--trials", "1", "-o", str(out), *tiny]) == 0
    best = read_toml(out / "best.toml")
    assert best["max_classes"] == 10 and "normsoftmax" in best["loss_options"]
    for text in ['a\nb', 'q"\\x', '\x7f\x01\t', 'café 😀']:
        assert read_toml_string(toml_string(text)) == text


def read_toml_string(value: str) -> str:
    import tomllib

    return tomllib.loads(f"value = {value}\n")["value"]


def test_a_config_file_that_is_not_utf8_names_file_and_line(tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_bytes(b'loss = "triplet"\n# caf\xe9\n')
    assert main(["train", "--config", str(config), *TINY, "--output", str(tmp_path / "out")]) == 2
    assert f"{config}:2: not UTF-8 text (byte 0xe9)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


EARLY = [  # raw tracebacks (or a folder left behind) before; now one line before any work
    (["train", "--loss", "triplet", "--device", "bogus"], "device 'bogus' is not a device name"),
    (["train", "--loss", "triplet", "--image-size", "1"], "image_size 1 is too small for backbone convnet4"),
    (["train", "--loss", "triplet", "--seed", str(2**64)], "seed must be < "),
    (["train", "--loss", "triplet", "--dim", "9999999999999"], "dim 9999999999999 with backbone convnet4"),
]


@pytest.mark.parametrize("argv, named", EARLY, ids=[" ".join(a[3:5]) for a, _ in EARLY])
def test_one_line_before_any_work(tmp_path, capsys, argv, named):
    _assert_refused_before_any_output(tmp_path, capsys, argv, named)


def test_the_largest_seed_trains_and_evaluates(tmp_path):
    """torch seeds take 64 bits, faiss's k-means a C int: every accepted seed must work."""
    assert main(["train", "--loss", "triplet", *TINY, "--seed", str(2**64 - 1), "--output", str(tmp_path / "o")]) == 0


FILES = [  # (config file, message)
    ('seeds = "3"\n', 'seeds must be an integer >= 1, got \'3\''),
    ('losses = ["triplet", 3]\n', "losses must be a list of loss names"),
    ('losses = "triplet"\n', 'losses must be a list of loss names: losses = ["triplet"]'),
]


@pytest.mark.parametrize("content, named", FILES, ids=[f[1][:30] for f in FILES])
def test_a_config_file_of_another_shape_is_named(tmp_path, capsys, content, named):
    config = tmp_path / "run.toml"
    config.write_text(content)
    output = tmp_path / "out"
    assert main(["compare", "--untuned", "--config", str(config), *TINY, "--output", str(output)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith(f"error: {config}: {named}"), err
    assert not output.exists()


def _tiny_tune(out, *extra):
    return ["tune", "--losses", "triplet", "--trials", "1", "-o", str(out), "--max-classes", "10",
            "--batch-size", "10", "--ks", "1", "--epochs", "1", "--batches-per-epoch", "1", "--no-progress",
            "--no-binary", *extra]


@pytest.mark.parametrize("storage, named", [
    ("notaurl", "--storage 'notaurl' is not a database URL"),
    ("postgresql+nosuchdriver://u@h/db", "--storage 'postgresql+nosuchdriver://u@h/db'"),
    ("sqlite:////nonexistent-folder/s.db", "the folder /nonexistent-folder of /nonexistent-folder/s.db does not exist"),
])
def test_tune_refuses_a_storage_it_cannot_use_before_writing(tmp_path, capsys, storage, named):
    out = tmp_path / "t"
    assert main(_tiny_tune(out, "--storage", storage)) == 2
    assert named in capsys.readouterr().err
    assert not out.exists()


def test_a_corrupt_study_database_is_named(tmp_path, capsys):
    out = tmp_path / "t"
    out.mkdir()
    (out / "study.db").write_bytes(b"SQLite format 3\0" + bytes(200))  # a truncated database
    assert main(_tiny_tune(out)) == 2
    assert f"{out / 'study.db'} is not a readable study database" in " ".join(capsys.readouterr().err.split())
    assert sorted(p.name for p in out.iterdir()) == ["study.db"]


@pytest.mark.parametrize("flags, named", [
    (["--metric", "recall@1"], "--metric needs --tune N"),
    (["--storage", "sqlite:///x.db"], "--storage needs --tune N"),
    (["--tune", "0"], "--tune N runs N >= 1 trials per loss, got 0"),
])
def test_compare_refuses_tuning_options_it_would_ignore(tmp_path, capsys, flags, named):
    out = tmp_path / "c"
    assert main(["compare", "--untuned", "--losses", "triplet", *TINY, *flags, "-o", str(out)]) == 2
    assert named in capsys.readouterr().err
    assert not out.exists()


def test_check_data_refuses_an_output_it_would_not_write(tmp_path, capsys):
    assert main(["check-data", "--output", str(tmp_path / "bad.json")]) == 2
    assert "check-data writes no file" in capsys.readouterr().err


def test_tensorboard_without_the_package_is_refused_before_work(tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    for command in (["train", "--loss", "triplet"], ["compare", "--untuned", "--losses", "triplet"]):
        out = tmp_path / command[0]
        assert main([*command, *TINY, "--tensorboard", "-o", str(out)]) == 2
        assert "--tensorboard needs the tensorboard package" in capsys.readouterr().err
        assert not out.exists()


def test_a_log_csv_that_cannot_be_written_is_named(tmp_path):
    from losszoo.errors import OutputError
    from losszoo.training.logs import RunLog

    (tmp_path / "log.csv").mkdir()  # in its way (a read-only file would be, but not for root)
    with pytest.raises(OutputError, match=f"cannot write {tmp_path / 'log.csv'}"):
        RunLog(tmp_path, ["head"])


def test_eval_refuses_what_it_cannot_do_before_evaluating(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--loss", "triplet", *TINY, "--output", str(run)]) == 0
    capsys.readouterr()
    before = sorted(p.name for p in run.iterdir())
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    cases = [
        (["--dim", "32"], f"{run / 'checkpoint.pt'} holds a convnet4 with dim 8: --dim 32 cannot load it"),
        (["--backbone", "resnet18"], "--backbone resnet18 cannot load it"),
        (["--retrieval-figure", "--figure-queries", "-1"], "--figure-queries must be >= 1, got -1"),
        (["--save-embeddings", str(blocker / "sub")], f"cannot write {blocker / 'sub'}: {blocker} is a file"),
        (["--output", str(blocker / "m.json")], f"cannot write {blocker}: {blocker} is a file"),
    ]
    for flags, named in cases:
        assert main(["eval", str(run), *flags]) == 2
        err = " ".join(capsys.readouterr().err.split())
        assert err.startswith("error:") and named in err, err
    assert sorted(p.name for p in run.iterdir()) == before and not list(tmp_path.glob("*.json"))
