"""Triplet loss (Schroff et al., "FaceNet: A Unified Embedding for Face Recognition and
Clustering", CVPR 2015, eq. 1-2) with in-batch mining:

    L = mean over mined triplets with non-zero loss of  relu( d(a, p) - d(a, n) + margin ),

d the Euclidean distance between L2-normalized embeddings, margin 0.2. FaceNet writes squared
distances; like Hermans et al. (who found the plain distance more stable) and
pytorch-metric-learning, this uses the distance itself.

Mining (all within the batch):
    semihard  FaceNet Sec. 3.2: every triplet with d(a, p) < d(a, n) < d(a, p) + margin.
    hard      batch-hard (Hermans et al., "In Defense of the Triplet Loss for Person
              Re-Identification", 2017): per anchor, its farthest positive and closest negative.
    all       every valid triplet.

With a miner's output (``loss(embeddings, labels, indices_tuple)``), the mined triplets (pairs
are turned into triplets as PML's ``convert_to_triplets`` does: each positive pair with each
negative pair of its anchor) replace the mining; the same mean over non-zero losses applies.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from losszoo.hyperparams import Choice, Hyper, Uniform
from losszoo.losses.base import MetricLoss
from losszoo.losses.functional import (
    convert_to_triplets,
    cross_distances,
    label_masks,
    masked_mean,
    pairwise_distances,
    triplet_margin_losses,
)
from losszoo.losses.registry import register_loss

MINING_MODES = ("semihard", "hard", "all")


# Search ranges: around FaceNet's 0.2 (Schroff et al. 2015) and PML's 0.05, on unit vectors.
@register_loss(
    "triplet", sampler="class_balanced", group="paper", tags=("triplet",), needs_positive_pairs=True,
    hyperparameters={
        "margin": Hyper(ge=0, search=Uniform(0.01, 0.5)),
        "mining": Hyper(choices=MINING_MODES, search=Choice(("semihard", "hard"))),
    },
)
class Triplet(MetricLoss):
    """Triplet margin loss on normalized embeddings, triplets mined within the batch.

    Args:
        margin: alpha in FaceNet's eq. 1 (paper: 0.2).
        mining: ``"semihard"`` (default, FaceNet), ``"hard"`` (batch-hard) or ``"all"``.

    The loss is averaged over the mined triplets whose loss is non-zero; a batch without such
    triplets gives 0, still connected to the embeddings in the autograd graph.
    """

    def __init__(self, margin: float = 0.2, mining: str = "semihard") -> None:
        super().__init__()
        self.margin = margin
        self.mining = mining

    def compute(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        distances = pairwise_distances(F.normalize(embeddings, dim=1))
        return self._mean_nonzero(distances, self._mine(distances.detach(), *label_masks(labels)))

    def compute_against(self, embeddings: Tensor, labels: Tensor, references: Tensor,
                        reference_labels: Tensor, is_self: Tensor) -> Tensor:
        """The mined triplets (anchor of the batch, positive and negative among ``references``,
        a cross-batch memory); ``is_self`` [B, M] marks each anchor's own copy, no positive."""
        distances = cross_distances(F.normalize(embeddings, dim=1), F.normalize(references, dim=1))
        same = labels[:, None] == reference_labels[None, :]
        return self._mean_nonzero(distances, self._mine(distances.detach(), same & ~is_self, ~same))

    def compute_mined(
        self, embeddings: Tensor, labels: Tensor, indices_tuple: tuple[Tensor, ...]
    ) -> Tensor:
        distances = pairwise_distances(F.normalize(embeddings, dim=1))
        return self._mean_nonzero(distances, convert_to_triplets(indices_tuple))  # type: ignore[arg-type]

    def _mean_nonzero(self, distances: Tensor, triplets: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        losses = triplet_margin_losses(distances, triplets, self.margin)
        return masked_mean(losses, losses > 0)

    def _mine(self, distances: Tensor, positive: Tensor, negative: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Indices (anchors, positives, negatives) of the mined triplets, in (a, p, n) order,
        from the distances [B, M] of anchors to candidates and the positive / negative masks.

        Mining only selects; the loss and its gradient are computed on the selected triplets.
        Semihard and all mining compare each anchor-positive pair with every candidate
        negative, [P, B] for P positive pairs, never a [B, B, B] tensor.
        """
        if self.mining == "hard":
            inf = torch.tensor(float("inf"), dtype=distances.dtype, device=distances.device)
            hardest_positive = torch.where(positive, distances, -inf).argmax(dim=1)
            hardest_negative = torch.where(negative, distances, inf).argmin(dim=1)
            anchors = torch.nonzero(positive.any(dim=1) & negative.any(dim=1)).squeeze(1)
            return anchors, hardest_positive[anchors], hardest_negative[anchors]
        anchors, positives = positive.nonzero(as_tuple=True)
        d_ap, d_an = distances[anchors, positives][:, None], distances[anchors]
        # Triplets with d_an >= d_ap + margin have zero loss: not worth gathering.
        mined = negative[anchors] & (d_an < d_ap + self.margin)
        if self.mining == "semihard":
            mined &= d_ap < d_an
        pairs, negatives = mined.nonzero(as_tuple=True)
        return anchors[pairs], positives[pairs], negatives
