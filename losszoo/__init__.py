"""losszoo: a pluggable zoo of deep-metric-learning losses with a fair comparison harness.

    >>> import losszoo
    >>> loss = losszoo.create_loss("normsoftmax", embedding_dim=512, num_classes=100)
    >>> losszoo.list_losses("norm*")
    ['normsoftmax']
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = [
    "ArcFace",
    "Contrastive",
    "CosFace",
    "LiftedStructure",
    "LossSpec",
    "Margin",
    "MetricLoss",
    "MultiSimilarity",
    "NPair",
    "NormSoftmax",
    "ProxyAnchor",
    "ProxyNCA",
    "SupCon",
    "Triplet",
    "create_loss",
    "get_loss_spec",
    "list_losses",
    "register_loss",
]


def __getattr__(name: str) -> Any:
    """The public names, imported on first use: ``import losszoo`` (and ``losszoo --help``)
    does not import torch until a loss is asked for."""
    if name in __all__:
        import losszoo.losses

        value = getattr(losszoo.losses, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'losszoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
