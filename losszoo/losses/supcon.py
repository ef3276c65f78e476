"""Supervised contrastive loss, L_out (Khosla et al., "Supervised Contrastive Learning",
NeurIPS 2020, eq. 2):

    L = sum_i -1/|P(i)| sum_{p in P(i)} log( exp(z_i . z_p / tau) / sum_{a != i} exp(z_i . z_a / tau) ),

z the L2-normalized embeddings, P(i) the other samples of i's class, tau = 0.1 (the paper's
default). As the paper's code does, the sum over anchors is a mean, here over the anchors that
have a positive (an anchor without one has no term).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from losszoo.hyperparams import Hyper, LogUniform
from losszoo.losses.base import MetricLoss
from losszoo.losses.functional import masked_logsumexp, masked_mean
from losszoo.losses.registry import register_loss


# Search range: the paper's 0.1 lies inside, as do three of the four best temperatures Musgrave
# et al. (2020, powerful-benchmarker docs/papers/mlrc.md) report for NTXent, the same softmax
# with one positive per term: 0.0091 (CUB), 0.0219 (Cars), 0.0415 (CUB, batch 256); their SOP
# optimum, 0.0002, is practically a hard maximum and is left out.
@register_loss(
    "supcon", sampler="class_balanced", group="modern", tags=("pair",), needs_positive_pairs=True,
    hyperparameters={"temperature": Hyper(gt=0, search=LogUniform(0.005, 1.0))},
)
class SupCon(MetricLoss):
    """Supervised contrastive loss (L_out) over the batch.

    Args:
        temperature: tau in eq. 2 (paper: 0.1).
    """

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        self.temperature = temperature

    def compute(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        is_self = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
        return self.compute_against(embeddings, labels, embeddings, labels, is_self)

    def compute_against(self, embeddings: Tensor, labels: Tensor, references: Tensor,
                        reference_labels: Tensor, is_self: Tensor) -> Tensor:
        """Eq. 2 with the batch as anchors against ``references`` (the batch itself, or a
        cross-batch memory); ``is_self`` [B, M] marks each anchor's own copy (a = i)."""
        logits = F.normalize(embeddings, dim=1) @ F.normalize(references, dim=1).T / self.temperature
        positive = (labels[:, None] == reference_labels[None, :]) & ~is_self
        log_prob = logits - masked_logsumexp(logits, ~is_self)[:, None]
        log_prob_positives = torch.where(positive, log_prob, torch.zeros_like(log_prob)).sum(dim=1)
        count = positive.sum(dim=1)
        per_anchor = -log_prob_positives / count.clamp_min(1)
        return masked_mean(per_anchor, count > 0)
