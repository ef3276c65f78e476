"""Proxy-NCA (Movshovitz-Attias et al., "No Fuss Distance Metric Learning using Proxies",
ICCV 2017, the proxy NCA loss with static proxy assignment: one proxy per class):

    L = -log( exp(-d(x, p_y)) / sum_{z != y} exp(-d(x, p_z)) ),

d the squared Euclidean distance between the L2-normalized embedding x and the L2-normalized
proxies, d(x, p) = ||x/|x| - p/|p|||^2, averaged over the batch. The positive proxy is left
out of the denominator, so the loss is not a cross-entropy and can be negative.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from losszoo.hyperparams import Hyper, LogUniform
from losszoo.losses.base import MetricLoss
from losszoo.losses.proxies import ClassWeights, cosine_logits
from losszoo.losses.registry import register_loss


# lr_multiplier 1.0: the paper trains proxies with the network's learning rate. The much larger
# proxy learning rate of many reimplementations ("fast moving proxies", e.g. ~100x in
# dichotomies/proxy-nca) is a ProxyNCA++ (Teh et al., ECCV 2020) change; a harness can still
# override the multiplier.
# Search range: PML's softmax_scale defaults to 1; ProxyNCA++ (Teh et al. 2020) uses 1/T = 9.
@register_loss(
    "proxynca", sampler="class_balanced", group="paper", lr_multiplier=1.0, tags=("proxy",), shards_class_weights=True,
    hyperparameters={"scale": Hyper(gt=0, search=LogUniform(1.0, 32.0))},
)
class ProxyNCA(MetricLoss):
    """Proxy-NCA with one learnable proxy per class.

    Args:
        embedding_dim: D, the embedding width.
        num_classes: C, the number of training classes (one proxy each).
        scale: s, multiplies both normalized vectors, so d = s^2 ||x/|x| - p/|p|||^2
            (paper: 1; ProxyNCA++ and dichotomies/proxy-nca use larger values, e.g. 3 or 8).
        include_positive: whether the positive proxy is also in the denominator. False is the
            paper's loss; True gives softmax cross-entropy over -d, the form of ProxyNCA++ and
            of pytorch-metric-learning's ``ProxyNCALoss``, bounded below by 0.
    """

    miner_refusal = ("it compares each embedding with the class proxies, never with other "
                     "samples: there are no pairs or triplets of samples for a miner to choose")

    def __init__(
        self,
        embedding_dim: int,
        num_classes: int,
        scale: float = 1.0,
        include_positive: bool = False,
    ) -> None:
        super().__init__()
        if num_classes < 2 and not include_positive:
            raise ValueError("Proxy-NCA without the positive proxy needs num_classes >= 2")
        self.embedding_dim, self.num_classes = embedding_dim, num_classes
        self.scale = scale
        self.include_positive = include_positive
        self.proxies = ClassWeights(num_classes, embedding_dim)

    def compute(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        cosine = cosine_logits(embeddings, self.proxies.weight)
        # For unit vectors, ||s x - s p||^2 = s^2 (2 - 2 cos(x, p)).
        distances = 2.0 * self.scale**2 * (1.0 - cosine)
        if self.include_positive:
            return F.cross_entropy(-distances, labels)
        positive = F.one_hot(labels, self.num_classes).bool()
        negative_logits = (-distances).masked_fill(positive, float("-inf"))
        negatives_logsumexp = torch.logsumexp(negative_logits, dim=1)
        positive_distance = distances.gather(1, labels[:, None]).squeeze(1)
        return (positive_distance + negatives_logsumexp).mean()
