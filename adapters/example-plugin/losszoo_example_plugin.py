"""An example losszoo plugin: ArcFace, registered as ``example:arcface``.

ArcFace (Deng et al., "ArcFace: Additive Angular Margin Loss for Deep Face Recognition",
CVPR 2019, eq. 3) adds an angular margin m to the angle between an embedding and its class
weight before a softmax over scaled cosines:

    L = -log( e^{s cos(theta_y + m)} / (e^{s cos(theta_y + m)} + sum_{j != y} e^{s cos theta_j}) ),

with x and every class weight L2-normalized; s = 64, m = 0.5 in the paper.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from losszoo import MetricLoss, get_loss_spec, register_loss
from losszoo.losses.proxies import ClassWeights, cosine_logits

NAME = "example:arcface"


class ArcFace(MetricLoss):
    """Additive angular margin softmax (ArcFace, eq. 3).

    Args:
        embedding_dim: D, the embedding width.
        num_classes: C, the number of training classes (one weight row each).
        scale: s, the radius of the hypersphere the logits live on (paper: 64).
        margin: m, the additive angular margin in radians (paper: 0.5).
    """

    def __init__(self, embedding_dim: int, num_classes: int, scale: float = 64.0, margin: float = 0.5) -> None:
        super().__init__()
        if scale <= 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        if not 0 <= margin < math.pi / 2:
            raise ValueError(f"margin must lie in [0, pi/2) radians, got {margin}")
        self.embedding_dim, self.num_classes = embedding_dim, num_classes
        self.scale, self.margin = scale, margin
        self.proxies = ClassWeights(num_classes, embedding_dim)

    def compute(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        cosine = cosine_logits(embeddings, self.proxies.weight)
        target = cosine.gather(1, labels[:, None]).clamp(-1.0, 1.0)
        # cos(theta + m) = cos(theta) cos(m) - sin(theta) sin(m); clamping keeps sqrt's gradient finite.
        sine = (1.0 - target * target).clamp_min(1e-12).sqrt()
        with_margin = target * math.cos(self.margin) - sine * math.sin(self.margin)
        # Past theta = pi - m, cos(theta + m) would grow again and reward moving away from the
        # class; like the authors' code, continue with cos(theta) - m sin(m) there instead.
        past_pi = target <= math.cos(math.pi - self.margin)
        with_margin = torch.where(past_pi, target - self.margin * math.sin(self.margin), with_margin)
        logits = cosine.scatter(1, labels[:, None], with_margin)
        return F.cross_entropy(self.scale * logits, labels)


def register() -> None:
    """The ``losszoo.losses`` entry point: add ``example:arcface`` (a no-op if present).

    It looks up its one name: ``list_losses(NAME)`` would list every namespace, importing each
    namespace plugin (pytorch-metric-learning for ``pml:``) on a plain ``losszoo list``."""
    try:
        get_loss_spec(NAME)
    except KeyError:
        register_loss(NAME, sampler="class_balanced", tags=("classification", "proxy", "plugin"))(ArcFace)
