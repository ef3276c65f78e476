"""Any timm model as a backbone, by the name ``"timm:<model>"``: the backbone registry's ``timm``
namespace, declared here (timm is imported when a ``timm:`` name is first looked up or listed).

The model is built with ``num_classes=0``, so it returns its globally pooled features
(``model.num_features`` wide); its preprocessing comes from ``timm.data.resolve_data_config``.

Pretrained weights come from the Hugging Face cache (``HF_HOME``) when they are there, read
without network. When they are not, the download is tried only if the hub can be reached
within seconds (and not at all under ``HF_HUB_OFFLINE=1``): offline, huggingface_hub would
otherwise retry for over a minute before failing.
"""

from __future__ import annotations

import difflib
import importlib.util
import math
import os
import socket
from functools import partial
from types import ModuleType
from urllib.parse import urlparse

from torch import nn

from losszoo.models.input_spec import InputSpec
from losszoo.models.pretrained import WeightsUnavailableError
from losszoo.models.registry import BACKBONES, Backbone, BackboneFactory
from losszoo.models.weights import WeightsRecord, file_sha256
from losszoo.registry import Namespace

HUB_FILES = ("model.safetensors", "pytorch_model.bin")  # what timm asks the hub for, in order
REACH_TIMEOUT_S = 3.0
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


def import_timm() -> ModuleType:
    try:
        import timm
    except ImportError as exc:
        raise ImportError(
            "timm backbones ('timm:<name>') need the timm package: pip install timm "
            "(or pip install 'losszoo[dev]')"
        ) from exc
    return timm


def timm_available() -> bool:
    return importlib.util.find_spec("timm") is not None


def list_timm_models(pattern: str = "*") -> list[str]:
    """timm's architecture names matching the fnmatch ``pattern``."""
    return list(import_timm().list_models(pattern or "*"))


def timm_factory(model_name: str) -> BackboneFactory:
    """The backbone factory of timm's ``model_name``; ``KeyError`` (with close names) when
    timm has no such model, ``ImportError`` when timm is not installed."""
    timm = import_timm()
    if not timm.is_model(model_name):
        close = difflib.get_close_matches(model_name, timm.list_models(), n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join('timm:' + c for c in close)}?" if close else ""
        raise KeyError(f"unknown timm model {model_name!r}.{hint} See timm.list_models().")
    return partial(_build, model_name)


def _input_spec(timm: ModuleType, model: object) -> InputSpec:
    config = timm.data.resolve_data_config({}, model=model)
    channels, height, width = config["input_size"]
    image_size = max(height, width)
    # timm's eval transform resizes to floor(size / crop_pct), then center-crops `size`.
    resize = max(image_size, math.floor(image_size / config.get("crop_pct", 1.0)))
    return InputSpec(channels=channels, image_size=image_size, resize=resize,
                     mean=tuple(config["mean"]), std=tuple(config["std"]))


def _build(model_name: str, pretrained: bool) -> Backbone:
    """Build timm's ``model_name`` (e.g. ``resnet18`` or ``resnet50.a1_in1k``) without its head
    (checked to exist by :func:`timm_factory`)."""
    timm = import_timm()
    overlay, record = (_cached_weights(timm, model_name) if pretrained else ({}, None))
    try:
        model = timm.create_model(model_name, pretrained=pretrained, num_classes=0,
                                  pretrained_cfg_overlay=overlay or None)
    except OSError as exc:  # huggingface_hub's "not in the local cache and no connection"
        raise WeightsUnavailableError(
            f"could not download pretrained weights for timm:{model_name}: {exc}. Offline? "
            "Put them in the Hugging Face cache (HF_HOME), pass --weights FILE, or pass "
            "pretrained=False (--no-pretrained)."
        ) from exc
    if pretrained and record is None:  # just downloaded into the cache
        record = _cached_weights(timm, model_name)[1]
    head = model.pretrained_cfg.get("classifier") or "classifier"
    heads = head if isinstance(head, (list, tuple)) else (head,)
    # NHWC for convolutional nets (more than a ViT's one patch-embedding convolution).
    convolutions = sum(isinstance(module, nn.Conv2d) for module in model.modules())
    return Backbone(model, int(model.num_features), _input_spec(timm, model), bool(pretrained),
                    weights=record, head_keys=tuple(f"{h}." for h in heads), channels_last=convolutions > 1)


def _cached_weights(timm: ModuleType, model_name: str) -> tuple[dict, WeightsRecord | None]:
    """timm's ``pretrained_cfg_overlay`` reading the weights from the Hugging Face cache, and
    their record; ``({}, None)`` for weights that do not come from the hub. Fails fast, naming
    the repository and file, when they are not cached and the hub cannot be reached."""
    repo = timm.models.get_pretrained_cfg(model_name).to_dict().get("hf_hub_id")
    if not repo:
        return {}, None
    from huggingface_hub import constants, try_to_load_from_cache

    for name in HUB_FILES:
        cached = try_to_load_from_cache(repo, name)
        if isinstance(cached, str):
            record = WeightsRecord(f"Hugging Face {repo}", cached, file_sha256(cached))
            return {"file": cached, "source": "", "hf_hub_id": None}, record
    if constants.HF_HUB_OFFLINE or not _reachable(constants.ENDPOINT):
        why = "HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else f"{constants.ENDPOINT} cannot be reached"
        raise WeightsUnavailableError(
            f"no pretrained weights for timm:{model_name}: {repo}/{HUB_FILES[0]} is not in the Hugging "
            f"Face cache ({constants.HF_HUB_CACHE}) and {why}; download it there, pass --weights FILE, "
            "or pass pretrained=False (--no-pretrained)")
    return {}, None


def _reachable(endpoint: str) -> bool:
    """Whether a TCP connection to ``endpoint`` opens within seconds (assumed so behind a proxy)."""
    if any(os.environ.get(v) for v in PROXY_VARIABLES):
        return True
    url = urlparse(endpoint)
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=REACH_TIMEOUT_S):
            return True
    except OSError:
        return False


TIMM = BACKBONES.add_namespace(Namespace("timm", timm_factory, list_timm_models, timm_available))
