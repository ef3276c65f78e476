"""Multi-Similarity loss (Wang et al., "Multi-Similarity Loss with General Pair Weighting for
Deep Metric Learning", CVPR 2019, eq. 13 with the pair mining of eq. 11-12):

    L = 1/m sum_i [ 1/alpha log(1 + sum_{k in P_i} exp(-alpha (S_ik - lambda)))
                  + 1/beta  log(1 + sum_{k in N_i} exp( beta (S_ik - lambda))) ],

S the cosine similarities of the batch's m embeddings; the mining keeps the negatives harder
than the anchor's hardest positive and the positives harder than its hardest negative, each
with a margin epsilon:

    N_i = {k: y_k != y_i, S_ik + epsilon > min_{y_j = y_i, j != i} S_ij}     (eq. 11)
    P_i = {k: y_k  = y_i, k != i, S_ik - epsilon < max_{y_j != y_i} S_ij}     (eq. 12)

alpha = 2, beta = 50, lambda = 1, epsilon = 0.1 as the paper's implementation details state. The authors'
code uses lambda = 0.5 and beta = 40, pytorch-metric-learning lambda ("base") = 0.5. The mining
selects pairs without a gradient of its own, as in the paper's code.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from losszoo.hyperparams import Hyper, LogUniform, Uniform
from losszoo.losses.base import MetricLoss
from losszoo.losses.functional import convert_to_pairs, label_masks, log1p_sum_exp, pair_counts
from losszoo.losses.registry import register_loss


# Search ranges hold the paper's values, the authors' code's (lambda 0.5, beta 40) and the best
# values Musgrave et al. (2020, powerful-benchmarker docs/papers/mlrc.md) report for the loss
# with this miner on CUB, Cars, SOP and CUB at batch 256: alpha 7.5-18.0, beta 48.0-156.6,
# base 0.63-0.85, epsilon 0.34-0.72.
@register_loss(
    "multisimilarity", sampler="class_balanced", group="modern", aliases=("ms",), tags=("pair",),
    needs_positive_pairs=True,
    hyperparameters={
        "alpha": Hyper(gt=0, search=LogUniform(0.5, 32.0)),
        "beta": Hyper(gt=0, search=LogUniform(10.0, 200.0)),
        "base": Hyper(ge=-1, le=1, search=Uniform(0.0, 1.0)),
        "epsilon": Hyper(ge=0, search=Uniform(0.0, 0.8)),
    },
)
class MultiSimilarity(MetricLoss):
    """Multi-Similarity loss with its own pair mining.

    Args:
        alpha: the positive pairs' scale alpha (paper: 2).
        beta: the negative pairs' scale beta (paper: 50).
        base: lambda, the similarity the pairs are weighted around (paper: 1; PML calls it
            ``base``, default 0.5).
        epsilon: the mining margin of eq. 11-12 (paper: 0.1).
    """

    def __init__(self, alpha: float = 2.0, beta: float = 50.0, base: float = 1.0, epsilon: float = 0.1) -> None:
        super().__init__()
        self.alpha, self.beta = alpha, beta
        self.base = base
        self.epsilon = epsilon

    def compute(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        similarity = self.similarities(embeddings)
        positive, negative = self.mine(similarity.detach(), *label_masks(labels))
        return self.weighted(similarity, positive, negative)

    def compute_against(self, embeddings: Tensor, labels: Tensor, references: Tensor,
                        reference_labels: Tensor, is_self: Tensor) -> Tensor:
        """Eq. 11-13 with the batch as anchors against ``references`` (a cross-batch memory);
        ``is_self`` [B, M] marks each anchor's own copy, which is no positive."""
        similarity = F.normalize(embeddings, dim=1) @ F.normalize(references, dim=1).T
        same = labels[:, None] == reference_labels[None, :]
        positive, negative = self.mine(similarity.detach(), same & ~is_self, ~same)
        return self.weighted(similarity, positive, negative)

    def compute_mined(self, embeddings: Tensor, labels: Tensor, indices_tuple: tuple[Tensor, ...]) -> Tensor:
        """Eq. 13 over the given pairs instead of eq. 11-12's (as PML's loss with any miner)."""
        a1, p, a2, n = convert_to_pairs(indices_tuple)  # type: ignore[arg-type]
        batch = len(labels)
        positive = pair_counts(a1, p, batch, embeddings.dtype) > 0
        negative = pair_counts(a2, n, batch, embeddings.dtype) > 0
        return self.weighted(self.similarities(embeddings), positive, negative)

    @staticmethod
    def similarities(embeddings: Tensor) -> Tensor:
        unit = F.normalize(embeddings, dim=1)
        return unit @ unit.T

    def mine(self, similarity: Tensor, positive: Tensor, negative: Tensor) -> tuple[Tensor, Tensor]:
        """The masks of P_i and N_i (eq. 11-12) from the positive and negative pair masks."""
        hardest_positive = similarity.masked_fill(~positive, float("inf")).amin(dim=1, keepdim=True)
        hardest_negative = similarity.masked_fill(~negative, float("-inf")).amax(dim=1, keepdim=True)
        kept_negative = negative & (similarity + self.epsilon > hardest_positive)
        kept_positive = positive & (similarity - self.epsilon < hardest_negative)
        return kept_positive, kept_negative

    def weighted(self, similarity: Tensor, positive: Tensor, negative: Tensor) -> Tensor:
        """Eq. 13: the soft weighting of the kept pairs, averaged over the m anchors."""
        pull = log1p_sum_exp(-self.alpha * (similarity - self.base), positive, dim=1) / self.alpha
        push = log1p_sum_exp(self.beta * (similarity - self.base), negative, dim=1) / self.beta
        return (pull + push).mean()
