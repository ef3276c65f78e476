"""Batch samplers: batch structure, reproducibility, epoch coverage, DataLoader use, errors.

Every structural check is a plain loop over the batches written here, independent of the
samplers' vectorised numpy code.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Sampler, TensorDataset

from losszoo.samplers import (
    SAMPLERS,
    ClassBalancedSampler,
    LabelBatchSampler,
    NPairSampler,
    RandomBatchSampler,
    create_sampler,
    list_samplers,
    register_sampler,
)
from losszoo.samplers.base import cyclic_permutation_rows


@pytest.fixture
def sampler_registry():
    with SAMPLERS.scoped() as registry:
        yield registry


def imbalanced_labels(num_classes: int, low: int, high: int, seed: int = 0) -> np.ndarray:
    """Shuffled labels with between ``low`` and ``high`` items per class."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(num_classes), rng.integers(low, high + 1, num_classes))
    return rng.permutation(labels)


def sop_like_labels() -> np.ndarray:
    """11,318 classes, 59,551 items, 2 to 12 per class (Stanford Online Products' train split)."""
    rng = np.random.default_rng(0)
    counts = np.full(11318, 2) + rng.multinomial(59551 - 2 * 11318, np.full(11318, 1 / 11318))
    return rng.permutation(np.repeat(np.arange(11318), counts))


def check_class_blocks(batch: list[int], labels: np.ndarray, num_classes: int, per_class: int):
    """Assert ``batch`` is ``num_classes`` contiguous blocks of ``per_class`` items of one
    class each, all classes distinct; return the blocks."""
    assert len(batch) == num_classes * per_class
    blocks = [batch[i * per_class : (i + 1) * per_class] for i in range(num_classes)]
    block_classes = []
    for block in blocks:
        assert len({int(labels[i]) for i in block}) == 1, "a block mixes classes"
        block_classes.append(int(labels[block[0]]))
    assert len(set(block_classes)) == num_classes, "a class appears twice in one batch"
    return blocks


# -- registry ------------------------------------------------------------------------------------
def test_builtin_samplers_are_registered():
    assert list_samplers() == ["class_balanced", "npair", "random"]
    assert list_samplers("*pair*") == ["npair"]
    assert SAMPLERS.get("class_balanced") is ClassBalancedSampler
    assert SAMPLERS.get("npair") is NPairSampler
    assert SAMPLERS.get("random") is RandomBatchSampler
    for name in list_samplers():
        sampler = create_sampler(name, np.repeat(np.arange(10), 4), batch_size=8, samples_per_class=2)
        assert isinstance(sampler, Sampler) and isinstance(sampler, LabelBatchSampler)


def test_unknown_sampler_suggests_close_names():
    with pytest.raises(KeyError, match="class_balanced"):
        create_sampler("class_balance", [0, 0, 1, 1], batch_size=2, samples_per_class=1)


def test_register_in_scope_and_no_leak(sampler_registry):
    @register_sampler("every_other", aliases=("alternate",))
    class EveryOther(RandomBatchSampler):
        def draw_batches(self, rng, num_batches):
            return np.arange(num_batches * self.batch_size).reshape(num_batches, -1) * 2 % len(self.labels)

    sampler = create_sampler("alternate", list(range(8)), batch_size=2, samples_per_class=1)
    assert isinstance(sampler, EveryOther) and list(sampler) == [[0, 2], [4, 6], [0, 2], [4, 6]]
    with pytest.raises(TypeError, match="Sampler subclass"):
        register_sampler("not_a_sampler")(dict)
    with pytest.raises(ValueError, match="already registered"):
        register_sampler("random")(EveryOther)


def test_registration_did_not_leak():
    assert "every_other" not in list_samplers() and "alternate" not in SAMPLERS


# -- class_balanced ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "num_classes, low, high, batch_size, per_class",
    [(100, 55, 62, 75, 25), (20, 3, 9, 20, 4), (7, 1, 6, 15, 5), (30, 5, 5, 20, 1), (3, 4, 9, 12, 12)],
)
def test_class_balanced_batches_are_c_classes_by_s(num_classes, low, high, batch_size, per_class):
    labels = imbalanced_labels(num_classes, low, high)
    sampler = create_sampler("class_balanced", labels, batch_size=batch_size, samples_per_class=per_class)
    classes_per_batch = batch_size // per_class
    assert sampler.classes_per_batch == classes_per_batch
    batches = list(sampler)
    assert len(batches) == len(sampler) == max(1, len(labels) // batch_size)
    class_sizes = Counter(labels.tolist())
    saw_repeat = False
    for batch in batches:
        assert all(isinstance(i, int) for i in batch)
        for block in check_class_blocks(batch, labels, classes_per_batch, per_class):
            size = class_sizes[int(labels[block[0]])]
            if size >= per_class:
                assert len(set(block)) == per_class, "repeat within a class that has >= S items"
            else:  # with replacement only now: every image of the small class is used
                assert set(block) == {i for i in range(len(labels)) if labels[i] == labels[block[0]]}
                saw_repeat = True
    if any(size < per_class for size in class_sizes.values()):
        assert saw_repeat  # (7, 1, 6, 15, 5) has classes smaller than S


def test_class_smaller_than_s_is_drawn_with_replacement():
    labels = np.array([0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2])
    sampler = ClassBalancedSampler(labels, batch_size=10, samples_per_class=5, batches_per_epoch=6)
    blocks_of_class0 = [
        block for batch in sampler for block in check_class_blocks(batch, labels, 2, 5)
        if labels[block[0]] == 0
    ]
    assert blocks_of_class0, "class 0 never drawn in 6 batches of 2 out of 3 classes"
    for block in blocks_of_class0:  # 2 images for 5 slots: one thrice, the other twice
        assert sorted(Counter(block).values()) == [2, 3]


def test_class_balanced_epoch_covers_classes_and_images():
    labels = imbalanced_labels(100, 50, 70, seed=3)
    sampler = ClassBalancedSampler(labels, batch_size=75, samples_per_class=25)
    per_class = 25
    draws: list[tuple[int, list[int]]] = []
    for batch in sampler:
        for block in check_class_blocks(batch, labels, 3, per_class):
            draws.append((int(labels[block[0]]), block))
    order = [cls for cls, _ in draws]
    assert sorted(order[:100]) == list(range(100)), "a class repeats before every class appeared"
    counts = Counter(order)
    assert set(counts) == set(range(100)) and max(counts.values()) - min(counts.values()) <= 1
    seen = set()
    for cls in range(100):
        images = {i for c, block in draws if c == cls for i in block}
        size = int((labels == cls).sum())
        # each draw walks on through the class's shuffled images: nothing repeats until all seen
        assert len(images) == min(size, counts[cls] * per_class)
        seen |= images
    assert len(seen) / len(labels) > 0.85


def test_images_within_a_class_are_shuffled_per_epoch():
    labels = np.repeat(np.arange(4), 20)
    sampler = ClassBalancedSampler(labels, batch_size=10, samples_per_class=5)
    first_draws = set()
    for epoch in range(10):
        sampler.set_epoch(epoch)
        first_block_of_class0 = next(
            block for batch in sampler for block in check_class_blocks(batch, labels, 2, 5)
            if labels[block[0]] == 0
        )
        first_draws.add(frozenset(first_block_of_class0))
    assert len(first_draws) > 5  # 10 epochs: 10 random 5-subsets of 20 images, almost never equal


def test_class_balanced_reproducible_and_reshuffled_by_seed_and_epoch():
    labels = imbalanced_labels(40, 4, 12)

    def batches(seed=0, epoch=None):
        sampler = ClassBalancedSampler(labels, batch_size=24, samples_per_class=4, seed=seed)
        if epoch is not None:
            sampler.set_epoch(epoch)
        return list(sampler)

    reference = batches()
    torch.manual_seed(123)
    np.random.seed(123)  # the global RNGs must not matter
    assert batches() == reference
    assert batches(epoch=0) == reference
    assert batches(seed=1) != reference
    assert batches(epoch=1) != reference and batches(epoch=1) == batches(epoch=1)
    sampler = ClassBalancedSampler(labels, batch_size=24, samples_per_class=4)
    assert list(sampler) == list(sampler)  # no hidden state advances between iterations
    sampler.set_epoch(5)
    assert list(sampler) == sampler.epoch_batches(5).tolist() == batches(epoch=5)


def test_labels_as_list_array_tensor_and_noncontiguous_give_the_same_batches():
    labels = imbalanced_labels(12, 3, 8)
    reference = list(ClassBalancedSampler(labels, batch_size=12, samples_per_class=3))
    relabelled = labels * 7 - 1000  # order-preserving, not contiguous, negative
    for variant in (labels.tolist(), torch.from_numpy(labels), relabelled, relabelled.astype(np.int32),
                    torch.tensor(relabelled, dtype=torch.int16)):
        assert list(ClassBalancedSampler(variant, batch_size=12, samples_per_class=3)) == reference


def test_epoch_length_rule():
    labels = np.repeat(np.arange(10), 5)  # 50 items
    assert len(ClassBalancedSampler(labels, batch_size=10, samples_per_class=5)) == 5
    assert len(ClassBalancedSampler(labels, batch_size=20, samples_per_class=2)) == 2
    assert len(ClassBalancedSampler(labels[:8], batch_size=10, samples_per_class=5)) == 1
    long = ClassBalancedSampler(labels, batch_size=10, samples_per_class=5, batches_per_epoch=37)
    assert len(long) == len(list(long)) == 37
    assert len(RandomBatchSampler(labels, batch_size=7)) == 7


def test_sop_size_epoch_has_the_right_shape():
    labels = sop_like_labels()
    sampler = create_sampler("class_balanced", labels, batch_size=75, samples_per_class=5)
    batches = sampler.epoch_batches()
    assert batches.shape == (59551 // 75, 75) and batches.dtype == np.int64
    block_labels = labels[batches].reshape(len(batches), 15, 5)
    assert (block_labels == block_labels[:, :, :1]).all()  # each block is one class
    first = np.sort(block_labels[:, :, 0], axis=1)
    assert (np.diff(first, axis=1) > 0).all()  # 15 distinct classes per batch
    assert len(np.unique(block_labels)) == 11318  # 794 x 15 draws >= 11,318 classes: all appear
    blocks = np.sort(batches.reshape(-1, 5), axis=1)
    distinct_per_block = 1 + (np.diff(blocks, axis=1) > 0).sum(axis=1)
    class_sizes = np.bincount(labels)[block_labels.reshape(-1, 5)[:, 0]]
    assert (class_sizes < 5).any() and (class_sizes >= 5).any()
    # without replacement for classes of >= 5 items; a smaller class uses all its items
    assert (distinct_per_block == np.minimum(class_sizes, 5)).all()


# -- npair ---------------------------------------------------------------------------------------
def test_npair_batches_are_n_distinct_classes_by_two_distinct_images():
    labels = imbalanced_labels(30, 1, 6, seed=2)  # some singleton classes
    singletons = {c for c, n in Counter(labels.tolist()).items() if n == 1}
    assert singletons
    sampler = create_sampler("npair", labels, batch_size=16, samples_per_class=25, batches_per_epoch=40)
    assert sampler.samples_per_class == 2 and sampler.classes_per_batch == 8
    for batch in sampler:
        for anchor, positive in check_class_blocks(batch, labels, 8, 2):
            assert anchor != positive
            assert int(labels[anchor]) not in singletons


def test_npair_odd_batch_size_rounds_down():
    sampler = NPairSampler(np.repeat(np.arange(10), 3), batch_size=9)
    assert sampler.batch_size == 8 and all(len(batch) == 8 for batch in sampler)


# -- random --------------------------------------------------------------------------------------
def test_random_sampler_yields_each_index_at_most_once_per_epoch():
    labels = imbalanced_labels(10, 5, 15)
    sampler = create_sampler("random", labels, batch_size=16, samples_per_class=4)
    batches = list(sampler)
    assert len(batches) == len(labels) // 16 and all(len(b) == 16 for b in batches)
    flat = [i for b in batches for i in b]
    assert len(flat) == len(set(flat)) and set(flat) <= set(range(len(labels)))
    assert flat != sorted(flat)
    sampler.set_epoch(1)
    assert list(sampler) != batches


def test_random_sampler_longer_epoch_has_no_repeat_within_a_batch():
    sampler = RandomBatchSampler(list(range(10)), batch_size=4, batches_per_epoch=30)
    batches = list(sampler)
    assert all(len(set(b)) == 4 for b in batches)
    flat = [i for b in batches for i in b]
    assert sorted(flat[:10]) == list(range(10))  # a full pass before any index repeats
    assert max(Counter(flat).values()) - min(Counter(flat).values()) <= 1


@pytest.mark.parametrize("num_items, width, num_rows", [(7, 3, 20), (5, 5, 4), (11, 4, 30), (6, 1, 13)])
def test_cyclic_permutation_rows(num_items, width, num_rows):
    items = np.arange(100, 100 + num_items)
    reshuffled = []
    for seed in range(20):
        rows = cyclic_permutation_rows(np.random.default_rng(seed), items, width, num_rows)
        assert rows.shape == (num_rows, width)
        flat = rows.ravel().tolist()
        for row in rows.tolist():
            assert len(set(row)) == width
        passes = [flat[start : start + num_items] for start in range(0, len(flat) - num_items + 1, num_items)]
        for one_pass in passes:  # each pass is a permutation of the items...
            assert sorted(one_pass) == items.tolist()
        reshuffled.append(len(passes) > 1 and passes[1] != passes[0])
    assert any(reshuffled) or num_rows * width < 2 * num_items  # ...shuffled afresh


# -- DataLoader ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["class_balanced", "npair", "random"])
def test_works_as_a_dataloader_batch_sampler(name):
    labels = torch.from_numpy(imbalanced_labels(12, 4, 8))
    features = torch.arange(len(labels), dtype=torch.float32)[:, None]
    sampler = create_sampler(name, labels, batch_size=12, samples_per_class=3, seed=4)
    loader = DataLoader(TensorDataset(features, labels), batch_sampler=sampler)
    assert len(loader) == len(sampler)
    for epoch in range(2):
        sampler.set_epoch(epoch)
        expected = list(sampler)
        got = list(loader)
        assert len(got) == len(expected)
        for (x, y), indices in zip(got, expected):
            assert x[:, 0].long().tolist() == indices
            assert torch.equal(y, labels[indices])


# -- errors --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, labels, kwargs, error, match",
    [
        ("class_balanced", [], {}, ValueError, "empty"),
        ("class_balanced", np.zeros((4, 2), dtype=int), {}, ValueError, "1-D"),
        ("class_balanced", [0.0, 1.0, 1.0], {}, TypeError, "integers"),
        ("class_balanced", torch.tensor([0.5, 1.0]), {}, TypeError, "integers"),
        ("class_balanced", [True, False], {}, TypeError, "integers"),
        ("class_balanced", [0, 1, 2, 3], {"batch_size": 0}, ValueError, "batch_size must be >= 1"),
        ("class_balanced", [0, 1, 2, 3], {"batch_size": 2.0}, TypeError, "batch_size must be an integer"),
        ("class_balanced", [0, 1, 2, 3], {"samples_per_class": 0}, ValueError, "samples_per_class must be >= 1"),
        ("random", [0, 1, 2, 3], {"samples_per_class": -1}, ValueError, "samples_per_class must be >= 1"),
        ("class_balanced", [0, 1, 2, 3], {"batch_size": 5}, ValueError, "multiple of samples_per_class"),
        ("class_balanced", [0, 0, 1, 1, 2, 2], {"batch_size": 8}, ValueError, "needs 4 distinct classes"),
        ("class_balanced", [0, 1, 2, 3], {"seed": -1}, ValueError, "seed must be >= 0"),
        ("class_balanced", [0, 1, 2, 3], {"batches_per_epoch": 0}, ValueError, "batches_per_epoch"),
        ("npair", [0, 0, 1, 1, 2, 3, 4, 5], {"batch_size": 6}, ValueError, "3 distinct classes with >= 2"),
        ("npair", [0, 0, 1, 1], {"batch_size": 3}, ValueError, "at least 2 pairs"),
        ("random", [0, 1, 2], {"batch_size": 4}, ValueError, "at least that many items"),
    ],
)
def test_bad_input_raises_clear_errors(name, labels, kwargs, error, match):
    arguments = {"batch_size": 4, "samples_per_class": 2, **kwargs}
    with pytest.raises(error, match=match):
        create_sampler(name, labels, **arguments)


def test_set_epoch_rejects_negative_epochs():
    sampler = RandomBatchSampler([0, 1, 2, 3], batch_size=2)
    with pytest.raises(ValueError, match="epoch must be >= 0"):
        sampler.set_epoch(-1)


def test_seeded_items_fetch_a_batch_as_item_by_item_and_leave_the_generator_alone():
    """SeededItems' batch fetch (the DataLoader's ``__getitems__``) gives each item the draws of
    its own seed, as fetching it alone does, and leaves the global generator's state as it was."""
    from losszoo.distributed import DistributedBatchSampler
    from losszoo.distributed.sampler import SeededItems

    class Noisy(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 12

        def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
            return torch.rand(3) + index, index

    items = SeededItems(Noisy())
    keys = [(5, 11), (2, 7), (5, 12), (0, 11)]
    torch.manual_seed(3)
    state = torch.get_rng_state()
    batch = items.__getitems__(keys)
    assert torch.equal(torch.get_rng_state(), state)
    alone = [items[key] for key in keys]
    assert all(torch.equal(a[0], b[0]) and a[1] == b[1] for a, b in zip(batch, alone))
    assert torch.allclose(batch[0][0] - 5, batch[3][0])  # same seed, same draws
    assert not torch.equal(batch[0][0], batch[2][0])

    sampler = DistributedBatchSampler(ClassBalancedSampler([i // 2 for i in range(12)], batch_size=4,
                                                           samples_per_class=2, seed=1), 0, 1, seed=1)
    loaded = next(iter(DataLoader(items, batch_sampler=sampler)))
    first = next(iter(sampler))
    assert torch.equal(loaded[0], torch.stack([items[key][0] for key in first]))
