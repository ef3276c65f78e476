"""Checks of a planned run that need the model's shape, made before any folder or file is
written: the network is built on PyTorch's ``meta`` device (shapes only: no memory, no
weights), so an image size the backbone cannot take, or a model that cannot fit in memory
(``dim = 9999999999999``), is one error naming the setting instead of a traceback later."""

from __future__ import annotations

import functools
import os

import torch

from losszoo.errors import ConfigError
from losszoo.models import create_model

BYTES_PER_PARAMETER = 3 * 4  # float32 weight, gradient and momentum buffer


def check_plan_fits(plan: object) -> None:
    """Refuse ``plan`` (a ``RunPlan``) when its network cannot take its images or its
    parameters alone exceed the device's memory."""
    config = plan.config
    parameters = _parameters(config.backbone, config.dim, config.image_size)
    if parameters is None:  # a backbone that cannot be built on meta: nothing to check here
        return
    loss_rows = plan.splits["train"].num_classes if plan.loss.needs_num_classes else 0
    needed = (parameters + loss_rows * config.dim) * BYTES_PER_PARAMETER
    available = _memory(plan.device)
    if available and needed > available:
        raise ConfigError(
            f"dim {config.dim} with backbone {config.backbone}: the weights, gradients and "
            f"momentum alone need {needed / 2**30:,.0f} GiB, more than the {available / 2**30:,.0f} GiB "
            f"of {plan.device.type} memory; lower --dim")


@functools.lru_cache(maxsize=32)
def _parameters(backbone: str, dim: int, image_size: int | None) -> int | None:
    """The model's parameter count, after one forward pass on meta at ``image_size``; None
    when the backbone cannot be built or run on meta at all (its own default size fails too)."""
    try:
        with torch.device("meta"):
            model = create_model(backbone, dim, pretrained=False).eval()
    except Exception:  # noqa: BLE001 - e.g. an init that reads a value; the real build will say
        return None
    spec = model.input_spec
    size = image_size or spec.image_size
    try:
        model(torch.empty(2, spec.channels, size, size, device="meta"))
    except Exception as exc:  # noqa: BLE001
        if size == spec.image_size or not _runs(model, spec.channels, spec.image_size):
            return None
        raise ConfigError(f"image_size {size} is too small for backbone {backbone} "
                          f"({str(exc).splitlines()[0]}); its default is {spec.image_size}") from None
    return sum(p.numel() for p in model.parameters())


def _runs(model: torch.nn.Module, channels: int, size: int) -> bool:
    try:
        model(torch.empty(2, channels, size, size, device="meta"))
    except Exception:  # noqa: BLE001
        return False
    return True


def _memory(device: torch.device) -> int | None:
    """Total bytes of ``device``'s memory, or None when unknown."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return None
