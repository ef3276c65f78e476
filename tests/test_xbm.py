"""Cross-batch memory: equal to pytorch-metric-learning's CrossBatchMemory step by step (value
and gradients) for the Multi-Similarity loss with its miner and for SupCon; the start
iteration; the memory in the state dict; refusals."""

from __future__ import annotations

import pytest
import torch
from pytorch_metric_learning.losses import CrossBatchMemory as PMLCrossBatchMemory
from pytorch_metric_learning.losses import MultiSimilarityLoss, SupConLoss, TripletMarginLoss
from pytorch_metric_learning.miners import MultiSimilarityMiner, TripletMarginMiner

from losszoo import Contrastive, MultiSimilarity, NormSoftmax, SupCon, Triplet
from losszoo.errors import ConfigError
from losszoo.losses.xbm import CrossBatchMemory, supports_memory

DIM, SIZE, STEPS = 4, 20, 6


def batches(seed: int = 0):
    """Class-balanced batches of 4 classes x 2 (every anchor has a positive besides itself),
    from 6 classes, clustered so that the mining keeps some pairs and drops others."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(6, DIM, generator=g, dtype=torch.float64)
    for _ in range(STEPS):
        labels = torch.randperm(6, generator=g)[:4].repeat_interleave(2)
        yield centers[labels] + 0.6 * torch.randn(8, DIM, generator=g, dtype=torch.float64), labels


def run_steps(loss, steps):
    out = []
    for x, labels in steps:
        x = x.clone().requires_grad_()
        value = loss(x, labels)
        value.backward()
        out.append((value.detach(), x.grad))
    return out


@pytest.mark.parametrize("case", ["multisimilarity", "supcon", "triplet"])
def test_equals_pytorch_metric_learning_step_by_step(case):
    # Aligned: PML's CrossBatchMemory enqueues first, then takes the batch as anchors against
    # the whole memory, removing each anchor's own copy after the miner ran; ours removes it
    # before mining. The two agree whenever every anchor has another positive in the memory
    # (the copy, at similarity 1, then never decides a hardest positive), as in these batches.
    # MS: PML's loss calls lambda "base"; we pass 0.5 to both. The memory wraps (6 x 8 > 20).
    if case == "multisimilarity":
        ours = CrossBatchMemory(MultiSimilarity(base=0.5, epsilon=0.3), DIM, SIZE).double()
        theirs = PMLCrossBatchMemory(MultiSimilarityLoss(alpha=2, beta=50, base=0.5), DIM, SIZE,
                                     miner=MultiSimilarityMiner(0.3))
    elif case == "supcon":
        ours = CrossBatchMemory(SupCon(0.1), DIM, SIZE).double()
        theirs = PMLCrossBatchMemory(SupConLoss(0.1), DIM, SIZE)
    else:  # semihard triplets, aligned as in tests/test_losses_triplet.py
        ours = CrossBatchMemory(Triplet(margin=0.2), DIM, SIZE).double()
        theirs = PMLCrossBatchMemory(TripletMarginLoss(margin=0.2, triplets_per_anchor="all"), DIM, SIZE,
                                     miner=TripletMarginMiner(margin=0.2, type_of_triplets="semihard"))
    for (value_ours, grad_ours), (value_theirs, grad_theirs) in zip(
        run_steps(ours, batches()), run_steps(theirs, batches()), strict=True
    ):
        assert value_ours > 0
        torch.testing.assert_close(value_ours, value_theirs, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(grad_ours, grad_theirs, rtol=1e-9, atol=1e-12)
    filled = theirs.embedding_memory.shape[0]
    torch.testing.assert_close(ours.memory[:filled], theirs.embedding_memory, rtol=0, atol=0)
    assert torch.equal(ours.memory_labels, theirs.label_memory)


def test_against_the_batch_alone_it_is_the_loss_itself():
    # The first step with a memory of exactly one batch: the references are the batch.
    x, labels = next(batches(1))
    for loss in (Contrastive(), MultiSimilarity(), SupCon(), Triplet(mining="hard"), Triplet(mining="all")):
        with_memory = CrossBatchMemory(loss, DIM, len(labels)).double()
        torch.testing.assert_close(with_memory(x, labels), loss(x, labels), rtol=1e-12, atol=1e-15)


def test_memory_is_used_from_the_start_step_on_and_not_in_eval():
    loss = SupCon()
    memory = CrossBatchMemory(loss, DIM, SIZE, start=2).double()
    steps = list(batches(2))
    for x, labels in steps[:2]:  # before the start: the plain loss, nothing enqueued
        torch.testing.assert_close(memory(x, labels), loss(x, labels), rtol=0, atol=0)
    assert (memory.memory_labels == -1).all() and int(memory.step) == 2
    memory(*steps[2])
    assert int((memory.memory_labels >= 0).sum()) == 8 and int(memory.position) == 8
    memory.eval()
    torch.testing.assert_close(memory(*steps[3]), loss(*steps[3]), rtol=0, atol=0)
    assert int(memory.step) == 3 and int(memory.position) == 8


def test_the_memory_travels_in_the_state_dict():
    steps = list(batches(3))
    first = CrossBatchMemory(MultiSimilarity(base=0.5), DIM, SIZE, start=1).double()
    run_steps(first, steps[:4])
    assert {"memory", "memory_labels", "position", "step"} <= set(first.state_dict())
    resumed = CrossBatchMemory(MultiSimilarity(base=0.5), DIM, SIZE, start=1).double()
    resumed.load_state_dict(first.state_dict())
    for (a, grad_a), (b, grad_b) in zip(run_steps(first, steps[4:]), run_steps(resumed, steps[4:]), strict=True):
        assert torch.equal(a, b) and torch.equal(grad_a, grad_b)


def test_refusals():
    assert all(supports_memory(cls) for cls in (MultiSimilarity, Contrastive, SupCon, Triplet))
    assert not supports_memory(NormSoftmax)
    with pytest.raises(ConfigError, match="NormSoftmax cannot use a cross-batch memory"):
        CrossBatchMemory(NormSoftmax(DIM, 3), DIM, SIZE)
    with pytest.raises(ConfigError, match="size"):
        CrossBatchMemory(SupCon(), DIM, 0)
    with pytest.raises(ValueError, match="cannot hold a batch of 8"):
        CrossBatchMemory(SupCon(), DIM, 4).double()(*next(batches()))
    with pytest.raises(ConfigError, match="pairs the batch with the memory"):
        x, labels = next(batches())
        CrossBatchMemory(SupCon(), DIM, SIZE).double()(x, labels, (labels[:0], labels[:0], labels[:0]))


# -- in the harness: --xbm SIZE, --xbm-start STEP -----------------------------------------------

def harness_config(**overrides):
    from losszoo.training.config import TrainConfig

    settings = dict(loss="multisimilarity", loss_options={"base": 0.5}, backbone="convnet4",
                    pretrained=False, dim=8, max_classes=10, batch_size=10, samples_per_class=5,
                    batches_per_epoch=3, epochs=3, warmup_epochs=0, ks=(1,), binary=False,
                    device="cpu", amp=False, xbm=40, xbm_start=2)
    settings.update(overrides)
    return TrainConfig(**settings)


def test_an_interrupted_run_with_a_memory_resumes_bitwise(tmp_path):
    from losszoo.training.checkpoint import load_checkpoint
    from losszoo.training.trainer import CHECKPOINT, train

    config = harness_config(protocol="holdout", eval_every=1)
    whole = train(config, tmp_path / "whole", progress=False)

    def interrupt_at_epoch_2(epoch, metrics):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "broken", progress=False, on_validation=interrupt_at_epoch_2)
    saved = load_checkpoint(tmp_path / "broken" / CHECKPOINT)
    assert saved["next_epoch"] == 1 and int(saved["loss"]["step"]) == 3
    assert int((saved["loss"]["memory_labels"] >= 0).sum()) == 10  # step 2 enqueued one batch
    resumed = train(config, tmp_path / "broken", resume=True, progress=False)
    assert resumed.metrics == whole.metrics
    assert [h.loss for h in resumed.history] == [h.loss for h in whole.history]
    a, b = (load_checkpoint(tmp_path / d / CHECKPOINT) for d in ("whole", "broken"))
    for part in ("model", "loss"):
        assert all(torch.equal(a[part][key], b[part][key]) for key in a[part]), part


@pytest.mark.parametrize("overrides, message", [
    ({"loss": "normsoftmax", "loss_options": {}}, "'normsoftmax' cannot use a cross-batch memory"),
    ({"xbm": 5}, "smaller than the batch"),
    ({"miner": "pml:MultiSimilarityMiner"}, "makes its own pairs"),
])
def test_the_harness_refuses_a_memory_it_cannot_use_before_any_work(overrides, message):
    from losszoo.training.plan import plan_run

    with pytest.raises(ConfigError, match=message):
        plan_run(harness_config(**overrides))


def test_compare_gives_the_memory_to_the_losses_only_not_to_the_untrained_floor(tmp_path):
    from losszoo.training.compare import plan_comparison

    runs = plan_comparison(harness_config(), tmp_path, losses=["supcon"], seeds=1, loss_options=None)
    assert [run.plan.config.xbm for run in runs] == [0, 40]
