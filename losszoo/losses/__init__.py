"""The losses of the zoo. Importing this package registers every built-in loss."""

from losszoo.losses.arcface import ArcFace
from losszoo.losses.base import MetricLoss, check_inputs
from losszoo.losses.contrastive import Contrastive
from losszoo.losses.cosface import CosFace
from losszoo.losses.lifted import LiftedStructure
from losszoo.losses.margin import Margin
from losszoo.losses.multisimilarity import MultiSimilarity
from losszoo.losses.normsoftmax import NormSoftmax
from losszoo.losses.npair import NPair
from losszoo.losses.proxyanchor import ProxyAnchor
from losszoo.losses.proxynca import ProxyNCA
from losszoo.losses.registry import (
    LOSSES,
    LossSpec,
    create_loss,
    get_loss_spec,
    list_losses,
    loss_groups,
    register_loss,
    select_losses,
)
from losszoo.losses.supcon import SupCon
from losszoo.losses.triplet import Triplet

__all__ = [
    "ArcFace",
    "Contrastive",
    "CosFace",
    "LOSSES",
    "LiftedStructure",
    "LossSpec",
    "Margin",
    "MultiSimilarity",
    "MetricLoss",
    "NPair",
    "NormSoftmax",
    "ProxyAnchor",
    "ProxyNCA",
    "SupCon",
    "Triplet",
    "check_inputs",
    "create_loss",
    "get_loss_spec",
    "list_losses",
    "loss_groups",
    "register_loss",
    "select_losses",
]
