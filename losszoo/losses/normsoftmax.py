"""Normalized softmax (Zhai & Wu, "Classification is a Strong Baseline for Deep Metric Learning",
BMVC 2019, eq. 1):

    L = -log( exp(x^T p_y / T) / sum_{z in Z} exp(x^T p_z / T) ),

with x and every class weight p_z L2-normalized, no bias, temperature T = 0.05.
"""

from __future__ import annotations

from torch import Tensor

from losszoo.hyperparams import Hyper, LogUniform
from losszoo.losses.proxies import CosineSoftmaxLoss
from losszoo.losses.registry import register_loss


# Search range: the issue's/paper's neighbourhood of T = 0.05 (Zhai & Wu, Table 7 studies 0.01-1).
@register_loss(
    "normsoftmax", sampler="class_balanced", group="paper", tags=("classification", "proxy"),
    shards_class_weights=True,
    hyperparameters={
        "temperature": Hyper(gt=0, search=LogUniform(0.01, 0.2)),
        "class_subsample": Hyper(gt=0, le=1),
    },
)
class NormSoftmax(CosineSoftmaxLoss):
    """Normalized softmax loss with temperature and optional class subsampling.

    Args:
        embedding_dim: D, the embedding width.
        num_classes: C, the number of training classes (one weight row each).
        temperature: T in eq. 1 (paper: 0.05).
        class_subsample: r in (0, 1]. While training, the softmax runs over the batch's classes
            plus random others, ``ceil(r * C)`` in all (Sec. 4.5); r = 1 uses every class.
            Subsampling gives the class weights sparse gradients.
    """

    def __init__(
        self,
        embedding_dim: int,
        num_classes: int,
        temperature: float = 0.05,
        class_subsample: float = 1.0,
    ) -> None:
        super().__init__(embedding_dim, num_classes, class_subsample)
        self.temperature = temperature

    def logits(self, cosine: Tensor, targets: Tensor) -> Tensor:
        return cosine / self.temperature
