"""Lifted structured loss (Song, Xiang, Jegelka & Savarese, "Deep Metric Learning via Lifted
Structured Feature Embedding", CVPR 2016, eqs. 3-4):

    J_ij = log( sum_{(i,k) in N} exp(alpha - D_ik) + sum_{(j,l) in N} exp(alpha - D_jl) ) + D_ij,
    L    = 1 / (2|P|) * sum_{(i,j) in P} max(0, J_ij)^2,

with D the Euclidean (not squared) distance, alpha = 1, P the positive pairs and N the negative
pairs of the batch.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from losszoo.hyperparams import Hyper, Uniform
from losszoo.losses.base import MetricLoss
from losszoo.losses.functional import label_masks, masked_logsumexp, masked_mean, pairwise_distances
from losszoo.losses.registry import register_loss


# Search range: around Song et al.'s alpha = 1 (Sec. 3).
@register_loss(
    "lifted", sampler="class_balanced", tags=("pair",),
    hyperparameters={"alpha": Hyper(ge=0, search=Uniform(0.25, 2.0))},
)
class LiftedStructure(MetricLoss):
    """Lifted structured loss over every positive pair of the batch (eq. 4).

    |P| counts unordered positive pairs {i, j}, each once, as in the authors' Caffe layer
    (loop over j > i, loss divided by 2 * number of positive pairs). J_ij is symmetric, so this
    equals averaging over ordered pairs and halving. The loss is 0 (with a gradient path) when
    the batch has no positive pair or no negative pair.

    Args:
        alpha: the margin alpha of eq. 4 (paper: 1).
        normalize: L2-normalize the embeddings first. The paper does not (default False).
    """

    def __init__(self, alpha: float = 1.0, normalize: bool = False) -> None:
        super().__init__()
        self.alpha = alpha
        self.normalize = normalize

    def compute(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        x = F.normalize(embeddings, dim=1) if self.normalize else embeddings
        distances = pairwise_distances(x)
        positive, negative = label_masks(labels)
        if not negative.any():
            return x.sum() * 0.0
        # N(i) and N(j) are the same index set for a positive pair, so the log of the two sums is
        # logaddexp of the per-anchor log-sums: O(B^2) and stable, no loop over pairs.
        log_negative_sums = masked_logsumexp(self.alpha - distances, negative, dim=1)
        j = log_negative_sums[:, None].logaddexp(log_negative_sums[None, :]) + distances
        unordered_positive = positive.triu(diagonal=1)
        return masked_mean(F.relu(j).square(), unordered_positive) / 2.0
