"""Multi-class N-pair loss (Sohn 2016): value against loops over the equation and against
pytorch-metric-learning's NPairsLoss.

Conventions aligned for PML: NPairsLoss has no L2 penalty (PML would add it as a separate
embedding regularizer), so it is compared with ``NPair(l2_reg=0)``; its DotProductSimilarity
L2-normalizes by default, so it gets ``DotProductSimilarity(normalize_embeddings=False)`` (Sohn's
embeddings are unnormalized). PML keeps, per class, the first anchor-positive pair in row-major
order of all positive pairs, i.e. the class's first two samples: the same pairs as ours.
"""

from __future__ import annotations

import math

import pytest
import torch
from pytorch_metric_learning.distances import DotProductSimilarity
from pytorch_metric_learning.losses import NPairsLoss

from losszoo import NPair, create_loss, get_loss_spec
from losszoo.losses.npair import npair_indices


def reference_pairs(labels: torch.Tensor) -> list[tuple[int, int]]:
    """First two occurrences of every class seen at least twice, by a plain scan."""
    seen: dict[int, list[int]] = {}
    for index, label in enumerate(labels.tolist()):
        seen.setdefault(label, []).append(index)
    return [(idx[0], idx[1]) for _, idx in sorted(seen.items()) if len(idx) >= 2]


def reference_npair(x: torch.Tensor, labels: torch.Tensor, l2_reg: float) -> float:
    rows = x.tolist()
    pairs = reference_pairs(labels)
    n = len(pairs)
    if n < 2:
        return 0.0

    def dot(u: list[float], v: list[float]) -> float:
        return sum(a * b for a, b in zip(u, v))

    npair_term = 0.0
    for i, (a_i, p_i) in enumerate(pairs):
        inner = sum(
            math.exp(dot(rows[a_i], rows[p_j]) - dot(rows[a_i], rows[p_i]))
            for j, (_, p_j) in enumerate(pairs)
            if j != i
        )
        npair_term += math.log(1.0 + inner)
    mean_sq_anchor = sum(dot(rows[a], rows[a]) for a, _ in pairs) / n
    mean_sq_positive = sum(dot(rows[p], rows[p]) for _, p in pairs) / n
    return npair_term / n + 0.25 * l2_reg * (mean_sq_anchor + mean_sq_positive)


BATCHES = {
    # what the npair sampler yields: N classes x 2, pairs adjacent
    "npair_sampler": torch.tensor([3, 3, 0, 0, 5, 5, 1, 1]),
    "shuffled": torch.tensor([2, 0, 1, 0, 2, 1, 3, 3]),
    # extra samples of a class, singleton classes: ignored
    "ragged": torch.tensor([1, 4, 1, 0, 1, 2, 4, 0, 6, 4]),
}


def test_pairs_are_the_first_two_occurrences_per_class():
    for labels in BATCHES.values():
        anchors, positives = npair_indices(labels)
        assert list(zip(anchors.tolist(), positives.tolist())) == reference_pairs(labels)
    anchors, positives = npair_indices(torch.arange(4))
    assert anchors.numel() == positives.numel() == 0


@pytest.mark.parametrize("l2_reg", [0.0, 0.002, 0.5])
@pytest.mark.parametrize("batch", BATCHES)
def test_matches_loops_over_the_equation(batch, l2_reg):
    labels = BATCHES[batch]
    x = 2.0 * torch.randn(len(labels), 5, dtype=torch.float64)
    value = NPair(l2_reg=l2_reg)(x, labels)
    assert value.dtype == torch.float64
    assert value.item() == pytest.approx(reference_npair(x, labels, l2_reg), rel=1e-12)


@pytest.mark.parametrize("batch", BATCHES)
def test_matches_pytorch_metric_learning_without_the_penalty(batch):
    labels = BATCHES[batch]
    x = 2.0 * torch.randn(len(labels), 6, dtype=torch.float64, requires_grad=True)
    ours = NPair(l2_reg=0.0)(x, labels)
    (grad_ours,) = torch.autograd.grad(ours, x)
    pml = NPairsLoss(distance=DotProductSimilarity(normalize_embeddings=False))
    theirs = pml(x, labels)
    (grad_theirs,) = torch.autograd.grad(theirs, x)
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad_ours, grad_theirs, rtol=1e-8, atol=1e-10)
    # The penalty is the only difference the default l2_reg makes.
    penalized = NPair()(x, labels)
    pairs = torch.tensor(reference_pairs(labels))
    penalty = 0.25 * 0.002 * (x[pairs[:, 0]].square().sum(1).mean() + x[pairs[:, 1]].square().sum(1).mean())
    torch.testing.assert_close(penalized, theirs + penalty, rtol=1e-10, atol=1e-12)


def test_embeddings_are_not_normalized():
    labels = BATCHES["npair_sampler"]
    x = torch.randn(len(labels), 4, dtype=torch.float64)
    loss = NPair(l2_reg=0.0)
    assert loss(3.0 * x, labels).item() != pytest.approx(loss(x, labels).item(), rel=1e-3)


def test_fewer_than_two_pairs_give_zero_with_gradient_path():
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    for labels in (torch.tensor([0, 1, 0, 2, 0]), torch.arange(5)):
        value = NPair()(x, labels)
        assert value.item() == 0.0
        (grad,) = torch.autograd.grad(value, x)
        assert torch.equal(grad, torch.zeros_like(x))


def test_rejects_negative_l2_reg():
    with pytest.raises(ValueError, match="l2_reg"):
        NPair(l2_reg=-1.0)


def test_registered_with_the_npair_sampler():
    spec = get_loss_spec("npair")
    assert spec.cls is NPair and spec.sampler == "npair"
    assert dict(spec.defaults) == {"l2_reg": 0.002}
    assert isinstance(create_loss("npair", embedding_dim=8), NPair)
