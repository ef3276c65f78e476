"""Lifted structured loss (Song, Xiang, Jegelka & Savarese, "Deep Metric Learning via Lifted
Structured Feature Embedding", CVPR 2016, eqs. 3-4):

    J_ij = log( sum_{(i,k) in N} exp(alpha - D_ik) + sum_{(j,l) in N} exp(alpha - D_jl) ) + D_ij,
    L    = 1 / (2|P|) * sum_{(i,j) in P} max(0, J_ij)^2,

with D the Euclidean (not squared) distance, alpha = 1, P the positive pairs and N the negative
pairs of the batch.

With a miner's output (``loss(embeddings, labels, indices_tuple)``), P is the mined positive
pairs (a1, p), each as given, and the negatives of a pair are the mined negative pairs anchored
at either of its ends: N(i) = {n : (i, n) mined}, counted with multiplicity, as PML's
LiftedStructureLoss reads them. Triplets (a, p, n) are the pairs (a, p) and (a, n). A positive
pair without mined negatives has J = -inf and costs 0.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from losszoo.hyperparams import Hyper, Uniform
from losszoo.losses.base import MetricLoss
from losszoo.losses.functional import (
    convert_to_pairs,
    label_masks,
    masked_logsumexp,
    masked_mean,
    pair_counts,
    pairwise_distances,
)
from losszoo.losses.registry import register_loss


# Search range: around Song et al.'s alpha = 1 (Sec. 3).
@register_loss(
    "lifted", sampler="class_balanced", group="paper", tags=("pair",), needs_positive_pairs=True,
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

    def compute_mined(
        self, embeddings: Tensor, labels: Tensor, indices_tuple: tuple[Tensor, ...]
    ) -> Tensor:
        x = F.normalize(embeddings, dim=1) if self.normalize else embeddings
        distances = pairwise_distances(x)
        a1, p, a2, n = convert_to_pairs(indices_tuple)  # type: ignore[arg-type]
        if a1.numel() == 0:
            return x.sum() * 0.0
        # Multiplicity of each mined negative pair (row = its anchor): log(count) adds it to the sum.
        counts = pair_counts(a2, n, x.shape[0], distances.dtype)
        log_negative_sums = masked_logsumexp(self.alpha - distances + counts.clamp_min(1).log(),
                                             counts > 0, dim=1)
        sums_a1, sums_p = log_negative_sums[a1], log_negative_sums[p]
        # No negative at either end: J = -inf costs 0 (filled, so logaddexp's gradient stays finite).
        none = sums_a1.isinf() & sums_p.isinf()
        j = sums_a1.masked_fill(none, 0.0).logaddexp(sums_p) + distances[a1, p]
        return F.relu(j).square().masked_fill(none, 0.0).mean() / 2.0
