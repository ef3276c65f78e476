"""Contrastive loss: value against a loop over the pairs i < j (Hadsell et al. 2006) and
against pytorch-metric-learning's ContrastiveLoss, compared pair by pair."""

from __future__ import annotations


import pytest
import torch
from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.losses import ContrastiveLoss
from pytorch_metric_learning.reducers import DoNothingReducer

from helpers import clustered, unit_distance
from losszoo import Contrastive, create_loss, get_loss_spec

DIM = 3


def random_batch(seed: int, class_balanced: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Clustered embeddings, so that some negative pairs lie inside the margin."""
    g = torch.Generator().manual_seed(seed)
    if class_balanced:
        labels = torch.arange(4).repeat_interleave(3)
    else:
        labels = torch.randint(5, (11,), generator=g)
    return clustered(labels, DIM, 0.8, g), labels


def reference_contrastive(x, labels, margin) -> tuple[float, int]:
    """Mean over unordered pairs i < j of d^2 (same label) or relu(m - d)^2; and how many
    negative pairs lie inside the margin."""
    points, y = x.tolist(), labels.tolist()
    terms, active_negatives = [], 0
    for i in range(len(y)):
        for j in range(i + 1, len(y)):
            d = unit_distance(points[i], points[j])
            if y[i] == y[j]:
                terms.append(d**2)
            else:
                terms.append(max(margin - d, 0.0) ** 2)
                active_negatives += d < margin
    return sum(terms) / len(terms), active_negatives


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("class_balanced", [True, False])
@pytest.mark.parametrize("margin", [0.5, 1.0])
def test_matches_pair_loop(margin, class_balanced, seed):
    x, labels = random_batch(seed, class_balanced)
    expected, active_negatives = reference_contrastive(x, labels, margin)
    assert active_negatives > 0, "test data must have negatives inside the margin"
    loss = create_loss("contrastive", embedding_dim=DIM, margin=margin)
    assert loss(x, labels).item() == pytest.approx(expected, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 4])
def test_matches_pytorch_metric_learning_pair_by_pair(seed):
    # PML's ContrastiveLoss(pos_margin=0, neg_margin=m) has pair terms relu(d - 0) and
    # relu(m - d), not squared, and by default (AvgNonZeroReducer) averages positive and
    # negative pairs separately over their non-zero terms, then adds the two means. We align
    # what can be aligned and compare per-pair terms over the same ordered pairs i != j
    # (DoNothingReducer): positives with LpDistance(power=2), which gives d^2; negatives with
    # the default LpDistance() (Euclidean on normalized embeddings), squared here. Our loss is
    # then the plain mean of all those terms.
    x, labels = random_batch(seed)
    margin = 0.5
    kwargs = dict(pos_margin=0, neg_margin=margin, reducer=DoNothingReducer())
    squared = ContrastiveLoss(distance=LpDistance(power=2), **kwargs)(x, labels)["pos_loss"]
    plain = ContrastiveLoss(**kwargs)(x, labels)["neg_loss"]
    positive_terms, negative_terms = squared["losses"], plain["losses"] ** 2
    assert len(positive_terms) > 0 and (negative_terms > 0).any()
    assert len(positive_terms) + len(negative_terms) == len(labels) * (len(labels) - 1)
    expected = torch.cat([positive_terms, negative_terms]).mean()
    value = Contrastive(margin=margin)(x, labels)
    torch.testing.assert_close(value, expected, rtol=1e-10, atol=1e-12)


def test_single_sample_gives_zero_with_a_gradient_path():
    x = torch.randn(1, DIM, dtype=torch.float64, requires_grad=True)
    value = Contrastive()(x, torch.tensor([2]))
    assert value.item() == 0.0 and value.requires_grad


def test_spec_and_bad_hyperparameters():
    spec = get_loss_spec("contrastive")
    assert spec.cls is Contrastive and spec.sampler == "class_balanced"
    assert not spec.needs_num_classes
    assert dict(spec.defaults) == {"margin": 1.0}
    with pytest.raises(ValueError, match="margin"):
        Contrastive(margin=-0.5)
