"""Every command validates its whole plan before it writes anything: a bad name or value is a
one-line error (exit 2) and the output folder is never created."""

from __future__ import annotations

import pytest

from losszoo.cli.main import main

TINY = ["--max-classes", "5", "--batch-size", "10", "--samples-per-class", "5", "--dim", "8",
        "--epochs", "1", "--batches-per-epoch", "2", "--no-progress"]

BAD = [
    (["train", "--loss", "nosuchloss"], "nosuchloss"),
    (["train", "--loss", "triplet", "--loss-option", "margin=nan"], "margin"),
    (["train", "--loss", "margin", "--loss-option", "nu=-1"], "nu"),
    (["train", "--loss", "triplet", "--ks", "1,100000"], "Recall@100000"),
    (["train", "--loss", "triplet", "--backbone", "nosuchnet"], "nosuchnet"),
    (["train", "--loss", "triplet", "--miner", "pml:NoSuchMiner"], "NoSuchMiner"),
    (["train", "--loss", "triplet", "--shard-class-weights"], "no class weights to shard"),
    (["train", "--loss", "triplet", "--batch-size", "80"], "needs 16 distinct classes per batch"),
    (["compare", "--untuned", "--losses", "triplet", "--batch-size", "80"], "16 distinct classes"),
    (["compare", "--untuned", "--losses", "triplet,nosuchloss"], "nosuchloss"),
    (["compare", "--untuned", "--losses", "triplet", "--loss-option", "triplet.mining=often"], "mining"),
    (["compare", "--untuned", "--losses", "triplet", "--seeds", "0"], "seeds"),
    (["tune", "--losses", "nosuchloss", "--trials", "1"], "nosuchloss"),
    (["tune", "--losses", "triplet", "--trials", "1", "--metric", "recall@3"], "recall@3"),
    (["tune", "--losses", "triplet", "--trials", "1", "--ks", "1,100000", "--max-classes", "40"],
     "Recall@100000"),
]


@pytest.mark.parametrize("argv, named", BAD, ids=[" ".join(a[:4]) for a, _ in BAD])
def test_bad_input_fails_before_any_file_is_written(tmp_path, capsys, argv, named):
    output = tmp_path / "out"
    assert main([argv[0], *TINY, *argv[1:], "--output", str(output)]) == 2  # the case's flags win
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("error:") and named in err, err
    assert not output.exists()


def test_train_reads_the_config_files_loss_tables(tmp_path, capsys):
    """train takes a flat [loss_options] table, or its loss's [loss_options.<loss>] and
    [loss_settings.<loss>] tables (a best.toml); a bad value there is refused like any other."""
    from losszoo.cli.options import config_from_args, file_loss_tables
    from losszoo.cli.main import build_parser

    flat = tmp_path / "flat.toml"
    flat.write_text('[loss_options]\nmargin = "wide"\n')
    output = tmp_path / "out"
    assert main(["train", "--config", str(flat), "--loss", "triplet", *TINY, "--output", str(output)]) == 2
    assert "margin must be a number, got 'wide'" in " ".join(capsys.readouterr().err.split())
    assert not output.exists()
    best = tmp_path / "best.toml"
    best.write_text('[loss_options.lmcl]\nscale = 30.0\n[loss_settings.cosface]\nlr = 0.05\n'
                    '[loss_options.triplet]\nmargin = 0.3\n')
    args = build_parser().parse_args(["train", "--config", str(best), "--loss", "cosface"])
    config, table = config_from_args(args)
    assert file_loss_tables(table, config.loss) == ({"scale": 30.0}, {"lr": 0.05})


def test_compare_shards_only_losses_with_class_weights(tmp_path):
    from losszoo.training.compare import plan_comparison
    from losszoo.training.config import TrainConfig

    base = TrainConfig(max_classes=5, batch_size=10, samples_per_class=5, dim=8, epochs=1,
                       shard_class_weights=True)
    runs = plan_comparison(base, tmp_path / "out", losses=["triplet", "lmcl", "proxynca"], seeds=1,
                           loss_options=None)
    sharded = {run.plan.config.loss: run.plan.config.shard_class_weights for run in runs}
    assert sharded == {"normsoftmax": False, "triplet": False, "cosface": True, "proxynca": True}
    assert not (tmp_path / "out").exists()
