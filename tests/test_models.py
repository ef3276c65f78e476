"""Embedding models: backbones by name, the LayerNorm + linear head, parameter groups, weights.

Backbone features are cross-checked against torchvision / timm computed independently here;
the head against a hand-written layer normalization and matrix product.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import sys
import urllib.error

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from losszoo.models import (
    BACKBONES,
    IMAGENET_MEAN,
    Backbone,
    EmbeddingModel,
    InputSpec,
    create_model,
    list_backbones,
    register_backbone,
)
from losszoo.models import pretrained as pretrained_module
from losszoo.models.pretrained import hub_checkpoint_path
from losszoo.models.weights import WeightsError, file_sha256

TORCHVISION_FEATURE_DIMS = {
    "resnet18": 512, "resnet34": 512, "resnet50": 2048, "resnet101": 2048, "googlenet": 1024,
}


@pytest.fixture
def backbone_registry():
    with BACKBONES.scoped() as registry:
        yield registry


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """An empty torch hub in tmp_path; downloads fail with URLError and are counted."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # in case someone called set_dir()
    calls: list[str] = []

    def no_network(url, dst, hash_prefix=None, progress=True):
        calls.append(url)
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    assert torch.hub.get_dir().startswith(str(tmp_path))
    return calls


def _layer_norm_then_project(features: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """LayerNorm without affine (biased variance, eps 1e-5 as torch's default), then x W^T."""
    mean = features.mean(dim=1, keepdim=True)
    var = ((features - mean) ** 2).mean(dim=1, keepdim=True)
    standardized = (features - mean) / torch.sqrt(var + 1e-5)
    return standardized if weight is None else standardized @ weight.T


# -- backbones ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(TORCHVISION_FEATURE_DIMS))
def test_torchvision_backbones_pool_and_drop_the_classifier(name):
    model = create_model(name, 24, pretrained=False).eval()
    assert model.feature_dim == TORCHVISION_FEATURE_DIMS[name]
    assert isinstance(model.backbone.fc, nn.Identity)
    assert not model.is_pretrained
    spec = model.input_spec
    assert (spec.channels, spec.resize, spec.mean) == (3, 256, IMAGENET_MEAN)
    assert spec.image_size == (227 if name == "googlenet" else 224)  # Zhai & Wu, Sec. 4.1
    size = 227 if name == "googlenet" else 64  # GoogLeNet at the paper's crop, once
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        features = model.backbone(x)
        assert features.shape == (2, model.feature_dim)
        assert model(x).shape == (2, 24)
        # Independent route to pool5: torchvision's forward up to the classifier, by hand.
        net = model.backbone
        if name == "googlenet":
            assert net.aux1 is None and net.aux2 is None and not net.transform_input
            stages = ["conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a",
                      "inception3b", "maxpool3", "inception4a", "inception4b", "inception4c",
                      "inception4d", "inception4e", "maxpool4", "inception5a", "inception5b"]
        else:
            stages = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
        h = x
        for stage in stages:
            h = getattr(net, stage)(h)
        torch.testing.assert_close(features, h.mean(dim=(2, 3)))
        # No dropout after pool5 (GoogLeNet has one before its classifier): in training mode
        # the features are still deterministic (BatchNorm uses the batch's statistics).
        model.train()
        torch.testing.assert_close(model.backbone(x), model.backbone(x))


def test_convnet4_architecture_and_shapes():
    model = create_model("convnet4", 16, pretrained=False).eval()
    assert model.input_spec == InputSpec(1, 28, 28, (0.5,), (0.5,))
    assert model.feature_dim == 64
    convs = [m for m in model.backbone.modules() if isinstance(m, nn.Conv2d)]
    pools = [m for m in model.backbone.modules() if isinstance(m, nn.MaxPool2d)]
    norms = [m for m in model.backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == (
        [(1, 64, (3, 3))] + [(64, 64, (3, 3))] * 3
    )
    assert len(pools) == 4 and len(norms) == 4
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        h = model.backbone.features(x)
        assert h.shape == (5, 64, 1, 1)  # 28 -> 14 -> 7 -> 3 -> 1
        assert model.backbone(x).shape == (5, 64)
        assert model(x).shape == (5, 16)


CHANNELS_LAST = {"convnet4": True, "resnet18": True, "googlenet": False,
                 "timm:efficientnet_lite0": True, "timm:vit_tiny_patch16_224": False}


@pytest.mark.parametrize("name", sorted(CHANNELS_LAST))
def test_channels_last_models_embed_as_nchw_ones(name):
    """A backbone declared channels-last gets NHWC weights from create_model, and the same
    embeddings (float tolerance: oneDNN sums in another order) as the same weights in NCHW,
    in eval and in train mode (batch statistics); a gradient step agrees too."""
    if name.startswith("timm:"):
        pytest.importorskip("timm")
    model = create_model(name, 8, pretrained=False)
    convs = [m.weight for m in model.backbone.modules() if isinstance(m, nn.Conv2d)]
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in convs) == CHANNELS_LAST[name]
    if not CHANNELS_LAST[name]:
        return
    nchw = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    assert all(m.weight.is_contiguous() for m in nchw.backbone.modules() if isinstance(m, nn.Conv2d))
    size = model.input_spec.image_size if name == "convnet4" else 64
    x = torch.randn(4, model.input_spec.channels, size, size)
    for train in (False, True):
        model.train(train), nchw.train(train)
        out, reference = model(x), nchw(x)
        torch.testing.assert_close(out, reference, rtol=1e-4, atol=1e-4)
    out.square().sum().backward(), reference.square().sum().backward()
    grad, reference_grad = model.head.project.weight.grad, nchw.head.project.weight.grad
    assert (grad - reference_grad).norm() <= 1e-3 * reference_grad.norm()


def test_timm_backbone_returns_its_pooled_features():
    timm = pytest.importorskip("timm")
    model = create_model("timm:resnet18", 20, pretrained=False).eval()
    assert model.feature_dim == 512
    config = timm.data.resolve_data_config({}, model=model.backbone)
    assert model.input_spec == InputSpec(
        channels=3, image_size=config["input_size"][-1],
        resize=math.floor(config["input_size"][-1] / config["crop_pct"]),
        mean=config["mean"], std=config["std"],
    )
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(
            model.backbone(x), model.backbone.forward_features(x).mean(dim=(2, 3))
        )
        assert model(x).shape == (2, 20)


def test_timm_unknown_model_and_missing_timm(monkeypatch):
    pytest.importorskip("timm")
    with pytest.raises(KeyError, match="timm:resnet18"):
        create_model("timm:resnt18", 8, pretrained=False)
    monkeypatch.setitem(sys.modules, "timm", None)  # makes `import timm` fail
    with pytest.raises(ImportError, match="pip install timm"):
        create_model("timm:resnet18", 8, pretrained=False)


def test_the_planner_asks_the_registry_about_timm_names(monkeypatch):
    """An unknown timm model, or timm missing, is a ConfigError when the run is planned."""
    pytest.importorskip("timm")
    from losszoo.errors import ConfigError
    from losszoo.training.config import TrainConfig
    from losszoo.training.plan import plan_run

    config = TrainConfig(backbone="timm:resnt18", device="cpu", max_classes=5, batch_size=10, samples_per_class=5)
    with pytest.raises(ConfigError, match="unknown timm model 'resnt18'. Did you mean timm:resnet18"):
        plan_run(config, check_images=False)
    monkeypatch.setitem(sys.modules, "timm", None)  # makes `import timm` fail
    with pytest.raises(ConfigError, match="backbone 'timm:resnet18': .*pip install timm"):
        plan_run(config.replace(backbone="timm:resnet18"), check_images=False)
    assert "timm:<name>" not in list_backbones() and list_backbones("timm:*") == []


def test_timm_pretrained_offline_raises_helpful_error(tmp_path, monkeypatch):
    pytest.importorskip("timm")
    hf_constants = pytest.importorskip("huggingface_hub.constants")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)  # no network, no retries
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(RuntimeError, match=r"timm:resnet18.*pretrained=False"):
        create_model("timm:resnet18", 8, pretrained=True)


# -- the head -------------------------------------------------------------------------------
def test_head_is_layernorm_without_affine_then_bias_free_linear():
    model = create_model("resnet18", 32, pretrained=False).eval()
    (weight,) = model.new_parameters()  # LayerNorm has no parameters, the linear no bias
    assert weight.shape == (32, 512)
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        features = model.backbone(x)
        expected = _layer_norm_then_project(features, weight)
        torch.testing.assert_close(model(x), expected)
        # The head is a real LayerNorm: shifting and scaling the features changes nothing.
        torch.testing.assert_close(model.head(3.0 * features + 7.0), expected, rtol=1e-4, atol=1e-4)


def test_identity_head_when_dim_equals_feature_width():
    model = create_model("convnet4", 64, pretrained=False).eval()
    assert model.new_parameters() == []
    assert isinstance(model.head.project, nn.Identity)
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(model(x), _layer_norm_then_project(model.backbone(x), None))


def test_forward_is_unnormalized_and_embed_normalizes():
    model = create_model("convnet4", 10, pretrained=False).eval()
    x = torch.rand(6, 1, 28, 28)
    raw = model(x)
    assert not torch.allclose(raw.norm(dim=1), torch.ones(6))
    unit = model.embed(x)
    assert not unit.requires_grad
    torch.testing.assert_close(unit.norm(dim=1), torch.ones(6))
    torch.testing.assert_close(unit, F.normalize(raw.detach(), dim=1))
    torch.testing.assert_close(model.embed(x, normalize=False), raw.detach())


def test_parameter_groups_cover_every_parameter_once():
    for name, dim in (("resnet18", 32), ("convnet4", 64), ("convnet4", 8)):
        model = create_model(name, dim, pretrained=False)
        pretrained = [id(p) for p in model.pretrained_parameters()]
        new = [id(p) for p in model.new_parameters()]
        everything = [id(p) for p in model.parameters()]
        assert len(set(pretrained)) == len(pretrained) and len(set(new)) == len(new)
        assert not set(pretrained) & set(new)
        assert sorted(pretrained + new) == sorted(everything)
        assert set(pretrained) == {id(p) for p in model.backbone.parameters()}


def test_gradients_reach_backbone_and_head():
    model = create_model("resnet18", 16, pretrained=False).train()
    x = torch.randn(4, 3, 64, 64)
    (model(x) * torch.randn(4, 16)).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_head_gradient_matches_finite_differences():
    model = create_model("convnet4", 12, pretrained=False).double()
    features = torch.randn(3, 64, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(model.head, (features,))


def test_float64_model():
    model = create_model("convnet4", 12, pretrained=False).eval()
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        single = model(x)
        model.double()
        double = model(x.double())
    assert double.dtype == torch.float64 and double.shape == (3, 12)
    torch.testing.assert_close(double.float(), single, rtol=1e-4, atol=1e-4)


# -- names and input checks -----------------------------------------------------------------
def test_list_backbones():
    names = list_backbones()
    assert names == sorted(names)
    assert {"convnet4", "googlenet", "resnet18", "resnet34", "resnet50", "resnet101"} <= set(names)
    assert list_backbones("resnet*") == ["resnet101", "resnet18", "resnet34", "resnet50"]
    assert list_backbones("RESNET1*") == ["resnet101", "resnet18"]
    assert list_backbones("nothing*") == []
    pytest.importorskip("timm")
    assert "timm:<name>" in names
    timm_resnets = list_backbones("timm:resnet1*")
    assert "timm:resnet18" in timm_resnets
    assert all(n.startswith("timm:resnet1") for n in timm_resnets)


def test_unknown_backbone_suggests_close_names():
    with pytest.raises(KeyError, match="resnet50") as info:
        create_model("resnet05", 8, pretrained=False)
    assert "timm:<name>" in str(info.value)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="dim"):
        create_model("convnet4", 0, pretrained=False)
    with pytest.raises(TypeError, match="dim"):
        create_model("convnet4", 1.5, pretrained=False)  # type: ignore[arg-type]
    model = create_model("convnet4", 8, pretrained=False)
    with pytest.raises(ValueError, match=r"\[B, 1, H, W\]"):
        model(torch.rand(2, 3, 28, 28))
    with pytest.raises(ValueError, match=r"\[B, 1, H, W\]"):
        model(torch.rand(1, 28, 28))


def test_input_spec_is_frozen_and_validated():
    spec = InputSpec(3, 224, 256, [0.5, 0.5, 0.5], [0.2, 0.2, 0.2])
    assert spec.mean == (0.5, 0.5, 0.5)  # lists become tuples
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.image_size = 10  # type: ignore[misc]
    with pytest.raises(ValueError, match="one value per channel"):
        InputSpec(3, 224, 256, (0.5,), (0.5,))
    with pytest.raises(ValueError, match="image_size <= resize"):
        InputSpec(1, 64, 32, (0.5,), (0.5,))
    with pytest.raises(ValueError, match="std"):
        InputSpec(1, 28, 28, (0.5,), (0.0,))


def test_register_a_backbone(backbone_registry):
    @register_backbone("toy-linear", aliases=("toy",))
    def toy(pretrained: bool) -> Backbone:
        return Backbone(nn.Sequential(nn.Flatten(), nn.Linear(4, 6)), 6,
                        InputSpec(1, 2, 2, (0.0,), (1.0,)), pretrained=False)

    assert "toy-linear" in list_backbones()
    model = create_model("toy", 3, pretrained=False)
    assert isinstance(model, EmbeddingModel) and model(torch.rand(5, 1, 2, 2)).shape == (5, 3)
    with pytest.raises(ValueError, match="already registered"):
        register_backbone("toy-linear")(toy)
    with pytest.raises(ValueError, match="reserved for timm"):
        register_backbone("timm:toy")(toy)
    register_backbone("broken")(lambda pretrained: nn.Identity())
    with pytest.raises(TypeError, match="not a Backbone"):
        create_model("broken", 3, pretrained=False)


def test_registration_does_not_leak():
    assert "toy-linear" not in list_backbones()


# -- ImageNet weights -----------------------------------------------------------------------
def test_pretrained_weights_offline_fail_at_once_with_instructions(offline_hub):
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    expected_file = hub_checkpoint_path(url)
    assert expected_file.name == "resnet18-f37072fd.pth"
    with pytest.raises(RuntimeError) as info:
        create_model("resnet18", 32, pretrained=True)
    message = str(info.value)
    assert offline_hub == [url]  # tried the download once, through the patched function
    for needed in ("resnet18", url, expected_file.name, str(expected_file.parent)):
        assert needed in message
    assert "pretrained=False" in message
    assert isinstance(info.value.__cause__, urllib.error.URLError)


def _reference_network(name: str) -> nn.Module:
    if name == "googlenet":  # the checkpoint holds the auxiliary classifiers too
        return torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False)
    return torchvision.models.get_model(name, weights=None)


def test_a_file_under_the_hub_cache_name_is_checked_against_its_hash_prefix(offline_hub):
    """torch.hub checks the sha256 prefix in the name (``resnet18-f37072fd.pth``) only right
    after a download; losszoo checks a file already in the cache too, before trusting it."""
    path = hub_checkpoint_path(torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url)
    path.parent.mkdir(parents=True)
    torch.save(_reference_network("resnet18").state_dict(), path)
    with pytest.raises(WeightsError, match=r"resnet18-f37072fd\.pth: sha256 .* does not start "
                                            r"with f37072fd") as info:
        create_model("resnet18", 32, pretrained=True)
    assert "\n" not in str(info.value) and offline_hub == []


@pytest.mark.parametrize("name", ["resnet18", "googlenet"])
def test_pretrained_weights_load_from_the_hub_cache(offline_hub, monkeypatch, tmp_path, name):
    """A state dict in the cache under a name whose hash prefix it matches loads with no
    network, and is recorded as the weights' source. (A file with torchvision's real prefix
    cannot be forged here, so the cache path is redirected to one named after the file's own
    sha256.)"""
    weights = torchvision.models.get_model_weights(name).IMAGENET1K_V1
    state = _reference_network(name).state_dict()
    staging = tmp_path / "staging.pth"
    torch.save(state, staging)
    path = tmp_path / "checkpoints" / f"{name}-{file_sha256(staging)[:8]}.pth"
    path.parent.mkdir()
    staging.rename(path)
    monkeypatch.setattr(pretrained_module, "hub_checkpoint_path", lambda url: path)


    model = create_model(name, 32, pretrained=True)
    assert offline_hub == []  # no download attempted
    assert model.is_pretrained and model.weights.path == str(path)
    assert model.weights.source == f"torchvision {weights}"
    loaded = model.backbone.state_dict()
    for key, value in loaded.items():
        torch.testing.assert_close(value, state[key], msg=key)
    assert not any(k.startswith(("fc.", "aux")) for k in loaded)
    if name == "googlenet":  # torchvision's convention for its ported weights
        assert model.backbone.transform_input and model.backbone.aux1 is None
        model.eval()
        with torch.no_grad():
            assert model(torch.randn(1, 3, 227, 227)).shape == (1, 32)
