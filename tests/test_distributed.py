"""Distributed training on torch.distributed (Gloo, CPU): 2 processes spawned by the tests,
float64, checked against one process on the concatenated global batch."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch.multiprocessing as mp

import distributed_workers as workers

WORLD_SIZE = 2


def _spawn(check, tmp_path: Path) -> dict:
    manager = mp.Manager()
    results = manager.dict()
    mp.spawn(workers.run_worker, args=(WORLD_SIZE, str(tmp_path / "init"), check, results),
             nprocs=WORLD_SIZE, join=True)
    return dict(results)


def test_two_ranks_equal_one_process(tmp_path):
    """Samplers (union = single-process batches), every zoo loss's step (value and gradients
    to 1e-10, float64, DDP + global BatchNorm), and evaluation (exact), in one spawn."""
    results = _spawn(workers.check_all, tmp_path)
    assert sorted(results) == list(range(WORLD_SIZE))
    failures = [f for rank in sorted(results) for f in results[rank]]
    assert not failures, "\n".join(failures)


def _step_losses(folder: Path) -> list[float]:
    with (folder / "log.csv").open(newline="") as fh:
        return [float(row["loss"]) for row in csv.DictReader(fh)]


def test_one_process_trains_as_two_ranks_on_the_same_global_batch(tmp_path):
    """One run path: a plain run (no process group) and 2 Gloo ranks spawned here, each loading
    half of every global batch of 20, see the same augmented items (each item's augmentation is
    seeded by its place in the global batch, not by the order one process loads it in: before,
    a plain run drew from the global generator in loading order and differed from the first
    step, 8.13 vs 7.66 here). float32 training: the step losses agree to float32 reduction
    order, which differs with the split (BatchNorm statistics summed over two shares, the first
    convolution's cancellation-prone gradient, see the torchrun test below): the warm-up steps
    to 1e-5, the main steps to 2e-4 when written, so rel 1e-3; the metrics to one of 200 queries."""
    from functools import partial

    from losszoo.training.config import TrainConfig
    from losszoo.training.trainer import train

    config = dict(loss="normsoftmax", backbone="convnet4", pretrained=False, dim=16, max_classes=10,
                  batch_size=20, samples_per_class=5, batches_per_epoch=3, epochs=1, warmup_epochs=1,
                  ks=[1, 2, 4], binary=False, device="cpu", amp=False)
    one = train(TrainConfig.from_dict(config), tmp_path / "one", progress=False)
    _spawn(partial(workers.train_as_rank, config=config, output=str(tmp_path / "two")), tmp_path)
    two = json.loads((tmp_path / "two" / "result.json").read_text())
    steps_one, steps_two = _step_losses(tmp_path / "one"), _step_losses(tmp_path / "two")
    assert len(steps_one) == len(steps_two) == 6
    assert steps_two == pytest.approx(steps_one, rel=1e-3), (steps_one, steps_two)
    for key, value in one.metrics.scalars().items():
        assert two["metrics"][key] == pytest.approx(value, abs=0.0051), key


TINY = ["--max-classes", "10", "--batch-size", "20", "--samples-per-class", "5", "--dim", "16",
        "--ks", "1,2,4", "--no-progress", "--no-binary", "--epochs", "1", "--warmup-epochs", "1",
        "--batches-per-epoch", "4"]


def _torchrun(nproc: int, output: Path, *args: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                          os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
               "--standalone", "-m", "losszoo", *args, "--output", str(output)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
def test_two_rank_train_writes_the_metrics_of_one_process(tmp_path):
    """``torchrun --nproc-per-node 2 -m losszoo train`` against the 1-process torchrun run of
    the same global batch, end to end through the command line. Training runs in float32, and
    the first convolution's weight gradient, which BatchNorm reduces to a small difference of
    large terms, carries float32 cancellation error that depends on how the batch is split
    (one backward of convnet4 at batch 20 against float64: up to 2e-2 of its largest entry in
    channels-last, 4e-6 to 2e-3 at other batch sizes and layouts). So the runs agree closely
    (mean epoch losses to ~1e-5), not bitwise, and among 200 test queries that can reorder one
    near-tie: metrics may differ by one query (0.005). The exact equivalence
    (every zoo loss, DDP, global BatchNorm, to 1e-10) is the float64 test above. The loss is
    NormSoftmax, smooth in its inputs: semi-hard triplet mining makes discrete choices that
    such a difference flips, after which the runs part."""
    args = ["train", "--loss", "normsoftmax", *TINY]
    _torchrun(2, tmp_path / "two", *args)
    _torchrun(1, tmp_path / "one", *args)
    two, one = (json.loads((tmp_path / d / "result.json").read_text()) for d in ("two", "one"))
    for key, value in one["metrics"].items():
        if isinstance(value, float):
            assert two["metrics"][key] == pytest.approx(value, abs=0.0051), key
    for a, b in zip(two["history"], one["history"], strict=True):  # 0 and 5.6e-6 apart when written
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)


@pytest.mark.slow
def test_sharded_class_weights_train_as_replicated_ones(tmp_path):
    """``--shard-class-weights`` under 2 ranks against the replicated 2-rank run: epoch losses
    to 1e-6 (float32: the distributed log-sum-exp adds the shards' terms in another order than
    one cross-entropy; 2e-7 apart when written), metrics to 1e-3 (weights ~1e-7 apart can swap
    two near-tied neighbours: identical on one machine, MAP@R 1.4e-5 apart on another), and a
    checkpoint in the replicated layout (all C rows of the weights and of their momentum,
    gathered to rank 0). Per-step equality in float64, to 1e-10, is check_sharded_class_weights."""
    import torch

    args = ["train", "--loss", "normsoftmax", *TINY]
    _torchrun(2, tmp_path / "sharded", *args, "--shard-class-weights")
    _torchrun(2, tmp_path / "replicated", *args)
    sharded, replicated = (json.loads((tmp_path / d / "result.json").read_text())
                           for d in ("sharded", "replicated"))
    assert sharded["config"]["shard_class_weights"] and not replicated["config"]["shard_class_weights"]
    assert sharded["metrics"] == pytest.approx(replicated["metrics"], abs=1e-3)
    for a, b in zip(sharded["history"], replicated["history"], strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6)
    state_s, state_r = (torch.load(tmp_path / d / "checkpoint.pt", weights_only=True)
                        for d in ("sharded", "replicated"))
    assert state_s["loss"].keys() == state_r["loss"].keys() == {"proxies.weight"}
    assert state_s["loss"]["proxies.weight"].shape == (10, 16)
    torch.testing.assert_close(state_s["loss"]["proxies.weight"], state_r["loss"]["proxies.weight"],
                               rtol=0, atol=1e-5)
    momentum = [{k: v["momentum_buffer"].shape for k, v in s["optimizer"]["state"].items()}
                for s in (state_s, state_r)]
    assert momentum[0] == momentum[1]


@pytest.mark.slow
@pytest.mark.parametrize("shard", [False, True], ids=["replicated", "sharded"])
def test_kill_9_of_a_rank_then_resume_matches_an_uninterrupted_run(tmp_path, shard):
    """kill -9 of rank 1 once rank 0 has written a checkpoint (torchrun stops rank 0 too); the
    same command with --resume ends bitwise where an uninterrupted 2-rank run ends; with sharded
    class weights too (each rank takes its rows and their momentum from the gathered checkpoint)."""
    import signal
    import time

    import torch

    args = ["train", "--loss", "normsoftmax", *TINY[:-6], "--epochs", "2", "--warmup-epochs", "1",
            "--batches-per-epoch", "15", *(["--shard-class-weights"] if shard else [])]
    broken, whole = tmp_path / "broken", tmp_path / "whole"
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                          os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
               "2", "-m", "losszoo", *args, "--output", str(broken)]
    launcher = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (broken / "checkpoint.pt").exists():
        assert launcher.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    workers_of = subprocess.run(["pgrep", "-P", str(launcher.pid)], capture_output=True, text=True)
    os.kill(int(workers_of.stdout.split()[-1]), signal.SIGKILL)
    launcher.wait(timeout=120)
    assert not (broken / "result.json").exists(), "the run finished before it could be killed"
    _torchrun(2, broken, *args, "--resume")
    _torchrun(2, whole, *args)
    a, b = (json.loads((d / "result.json").read_text()) for d in (whole, broken))
    assert a["metrics"] == b["metrics"]
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]
    state_a, state_b = (torch.load(d / "checkpoint.pt", weights_only=True) for d in (whole, broken))
    for part in ("model", "loss"):
        assert all(torch.equal(state_a[part][key], state_b[part][key]) for key in state_a[part]), part


def test_a_shard_releases_the_full_weights_and_round_trips_its_checkpoint_state():
    """One process (world size 1, no process group): the shard is all rows; the replicated
    loss keeps no storage of its weights; the shard is the only parameter and state entry; its
    gathered state (weights and momentum, replicated layout) loads back into a fresh shard."""
    import torch

    from losszoo.distributed.sharded import ShardedClassLoss
    from losszoo.losses import create_loss

    loss = create_loss("normsoftmax", embedding_dim=8, num_classes=10)
    initial = loss.proxies.weight.detach().clone()
    shard = ShardedClassLoss(loss, 0, 1)
    assert loss.proxies.weight.untyped_storage().nbytes() == 0
    assert [name for name, _ in shard.named_parameters()] == ["weight"] and list(shard.state_dict()) == ["weight"]
    assert torch.equal(shard.weight.detach(), initial)
    optimizer = torch.optim.SGD(shard.parameters(), lr=0.1, momentum=0.9)
    shard(torch.randn(6, 8), torch.arange(6)).backward()
    optimizer.step()
    loss_state, optimizer_state = shard.gathered_state(optimizer)
    assert loss_state["proxies.weight"].shape == (10, 8)
    fresh = ShardedClassLoss(create_loss("normsoftmax", embedding_dim=8, num_classes=10), 0, 1)
    fresh_optimizer = torch.optim.SGD(fresh.parameters(), lr=0.1, momentum=0.9)
    fresh.load_gathered_state(loss_state, optimizer_state, fresh_optimizer)
    assert torch.equal(fresh.weight.detach(), shard.weight.detach())
    assert torch.equal(fresh_optimizer.state[fresh.weight]["momentum_buffer"],
                       optimizer.state[shard.weight]["momentum_buffer"])
