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
    assert {"contrastive", "triplet", "margin", "lifted", "npair"} <= needs
    assert not needs & {"normsoftmax", "cosface", "proxynca"}


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
        assert read_toml_string(toml_string(text), tmp_path) == text


def read_toml_string(value: str, folder) -> str:
    from losszoo.training.config import read_toml

    path = folder / "value.toml"
    path.write_text(f"value = {value}\n", encoding="utf-8")
    return read_toml(path)["value"]


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
    output = tmp_path / "out"
    assert main([argv[0], *TINY, *argv[1:], "--output", str(output)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("error:") and named in err, err
    assert not output.exists()


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
