"""The losses of the zoo. Importing this package registers every built-in loss."""

from losszoo.losses.base import MetricLoss, check_inputs
from losszoo.losses.contrastive import Contrastive
from losszoo.losses.cosface import CosFace
from losszoo.losses.lifted import LiftedStructure
from losszoo.losses.margin import Margin
from losszoo.losses.normsoftmax import NormSoftmax
from losszoo.losses.npair import NPair
from losszoo.losses.proxynca import ProxyNCA
from losszoo.losses.registry import (
    LOSSES,
    LossSpec,
    create_loss,
    get_loss_spec,
    list_losses,
    register_loss,
)
from losszoo.losses.triplet import Triplet

__all__ = [
    "Contrastive",
    "CosFace",
    "LOSSES",
    "LiftedStructure",
    "LossSpec",
    "Margin",
    "MetricLoss",
    "NPair",
    "NormSoftmax",
    "ProxyNCA",
    "Triplet",
    "check_inputs",
    "create_loss",
    "get_loss_spec",
    "list_losses",
    "register_loss",
]
