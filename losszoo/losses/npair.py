"""Multi-class N-pair loss (Sohn, "Improved Deep Metric Learning with Multi-class N-pair Loss
Objective", NeurIPS 2016; the N-pair-mc objective), on N pairs (f_i, f_i^+) from N distinct classes:

    L = 1/N sum_i log( 1 + sum_{j != i} exp(f_i^T f_j^+ - f_i^T f_i^+) )
        + lambda/4 * ( 1/N sum_i ||f_i||^2 + 1/N sum_i ||f_i^+||^2 ),

on unnormalized embeddings. The second line is the L2 penalty on the embeddings that Sohn
uses instead of normalizing them, in the form of TensorFlow's reference
``npairs_loss`` (``0.25 * reg_lambda * (mean ||f||^2 + mean ||f^+||^2)``, reg_lambda = 0.002):
lambda/2 times the mean squared norm over the 2N paired embeddings.

N-pair-mc is Sohn's (N+1)-tuplet loss (eq. 3), log(1 + sum_{x^-} exp(f^T f^- - f^T f^+)) for an
anchor f, its positive f^+ and a set of negatives, with the tuplets built from N pairs (each
anchor's negatives being the other pairs' positives). With a miner's output
(``loss(embeddings, labels, indices_tuple)``) the miner builds the tuplets instead:

    pairs (a1, p, a2, n)   one tuplet per mined positive pair (a1, p), its negatives every mined
                           negative pair (a1, n) of the same anchor (with multiplicity); a pair
                           whose anchor has no mined negative costs log(1) = 0;
    triplets (a, p, n)     one (2+1)-tuplet each: log(1 + exp(f_a^T f_n - f_a^T f_p)).

L is the mean over the tuplets plus lambda/4 * (mean ||f_a||^2 + mean ||f_p||^2) over them.
Unlike N-pair-mc, a mined tuplet's negatives are whichever samples the miner chose, not
positives of other pairs, and an anchor may appear in several tuplets.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from losszoo.hyperparams import Hyper, LogUniform
from losszoo.losses.base import MetricLoss
from losszoo.losses.functional import masked_logsumexp
from losszoo.losses.registry import register_loss


def npair_indices(labels: Tensor) -> tuple[Tensor, Tensor]:
    """(anchor, positive) batch indices: the first two occurrences of each class seen >= 2 times.

    Pairs come in increasing label order; later samples of a class are ignored.
    """
    order = torch.argsort(labels, stable=True)
    _, counts = torch.unique_consecutive(labels[order], return_counts=True)
    starts = torch.cumsum(counts, dim=0) - counts
    starts = starts[counts >= 2]
    return order[starts], order[starts + 1]


# Search range: a decade either side of Sohn's lambda = 0.002 (Sec. 3.2.2).
@register_loss(
    "npair", sampler="npair", group="paper", tags=("pair",), needs_positive_pairs=True,
    hyperparameters={"l2_reg": Hyper(ge=0, search=LogUniform(2e-4, 2e-2))},
)
class NPair(MetricLoss):
    """Multi-class N-pair loss with Sohn's L2 embedding penalty.

    The batch should hold N classes x 2 samples (the ``npair`` sampler), but any batch works:
    each class with >= 2 samples contributes one pair (its first two samples, see
    :func:`npair_indices`), other samples are ignored. With fewer than two pairs there is no
    negative (f_j^+ of another class) and the whole loss, penalty included, is 0 with a
    gradient path.

    Args:
        l2_reg: lambda of the L2 penalty (0.002 as in the reference implementation; 0 disables it).
    """

    def __init__(self, l2_reg: float = 0.002) -> None:
        super().__init__()
        self.l2_reg = l2_reg

    def compute(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        anchor_idx, positive_idx = npair_indices(labels)
        if anchor_idx.numel() < 2:
            return embeddings.sum() * 0.0
        num_pairs = anchor_idx.shape[0]
        paired = embeddings[torch.cat([anchor_idx, positive_idx])]  # one gather: [f; f^+], [2N, D]
        anchors, positives = paired[:num_pairs], paired[num_pairs:]
        # Row i of the logits is (f_i^T f_j^+)_j; cross entropy with target i is exactly
        # log(1 + sum_{j != i} exp(f_i^T f_j^+ - f_i^T f_i^+)).
        logits = anchors @ positives.T
        targets = torch.arange(num_pairs, device=logits.device)
        npair_term = F.cross_entropy(logits, targets)
        # 1/N sum_i ||f_i||^2 + 1/N sum_i ||f_i^+||^2, summed over the 2N rows at once.
        squared_norms = paired.square().sum() / num_pairs
        return npair_term + 0.25 * self.l2_reg * squared_norms

    def compute_mined(
        self, embeddings: Tensor, labels: Tensor, indices_tuple: tuple[Tensor, ...]
    ) -> Tensor:
        gram = embeddings @ embeddings.T
        if len(indices_tuple) == 3:
            anchors, positives, negatives = indices_tuple
            margins = (gram[anchors, negatives] - gram[anchors, positives])[:, None]
            tuplet_losses = F.softplus(margins).squeeze(1)
        else:
            anchors, positives, negative_anchors, negatives = indices_tuple
            margins = gram[anchors[:, None], negatives[None, :]] - gram[anchors, positives][:, None]
            own = anchors[:, None] == negative_anchors[None, :]  # [P, N]: negatives of this anchor
            # log(1 + sum exp(m)) = logsumexp over {0} and the anchor's margins.
            zero = torch.zeros_like(margins[:, :1])
            tuplet_losses = masked_logsumexp(
                torch.cat([zero, margins], dim=1),
                torch.cat([torch.ones_like(own[:, :1]), own], dim=1),
            )
        if anchors.numel() == 0:
            return embeddings.sum() * 0.0
        squared_norms = embeddings.square().sum(dim=1)
        penalty = squared_norms[anchors].mean() + squared_norms[positives].mean()
        return tuplet_losses.mean() + 0.25 * self.l2_reg * penalty
