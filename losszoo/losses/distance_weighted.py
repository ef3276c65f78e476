"""Distance weighted sampling of negatives (Wu, Manmatha, Smola & Krähenbühl, "Sampling Matters
in Deep Embedding Learning", ICCV 2017, Sec. 4).

Pairwise distances of points spread uniformly on the unit sphere in R^n have the density

    q(d) ∝ d^(n-2) (1 - d^2/4)^((n-3)/2).

For an anchor a, a negative k is drawn with probability ∝ min(lambda, q(d_ak)^-1), i.e. with
log-weight

    log w_ak = (2 - n) log d_ak - ((n - 3)/2) log(1 - d_ak^2/4),

where the distance is clipped below at ``cutoff`` = 0.5 (this bounds the weights, the paper's
lambda) and the weight is 0 at d_ak >= ``nonzero_loss_cutoff`` = 1.4 (beyond beta + alpha the
margin loss of a negative is 0), as in the authors' code. Weights are normalised per anchor.
"""

from __future__ import annotations

import torch
from torch import Tensor

from losszoo.losses.functional import label_masks


def distance_weighted_probabilities(
    distances: Tensor,
    labels: Tensor,
    *,
    dim: int,
    cutoff: float = 0.5,
    nonzero_loss_cutoff: float = 1.4,
) -> Tensor:
    """Row a: the probability of drawing each sample as the negative of anchor a, [B, B].

    ``distances`` are Euclidean distances between L2-normalized ``dim``-dimensional embeddings
    (no gradient flows through them). Rows sum to 1, except for anchors with no negative in the
    batch, whose rows are 0. When every negative of an anchor lies at or beyond
    ``nonzero_loss_cutoff`` (all weights 0), the anchor falls back to a uniform draw over its
    negatives, so every anchor-positive pair still gets a negative.
    """
    if not 0 < cutoff < nonzero_loss_cutoff <= 2:
        raise ValueError(
            "need 0 < cutoff < nonzero_loss_cutoff <= 2 (distances on the unit sphere lie in "
            f"[0, 2]); got cutoff={cutoff}, nonzero_loss_cutoff={nonzero_loss_cutoff}"
        )
    _, negative = label_masks(labels)
    # float64 keeps the weights' dynamic range (d^(2-n) spans hundreds of e-folds for n ~ 512).
    d = distances.detach().to(torch.float64).clamp_min(cutoff)
    valid = negative & (d < nonzero_loss_cutoff)
    log_weights = (2.0 - dim) * d.log() - ((dim - 3.0) / 2.0) * torch.log1p(-d.square() / 4.0)
    log_weights = torch.where(valid, log_weights, float("-inf"))
    no_valid_negative = ~valid.any(dim=1, keepdim=True)
    log_weights = torch.where(no_valid_negative & negative, 0.0, log_weights)
    has_negative = negative.any(dim=1, keepdim=True)
    row_max = log_weights.amax(dim=1, keepdim=True).masked_fill(~has_negative, 0.0)
    weights = (log_weights - row_max).exp()
    return weights / weights.sum(dim=1, keepdim=True).masked_fill(~has_negative, 1.0)


def sample_distance_weighted_triplets(
    distances: Tensor,
    labels: Tensor,
    *,
    dim: int,
    cutoff: float = 0.5,
    nonzero_loss_cutoff: float = 1.4,
) -> tuple[Tensor, Tensor, Tensor]:
    """One distance-weighted negative for every ordered anchor-positive pair: (a, p, n) indices.

    Draws with ``torch.multinomial`` from :func:`distance_weighted_probabilities`, so torch's
    global RNG (of the distances' device) seeds it. Anchors without any negative in the batch
    form no triplet.
    """
    probabilities = distance_weighted_probabilities(
        distances, labels, dim=dim, cutoff=cutoff, nonzero_loss_cutoff=nonzero_loss_cutoff
    )
    positive, negative = label_masks(labels)
    anchors, positives = (positive & negative.any(dim=1, keepdim=True)).nonzero(as_tuple=True)
    if anchors.numel() == 0:
        return anchors, positives, anchors.clone()
    negatives = torch.multinomial(probabilities[anchors], 1, replacement=True).squeeze(1)
    return anchors, positives, negatives
