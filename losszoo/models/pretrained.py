"""ImageNet weights through torchvision's weights API, usable offline from the torch hub cache.

Weights live in ``torch.hub.get_dir()/checkpoints/<file name of the weights' url>`` (set
``TORCH_HOME`` to move it). A file found there is used without network, once its sha256 is
checked against the prefix in its name (torchvision's convention: ``resnet18-f37072fd.pth``);
otherwise the download is tried once and, if it fails, a :class:`WeightsUnavailableError` says
where to put the file. A file of one's own is given with ``--weights`` instead (weights.py).
"""

from __future__ import annotations

import http.client
import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import torch
from torch import Tensor

from losszoo.errors import LosszooError
from losszoo.models.weights import WeightsRecord, check_hash_prefix, read_state_dict

if TYPE_CHECKING:
    from torchvision.models import WeightsEnum


class WeightsUnavailableError(LosszooError, RuntimeError):
    """Pretrained weights could neither be found in the cache nor downloaded."""


def hub_checkpoint_path(url: str) -> Path:
    """Where ``torch.hub.load_state_dict_from_url`` caches (and looks for) ``url``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def load_torchvision_weights(weights: WeightsEnum,
                             backbone: str) -> tuple[dict[str, Tensor], WeightsRecord]:
    """The state dict of torchvision ``weights`` for ``backbone``, from the hub cache or the web,
    and where it came from.

    Downloads and files already in the cache alike are checked against the sha256 prefix in
    the file name (torch.hub itself trusts a cached file as it is).
    """
    cached = hub_checkpoint_path(weights.url)
    if not cached.is_file():
        _download(weights.url, cached, backbone)
    state, digest = read_state_dict(cached)
    check_hash_prefix(cached, digest)
    return state, WeightsRecord(f"torchvision {weights}", str(cached), digest)


def _download(url: str, cached: Path, backbone: str) -> None:
    try:
        torch.hub.load_state_dict_from_url(url, progress=True, check_hash=True,
                                           map_location="cpu", weights_only=True)
    except (OSError, http.client.HTTPException) as exc:
        raise WeightsUnavailableError(
            f"could not download ImageNet weights for {backbone} ({url}): {exc}. "
            f"Offline? Put {cached.name} in {cached.parent} (set TORCH_HOME to use another "
            "cache), pass a file of your own (--weights FILE), or pretrained=False "
            "(--no-pretrained) to train from random init."
        ) from exc
