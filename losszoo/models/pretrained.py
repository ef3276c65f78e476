"""ImageNet weights through torchvision's weights API, usable offline from the torch hub cache.

Weights live in ``torch.hub.get_dir()/checkpoints/<file name of the weights' url>`` (set
``TORCH_HOME`` to move it). A file found there is used without network; otherwise the download
is tried once and, if it fails, a :class:`WeightsUnavailableError` says where to put the file.
"""

from __future__ import annotations

from losszoo.errors import LosszooError

import http.client
import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import torch
from torch import Tensor

if TYPE_CHECKING:
    from torchvision.models import WeightsEnum


class WeightsUnavailableError(LosszooError, RuntimeError):
    """Pretrained weights could neither be found in the cache nor downloaded."""


def hub_checkpoint_path(url: str) -> Path:
    """Where ``torch.hub.load_state_dict_from_url`` caches (and looks for) ``url``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def load_torchvision_weights(weights: WeightsEnum, backbone: str) -> dict[str, Tensor]:
    """The state dict of torchvision ``weights`` for ``backbone``, from the hub cache or the web.

    Downloads are checked against the sha256 prefix in the file name (torchvision's
    ``check_hash=True``); a file already in the cache is trusted as is, as torch.hub does.
    """
    cached = hub_checkpoint_path(weights.url)
    try:
        # Reads `cached` when present; only downloads when it is missing.
        return torch.hub.load_state_dict_from_url(
            weights.url, progress=True, check_hash=True, map_location="cpu", weights_only=True
        )
    except (OSError, http.client.HTTPException) as exc:
        if cached.is_file():
            raise
        raise WeightsUnavailableError(
            f"could not download ImageNet weights for {backbone} ({weights.url}): {exc}. "
            f"Offline? Put {cached.name} in {cached.parent} (set TORCH_HOME to use another "
            "cache) or pass pretrained=False (--no-pretrained) to train from random init."
        ) from exc
