"""Proxy-Anchor (Kim et al., "Proxy Anchor Loss for Deep Metric Learning", CVPR 2020, eq. 4):

    L = 1/|P+| sum_{p in P+} log(1 + sum_{x in X_p+} exp(-alpha (s(x, p) - delta)))
      + 1/|P|  sum_{p in P}  log(1 + sum_{x in X_p-} exp( alpha (s(x, p) + delta))),

P the proxies (one per class), P+ those with a positive in the batch, X_p+ / X_p- the batch's
embeddings of p's class / of other classes, s the cosine similarity; alpha = 32, delta = 0.1.
Each proxy is an anchor against the whole batch, so every embedding's gradient weighs all the
others (the paper's Eq. 5-6).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from losszoo.hyperparams import Hyper, LogUniform, Uniform
from losszoo.losses.base import MetricLoss
from losszoo.losses.functional import log1p_sum_exp
from losszoo.losses.proxies import ClassWeights, cosine_logits
from losszoo.losses.registry import register_loss


# lr_multiplier 100: the paper trains the proxies 100 times faster than the network (its
# implementation details). Sampler: the official code draws plain random batches unless its
# --IPC option asks for class-balanced ones; the loss needs proxies, not positive pairs.
# Search ranges: around the paper's alpha 32 and delta 0.1, spanning the values of its study of
# the two (Musgrave et al. 2020 did not benchmark Proxy-Anchor).
@register_loss(
    "proxyanchor", sampler="random", lr_multiplier=100.0, aliases=("proxy_anchor",),
    group="modern", tags=("proxy",),
    shards_class_weights=True,
    hyperparameters={
        "alpha": Hyper(gt=0, search=LogUniform(4.0, 64.0)),
        "delta": Hyper(ge=0, lt=1, search=Uniform(0.0, 0.4)),
    },
)
class ProxyAnchor(MetricLoss):
    """Proxy-Anchor with one learnable proxy per class.

    Args:
        embedding_dim: D, the embedding width.
        num_classes: C, the number of training classes (one proxy each).
        alpha: the scaling factor alpha of eq. 4 (paper: 32).
        delta: the margin delta of eq. 4 (paper: 0.1).
    """

    miner_refusal = ("each proxy is an anchor against the whole batch: there are no pairs or "
                     "triplets of samples for a miner to choose")

    def __init__(self, embedding_dim: int, num_classes: int, alpha: float = 32.0, delta: float = 0.1) -> None:
        super().__init__()
        self.embedding_dim, self.num_classes = embedding_dim, num_classes
        self.alpha = alpha
        self.delta = delta
        self.proxies = ClassWeights(num_classes, embedding_dim)

    def compute(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        similarity = cosine_logits(embeddings, self.proxies.weight)  # s(x, p) [B, C]
        pull, push, proxies_with_positives = self.proxy_sums(similarity, F.one_hot(labels, self.num_classes).bool())
        return pull / proxies_with_positives + push / self.num_classes

    def proxy_sums(self, similarity: Tensor, positive: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Eq. 4's two sums over the proxies (the columns of ``similarity`` [B, K] and of the
        mask ``positive`` [B, K]), and how many of them have a positive. Each proxy's term
        involves only its own column, so shards of the proxies add up (distributed/sharded.py)."""
        pull = log1p_sum_exp(-self.alpha * (similarity - self.delta), positive, dim=0)  # over the batch
        push = log1p_sum_exp(self.alpha * (similarity + self.delta), ~positive, dim=0)
        return pull.sum(), push.sum(), positive.any(dim=0).sum()
