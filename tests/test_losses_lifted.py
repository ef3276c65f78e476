"""Lifted structured loss (Song et al. 2016): value against loops over the paper's equation and
against pytorch-metric-learning's LiftedStructureLoss.

Conventions aligned for PML: its LpDistance L2-normalizes by default, so the comparison passes
``LpDistance(normalize_embeddings=False)`` for our default (the paper does not normalize), and the
default distance for ``normalize=True``. PML averages relu(J_ij)^2 / 2 over *ordered* positive pairs;
J_ij is symmetric, so that equals our 1/(2|P|) sum over unordered pairs: the values agree exactly.
"""

from __future__ import annotations

import math

import pytest
import torch
from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.losses import LiftedStructureLoss

from losszoo import LiftedStructure, create_loss, get_loss_spec
from losszoo.losses.functional import masked_logsumexp


def reference_lifted(x: torch.Tensor, labels: torch.Tensor, alpha: float = 1.0) -> float:
    """Eqs. 3-4 with explicit loops; |P| counts unordered pairs i < j."""
    rows, ys = x.tolist(), labels.tolist()
    b = len(rows)

    def dist(i: int, j: int) -> float:
        return math.sqrt(sum((u - v) ** 2 for u, v in zip(rows[i], rows[j])))

    total, num_pairs = 0.0, 0
    for i in range(b):
        for j in range(i + 1, b):
            if ys[i] != ys[j]:
                continue
            num_pairs += 1
            s = sum(math.exp(alpha - dist(i, k)) for k in range(b) if ys[k] != ys[i])
            s += sum(math.exp(alpha - dist(j, l)) for l in range(b) if ys[l] != ys[j])
            if s == 0.0:
                continue
            total += max(0.0, math.log(s) + dist(i, j)) ** 2
    return total / (2 * num_pairs) if num_pairs else 0.0


BATCHES = {
    "balanced": torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]),
    "unbalanced": torch.tensor([4, 1, 4, 0, 1, 4, 2, 0, 3]),  # a singleton class, a class of 3
    "two_classes": torch.tensor([1, 0, 1, 0, 1]),
}


@pytest.mark.parametrize("scale", [0.3, 1.0])
@pytest.mark.parametrize("batch", BATCHES)
def test_matches_loops_over_the_equation(batch, scale):
    labels = BATCHES[batch]
    x = scale * torch.randn(len(labels), 5, dtype=torch.float64)
    value = LiftedStructure()(x, labels)
    assert value.dtype == torch.float64
    assert value.item() > 0
    assert value.item() == pytest.approx(reference_lifted(x, labels), rel=1e-12, abs=1e-14)


def test_alpha_and_normalize_options_match_loops():
    labels = BATCHES["unbalanced"]
    x = 3.0 * torch.randn(len(labels), 4, dtype=torch.float64)
    got = LiftedStructure(alpha=0.5, normalize=True)(x, labels).item()
    normalized = x / x.norm(dim=1, keepdim=True)
    assert got == pytest.approx(reference_lifted(normalized, labels, alpha=0.5), rel=1e-12)
    assert got != pytest.approx(reference_lifted(x, labels, alpha=0.5), rel=1e-3)


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("batch", BATCHES)
def test_matches_pytorch_metric_learning_value_and_gradient(batch, normalize):
    labels = BATCHES[batch]
    x = torch.randn(len(labels), 6, dtype=torch.float64, requires_grad=True)
    ours = LiftedStructure(normalize=normalize)(x, labels)
    (grad_ours,) = torch.autograd.grad(ours, x)
    distance = LpDistance() if normalize else LpDistance(normalize_embeddings=False)
    theirs = LiftedStructureLoss(neg_margin=1, pos_margin=0, distance=distance)(x, labels)
    (grad_theirs,) = torch.autograd.grad(theirs, x)
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad_ours, grad_theirs, rtol=1e-8, atol=1e-10)


def test_log_sum_exp_is_stable_where_the_naive_sum_underflows():
    labels = BATCHES["balanced"]
    x = 1000.0 * torch.randn(len(labels), 3, dtype=torch.float64)
    naive = torch.exp(1.0 - torch.cdist(x, x)[0, 2:]).sum()
    assert naive.item() == 0.0  # exp underflows: log(0) would be -inf
    ours = LiftedStructure()(x.requires_grad_(True), labels)
    theirs = LiftedStructureLoss(distance=LpDistance(normalize_embeddings=False))(x, labels)
    assert torch.isfinite(ours) and ours.item() > 0
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)
    ours.backward()
    assert torch.isfinite(x.grad).all()


def test_zero_with_gradient_path_without_positive_or_negative_pairs():
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    for labels in (torch.arange(5), torch.zeros(5, dtype=torch.long)):
        value = LiftedStructure()(x, labels)
        assert value.item() == 0.0
        (grad,) = torch.autograd.grad(value, x)
        assert torch.equal(grad, torch.zeros_like(x))


def test_registered_with_paper_defaults():
    spec = get_loss_spec("lifted")
    assert spec.cls is LiftedStructure and spec.sampler == "class_balanced"
    assert dict(spec.defaults) == {"alpha": 1.0, "normalize": False}
    assert not spec.needs_num_classes and not spec.needs_embedding_dim
    assert isinstance(create_loss("lifted", embedding_dim=8), LiftedStructure)


def test_masked_logsumexp_matches_subsets_and_is_safe_on_empty_rows():
    values = 50.0 * torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    mask = torch.rand(4, 6) < 0.5
    mask[0] = False
    mask[1, 0] = True
    out = masked_logsumexp(values, mask, dim=1)
    assert out[0].item() == float("-inf")
    for row in range(1, 4):
        if mask[row].any():
            torch.testing.assert_close(out[row], torch.logsumexp(values[row][mask[row]], dim=0))
        else:
            assert out[row].item() == float("-inf")
    (grad,) = torch.autograd.grad(out.clamp_min(-1e300).sum(), values)  # empty row 0 included
    assert torch.isfinite(grad).all() and (grad[~mask] == 0).all()
