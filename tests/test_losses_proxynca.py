"""Proxy-NCA: value against the paper's formula written as loops (both denominators, scale != 1),
numerical stability against an exact decimal reference, and pytorch-metric-learning's
ProxyNCALoss."""

from __future__ import annotations

import math
from decimal import Decimal, localcontext

import pytest
import torch
from pytorch_metric_learning.losses import ProxyNCALoss

from helpers import assert_matches_reference_with_weights, gaussian_batch, vary_class_weight_norms
from losszoo import ProxyNCA, create_loss, get_loss_spec

DIM, NUM_CLASSES, BATCH = 5, 7, 12


def random_batch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    return gaussian_batch(seed, BATCH, DIM, NUM_CLASSES)


def make_proxynca(**kwargs) -> ProxyNCA:
    loss = create_loss("proxynca", embedding_dim=DIM, num_classes=NUM_CLASSES, **kwargs).double()
    return vary_class_weight_norms(loss)


def scaled_unit(v: list[float], scale: float) -> list[float]:
    norm = math.sqrt(sum(a * a for a in v))
    return [scale * a / norm for a in v]


def squared_distances_to_proxies(x, proxies, scale) -> list[list[float]]:
    """d(x_i, p_z) = ||s x_i/|x_i| - s p_z/|p_z|||^2 for every sample i and proxy z."""
    units = [scaled_unit(p, scale) for p in proxies.tolist()]
    rows = []
    for xi in x.tolist():
        u = scaled_unit(xi, scale)
        rows.append([sum((a - b) ** 2 for a, b in zip(u, p)) for p in units])
    return rows


def reference_proxynca(x, labels, proxies, scale, include_positive) -> float:
    """-log( exp(-d(x, p_y)) / sum_{z != y} exp(-d(x, p_z)) ), averaged, one sample at a time."""
    total = 0.0
    for i, d in enumerate(squared_distances_to_proxies(x, proxies, scale)):
        y = int(labels[i])
        denominator = sum(math.exp(-dz) for z, dz in enumerate(d) if include_positive or z != y)
        total += -math.log(math.exp(-d[y]) / denominator)
    return total / len(labels)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("scale", [1.0, 3.0, 0.5])
@pytest.mark.parametrize("include_positive", [False, True])
def test_matches_paper_formula(seed, scale, include_positive):
    x, labels = random_batch(seed)
    loss = make_proxynca(scale=scale, include_positive=include_positive)
    expected = reference_proxynca(x, labels, loss.proxies.weight.detach(), scale, include_positive)
    assert loss(x, labels).item() == pytest.approx(expected, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("include_positive", [False, True])
def test_large_scale_is_stable(include_positive):
    # s = 30: distances up to 3600, exp(-d) underflows in float64. The reference is computed
    # exactly with decimal arithmetic; float32 must agree with it too (log-sum-exp).
    scale = 30.0
    x, labels = random_batch(9)
    loss = make_proxynca(scale=scale, include_positive=include_positive)
    with localcontext() as ctx:
        ctx.prec = 50
        total = Decimal(0)
        for i, d in enumerate(squared_distances_to_proxies(x, loss.proxies.weight.detach(), scale)):
            y = int(labels[i])
            terms = [(-Decimal(dz)).exp() for z, dz in enumerate(d) if include_positive or z != y]
            total += -((-Decimal(d[y])).exp() / sum(terms)).ln()
        expected = float(total / len(labels))
    assert loss(x, labels).item() == pytest.approx(expected, rel=1e-9)
    value32 = loss.float()(x.float(), labels)
    assert torch.isfinite(value32) and value32.item() == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("seed", [0, 5])
@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_matches_pytorch_metric_learning_with_positive_in_denominator(seed, scale):
    # PML's ProxyNCALoss is NCA with LpDistance(power=2) on normalized embeddings and proxies,
    # softmax over softmax_scale * (-d), positive included: our include_positive=True with
    # softmax_scale = scale**2 (we scale the vectors, PML scales the squared distance). PML
    # stores proxies as [C, D] like us. Differences: PML takes -log of the softmax (we use
    # log-softmax) and drops samples whose positive probability underflows to 0, which these
    # small scales never reach; the paper form (include_positive=False) has no PML counterpart.
    x, labels = random_batch(seed)
    ours = make_proxynca(scale=scale, include_positive=True)
    theirs = ProxyNCALoss(NUM_CLASSES, DIM, softmax_scale=scale**2).double()
    assert_matches_reference_with_weights(ours, theirs, theirs.proxies, x, labels)


def test_paper_form_differs_from_cross_entropy_form_by_log_of_negative_mass():
    # -log(e^-d_y / sum_{z!=y}) = -log(softmax_y) + log(1 - softmax_y): with the positive
    # excluded the loss is lower, and below 0 once the positive is much closer than the rest.
    x, labels = random_batch(3)
    paper = make_proxynca(scale=3.0)
    with_positive = make_proxynca(scale=3.0, include_positive=True)
    with_positive.load_state_dict(paper.state_dict())
    assert paper(x, labels) < with_positive(x, labels)
    with torch.no_grad():
        on_proxies = paper.proxies.weight[labels].clone()
    assert paper(on_proxies, labels) < 0 < with_positive(on_proxies, labels)


def test_spec_and_bad_hyperparameters():
    spec = get_loss_spec("proxynca")
    assert spec.cls is ProxyNCA and spec.sampler == "class_balanced" and spec.needs_num_classes
    assert spec.lr_multiplier == 1.0  # the paper's choice; see the note in proxynca.py
    assert dict(spec.defaults) == {"scale": 1.0, "include_positive": False}
    with pytest.raises(ValueError, match="scale"):
        ProxyNCA(DIM, NUM_CLASSES, scale=-1.0)
    with pytest.raises(ValueError, match="num_classes >= 2"):
        ProxyNCA(DIM, 1)
    one_class = ProxyNCA(DIM, 1, include_positive=True)
    assert torch.isfinite(one_class(torch.randn(3, DIM), torch.zeros(3, dtype=torch.long)))
