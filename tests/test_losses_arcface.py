"""ArcFace: value against the paper's eq. 3 (with its code's threshold) written as loops,
against pytorch-metric-learning's ArcFaceLoss, the easy-margin option, the spec."""

from __future__ import annotations

import math

import pytest
import torch
from pytorch_metric_learning.losses import ArcFaceLoss

from helpers import assert_matches_reference_with_weights, gaussian_batch, vary_class_weight_norms
from losszoo import ArcFace, CosFace, create_loss, get_loss_spec

DIM, NUM_CLASSES, BATCH = 5, 7, 12


def make_arcface(**kwargs) -> ArcFace:
    loss = create_loss("arcface", embedding_dim=DIM, num_classes=NUM_CLASSES, **kwargs).double()
    return vary_class_weight_norms(loss)


def reference_arcface(x, labels, weights, scale, margin, easy_margin=False) -> float:
    """Eq. 3 of Deng et al. (2019) on angles, one sample and one class at a time; past
    theta = pi - m (easy margin: past theta = pi / 2) the paper's code's fallback."""
    total = 0.0
    for xi, y in zip(x.tolist(), labels.tolist()):
        angles = []
        for w in weights.tolist():
            dot = sum(a * b for a, b in zip(xi, w))
            angles.append(math.acos(dot / math.sqrt(sum(a * a for a in xi) * sum(b * b for b in w))))
        theta = angles[y]
        if easy_margin:
            target = math.cos(theta + margin) if theta < math.pi / 2 else math.cos(theta)
        elif theta < math.pi - margin:
            target = math.cos(theta + margin)
        else:
            target = math.cos(theta) - margin * math.sin(margin)
        others = sum(math.exp(scale * math.cos(a)) for j, a in enumerate(angles) if j != y)
        total += -math.log(math.exp(scale * target) / (math.exp(scale * target) + others))
    return total / len(labels)


def with_obtuse_targets(x, labels, weights):
    """Half of the samples pointed away from their class weight, so theta_y > pi - m for them."""
    x = x.clone()
    unit = weights / weights.norm(dim=1, keepdim=True)
    x[::2] = -unit[labels[::2]] + 0.05 * x[::2]
    return x


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("scale, margin", [(64.0, 0.5), (30.0, 0.3), (2.0, 1.2)])
@pytest.mark.parametrize("easy_margin", [False, True])
def test_matches_paper_formula(seed, scale, margin, easy_margin):
    x, labels = gaussian_batch(seed, BATCH, DIM, NUM_CLASSES)
    loss = make_arcface(scale=scale, margin=margin, easy_margin=easy_margin)
    weights = loss.proxies.weight.detach()
    x = with_obtuse_targets(x, labels, weights)
    expected = reference_arcface(x, labels, weights, scale, margin, easy_margin)
    assert loss(x, labels).item() == pytest.approx(expected, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 3])
def test_matches_pytorch_metric_learning(seed):
    # Aligned: PML's ArcFaceLoss takes the margin in degrees (we convert 0.5 rad) and stores W as
    # [D, C] (we copy the transpose). Its fallback past theta = pi - m is the same as ours (the
    # paper's code's); it computes theta with acos on the cosine clamped to 1 - 1e-7, ours
    # cos(theta + m) from cos and sin, equal in float64 away from cos = +-1.
    x, labels = gaussian_batch(seed, BATCH, DIM, NUM_CLASSES)
    ours = make_arcface()
    x = with_obtuse_targets(x, labels, ours.proxies.weight.detach())
    theirs = ArcFaceLoss(NUM_CLASSES, DIM, margin=math.degrees(0.5), scale=64).double()
    assert_matches_reference_with_weights(ours, theirs, theirs.W, x, labels, transposed=True, rtol=1e-8, atol=1e-10)


def test_target_logit_decreases_in_the_angle_through_the_threshold():
    loss = make_arcface(scale=1.0, margin=0.5)
    angles = torch.linspace(0.0, math.pi, 201, dtype=torch.float64)
    logits = loss.logits(torch.cos(angles)[:, None], torch.zeros(201, dtype=torch.long)).squeeze(1)
    assert (logits.diff() < 0).all()


def test_zero_margin_is_cosface_with_zero_margin():
    x, labels = gaussian_batch(4, BATCH, DIM, NUM_CLASSES)
    arcface = make_arcface(scale=20.0, margin=0.0)
    cosface = CosFace(DIM, NUM_CLASSES, scale=20.0, margin=0.0).double()
    cosface.load_state_dict(arcface.state_dict())
    torch.testing.assert_close(arcface(x, labels), cosface(x, labels), rtol=1e-12, atol=0)


def test_spec_and_bad_hyperparameters():
    spec = get_loss_spec("arcface")
    assert spec.cls is ArcFace and spec.sampler == "class_balanced" and spec.needs_num_classes
    assert dict(spec.defaults) == {"scale": 64.0, "margin": 0.5, "easy_margin": False, "class_subsample": 1.0}
    for name, bad in (("scale", 0.0), ("margin", -0.1), ("margin", math.pi), ("class_subsample", 1.5)):
        with pytest.raises(ValueError, match=name):
            ArcFace(DIM, NUM_CLASSES, **{name: bad})
    # Musgrave et al. (2020, mlrc.md) best margins (degrees) and scales, the paper's values.
    space = spec.search_space
    assert all(math.radians(m) in space["margin"] for m in (23.22, 20.52, 18.63, 23.14, 28.65))
    assert all(s in space["scale"] for s in (100.0, 49.50, 220.3, 78.86, 64.0))
    with pytest.raises(ValueError, match="easy_margin"):
        create_loss("arcface", embedding_dim=DIM, num_classes=NUM_CLASSES, easy_margin="maybe")
