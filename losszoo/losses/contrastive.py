"""Contrastive loss (Hadsell, Chopra & LeCun, "Dimensionality Reduction by Learning an Invariant
Mapping", CVPR 2006, eq. 4), over every pair of the batch:

    L = mean over pairs (i, j), i != j, of   d_ij^2                 if y_i = y_j,
                                             relu(m - d_ij)^2       otherwise,

d the Euclidean distance between L2-normalized embeddings, m = 1 (the paper's value, and
pytorch-metric-learning's ``neg_margin``). Eq. 4's factors 1/2 are
left out (they only halve the gradient). Each unordered pair appears twice among the ordered
pairs i != j, so the mean equals the mean over pairs i < j.

With a miner's output (``loss(embeddings, labels, indices_tuple)``) the mean runs over exactly
the mined positive pairs (a1, p) and negative pairs (a2, n) together; triplets (a, p, n) count
as the pairs (a, p) and (a, n), as PML's ``convert_to_pairs`` makes them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from losszoo.hyperparams import Hyper, Uniform
from losszoo.losses.base import MetricLoss
from losszoo.losses.functional import (
    convert_to_pairs, cross_distances, label_masks, masked_mean, pairwise_distances,
)
from losszoo.losses.registry import register_loss


# Search range: Hadsell et al.'s / PML's m = 1, within the [0, 2] distances of unit vectors.
@register_loss(
    "contrastive", sampler="class_balanced", group="paper", tags=("pair",), needs_positive_pairs=True,
    hyperparameters={"margin": Hyper(ge=0, search=Uniform(0.3, 1.5))},
)
class Contrastive(MetricLoss):
    """Contrastive loss: pull positive pairs together, push negatives beyond the margin.

    Args:
        margin: m, the distance beyond which negative pairs cost nothing (default 1.0;
            on the unit sphere a random pair lies about sqrt(2) apart).
    """

    def __init__(self, margin: float = 1.0) -> None:
        super().__init__()
        self.margin = margin

    def compute(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        distances = pairwise_distances(F.normalize(embeddings, dim=1))
        positive, negative = label_masks(labels)
        pair_losses = torch.where(
            positive, distances.square(), F.relu(self.margin - distances).square()
        )
        return masked_mean(pair_losses, positive | negative)

    def compute_against(self, embeddings: Tensor, labels: Tensor, references: Tensor,
                        reference_labels: Tensor, is_self: Tensor) -> Tensor:
        """The mean over the pairs (anchor of the batch, reference), each anchor's own copy
        (``is_self`` [B, M]) left out: the loss against a cross-batch memory."""
        distances = cross_distances(F.normalize(embeddings, dim=1), F.normalize(references, dim=1))
        same = labels[:, None] == reference_labels[None, :]
        pair_losses = torch.where(same, distances.square(), F.relu(self.margin - distances).square())
        return masked_mean(pair_losses, ~is_self)

    def compute_mined(
        self, embeddings: Tensor, labels: Tensor, indices_tuple: tuple[Tensor, ...]
    ) -> Tensor:
        distances = pairwise_distances(F.normalize(embeddings, dim=1))
        a1, p, a2, n = convert_to_pairs(indices_tuple)  # type: ignore[arg-type]
        pair_losses = torch.cat([
            distances[a1, p].square(), F.relu(self.margin - distances[a2, n]).square()
        ])
        return pair_losses.sum() / max(pair_losses.shape[0], 1)
