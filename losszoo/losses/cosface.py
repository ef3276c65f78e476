"""CosFace / Large Margin Cosine Loss (Wang et al., "CosFace: Large Margin Cosine Loss for Deep
Face Recognition", CVPR 2018, eq. 4):

    L = -log( exp(s (cos(theta_y) - m))
              / ( exp(s (cos(theta_y) - m)) + sum_{j != y} exp(s cos(theta_j)) ) ),

with cos(theta_j) = W_j^T x / (||W_j|| ||x||): x and every class weight W_j L2-normalized, no
bias; s = 64, m = 0.35 (the values of the paper's experiments).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from losszoo.hyperparams import Hyper, LogUniform, Uniform
from losszoo.losses.proxies import CosineSoftmaxLoss
from losszoo.losses.registry import register_loss


# Search ranges: Wang et al. (2018) study m in [0, 0.45] (Sec. 4.2, Fig. 4) at s = 64; the scale
# range spans NormSoftmax's 1/T = 20 and the paper's 64.
@register_loss(
    "cosface", sampler="class_balanced", group="paper", aliases=("lmcl",), tags=("classification", "proxy"),
    shards_class_weights=True,
    hyperparameters={
        "scale": Hyper(gt=0, search=LogUniform(8.0, 64.0)),
        "margin": Hyper(ge=0, search=Uniform(0.0, 0.45)),
        "class_subsample": Hyper(gt=0, le=1),
    },
)
class CosFace(CosineSoftmaxLoss):
    """Large margin cosine loss: softmax cross-entropy on ``s * (cos(theta_j) - m * [j = y])``.

    Args:
        embedding_dim: D, the embedding width.
        num_classes: C, the number of training classes (one weight row each).
        scale: s, the norm the normalized features are rescaled to (paper: 64).
        margin: m, the cosine margin subtracted from the target class (paper: 0.35).
        class_subsample: r in (0, 1], Zhai & Wu (2019) Sec. 4.5, as in NormSoftmax: while
            training, the softmax runs over the batch's classes plus random others,
            ``ceil(r * C)`` in all; r = 1 (default, the CosFace paper) uses every class.
            Subsampling gives the class weights sparse gradients.
    """

    def __init__(
        self,
        embedding_dim: int,
        num_classes: int,
        scale: float = 64.0,
        margin: float = 0.35,
        class_subsample: float = 1.0,
    ) -> None:
        super().__init__(embedding_dim, num_classes, class_subsample)
        self.scale = scale
        self.margin = margin

    def logits(self, cosine: Tensor, targets: Tensor) -> Tensor:
        target_margin = self.margin * F.one_hot(targets, cosine.shape[1]).to(cosine.dtype)
        return self.scale * (cosine - target_margin)
