"""ArcFace / additive angular margin loss (Deng et al., "ArcFace: Additive Angular Margin Loss
for Deep Face Recognition", CVPR 2019, eq. 3):

    L = -log( exp(s cos(theta_y + m))
              / ( exp(s cos(theta_y + m)) + sum_{j != y} exp(s cos(theta_j)) ) ),

theta_j the angle between the L2-normalized embedding x and class weight W_j (no bias);
s = 64, m = 0.5 (the paper's values).

Past theta_y = pi - m, cos(theta_y + m) would rise again with theta_y; the paper's code (the
authors' insightface ``combined margin``, ``easy_margin=False``) then uses the linear
continuation ``cos(theta_y) - m sin(m)`` instead, which keeps the target logit decreasing in
theta_y. ``easy_margin=True`` is that code's other option: no margin where cos(theta_y) <= 0.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from losszoo.hyperparams import Hyper, LogUniform, Uniform
from losszoo.losses.proxies import CosineSoftmaxLoss
from losszoo.losses.registry import register_loss


# Search ranges: around the paper's s = 64 and m = 0.5, holding the best margins (18.6-23.2
# degrees, 0.33-0.41 rad) and scales (49.5-220) Musgrave et al. (2020, powerful-benchmarker
# docs/papers/mlrc.md) report on CUB, Cars and SOP.
@register_loss(
    "arcface", sampler="class_balanced", group="modern", tags=("classification", "proxy"),
    shards_class_weights=True,
    hyperparameters={
        "scale": Hyper(gt=0, search=LogUniform(16.0, 256.0)),
        "margin": Hyper(ge=0, lt=math.pi, search=Uniform(0.1, 0.6)),
        "class_subsample": Hyper(gt=0, le=1),
    },
)
class ArcFace(CosineSoftmaxLoss):
    """Additive angular margin loss: softmax cross-entropy on ``s * cos(theta_j + m [j = y])``.

    Args:
        embedding_dim: D, the embedding width.
        num_classes: C, the number of training classes (one weight row each).
        scale: s, the norm the normalized features are rescaled to (paper: 64).
        margin: m, the additive angular margin in radians (paper: 0.5).
        easy_margin: the paper's code's option: apply the margin only where cos(theta_y) > 0
            (False, default: past theta_y = pi - m use ``cos(theta_y) - m sin(m)``).
        class_subsample: r in (0, 1], Zhai & Wu (2019) Sec. 4.5, as in NormSoftmax and CosFace;
            r = 1 (default, the ArcFace paper) uses every class.
    """

    def __init__(
        self,
        embedding_dim: int,
        num_classes: int,
        scale: float = 64.0,
        margin: float = 0.5,
        easy_margin: bool = False,
        class_subsample: float = 1.0,
    ) -> None:
        super().__init__(embedding_dim, num_classes, class_subsample)
        self.scale = scale
        self.margin = margin
        self.easy_margin = easy_margin

    def logits(self, cosine: Tensor, targets: Tensor) -> Tensor:
        column = targets[:, None]
        target = cosine.gather(1, column)
        # clamp_min: a zero gradient rather than an infinite one where cos(theta) = +-1.
        sine = (1.0 - target * target).clamp_min(1e-12).sqrt()
        with_margin = target * math.cos(self.margin) - sine * math.sin(self.margin)  # cos(theta + m)
        if self.easy_margin:
            target = torch.where(target > 0, with_margin, target)
        else:
            threshold = math.cos(math.pi - self.margin)
            target = torch.where(target > threshold, with_margin, target - self.margin * math.sin(self.margin))
        return self.scale * cosine.scatter(1, column, target)
