"""Direct tests of what the trainer must do (issue 14, "pin the trainer's behaviour first"):
warm-up trains only the new parameters, the step schedule counts epochs after warm-up, every
epoch's data order and random state depend on (seed, epoch), inference runs in eval mode,
DataLoader workers, the CUDA GradScaler path, and the CLI's exit codes on a real process.

Each runs a few batches of convnet4 on 5 classes of the embedded Omniglot copy.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from rich.progress import Progress
from torch.utils.data import TensorDataset

from losszoo import runtime
from losszoo.errors import ConfigError
from losszoo.models import create_model
from losszoo.training.checkpoint import load_checkpoint
from losszoo.training.config import TrainConfig
from losszoo.training.inference import extract_embeddings
from losszoo.training.plan import plan_run
from losszoo.training.trainer import CHECKPOINT, _restore, _train_epoch, build_run, train

ROOT = Path(__file__).resolve().parents[1]


def tiny(**overrides) -> TrainConfig:
    settings = dict(loss="normsoftmax", backbone="convnet4", pretrained=False, dim=8,
                    max_classes=5, batch_size=10, samples_per_class=5, batches_per_epoch=2,
                    epochs=1, warmup_epochs=1, ks=(1,), binary=False, device="cpu", amp=False)
    settings.update(overrides)
    return TrainConfig(**settings)


def run_epoch(run, epoch: int) -> None:
    with Progress(disable=True) as bar:
        _train_epoch(run, epoch, bar)


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer (BatchNorm running statistics included), copied."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_warmup_trains_only_the_new_parameters():
    run = build_run(plan_run(tiny(warmup_epochs=2, lr=0.1)))
    backbone, head, loss = snapshot(run.model.backbone), snapshot(run.model.head), snapshot(run.loss)
    assert any("running_mean" in k for k in backbone)  # convnet4 has BatchNorm
    for epoch in range(2):
        run_epoch(run, epoch)
    after = run.model.backbone.state_dict()
    for key, value in backbone.items():
        assert torch.equal(after[key], value), f"backbone {key} changed during warm-up"
    assert any(not torch.equal(run.model.head.state_dict()[k], v) for k, v in head.items())
    assert any(not torch.equal(run.loss.state_dict()[k], v) for k, v in loss.items())
    run_epoch(run, 2)  # the first main epoch trains the backbone too
    assert any(not torch.equal(run.model.backbone.state_dict()[k], v) for k, v in backbone.items())


def test_learning_rate_per_epoch_follows_milestones_counted_after_warmup():
    config = tiny(warmup_epochs=2, epochs=4, lr=0.05, lr_milestones=(1, 3), lr_gamma=0.1,
                  batches_per_epoch=1)
    run = build_run(plan_run(config))
    initial = [group["lr"] for group in run.optimizer.param_groups]  # the loss group: x its multiplier
    factors = []
    for epoch in range(config.total_epochs):
        lrs = [group["lr"] for group in run.optimizer.param_groups]
        assert lrs == pytest.approx([lrs[0] / initial[0] * lr for lr in initial], rel=1e-12)
        factors.append(lrs[0] / initial[0])
        run_epoch(run, epoch)
    # two warm-up epochs at the base rate, then milestones at main epochs 1 and 3
    assert factors == pytest.approx([1, 1, 1, 0.1, 0.1, 0.01], rel=1e-9)
    assert initial[0] == config.lr


def _epoch_record(config: TrainConfig, epoch: int, start_from: int = 0):
    """Labels of every batch, the first batch's (augmented) images and one draw of the global
    RNG at the first forward, in epoch ``epoch`` of a fresh run that starts at ``start_from``."""
    run = build_run(plan_run(config))
    for e in range(start_from, epoch):
        run_epoch(run, e)
    record: dict[str, list] = {"labels": [], "images": [], "draws": []}
    model = run.forward_model

    def forward(images):
        record["images"].append(images.clone())
        record["draws"].append(torch.rand(1).item())
        return model(images)

    run.forward_model = forward
    original_loss = run.step_loss

    def step_loss(embeddings, labels):
        record["labels"].append(labels.tolist())
        return original_loss(embeddings, labels)

    run.step_loss = step_loss
    run_epoch(run, epoch)
    return record


def test_each_epoch_data_order_and_random_state_depend_on_seed_and_epoch():
    config = tiny(warmup_epochs=0, epochs=3)
    first, second = _epoch_record(config, 1), _epoch_record(config, 1, start_from=1)
    assert first["labels"] == second["labels"] and first["draws"] == second["draws"]
    assert all(torch.equal(a, b) for a, b in zip(first["images"], second["images"]))
    other_epoch = _epoch_record(config, 2, start_from=2)
    assert other_epoch["draws"] != first["draws"], "the random state ignores the epoch"
    other_seed = _epoch_record(tiny(warmup_epochs=0, epochs=3, seed=1), 1, start_from=1)
    assert other_seed["draws"] != first["draws"], "the random state ignores the seed"


def test_embeddings_are_extracted_in_eval_mode():
    torch.manual_seed(0)
    model = create_model("convnet4", 8, pretrained=False)
    model.train()
    images = torch.randn(12, 1, 28, 28) * 3 + 1  # far from the initial running statistics
    before = snapshot(model)
    embeddings, labels = extract_embeddings(model, TensorDataset(images, torch.arange(12)),
                                            batch_size=5)
    after = model.state_dict()
    for key, value in before.items():
        assert torch.equal(after[key], value), f"{key} changed by extraction"
    assert model.training  # the mode is restored
    model.eval()
    with torch.no_grad():
        expected = model(images)
    assert torch.allclose(embeddings, expected, atol=1e-6)
    assert labels.tolist() == list(range(12))


@pytest.mark.slow
def test_frozen_batchnorm_statistics_stay_as_loaded_while_everything_else_trains(tmp_path):
    """``freeze_bn_stats``: after the warm-up the backbone's BatchNorm running statistics (and
    batch count) are still the loaded file's, its weights, BatchNorm scale and shift included,
    train; without it the statistics move. Refused without loaded weights."""
    torch.manual_seed(0)
    loaded = create_model("convnet4", 8, pretrained=False).backbone.state_dict()
    path = tmp_path / "convnet4.pt"
    torch.save(loaded, path)
    statistics = [k for k in loaded if k.rsplit(".", 1)[1] in ("running_mean", "running_var", "num_batches_tracked")]
    for freeze in (True, False):
        run = build_run(plan_run(tiny(weights=str(path), pretrained=True, freeze_bn_stats=freeze, lr=0.1)))
        for epoch in range(2):  # the warm-up, then one epoch that trains the backbone
            run_epoch(run, epoch)
        after = run.model.backbone.state_dict()
        moved = {k for k, v in loaded.items() if not torch.equal(after[k], v)}
        scales = {f"{name}.weight" for name, module in run.model.backbone.named_modules()
                  if isinstance(module, torch.nn.BatchNorm2d)}
        assert scales <= moved, "BatchNorm's scale did not train"
        assert not moved & set(statistics) if freeze else set(statistics) <= moved
    with pytest.raises(ConfigError, match="freeze-bn-stats"):
        tiny(freeze_bn_stats=True)


def test_training_with_two_workers(tmp_path):
    result = train(tiny(workers=2), tmp_path, progress=False)
    assert (tmp_path / "result.json").exists() and 0.0 <= result.metrics.recall[1] <= 1.0
    assert len(result.history) == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_grad_scaler_is_used_and_restored_on_resume(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)  # force float16
    config = tiny(device="cuda", amp=True, epochs=2, warmup_epochs=0)
    result = train(config, tmp_path, progress=False)
    state = load_checkpoint(tmp_path / CHECKPOINT)
    assert state["scaler"] is not None and state["scaler"]["scale"] > 0
    assert all(torch.isfinite(torch.tensor(r.loss)) for r in result.history)
    run = build_run(plan_run(config))
    assert run.scaler is not None and run.amp_dtype == torch.float16
    run.scaler.update(1234.0)
    _restore(run, state, tmp_path / CHECKPOINT)
    assert run.scaler.get_scale() == state["scaler"]["scale"]
    assert run.scaler.state_dict()["_growth_tracker"] == state["scaler"]["_growth_tracker"]


def test_cpu_bf16_autocasts_the_model_keeps_the_loss_float32_and_tracks_float32(monkeypatch):
    """With native bfloat16 (forced here: this test must run on any CPU, where autocast
    emulates it), the network computes in bfloat16, the loss in float32, and each step's loss
    stays within bfloat16's precision of the float32 run's (same seed, same batches)."""
    monkeypatch.setattr(runtime, "native_bf16", lambda: True)
    losses = {}
    for cpu_bf16 in (False, True):
        run = build_run(plan_run(tiny(cpu_bf16=cpu_bf16, warmup_epochs=0, batches_per_epoch=3)))
        assert run.amp_dtype == (torch.bfloat16 if cpu_bf16 else None)
        dtypes, values, call = set(), [], run.step_loss.forward

        def recorded(embeddings, labels, call=call, dtypes=dtypes, values=values):
            dtypes.add(embeddings.dtype)
            values.append(call(embeddings, labels))
            return values[-1]

        run.step_loss.forward = recorded
        run_epoch(run, 0)
        assert dtypes == {torch.float32} and all(v.dtype == torch.float32 for v in values)
        losses[cpu_bf16] = torch.stack(values).detach()
    # bfloat16 keeps 8 bits of mantissa (2^-9 relative per rounding); NormSoftmax's temperature
    # (0.05) multiplies the cosines' error by 20 in the logits.
    torch.testing.assert_close(losses[True], losses[False], rtol=5e-2, atol=0)


def test_cpu_bf16_stays_off_without_native_support_and_keeps_old_fingerprints(monkeypatch):
    monkeypatch.setattr(runtime, "native_bf16", lambda: False)
    assert build_run(plan_run(tiny(cpu_bf16=True))).amp_dtype is None
    assert tiny(cpu_bf16=True).fingerprint() != tiny().fingerprint()
    # A float32 run's fingerprint is the one it had before the setting existed (checkpoints
    # resume): the setting adds nothing to it while off (test_fair pins the paper defaults' value).
    assert tiny().fingerprint() == tiny().fingerprint(exclude=("cpu_bf16",))


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "losszoo", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


CLI_TINY = ["--loss", "normsoftmax", "--backbone", "convnet4", "--no-pretrained", "--dim", "8",
            "--max-classes", "5", "--batch-size", "10", "--samples-per-class", "5",
            "--batches-per-epoch", "1", "--epochs", "1", "--ks", "1", "--no-progress",
            "--device", "cpu"]


@pytest.mark.slow
def test_cli_exit_codes_on_a_real_process(tmp_path):
    ok = _cli("train", *CLI_TINY, "--output", str(tmp_path / "ok"), cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "ok" / "result.json").exists()
    bad = _cli("train", *CLI_TINY, "--epochs", "0", "--output", str(tmp_path / "bad"), cwd=tmp_path)
    assert bad.returncode == 2
    assert "epochs must be >= 1" in bad.stderr and "Traceback" not in bad.stderr
    missing = _cli("eval", str(tmp_path / "nothing"), cwd=tmp_path)
    assert missing.returncode == 2 and "no checkpoint" in missing.stderr


def test_a_long_epoch_is_announced_with_its_estimated_time(tmp_path, monkeypatch):
    """A run whose epoch is estimated at over ESTIMATE_FROM_S seconds says so after a few batches."""
    import io

    from rich.console import Console

    from losszoo.training import trainer as trainer_module

    monkeypatch.setattr(trainer_module, "ESTIMATE_FROM_S", 0.0)  # any epoch counts as long here
    buffer = io.StringIO()
    config = tiny(loss="triplet", warmup_epochs=0, batches_per_epoch=4, lr_milestones=(1,))
    trainer_module.train(config, tmp_path / "run", progress=False, console=Console(file=buffer, width=200))
    text = buffer.getvalue()
    assert "triplet: about" in text and "min per epoch on cpu" in text and "over the first 3" in text


def test_extraction_reports_progress_lines():
    import io

    from rich.console import Console

    from losszoo.training.inference import progress_lines

    model = create_model("convnet4", dim=8, pretrained=False)
    data = TensorDataset(torch.randn(25, 1, 28, 28), torch.arange(25) % 5)
    calls = []
    extract_embeddings(model, data, batch_size=10, report=lambda done, total: calls.append((done, total)))
    assert calls == [(10, 25), (20, 25), (25, 25)]
    buffer = io.StringIO()
    report = progress_lines(Console(file=buffer, width=200), "embedding test", every=0.0)
    report(10, 25)
    report(25, 25)
    assert "embedding test: 10/25 images" in buffer.getvalue() and "25/25" in buffer.getvalue()
