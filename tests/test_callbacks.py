"""The callback interface (losszoo.training.callbacks): a recording callback in a tiny run
hears every hook in the documented order, with what log.csv and result.json hold."""

from __future__ import annotations

import csv
import json

import pytest

from losszoo.training.callbacks import Callback
from losszoo.training.config import build_config
from losszoo.training.trainer import train

TINY = dict(max_classes=5, batch_size=10, samples_per_class=5, dim=8, ks=(1,), epochs=2,
            batches_per_epoch=2, binary=False, protocol="holdout", eval_every=1, device="cpu",
            val_fraction=0.4)


class Recorder(Callback):
    wants_test_arrays = True

    def __init__(self):
        self.calls = []

    def on_run_start(self, folder, config, epochs_done):
        self.calls.append(("start", config["loss"], epochs_done))

    def on_step(self, step):
        self.calls.append(("step", step.step, step.epoch, step.loss))

    def on_epoch(self, epoch, record):
        self.calls.append(("epoch", epoch, record.loss))

    def on_evaluation(self, epoch, split, metrics):
        self.calls.append(("evaluation", epoch, split, metrics.map_at_r))

    def on_test(self, arrays, data):
        self.calls.append(("test", len(arrays.labels)))

    def on_run_end(self, result, folder):
        self.calls.append(("end", result.metrics.map_at_r))

    def close(self):
        self.calls.append(("close",))


def test_hooks_are_called_in_order_with_the_logged_values(tmp_path):
    recorder = Recorder()
    result = train(build_config({**TINY, "loss": "triplet"}), tmp_path, progress=False, callbacks=[recorder])
    kinds = [call[0] for call in recorder.calls]
    # The last epoch's validation is scored once training has ended, after its on_epoch.
    assert kinds == ["start", "step", "step", "evaluation", "epoch", "step", "step", "epoch", "evaluation",
                     "test", "evaluation", "end", "close"]
    with (tmp_path / "log.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    steps = [call for call in recorder.calls if call[0] == "step"]
    assert [(s[1], s[2]) for s in steps] == [(int(r["step"]), int(r["epoch"])) for r in rows]
    assert [s[3] for s in steps] == pytest.approx([float(r["loss"]) for r in rows], rel=1e-5)
    epochs = [call for call in recorder.calls if call[0] == "epoch"]
    assert [(e[1], e[2]) for e in epochs] == [(h.epoch, h.loss) for h in result.history]
    evaluations = [call for call in recorder.calls if call[0] == "evaluation"]
    assert [e[2] for e in evaluations] == ["validation", "validation", "test"]
    assert evaluations[-1][3] == recorder.calls[-2][1] == result.metrics.map_at_r
    assert recorder.calls[-4] == ("test", result.splits["test"]["images"])
    assert json.loads((tmp_path / "result.json").read_text())["metrics"] == result.metrics.to_dict()


def test_close_is_called_when_a_run_fails(tmp_path):
    class Boom(Callback):
        closed = False

        def on_epoch(self, epoch, record):
            raise RuntimeError("stop")

        def close(self):
            Boom.closed = True

    with pytest.raises(RuntimeError, match="stop"):
        train(build_config({**TINY, "loss": "triplet"}), tmp_path, progress=False, callbacks=[Boom()])
    assert Boom.closed
