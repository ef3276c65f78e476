"""The embedding model of Zhai & Wu (BMVC 2019, Sec. 3.2, 4.1, Fig. 1).

    images -> backbone -> global average pool (pool5) -> LayerNorm (no affine)
           -> linear, no bias (omitted when dim equals the feature width) -> embedding

``forward`` returns the embedding UNnormalized: each loss L2-normalizes as its paper says and
evaluation uses cosine similarity. :meth:`EmbeddingModel.embed` normalizes for inference.
"""

from __future__ import annotations

import os
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from losszoo.models.input_spec import InputSpec
from losszoo.models.registry import build_backbone
from losszoo.models.weights import WeightsRecord


class EmbeddingModel(nn.Module):
    """A backbone followed by the LayerNorm + linear embedding head.

    Args:
        backbone: maps images ``[B, C, H, W]`` to pooled features ``[B, feature_dim]``.
        feature_dim: F, the backbone's feature width.
        dim: D, the embedding width.
        input_spec: the preprocessing the backbone expects.
        name: the backbone's registry name (informative).
        pretrained: whether the backbone holds pretrained weights (informative).
        weights: where those weights came from, when known (provenance).

    The linear layer keeps ``nn.Linear``'s default init: the paper finds that the LayerNorm
    before it makes training insensitive to the init of the new layer (Sec. 4.4.1).
    """

    def __init__(
        self,
        backbone: nn.Module,
        feature_dim: int,
        dim: int,
        input_spec: InputSpec,
        *,
        name: str = "",
        pretrained: bool = False,
        weights: WeightsRecord | None = None,
    ) -> None:
        super().__init__()
        _check_width("feature_dim", feature_dim)
        _check_width("dim", dim)
        self.backbone = backbone
        self.feature_dim, self.dim = feature_dim, dim
        self.input_spec = input_spec
        self.backbone_name = name
        self.is_pretrained = pretrained
        self.weights = weights
        projection: nn.Module = (
            nn.Identity() if dim == feature_dim else nn.Linear(feature_dim, dim, bias=False)
        )
        self.head = nn.Sequential(OrderedDict(
            standardize=nn.LayerNorm(feature_dim, elementwise_affine=False),  # Sec. 3.2
            project=projection,
        ))

    def forward(self, images: Tensor) -> Tensor:
        """UNnormalized embeddings ``[B, dim]`` of ``images [B, C, H, W]``."""
        if images.dim() != 4 or images.shape[1] != self.input_spec.channels:
            raise ValueError(
                f"expected images [B, {self.input_spec.channels}, H, W], got shape "
                f"{tuple(images.shape)}"
            )
        return self.head(self.backbone(images))

    @torch.no_grad()
    def embed(self, images: Tensor, normalize: bool = True) -> Tensor:
        """Embeddings for inference, without gradients, L2-normalized unless ``normalize=False``.

        Does not change train/eval mode: call ``model.eval()`` first for BatchNorm statistics.
        """
        embeddings = self(images)
        return F.normalize(embeddings, dim=1) if normalize else embeddings

    def pretrained_parameters(self) -> list[nn.Parameter]:
        """The backbone's parameters (pretrained when ``is_pretrained``)."""
        return list(self.backbone.parameters())

    def new_parameters(self) -> list[nn.Parameter]:
        """The head's parameters: the linear layer's weight, or none for an identity head."""
        return list(self.head.parameters())

    def extra_repr(self) -> str:
        return f"backbone={self.backbone_name!r}, feature_dim={self.feature_dim}, dim={self.dim}"


def _check_width(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")


def create_model(backbone: str, dim: int, *, pretrained: bool = True,
                 weights: str | os.PathLike | None = None) -> EmbeddingModel:
    """An :class:`EmbeddingModel` on the backbone ``backbone`` with ``dim``-wide embeddings.

    ``pretrained=True`` loads ImageNet weights for ImageNet backbones (from the torch hub cache,
    or downloaded; a :class:`WeightsUnavailableError` explains what to do offline). Backbones without
    pretrained weights (``convnet4``) start from random init either way. ``weights``: a local
    state dict file for the backbone instead (:mod:`losszoo.models.weights`). Names: see
    :func:`losszoo.models.list_backbones`; ``"timm:<model>"`` builds a timm model.
    """
    _check_width("dim", dim)
    built = build_backbone(backbone, pretrained=pretrained, weights=weights)
    module = built.module.to(memory_format=torch.channels_last) if built.channels_last else built.module
    return EmbeddingModel(module, built.feature_dim, dim, built.input_spec,
                          name=backbone, pretrained=built.pretrained, weights=built.weights)
