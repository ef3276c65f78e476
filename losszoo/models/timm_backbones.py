"""Any timm model as a backbone, by the name ``"timm:<model>"`` (timm imported lazily).

The model is built with ``num_classes=0``, so it returns its globally pooled features
(``model.num_features`` wide); its preprocessing comes from ``timm.data.resolve_data_config``.
"""

from __future__ import annotations

import difflib
import math
from types import ModuleType

from losszoo.models.input_spec import InputSpec
from losszoo.models.pretrained import WeightsUnavailableError
from losszoo.models.registry import Backbone


def _import_timm() -> ModuleType:
    try:
        import timm
    except ImportError as exc:
        raise ImportError(
            "timm backbones ('timm:<name>') need the timm package: pip install timm "
            "(or pip install 'losszoo[dev]')"
        ) from exc
    return timm


def list_timm_models(pattern: str = "*") -> list[str]:
    """timm's architecture names matching the fnmatch ``pattern``."""
    return list(_import_timm().list_models(pattern or "*"))


def _input_spec(timm: ModuleType, model: object) -> InputSpec:
    config = timm.data.resolve_data_config({}, model=model)
    channels, height, width = config["input_size"]
    image_size = max(height, width)
    # timm's eval transform resizes to floor(size / crop_pct), then center-crops `size`.
    resize = max(image_size, math.floor(image_size / config.get("crop_pct", 1.0)))
    return InputSpec(channels=channels, image_size=image_size, resize=resize,
                     mean=tuple(config["mean"]), std=tuple(config["std"]))


def build_timm_backbone(model_name: str, *, pretrained: bool) -> Backbone:
    """Build timm's ``model_name`` (e.g. ``resnet18`` or ``resnet50.a1_in1k``) without its head."""
    timm = _import_timm()
    if not timm.is_model(model_name):
        close = difflib.get_close_matches(model_name, timm.list_models(), n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join('timm:' + c for c in close)}?" if close else ""
        raise KeyError(f"unknown timm model {model_name!r}.{hint} See timm.list_models().")
    try:
        model = timm.create_model(model_name, pretrained=pretrained, num_classes=0)
    except OSError as exc:  # huggingface_hub's "not in the local cache and no connection"
        raise WeightsUnavailableError(
            f"could not download pretrained weights for timm:{model_name}: {exc}. Offline? "
            "Put them in the Hugging Face cache (HF_HOME) and set HF_HUB_OFFLINE=1, or pass "
            "pretrained=False (--no-pretrained)."
        ) from exc
    return Backbone(model, int(model.num_features), _input_spec(timm, model), bool(pretrained))
