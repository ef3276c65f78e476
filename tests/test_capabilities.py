"""Loss capabilities are declared (or read from the class) once, at registration, and every
consumer (planner, comparison, cross-batch memory, sharding, tuner, ``losszoo list``) asks the
spec: a plugin that declares a capability gets it everywhere, without a list kept by hand.

Each declaration is cross-checked against what the loss does: a miner's tuples are taken or
refused by the loss itself, a cross-batch memory wraps it or refuses it, and a one-process
ShardedClassLoss equals the replicated loss exactly when the spec declares sharding."""

from __future__ import annotations

import pytest
import torch

from losszoo.distributed.sharded import ShardedClassLoss
from losszoo.errors import ConfigError
from losszoo.losses import NormSoftmax, create_loss, get_loss_spec, list_losses, register_loss
from losszoo.losses.registry import CAPABILITIES
from losszoo.losses.xbm import CrossBatchMemory
from losszoo.samplers import SAMPLERS, ClassBalancedSampler, register_sampler, uses_samples_per_class
from losszoo.training.compare import plan_comparison
from losszoo.training.config import TrainConfig
from losszoo.training.plan import plan_run
from losszoo.tuning.study import search_space
from tests.helpers import gaussian_batch

DIM, CLASSES = 8, 4
BUILT_IN = list_losses(namespaced=False)
TINY = dict(max_classes=5, batch_size=10, samples_per_class=5, dim=8, epochs=1)


def _built(name: str) -> torch.nn.Module:
    return create_loss(name, embedding_dim=DIM, num_classes=CLASSES).double()


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    x, _ = gaussian_batch(0, 8, DIM, CLASSES)
    return x, torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])


@pytest.mark.parametrize("name", BUILT_IN)
def test_takes_miner_is_what_the_loss_does_with_a_miners_tuples(name):
    x, labels = _batch()
    triplets = (torch.tensor([0, 2]), torch.tensor([1, 3]), torch.tensor([4, 5]))
    loss = _built(name)
    if get_loss_spec(name).takes_miner:
        assert torch.isfinite(loss(x, labels, triplets))
    else:
        with pytest.raises(ConfigError, match="cannot use a miner"):
            loss(x, labels, triplets)


@pytest.mark.parametrize("name", BUILT_IN)
def test_supports_memory_is_what_the_memory_accepts(name):
    x, labels = _batch()
    if get_loss_spec(name).supports_memory:
        memory = CrossBatchMemory(_built(name), DIM, 16).double()
        assert torch.isfinite(memory(x, labels))
    else:
        with pytest.raises(ConfigError, match="cannot use a cross-batch memory"):
            CrossBatchMemory(_built(name), DIM, 16)


@pytest.mark.parametrize("name", BUILT_IN)
def test_shards_class_weights_is_what_a_one_rank_shard_equals(name):
    """One rank holds every row, so the sharded loss must equal the replicated one (no process
    group: the all-reduces are identities)."""
    x, labels = _batch()
    loss = _built(name)
    if not get_loss_spec(name).shards_class_weights:
        with pytest.raises(TypeError, match="cannot be sharded"):
            ShardedClassLoss(loss, 0, 1)
        return
    expected = loss(x, labels)
    sharded = ShardedClassLoss(loss, 0, 1)
    torch.testing.assert_close(sharded(x, labels), expected)


def test_capabilities_of_the_zoo():
    """The declarations themselves, so a change to one is a visible decision."""
    having = {capability: set(list_losses(namespaced=False, where=lambda s, c=capability: getattr(s, c)))
              for capability in CAPABILITIES}
    assert having["shards_class_weights"] == {"normsoftmax", "cosface", "arcface", "proxynca", "proxyanchor"}
    assert having["supports_memory"] == {"contrastive", "triplet", "multisimilarity", "supcon"}
    assert having["takes_miner"] == {"contrastive", "triplet", "multisimilarity", "lifted", "margin", "npair"}
    assert get_loss_spec("pml:tripletmarginloss").takes_miner


def test_sharding_needs_class_weights(loss_registry):
    with pytest.raises(TypeError, match="shards_class_weights needs class weights"):
        @register_loss("toy-unshardable", shards_class_weights=True)
        class Toy(torch.nn.Module):
            def forward(self, x, y):
                return x.sum()


def test_a_plugins_declaration_reaches_the_planner_and_the_comparison(loss_registry, tmp_path):
    """A loss registered with shards_class_weights=True is sharded by compare and named in the
    refusal of a loss that cannot be; nothing lists the shardable losses by hand."""
    register_loss("toy-softmax", shards_class_weights=True)(type("ToySoftmax", (NormSoftmax,), {}))
    base = TrainConfig(**TINY, shard_class_weights=True)
    runs = plan_comparison(base, tmp_path / "out", losses=["triplet", "toy-softmax"], seeds=1,
                           loss_options=None)
    assert {run.plan.config.loss: run.plan.config.shard_class_weights for run in runs} == {
        "normsoftmax": False, "triplet": False, "toy-softmax": True}
    with pytest.raises(ConfigError, match="no class weights to shard") as refused:
        plan_run(base.replace(loss="triplet"))
    assert "toy-softmax" in str(refused.value)
    shard = ShardedClassLoss(create_loss("toy-softmax", embedding_dim=DIM, num_classes=CLASSES), 0, 1)
    assert shard.weight.shape == (CLASSES, DIM)


def test_a_plugins_memory_and_miner_come_from_its_methods(loss_registry):
    """A loss class that defines compute_against / compute_mined is planned with --xbm / a
    miner; the refusal of another lists it."""
    from losszoo.losses import Contrastive

    register_loss("toy-pairs", needs_positive_pairs=True)(type("ToyPairs", (Contrastive,), {}))
    spec = get_loss_spec("toy-pairs")
    assert spec.supports_memory and spec.takes_miner
    assert plan_run(TrainConfig(**TINY, loss="toy-pairs", xbm=20)).config.xbm == 20
    with pytest.raises(ConfigError, match="losses that can: .*toy-pairs"):
        plan_run(TrainConfig(**TINY, loss="normsoftmax", xbm=20))


def test_the_tuner_searches_samples_per_class_only_where_the_sampler_uses_it():
    """npair (always 2 per class) and proxyanchor's random batches ignore samples_per_class;
    the declaration of their samplers keeps it out of the search space."""
    key = "common.samples_per_class"
    assert not uses_samples_per_class("npair") and not uses_samples_per_class("random")
    assert key in search_space("triplet", 80) and key in search_space("normsoftmax", 80)
    assert key not in search_space("npair", 80)
    assert key not in search_space("proxyanchor", 80)
    assert key in search_space("proxyanchor", 80, sampler="class_balanced")  # the run's sampler wins
    assert "common.lr" in search_space("npair", 80)


def test_a_plugin_sampler_declares_whether_it_uses_samples_per_class():
    with SAMPLERS.scoped():
        register_sampler("toy-fixed", uses_samples_per_class=False)(
            type("ToyFixed", (ClassBalancedSampler,), {}))
        assert "common.samples_per_class" not in search_space("triplet", 80, sampler="toy-fixed")
    assert SAMPLERS.get("class_balanced").uses_samples_per_class
