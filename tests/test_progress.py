"""Progress off a terminal: one plain line per epoch (loss, images/s, time left); bars and
log.csv refreshed by time."""

from __future__ import annotations

import csv
import io
import re

from rich.console import Console

from losszoo.training import progress
from losszoo.training.config import TrainConfig
from losszoo.training.progress import Every, duration, epoch_line
from losszoo.training.trainer import train


def test_one_line_per_epoch_when_the_output_is_not_a_terminal(tmp_path):
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    config = TrainConfig(loss="normsoftmax", backbone="convnet4", pretrained=False, dim=8,
                         max_classes=5, batch_size=10, samples_per_class=5, batches_per_epoch=3,
                         epochs=2, warmup_epochs=1, ks=(1,), binary=False, device="cpu")
    train(config, tmp_path, progress=True, console=console)
    lines = re.findall(r"normsoftmax epoch (\d)/3: loss [\d.]+, \d+ img/s, \d+ s(; about \d+ s left)?",
                       out.getvalue())
    assert [(epoch, bool(left)) for epoch, left in lines] == [("1", True), ("2", True), ("3", False)]
    assert "\x1b[" not in out.getvalue()  # no bar drawn, no terminal codes
    with (tmp_path / "log.csv").open() as fh:
        assert [int(row["step"]) for row in csv.DictReader(fh)] == list(range(1, 10))


def test_every_fires_by_time(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(progress.time, "perf_counter", lambda: now[0])
    every = Every(1.0)
    fired = []
    for step in range(10):
        now[0] += 0.25
        fired.append(every(force=step == 9))
    assert fired == [False, False, False, True, False, False, False, True, False, True]


def test_durations_and_the_epoch_line():
    assert [duration(s) for s in (12.4, 250, 7500)] == ["12 s", "4 min 10 s", "2 h 05 min"]
    assert epoch_line("triplet", 2, 5, mean_loss=0.25, images=600, seconds=20.0, seconds_left=60.0) == \
        "triplet epoch 2/5: loss 0.2500, 30 img/s, 20 s; about 1 min 00 s left"
