"""Proxy-Anchor: value against the paper's eq. 4 written as loops, against
pytorch-metric-learning's ProxyAnchorLoss (value, embedding and proxy gradients), the spec."""

from __future__ import annotations

import math

import pytest
import torch
from pytorch_metric_learning.losses import ProxyAnchorLoss

from helpers import assert_matches_reference_with_weights, gaussian_batch, vary_class_weight_norms
from losszoo import ProxyAnchor, create_loss, get_loss_spec

DIM, NUM_CLASSES, BATCH = 5, 7, 12


def make_proxyanchor(**kwargs) -> ProxyAnchor:
    loss = create_loss("proxyanchor", embedding_dim=DIM, num_classes=NUM_CLASSES, **kwargs).double()
    return vary_class_weight_norms(loss)


def cosine(u: list[float], v: list[float]) -> float:
    return sum(a * b for a, b in zip(u, v)) / math.sqrt(sum(a * a for a in u) * sum(b * b for b in v))


def reference_proxyanchor(x, labels, proxies, alpha, delta) -> float:
    """Eq. 4 of Kim et al. (2020), one proxy and one sample at a time."""
    x, labels, proxies = x.tolist(), labels.tolist(), proxies.tolist()
    pull = push = 0.0
    with_positives = 0
    for c, p in enumerate(proxies):
        positives = [cosine(xi, p) for xi, y in zip(x, labels) if y == c]
        negatives = [cosine(xi, p) for xi, y in zip(x, labels) if y != c]
        if positives:
            with_positives += 1
            pull += math.log(1 + sum(math.exp(-alpha * (s - delta)) for s in positives))
        push += math.log(1 + sum(math.exp(alpha * (s + delta)) for s in negatives))
    return pull / with_positives + push / len(proxies)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("alpha, delta", [(32.0, 0.1), (8.0, 0.0), (64.0, 0.3)])
def test_matches_paper_formula(seed, alpha, delta):
    x, labels = gaussian_batch(seed, BATCH, DIM, NUM_CLASSES)
    loss = make_proxyanchor(alpha=alpha, delta=delta)
    expected = reference_proxyanchor(x, labels, loss.proxies.weight.detach(), alpha, delta)
    assert loss(x, labels).item() == pytest.approx(expected, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("seed, batch", [(0, BATCH), (3, 5), (4, 1)])
def test_matches_pytorch_metric_learning(seed, batch):
    # Aligned: PML's ProxyAnchorLoss(num_classes, embedding_size, margin=delta, alpha) is eq. 4
    # with the same divisors (proxies with positives; all proxies) and stores the proxies as
    # [C, D] like ours: we copy them. PML initialises them with kaiming_normal_, ours uniformly
    # like nn.Linear; both are normalized before use, so only the draw differs, not the loss.
    x, labels = gaussian_batch(seed, batch, DIM, NUM_CLASSES)
    ours = make_proxyanchor()
    theirs = ProxyAnchorLoss(NUM_CLASSES, DIM, margin=0.1, alpha=32).double()
    assert_matches_reference_with_weights(ours, theirs, theirs.proxies, x, labels)


def test_gradcheck_includes_the_proxies():
    x, labels = gaussian_batch(5, 6, DIM, NUM_CLASSES)
    loss = make_proxyanchor(alpha=4.0)
    proxies = loss.proxies.weight.detach().clone().requires_grad_()

    def fn(x, proxies):
        return torch.func.functional_call(loss, {"proxies.weight": proxies}, (x, labels))

    assert torch.autograd.gradcheck(fn, (x.requires_grad_(), proxies), eps=1e-6, atol=1e-6)


def test_spec_and_bad_hyperparameters():
    spec = get_loss_spec("proxyanchor")
    assert spec.cls is ProxyAnchor and spec.sampler == "random" and spec.needs_num_classes
    assert spec.lr_multiplier == 100.0 and spec.group == "modern"
    assert dict(spec.defaults) == {"alpha": 32.0, "delta": 0.1}
    assert 32.0 in spec.search_space["alpha"] and 0.1 in spec.search_space["delta"]
    for name, bad in (("alpha", 0.0), ("delta", -0.1), ("delta", 1.0), ("alpha", float("nan"))):
        with pytest.raises(ValueError, match=name):
            ProxyAnchor(DIM, NUM_CLASSES, **{name: bad})
    with pytest.raises(ValueError, match="labels must lie"):
        make_proxyanchor()(torch.randn(2, DIM, dtype=torch.float64), torch.tensor([0, NUM_CLASSES]))


def test_the_trainer_gives_the_proxies_100_times_the_learning_rate():
    from losszoo.training.config import TrainConfig
    from losszoo.training.plan import plan_run
    from losszoo.training.trainer import build_run

    config = TrainConfig(loss="proxyanchor", backbone="convnet4", pretrained=False, dim=8, max_classes=5,
                         batch_size=10, samples_per_class=5, batches_per_epoch=1, epochs=1, lr=0.01,
                         device="cpu", amp=False)
    run = build_run(plan_run(config))
    groups = {group["name"]: group for group in run.optimizer.param_groups}
    assert groups["loss"]["lr"] == pytest.approx(100 * 0.01)
    assert groups["loss"]["params"] == [run.loss.proxies.weight]
