"""The comparison report: CIs, the indistinguishable-from-best mark, convergence, caption, files."""

from __future__ import annotations

import csv

import pytest
from record_makers import run_record, scores
from scipy import stats

from losszoo.training.report import caption, converged, summarize, write_report


def _record(loss, seed, map_at_r, curve=(), **fields):
    return run_record(loss, seed, scores(map_at_r + 0.1, map_at_r, binary=map_at_r), curve=tuple(curve), **fields)


def test_convergence_flag_uses_the_last_three_evaluations():
    assert converged(_record("a", 0, 0.5, [0.1, 0.3, 0.40, 0.404, 0.405])) is True
    assert converged(_record("a", 0, 0.5, [0.1, 0.3, 0.35, 0.40, 0.401])) is False  # +5.1 over two
    assert converged(_record("a", 0, 0.5, [0.1, 0.3, 0.39, 0.40, 0.405])) is False  # +1.5 over two
    assert converged(_record("a", 0, 0.5, [0.2, 0.3])) is None


def test_summary_ci_mark_and_files(tmp_path):
    records = [_record("a", s, v, [0.1, 0.5, 0.5, 0.5]) for s, v in enumerate([0.60, 0.62, 0.61])]
    records += [_record("b", s, v, [0.1, 0.2, 0.3, 0.4]) for s, v in enumerate([0.40, 0.41, 0.405])]
    records += [_record("c", s, v) for s, v in enumerate([0.59, 0.63, 0.60])]
    rows = {row["loss"]: row for row in summarize(records)}
    low, high = stats.t.interval(0.95, 2, loc=0.61, scale=stats.sem([0.60, 0.62, 0.61]))
    assert (rows["a"]["map_at_r_ci_low"], rows["a"]["map_at_r_ci_high"]) == pytest.approx((low, high))
    assert [rows[n]["best"] for n in "abc"] == [True, False, True]
    assert [rows[n]["not_converged"] for n in "abc"] == [0, 3, 0]
    write_report(records, tmp_path, ks=(1,), tuning={"trials": 2, "metric": "map_at_r"})
    md = (tmp_path / "results.md").read_text()
    assert md.startswith("tuned: 2 trials per loss") and "3 seed(s)" in md and "convnet4" in md
    assert "a *" in md and "b (nc)" in md
    for name in ("validation_curves", "float_vs_binary_r1", "recall_at_k", "map_at_r"):
        for fmt in ("png", "svg", "pdf"):
            assert (tmp_path / f"{name}.{fmt}").stat().st_size, (name, fmt)


def test_csv_leaves_std_blank_for_one_seed(tmp_path):
    write_report([_record("a", 0, 0.6)], tmp_path, ks=(1,))
    row = next(csv.DictReader((tmp_path / "results.csv").open()))
    assert row["map_at_r_std"] == "" and float(row["map_at_r"]) == pytest.approx(0.6)
    assert (tmp_path / "results.md").read_text().startswith("untuned")


def test_protocol_final_runs_are_flagged_by_their_tuning_curve():
    """A final run has no validation curve; the best tuning trial of the same schedule stands in."""
    records = [_record("a", s, 0.5) for s in range(2)] + [_record("b", s, 0.5) for s in range(2)]
    rows = {row["loss"]: row for row in summarize(records, {"a": [0.2, 0.30, 0.302, 0.305], "b": [0.2, 0.3, 0.4]})}
    assert rows["a"]["not_converged"] == 0 and rows["b"]["not_converged"] == 1
    assert all(row["not_converged"] == 0 for row in summarize(records))


def test_caption_says_when_run_under_another_schedule_than_tuned():
    records = [run_record("triplet", 0, None, config={"epochs": 1, "warmup_epochs": 0})]
    text = caption(records, {"trials": 4, "metric": "map_at_r", "changed": ["epochs", "lr"]})
    assert "but run with other epochs, lr than tuned for" in text
    assert "other" not in caption(records, {"trials": 4, "metric": "map_at_r"}).split(";")[0]


def test_caption_names_splits_batch_seeds_and_version(tmp_path):
    import losszoo

    splits = {"train": {"classes": 10, "images": 200}, "test": {"classes": 5, "images": 100}}
    records = [_record("a", s, 0.5, splits=splits) for s in (0, 1)]
    for record in records:
        record.config.update(batch_size=80, samples_per_class=5)
    write_report(records, tmp_path, ks=(1,))
    first = (tmp_path / "results.md").read_text().splitlines()[0]
    for text in ("untuned", "3 epochs (+0 warm-up)", "batch 80 (5 per class)", "2 seed(s) (0, 1)",
                 "dataset omniglot", "train 10 classes / 200 images", "test 5 classes / 100 images",
                 "backbone convnet4", "dim 64", f"losszoo {losszoo.__version__}"):
        assert text in first, text


def test_report_files_honour_the_umask(tmp_path):
    import os
    import stat

    previous = os.umask(0o022)
    try:
        write_report([_record("a", 0, 0.6)], tmp_path, ks=(1,))
    finally:
        os.umask(previous)
    for name in ("results.json", "results.csv", "results.md", "recall_at_k.png"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name


@pytest.mark.parametrize("pretrained", [True, False])
def test_the_floor_row_of_a_pretrained_comparison_is_the_network_before_fine_tuning(tmp_path, pretrained):
    floor = _record("untrained", 0, 0.2, provenance={"pretrained": pretrained})
    write_report([_record("a", 0, 0.6), floor], tmp_path, ks=(1,))
    md = (tmp_path / "results.md").read_text()
    assert ("| before fine-tuning |" in md) is pretrained and ("| untrained |" in md) is not pretrained
    assert ("the pretrained backbone with the new embedding head untrained" in md) is pretrained


def test_one_seed_has_no_test_and_the_caption_says_why(tmp_path):
    records = [_record("a", 0, 0.6), _record("b", 0, 0.3)]
    rows = summarize(records)
    assert [row["best"] for row in rows] == [None, None]
    write_report(records, tmp_path, ks=(1,))
    md = (tmp_path / "results.md").read_text()
    assert "*" not in md and "no significance test" in md and ">= 2 seeds per loss" in md


def test_caption_names_the_test_and_the_correction():
    records = [_record(loss, s, v + 0.01 * s) for loss, v in (("a", 0.6), ("b", 0.3), ("c", 0.59))
               for s in range(3)]
    text = caption(records)
    assert "paired t-test" in text and "Holm-corrected over the 2 comparison(s)" in text
    assert "adjusted p >= 0.05" in text


def test_an_interval_past_100_is_clipped_and_marked(tmp_path):
    records = [_record("a", s, v) for s, v in enumerate([0.97, 0.99, 1.0])]
    rows = summarize(records)
    assert rows[0]["map_at_r_ci_high"] == 1.0 and rows[0]["map_at_r_ci_clipped"]
    write_report(records, tmp_path, ks=(1,))
    md = (tmp_path / "results.md").read_text()
    assert "100.0]†" in md and "† = clipped to [0, 100]" in md


def test_caption_markup_is_shown_on_a_terminal(tmp_path):
    from rich.console import Console

    records = [_record("a", 0, 0.5, splits={"train": {"classes": 20, "images": 400}})]
    console = Console(record=True, force_terminal=True, width=300)
    write_report(records, tmp_path, ks=(1,), console=console)
    assert "[train 20 classes / 400 images]" in console.export_text()


def test_figures_say_what_they_show_and_keep_the_floor_apart():
    from losszoo.training.figures import styles, subtitle

    records = [_record("a", s, 0.5) for s in (0, 1)]
    text = subtitle(records, {"trials": 4})
    for part in ("omniglot", "convnet4", "dim 64", "tuned (4 trials per loss)", "2 seeds (0, 1)"):
        assert part in text, part
    assert "untuned" in subtitle(records)
    losses = ["untrained", *(f"loss{i}" for i in range(30))]
    look = styles(losses)
    trained = [(s.color, s.linestyle, s.marker) for name, s in look.items() if name != "untrained"]
    assert len(set(trained)) == 30  # colour x line style x marker never repeats within 30 losses
    floor = look["untrained"]
    assert floor.color == "black" and floor.zorder > max(s.zorder for n, s in look.items() if n != "untrained")
    assert all(s.color != "black" for n, s in look.items() if n != "untrained")


@pytest.mark.parametrize("best", [0.27, 0.40])
def test_the_caption_warns_when_no_loss_clearly_beats_the_floor(tmp_path, best):
    """Every trained mean MAP@R within the floor row's 95 % CI (or below it): the caption says
    training did not clearly improve on the starting network; one clearly above: no warning."""
    floor = [_record("untrained", s, v, provenance={"pretrained": True}) for s, v in enumerate([0.25, 0.26, 0.27])]
    trained = [_record("a", s, v) for s, v in enumerate([best - 0.01, best, best + 0.01])]
    trained += [_record("b", s, v) for s, v in enumerate([0.20, 0.23, 0.21])]
    text = caption(trained + floor)
    warned = "WARNING: no loss's mean MAP@R is above the 'before fine-tuning' row (its 95 % CI)" in text
    assert warned is (best < 0.30)
