"""Multi-Similarity: value against the paper's eq. 11-13 written as loops, against
pytorch-metric-learning's MultiSimilarityLoss + MultiSimilarityMiner, mined pairs, the spec."""

from __future__ import annotations

import math

import pytest
import torch
from pytorch_metric_learning.losses import MultiSimilarityLoss
from pytorch_metric_learning.miners import MultiSimilarityMiner

from helpers import clustered, forward_backward, gaussian_batch
from losszoo import MultiSimilarity, create_loss, get_loss_spec

DIM, NUM_CLASSES, BATCH = 5, 4, 12


def reference_ms(x, labels, alpha, beta, base, epsilon) -> float:
    """Eq. 11-13 of Wang et al. (2019), one anchor and one pair at a time."""
    unit = [[v / math.sqrt(sum(a * a for a in xi)) for v in xi] for xi in x.tolist()]
    labels = labels.tolist()
    total = 0.0
    for i, yi in enumerate(labels):
        sim = [sum(a * b for a, b in zip(unit[i], u)) for u in unit]
        pos = [sim[k] for k, y in enumerate(labels) if y == yi and k != i]
        neg = [sim[k] for k, y in enumerate(labels) if y != yi]
        kept_neg = [s for s in neg if pos and s + epsilon > min(pos)]  # eq. 11
        kept_pos = [s for s in pos if neg and s - epsilon < max(neg)]  # eq. 12
        total += math.log(1 + sum(math.exp(-alpha * (s - base)) for s in kept_pos)) / alpha
        total += math.log(1 + sum(math.exp(beta * (s - base)) for s in kept_neg)) / beta
    return total / len(labels)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("alpha, beta, base, epsilon", [(2, 50, 1.0, 0.1), (2, 40, 0.5, 0.1), (10, 100, 0.7, 0.5)])
def test_matches_paper_formula(seed, alpha, beta, base, epsilon):
    x, labels = gaussian_batch(seed, BATCH, DIM, NUM_CLASSES)
    loss = MultiSimilarity(alpha=alpha, beta=beta, base=base, epsilon=epsilon)
    expected = reference_ms(x, labels, alpha, beta, base, epsilon)
    assert loss(x, labels).item() == pytest.approx(expected, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 3, 4])
@pytest.mark.parametrize("base, epsilon", [(0.5, 0.1), (1.0, 0.3)])
def test_matches_pytorch_metric_learning_with_its_miner(seed, base, epsilon):
    # Aligned: PML splits eq. 13 from the mining of eq. 11-12 (MultiSimilarityMiner(epsilon)
    # feeding MultiSimilarityLoss(alpha, beta, base)); with that miner the two are the same
    # equation, mean over all anchors (MeanReducer), with the same strict inequalities. PML's
    # loss names lambda "base" (default 0.5; the paper's text says 1): we pass it explicitly.
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(NUM_CLASSES).repeat_interleave(3)
    x = clustered(labels, DIM, 0.8, g)
    ours = MultiSimilarity(alpha=2.0, beta=50.0, base=base, epsilon=epsilon)
    theirs, miner = MultiSimilarityLoss(alpha=2, beta=50, base=base), MultiSimilarityMiner(epsilon)
    value_ours, grad_ours = forward_backward(ours, x, labels)
    assert value_ours > 0  # some pairs survive the mining
    x_theirs = x.clone().requires_grad_()
    value_theirs = theirs(x_theirs, labels, miner(x_theirs, labels))
    value_theirs.backward()
    torch.testing.assert_close(value_ours, value_theirs, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad_ours, x_theirs.grad, rtol=1e-9, atol=1e-12)


def test_given_pairs_replace_the_mining_as_in_pytorch_metric_learning():
    x, labels = gaussian_batch(5, BATCH, DIM, NUM_CLASSES)
    pairs = MultiSimilarityMiner(0.3)(x, labels)  # any miner's pairs
    ours = MultiSimilarity(base=0.5)(x, labels, pairs)
    theirs = MultiSimilarityLoss(alpha=2, beta=50, base=0.5)(x, labels, pairs)
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)


def test_easy_pairs_are_mined_out():
    # Two tight, far-apart classes: no negative is within epsilon of a positive, so nothing is
    # kept and the loss is 0, with a gradient path.
    labels = torch.tensor([0, 0, 1, 1])
    x = torch.tensor([[1.0, 0.0], [1.0, 0.01], [0.0, 1.0], [0.01, 1.0]], dtype=torch.float64, requires_grad=True)
    value = MultiSimilarity()(x, labels)
    value.backward()
    assert value.item() == 0.0 and (x.grad == 0).all()


def test_spec_and_bad_hyperparameters():
    spec = get_loss_spec("ms")
    assert spec.cls is MultiSimilarity and spec.sampler == "class_balanced"
    assert dict(spec.defaults) == {"alpha": 2.0, "beta": 50.0, "base": 1.0, "epsilon": 0.1}
    # The paper's, the authors' code's and Musgrave et al.'s (2020, mlrc.md, with the MS miner) best.
    best = {"alpha": (2, 17.97, 7.49, 15.94, 11.63), "beta": (50, 40, 75.66, 47.99, 156.61, 55.20),
            "base": (1.0, 0.5, 0.77, 0.63, 0.72, 0.85), "epsilon": (0.1, 0.39, 0.72, 0.34, 0.42)}
    assert all(value in spec.search_space[name] for name, values in best.items() for value in values)
    for name, bad in (("alpha", 0.0), ("beta", -1.0), ("base", 1.5), ("epsilon", -0.1)):
        with pytest.raises(ValueError, match=name):
            MultiSimilarity(**{name: bad})
