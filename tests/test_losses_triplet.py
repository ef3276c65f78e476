"""Triplet loss: every mining mode against loops over triplets written from FaceNet / Hermans
et al., against pytorch-metric-learning's TripletMarginLoss with its miners, and the
zero-loss cases."""

from __future__ import annotations

import math

import pytest
import torch
from pytorch_metric_learning.losses import TripletMarginLoss
from pytorch_metric_learning.miners import BatchHardMiner, TripletMarginMiner

from helpers import clustered, unit_distance
from losszoo import Triplet, create_loss, get_loss_spec

DIM = 4


def random_batch(seed: int, class_balanced: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Clustered embeddings: classes overlap enough for every mining mode to find triplets."""
    g = torch.Generator().manual_seed(seed)
    if class_balanced:
        labels = torch.arange(4).repeat_interleave(4)
    else:  # some classes with a single sample (anchors without positives)
        labels = torch.randint(6, (14,), generator=g)
    return clustered(labels, DIM, 0.7, g), labels


def reference_triplet(x, labels, margin, mining) -> tuple[float, int]:
    """Mean of the non-zero relu(d_ap - d_an + margin) over mined triplets, and their count."""
    points, y, n = x.tolist(), labels.tolist(), len(labels)
    d = [[unit_distance(points[i], points[j]) for j in range(n)] for i in range(n)]
    losses = []
    for a in range(n):
        positives = [p for p in range(n) if p != a and y[p] == y[a]]
        negatives = [q for q in range(n) if y[q] != y[a]]
        if mining == "hard":
            if positives and negatives:
                hardest_p = max(d[a][p] for p in positives)
                hardest_n = min(d[a][q] for q in negatives)
                losses.append(max(hardest_p - hardest_n + margin, 0.0))
            continue
        for p in positives:
            for q in negatives:
                if mining == "semihard" and not d[a][p] < d[a][q] < d[a][p] + margin:
                    continue
                losses.append(max(d[a][p] - d[a][q] + margin, 0.0))
    nonzero = [v for v in losses if v > 0]
    return (sum(nonzero) / len(nonzero) if nonzero else 0.0), len(nonzero)


MODES = ["semihard", "hard", "all"]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("class_balanced", [True, False])
@pytest.mark.parametrize("margin", [0.2, 0.5])
@pytest.mark.parametrize("mining", MODES)
def test_matches_triplet_loops(mining, margin, class_balanced, seed):
    x, labels = random_batch(seed, class_balanced)
    expected, count = reference_triplet(x, labels, margin, mining)
    assert count > 0, "test data must contain mined triplets with non-zero loss"
    loss = create_loss("triplet", embedding_dim=DIM, margin=margin, mining=mining)
    assert loss(x, labels).item() == pytest.approx(expected, rel=1e-10, abs=1e-12)


def pml_triplet(mining: str, margin: float):
    # The miners' default distance is LpDistance() like the loss's: Euclidean (power 1) on
    # L2-normalized embeddings, as ours. TripletMarginLoss reduces with AvgNonZeroReducer:
    # the mean over triplets with non-zero loss, as ours.
    loss = TripletMarginLoss(margin=margin, triplets_per_anchor="all")
    if mining == "semihard":
        # PML keeps 0 < d_an - d_ap <= margin; we keep d_an < d_ap + margin. The triplets at
        # d_an = d_ap + margin have zero loss and drop out of both averages.
        return loss, TripletMarginMiner(margin=margin, type_of_triplets="semihard")
    if mining == "hard":
        return loss, BatchHardMiner()  # per anchor: farthest positive, closest negative
    return loss, None  # no miner + triplets_per_anchor="all": every valid triplet


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("class_balanced", [True, False])
@pytest.mark.parametrize("mining", MODES)
def test_matches_pytorch_metric_learning(mining, class_balanced, seed):
    x, labels = random_batch(seed, class_balanced)
    loss, miner = pml_triplet(mining, 0.2)
    x_ours, x_theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    value_theirs = loss(x_theirs, labels, miner(x_theirs, labels) if miner else None)
    value_ours = Triplet(margin=0.2, mining=mining)(x_ours, labels)
    value_ours.backward()
    value_theirs.backward()
    torch.testing.assert_close(value_ours, value_theirs, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(x_ours.grad, x_theirs.grad, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("mining", MODES)
def test_satisfied_batch_gives_zero_with_a_gradient_path(mining):
    # Two orthogonal classes: d_ap = 0, d_an = sqrt(2) > d_ap + margin for every triplet.
    x = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 3.0]], dtype=torch.float64)
    x.requires_grad_(True)
    value = Triplet(mining=mining)(x, torch.tensor([0, 0, 1, 1]))
    assert value.item() == 0.0 and value.requires_grad
    value.backward()
    assert torch.equal(x.grad, torch.zeros_like(x))
    # With a margin beyond sqrt(2) every triplet violates it (semihard too: d_ap < d_an < d_ap + 2).
    wide_margin = Triplet(margin=2.0, mining=mining)(x, torch.tensor([0, 0, 1, 1]))
    assert wide_margin.item() == pytest.approx(2.0 - math.sqrt(2.0))


def test_semihard_ignores_hard_negatives():
    # The negative is closer than the positive (d_an < d_ap): "all" and "hard" count it,
    # semihard mining does not, and finds nothing else.
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1])
    assert Triplet(mining="all")(x, labels).item() > 0
    assert Triplet(mining="hard")(x, labels).item() > 0
    assert Triplet(mining="semihard")(x, labels).item() == 0.0


def test_spec_and_bad_hyperparameters():
    spec = get_loss_spec("triplet")
    assert spec.cls is Triplet and spec.sampler == "class_balanced" and not spec.needs_num_classes
    assert dict(spec.defaults) == {"margin": 0.2, "mining": "semihard"}
    with pytest.raises(ValueError, match="mining must be one of"):
        Triplet(mining="easy")
    with pytest.raises(ValueError, match="margin"):
        Triplet(margin=-1.0)
