"""The pytorch-metric-learning adapter: PML losses in the registry, zoo losses inside PML.

The wrapped losses must give exactly PML's values and gradients (same seed, so the same
initial class weights). Against our NormSoftmax, PML's NormalizedSoftmaxLoss stores its class
weights as [D, C] where ours are [C, D]: the weights are copied transposed.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning.distances import CosineSimilarity
from pytorch_metric_learning.losses import BaseMetricLossFunction, MultipleLosses
from pytorch_metric_learning.miners import MultiSimilarityMiner

from losszoo_adapters import pml
from losszoo import NormSoftmax, create_loss, get_loss_spec, list_losses
from losszoo.errors import ConfigError
from losszoo.losses.registry import LOSSES

DIM, NUM_CLASSES = 8, 5
LABELS = torch.tensor([0, 0, 1, 1, 2, 2, 4, 4])
SUPPORTED = [cls.__name__ for cls in pml.supported_pml_losses()]


@pytest.fixture
def pml_registry(loss_registry):
    """The loss registry with the PML losses registered; restored after the test."""
    pml.register()
    return loss_registry


def backward_grads(loss, x, labels):
    """(value, d value / d x, {parameter name: gradient}) of a fresh graph."""
    x = x.clone().requires_grad_(True)
    value = loss(x, labels)
    value.backward()
    return value.detach(), x.grad, {n: p.grad for n, p in loss.named_parameters()}


@pytest.mark.parametrize("pml_name, context", [
    ("ArcFaceLoss", {"num_classes": NUM_CLASSES, "embedding_size": DIM}),
    ("ContrastiveLoss", {}),
    ("MultiSimilarityLoss", {}),
    ("NormalizedSoftmaxLoss", {"num_classes": NUM_CLASSES, "embedding_size": DIM}),
])
def test_wrapped_loss_gives_exactly_pmls_value_and_gradients(pml_registry, pml_name, context):
    torch.manual_seed(3)
    ours = create_loss(f"pml:{pml_name}", embedding_dim=DIM, num_classes=NUM_CLASSES)  # CamelCase resolves
    torch.manual_seed(3)
    reference = getattr(pml_losses, pml_name)(**context)
    x = torch.randn(len(LABELS), DIM)
    value, x_grad, param_grads = backward_grads(ours, x, LABELS)
    ref_value, ref_x_grad, ref_param_grads = backward_grads(reference, x, LABELS)
    assert torch.equal(value, ref_value) and value > 0
    assert torch.equal(x_grad, ref_x_grad)
    assert param_grads.keys() == {f"pml_loss.{n}" for n in ref_param_grads}
    for name, grad in ref_param_grads.items():
        assert torch.equal(param_grads[f"pml_loss.{name}"], grad)


def test_register_lists_the_losses_and_is_idempotent(pml_registry):
    names = pml.register()  # second call: the fixture already registered them
    assert names == list_losses("pml:*") == sorted(names)
    assert {"pml:arcfaceloss", "pml:contrastiveloss", "pml:multisimilarityloss",
            "pml:normalizedsoftmaxloss"} <= set(names)
    spec = get_loss_spec("pml:ArcFaceLoss")
    assert spec.name == "pml:arcfaceloss" and spec.sampler == "class_balanced" and spec.tags == ("pml",)
    assert spec.cls.pml_class is pml_losses.ArcFaceLoss


def test_every_pml_loss_is_registered_or_excluded_with_a_reason(pml_registry):
    pml_classes = {name for name, obj in vars(pml_losses).items()
                   if isinstance(obj, type) and issubclass(obj, BaseMetricLossFunction)}
    registered = {get_loss_spec(n).cls.pml_class.__name__ for n in list_losses("pml:*")}
    assert registered | set(pml.EXCLUDED) == pml_classes
    assert not registered & set(pml.EXCLUDED)


def test_scoped_registry_leaves_no_pml_names():
    before = list_losses()
    with LOSSES.scoped():
        pml.register()
        assert len(list_losses("pml:*")) == len(SUPPORTED)
    assert list_losses() == before


def test_importing_the_adapter_registers_nothing():
    before = list_losses()  # loads any entry points first
    fresh = importlib.util.module_from_spec(importlib.util.find_spec("losszoo_adapters.pml"))
    with LOSSES.scoped():
        fresh.__spec__.loader.exec_module(fresh)  # a second, throwaway import of the module
        assert list_losses() == before


def test_defaults_mirror_the_pml_constructors(pml_registry):
    arcface = get_loss_spec("pml:arcfaceloss")
    assert arcface.needs_embedding_dim and arcface.needs_num_classes
    assert arcface.defaults["margin"] == 28.6 and arcface.defaults["scale"] == 64  # PML: degrees
    cosface = get_loss_spec("pml:cosfaceloss")  # num_classes / embedding_size come through *args
    assert cosface.needs_num_classes and cosface.defaults["margin"] == 0.35
    snr = get_loss_spec("pml:signaltonoiseratiocontrastiveloss")  # inherited through **kwargs
    assert snr.defaults["pos_margin"] == 0 and snr.defaults["neg_margin"] == 1
    assert get_loss_spec("pml:p2sgradloss").needs_embedding_dim  # PML's descriptors_dim
    assert not get_loss_spec("pml:marginloss").needs_num_classes  # PML's optional num_classes
    for name in list_losses("pml:*"):
        defaults = get_loss_spec(name).defaults
        assert "mat_based_loss" not in defaults  # set by GenericPairLoss subclasses themselves
        assert {"distance", "reducer", "embedding_regularizer"} <= set(defaults)


def _same_setting(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, (int, float, str, bool, type(None), np.ndarray, np.number)):
        return bool(np.all(a == b))
    return type(a) is type(b)  # distances, reducers: equal kinds


@pytest.mark.parametrize("pml_name", SUPPORTED)
def test_every_wrapped_loss_builds_with_pmls_own_defaults_and_trains(pml_registry, pml_name):
    ours = create_loss(f"pml:{pml_name}", embedding_dim=DIM, num_classes=NUM_CLASSES)
    context = {"embedding_dim": DIM, "num_classes": NUM_CLASSES}
    reference = getattr(pml_losses, pml_name)(**{p: context[z] for p, z in type(ours).context_args.items()})
    for attribute in get_loss_spec(f"pml:{pml_name}").defaults:
        missing = object()
        mine, theirs = getattr(ours.pml_loss, attribute, missing), getattr(reference, attribute, missing)
        assert _same_setting(mine, theirs), f"{attribute}: {mine!r} != PML default {theirs!r}"
    value, x_grad, param_grads = backward_grads(ours, torch.randn(len(LABELS), DIM), LABELS)
    assert torch.isfinite(value) and torch.isfinite(x_grad).all()
    assert all(g is None or torch.isfinite(g).all() for g in param_grads.values())


def test_hyperparameters_override_and_unknown_ones_are_rejected(pml_registry):
    x = torch.randn(len(LABELS), DIM)
    contrastive = create_loss("pml:contrastiveloss", embedding_dim=DIM, neg_margin=0.5, pos_margin=None)
    assert contrastive.pml_loss.neg_margin == 0.5 and contrastive.pml_loss.pos_margin == 0
    expected = pml_losses.ContrastiveLoss(neg_margin=0.5)(x, LABELS)
    assert torch.equal(contrastive(x, LABELS), expected)
    assert not torch.equal(expected, pml_losses.ContrastiveLoss()(x, LABELS))

    distance = CosineSimilarity()  # object-valued PML knobs pass through too
    cosine = create_loss("pml:contrastiveloss", embedding_dim=DIM, distance=distance)
    assert cosine.pml_loss.distance is distance

    arcface = create_loss("pml:arcfaceloss", embedding_dim=DIM, num_classes=NUM_CLASSES, margin=10.0)
    assert arcface.pml_loss.margin == pytest.approx(np.radians(10.0))

    with pytest.raises(ConfigError, match=r"no hyperparameter 'nag_margin'.*accepted: .*neg_margin"):
        create_loss("pml:contrastiveloss", embedding_dim=DIM, nag_margin=0.5)
    with pytest.raises(ValueError, match="num_classes"):
        create_loss("pml:arcfaceloss", embedding_dim=DIM)


def test_wrapped_losses_check_their_inputs(pml_registry):
    loss = create_loss("pml:arcfaceloss", embedding_dim=DIM, num_classes=NUM_CLASSES)
    x = torch.randn(len(LABELS), DIM)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 5\)"):
        loss(x, LABELS + 1)
    with pytest.raises(ValueError, match="does not match the loss's embedding_dim"):
        loss(torch.randn(len(LABELS), DIM + 1), LABELS)
    with pytest.raises(ValueError, match="NaN or inf"):
        create_loss("pml:contrastiveloss", embedding_dim=DIM)(x.log(), LABELS)
    with pytest.raises(TypeError, match="pytorch-metric-learning loss class"):
        pml.wrap_pml_loss(NormSoftmax)


def _normsoftmax_pair():
    """Our NormSoftmax and PML's NormalizedSoftmaxLoss with the same class weights."""
    ours = NormSoftmax(DIM, NUM_CLASSES)
    theirs = pml_losses.NormalizedSoftmaxLoss(NUM_CLASSES, DIM, temperature=ours.temperature)
    with torch.no_grad():
        theirs.W.copy_(ours.proxies.weight.T)
    return ours, theirs


def test_zoo_loss_inside_pml_multiple_losses_adds_up():
    ours, theirs = _normsoftmax_pair()
    combined = MultipleLosses([pml.as_pml_loss(ours), theirs], weights=[1.0, 0.5])
    assert any(p is ours.proxies.weight for p in combined.parameters())
    x = torch.randn(len(LABELS), DIM, requires_grad=True)
    total = combined(x, LABELS)
    total.backward()
    ours_value, ours_grad, _ = backward_grads(ours, x.detach(), LABELS)
    theirs_value, theirs_grad, _ = backward_grads(theirs, x.detach(), LABELS)
    # Two independent implementations of Zhai & Wu's eq. 1 agree...
    assert torch.allclose(ours_value, theirs_value, rtol=1e-5, atol=1e-6)
    # ...and MultipleLosses sums the zoo loss like any PML loss.
    assert torch.allclose(total.detach(), ours_value + 0.5 * theirs_value, rtol=1e-5, atol=1e-6)
    assert torch.allclose(x.grad, ours_grad + 0.5 * theirs_grad, rtol=1e-5, atol=1e-6)


def test_zoo_loss_refuses_what_it_cannot_honour():
    adapted = pml.as_pml_loss(NormSoftmax(DIM, NUM_CLASSES))
    x = torch.randn(len(LABELS), DIM)
    with pytest.raises(ValueError, match="needs labels"):
        adapted(x)
    with pytest.raises(ValueError, match="indices_tuple"):
        MultipleLosses([adapted], miners=[MultiSimilarityMiner()])(x, LABELS)
    with pytest.raises(ValueError, match="ref_emb"):
        adapted(x, LABELS, ref_emb=x, ref_labels=LABELS)
    with pytest.raises(TypeError, match="nn.Module"):
        pml.as_pml_loss(lambda e, y: e.sum())


def test_as_pml_loss_unwraps_a_wrapped_pml_loss(pml_registry):
    wrapped = create_loss("pml:contrastiveloss", embedding_dim=DIM)
    unwrapped = pml.as_pml_loss(wrapped)
    assert unwrapped is wrapped.pml_loss  # PML's own loss honours miners and ref_emb itself
    x = torch.randn(len(LABELS), DIM)
    indices = MultiSimilarityMiner()(x, LABELS)
    assert torch.isfinite(unwrapped(x, LABELS, indices))
