"""losszoo: a pluggable zoo of deep-metric-learning losses with a fair comparison harness.

    >>> import losszoo
    >>> loss = losszoo.create_loss("normsoftmax", embedding_dim=512, num_classes=100)
    >>> losszoo.list_losses("norm*")
    ['normsoftmax']
"""

from losszoo.losses import (
    Contrastive,
    CosFace,
    LiftedStructure,
    LossSpec,
    Margin,
    MetricLoss,
    NPair,
    NormSoftmax,
    ProxyNCA,
    Triplet,
    create_loss,
    get_loss_spec,
    list_losses,
    register_loss,
)

__version__ = "0.1.0"

__all__ = [
    "Contrastive",
    "CosFace",
    "LiftedStructure",
    "LossSpec",
    "Margin",
    "MetricLoss",
    "NPair",
    "NormSoftmax",
    "ProxyNCA",
    "Triplet",
    "create_loss",
    "get_loss_spec",
    "list_losses",
    "register_loss",
]
