"""CosFace / LMCL: value against the paper's eq. 4 written as loops, against
pytorch-metric-learning's CosFaceLoss, and class subsampling."""

from __future__ import annotations

import math

import pytest
import torch
from pytorch_metric_learning.losses import CosFaceLoss

from helpers import assert_matches_reference_with_weights, gaussian_batch, vary_class_weight_norms
from losszoo import CosFace, NormSoftmax, create_loss, get_loss_spec

DIM, NUM_CLASSES, BATCH = 5, 7, 12


def random_batch(seed: int, batch: int = BATCH) -> tuple[torch.Tensor, torch.Tensor]:
    return gaussian_batch(seed, batch, DIM, NUM_CLASSES)


def make_cosface(**kwargs) -> CosFace:
    loss = create_loss("cosface", embedding_dim=DIM, num_classes=NUM_CLASSES, **kwargs).double()
    return vary_class_weight_norms(loss)


def reference_cosface(x, labels, weights, scale, margin) -> float:
    """Eq. 4 of Wang et al. (2018), one sample and one class at a time."""
    total = 0.0
    for i in range(len(labels)):
        xi = x[i].tolist()
        x_norm = math.sqrt(sum(v * v for v in xi))
        cosines = []
        for w in weights.tolist():
            w_norm = math.sqrt(sum(v * v for v in w))
            cosines.append(sum(a * b for a, b in zip(xi, w)) / (x_norm * w_norm))
        y = int(labels[i])
        target = math.exp(scale * (cosines[y] - margin))
        others = sum(math.exp(scale * c) for j, c in enumerate(cosines) if j != y)
        total += -math.log(target / (target + others))
    return total / len(labels)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("scale, margin", [(64.0, 0.35), (30.0, 0.2), (1.0, 0.0), (8.0, 0.9)])
def test_matches_paper_formula(seed, scale, margin):
    x, labels = random_batch(seed)
    loss = make_cosface(scale=scale, margin=margin)
    expected = reference_cosface(x, labels, loss.proxies.weight.detach(), scale, margin)
    assert loss(x, labels).item() == pytest.approx(expected, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 3])
def test_matches_pytorch_metric_learning(seed):
    # Aligned: PML's CosFaceLoss(num_classes, embedding_size, margin, scale) has the same
    # equation and mean over the batch (MeanReducer, no weight regularizer). It stores W as
    # [D, C], ours as [C, D]: we copy the transpose. No convention differs.
    x, labels = random_batch(seed)
    ours = make_cosface()
    theirs = CosFaceLoss(NUM_CLASSES, DIM, margin=0.35, scale=64).double()
    assert_matches_reference_with_weights(ours, theirs, theirs.W, x, labels, transposed=True)


def test_zero_margin_is_normsoftmax_with_temperature_one_over_scale():
    x, labels = random_batch(4)
    cosface = make_cosface(scale=20.0, margin=0.0)
    normsoftmax = NormSoftmax(DIM, NUM_CLASSES, temperature=1 / 20.0).double()
    normsoftmax.load_state_dict(cosface.state_dict())
    torch.testing.assert_close(cosface(x, labels), normsoftmax(x, labels), rtol=1e-12, atol=0)
    # ... and a positive margin only makes the target class harder.
    harder = make_cosface(scale=20.0, margin=0.35)
    harder.load_state_dict(cosface.state_dict())
    assert harder(x, labels) > cosface(x, labels)


def test_class_subsample_softmax_runs_over_the_sampled_classes():
    x, labels = random_batch(5)
    loss = make_cosface(class_subsample=0.5)
    assert loss.sparse_gradients and not make_cosface().sparse_gradients
    torch.manual_seed(7)
    rows, targets = loss.proxies.select(labels, 0.5)
    torch.manual_seed(7)
    value = loss(x, labels)
    weights = rows.detach().to_dense() if rows.is_sparse else rows.detach()
    assert weights.shape[0] == max(math.ceil(0.5 * NUM_CLASSES), labels.unique().numel())
    expected = reference_cosface(x, targets, weights, 64.0, 0.35)
    assert value.item() == pytest.approx(expected, rel=1e-10)
    # Fewer classes in the denominator: never a larger loss than with all of them.
    assert value.item() <= loss.eval()(x, labels).item() + 1e-12


def test_eval_mode_uses_every_class():
    x, labels = random_batch(6)
    loss = make_cosface(class_subsample=0.3).eval()
    expected = reference_cosface(x, labels, loss.proxies.weight.detach(), 64.0, 0.35)
    assert loss(x, labels).item() == pytest.approx(expected, rel=1e-10)


def test_spec_and_bad_hyperparameters():
    spec = get_loss_spec("lmcl")
    assert spec.name == "cosface" and spec.cls is CosFace and spec.sampler == "class_balanced"
    assert spec.needs_num_classes and spec.lr_multiplier == 1.0
    assert dict(spec.defaults) == {"scale": 64.0, "margin": 0.35, "class_subsample": 1.0}
    with pytest.raises(ValueError, match="scale"):
        CosFace(DIM, NUM_CLASSES, scale=0.0)
    with pytest.raises(ValueError, match="margin"):
        CosFace(DIM, NUM_CLASSES, margin=-0.1)
    with pytest.raises(ValueError, match="class_subsample"):
        CosFace(DIM, NUM_CLASSES, class_subsample=0.0)
