"""The run's distributed strategy (single / replicated / sharded) is chosen once, in
build_run, and the trainer branches on nothing else. What each strategy does is checked
against one process on the global batch by tests/test_distributed.py (2 spawned Gloo ranks:
replicated, sharded, per-rank losses, a kill -9 and resume of each)."""

from __future__ import annotations

import ast
from pathlib import Path

import torch

from losszoo.distributed import DistContext
from losszoo.distributed.sharded import ShardedClassLoss
from losszoo.training.config import TrainConfig
from losszoo.training.plan import plan_run
from losszoo.training.strategy import Replicated, Sharded, SingleProcess, choose_strategy
from losszoo.training.trainer import build_run

PACKAGE = Path(__file__).resolve().parents[1] / "losszoo"
TINY = dict(backbone="convnet4", pretrained=False, dim=8, max_classes=5, batch_size=10,
            samples_per_class=5, epochs=1, batches_per_epoch=1, device="cpu")
CPU = torch.device("cpu")


def test_the_strategy_is_chosen_from_the_settings_and_the_process_context():
    two_ranks = DistContext(rank=1, world_size=2)
    assert type(choose_strategy(False, DistContext(), CPU)) is SingleProcess
    assert type(choose_strategy(False, two_ranks, CPU)) is Replicated
    assert type(choose_strategy(True, DistContext(), CPU)) is Sharded
    assert type(choose_strategy(True, two_ranks, CPU)) is Sharded


def test_build_run_holds_its_strategy_and_the_loss_it_prepared():
    single = build_run(plan_run(TrainConfig(**TINY, loss="normsoftmax")))
    assert single.strategy.name == "single" and single.step_loss is single.loss
    sharded = build_run(plan_run(TrainConfig(**TINY, loss="normsoftmax", shard_class_weights=True)))
    assert sharded.strategy.name == "sharded" and isinstance(sharded.loss, ShardedClassLoss)
    assert sharded.step_loss is sharded.loss and sharded.forward_model is sharded.model


def test_the_trainer_has_no_distributed_branch():
    """Distributed behaviour lives in training/strategy.py: trainer.py names no distributed
    module, wrapper or context test."""
    source = (PACKAGE / "training" / "trainer.py").read_text()
    for name in ("ShardedClassLoss", "GlobalBatch", "DistributedDataParallel", "convert_batchnorm",
                 "average_gradients", "context.distributed", "shard_class_weights and"):
        assert name not in source, name


def test_no_function_of_the_glue_takes_more_than_five_positional_parameters():
    for folder in ("training", "tuning", "distributed"):
        for path in (PACKAGE / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    positional = [a.arg for a in (*node.args.posonlyargs, *node.args.args)
                                  if a.arg not in ("self", "cls", "ctx")]
                    assert len(positional) <= 5, f"{path.name}: {node.name}({', '.join(positional)})"
