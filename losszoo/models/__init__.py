"""Embedding models: a named backbone plus the LayerNorm + linear head of Zhai & Wu (2019).

    >>> from losszoo.models import create_model
    >>> model = create_model("convnet4", 64, pretrained=False)
    >>> model.input_spec.image_size
    28

Importing this package registers the built-in backbones (torchvision is imported only when
one is built; timm only for ``"timm:<model>"`` and the EfficientNet-Lite nets).
"""

from losszoo.models import convnet4, efficientnet_lite, timm_backbones, torchvision_backbones  # noqa: F401  (registration)
from losszoo.models.embedding import EmbeddingModel, create_model
from losszoo.models.input_spec import IMAGENET_MEAN, IMAGENET_STD, InputSpec
from losszoo.models.pretrained import WeightsUnavailableError
from losszoo.models.weights import WeightsError, WeightsRecord
from losszoo.models.registry import (
    BACKBONES,
    Backbone,
    build_backbone,
    list_backbones,
    register_backbone,
)

__all__ = [
    "BACKBONES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Backbone",
    "EmbeddingModel",
    "InputSpec",
    "WeightsError",
    "WeightsRecord",
    "WeightsUnavailableError",
    "build_backbone",
    "create_model",
    "list_backbones",
    "register_backbone",
]
