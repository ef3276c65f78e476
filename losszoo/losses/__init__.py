"""The losses of the zoo. Importing this package registers every built-in loss."""

from losszoo.losses.base import MetricLoss, check_inputs
from losszoo.losses.lifted import LiftedStructure
from losszoo.losses.margin import Margin
from losszoo.losses.normsoftmax import NormSoftmax
from losszoo.losses.npair import NPair
from losszoo.losses.registry import (
    LOSSES,
    LossSpec,
    create_loss,
    get_loss_spec,
    list_losses,
    register_loss,
)

__all__ = [
    "LOSSES",
    "LiftedStructure",
    "LossSpec",
    "Margin",
    "MetricLoss",
    "NPair",
    "NormSoftmax",
    "check_inputs",
    "create_loss",
    "get_loss_spec",
    "list_losses",
    "register_loss",
]
