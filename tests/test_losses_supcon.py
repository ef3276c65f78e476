"""SupCon (L_out): value against the paper's eq. 2 written as loops, against
pytorch-metric-learning's SupConLoss, anchors without positives, the spec."""

from __future__ import annotations

import math

import pytest
import torch
from pytorch_metric_learning.losses import SupConLoss

from helpers import clustered, forward_backward, gaussian_batch
from losszoo import SupCon, create_loss, get_loss_spec

DIM, NUM_CLASSES, BATCH = 5, 4, 12


def reference_supcon(x, labels, temperature) -> float:
    """Eq. 2 of Khosla et al. (2020), one anchor and one positive at a time, averaged over the
    anchors that have a positive."""
    unit = [[v / math.sqrt(sum(a * a for a in xi)) for v in xi] for xi in x.tolist()]
    labels = labels.tolist()

    def logit(i, j):
        return sum(a * b for a, b in zip(unit[i], unit[j])) / temperature

    terms = []
    for i, yi in enumerate(labels):
        positives = [p for p, yp in enumerate(labels) if yp == yi and p != i]
        if not positives:
            continue
        denominator = sum(math.exp(logit(i, a)) for a in range(len(labels)) if a != i)
        terms.append(-sum(math.log(math.exp(logit(i, p)) / denominator) for p in positives) / len(positives))
    return sum(terms) / len(terms)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("temperature", [0.1, 0.05, 1.0])
def test_matches_paper_formula(seed, temperature):
    x, labels = gaussian_batch(seed, BATCH, DIM, NUM_CLASSES)
    labels[-1] = NUM_CLASSES  # a singleton class: an anchor without a positive
    expected = reference_supcon(x, labels, temperature)
    assert SupCon(temperature)(x, labels).item() == pytest.approx(expected, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("temperature", [0.1, 0.01])
def test_matches_pytorch_metric_learning(seed, temperature):
    # Aligned: PML's SupConLoss is eq. 2 on cosine similarities with the same denominator (all
    # a != i). Its AvgNonZeroReducer averages over anchors with a non-zero loss, ours over the
    # anchors with a positive: the same set unless an anchor's only other sample is its single
    # positive (loss exactly 0), which these batches do not have. PML also returns 0 for a batch
    # without any negative pair, where ours still pulls positives against each other.
    g = torch.Generator().manual_seed(seed)
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 3, 4])
    x = clustered(labels, DIM, 0.7, g)
    value_ours, grad_ours = forward_backward(SupCon(temperature), x, labels)
    value_theirs, grad_theirs = forward_backward(SupConLoss(temperature), x, labels)
    torch.testing.assert_close(value_ours, value_theirs, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad_ours, grad_theirs, rtol=1e-9, atol=1e-12)


def test_no_positives_is_zero_with_a_gradient_path():
    x = torch.randn(5, DIM, dtype=torch.float64, requires_grad=True)
    value = SupCon()(x, torch.arange(5))
    value.backward()
    assert value.item() == 0.0 and (x.grad == 0).all()


def test_spec_and_bad_hyperparameters():
    spec = get_loss_spec("supcon")
    assert spec.cls is SupCon and spec.sampler == "class_balanced" and not spec.needs_num_classes
    assert dict(spec.defaults) == {"temperature": 0.1} and spec.global_batch
    # The paper's 0.1 and Musgrave et al.'s (2020, mlrc.md) best NTXent temperatures but SOP's 0.0002.
    assert all(t in spec.search_space["temperature"] for t in (0.1, 0.0091, 0.0219, 0.0415))
    for bad in (0.0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="temperature"):
            SupCon(bad)
    with pytest.raises(ValueError, match="temperature"):
        create_loss("supcon", embedding_dim=DIM, temperature="cold")
