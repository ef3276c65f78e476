"""Class weights ("proxies") for the classification and proxy losses, shared by all of them."""

from __future__ import annotations

import math
from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from losszoo.losses.base import MetricLoss


class ClassWeights(nn.Module):
    """One learnable D-dimensional weight (proxy) per class, W in R^{C x D}, no bias.

    ``select`` implements the class subsampling of Zhai & Wu (2019), Sec. 4.5: the softmax
    runs over the classes present in the batch plus random other classes, ``ceil(r * C)``
    in all, with labels remapped to rows of the returned weights. Its cost (and, through a
    sparse gradient, its memory) scales with the number of sampled classes, not with C.
    """

    def __init__(self, num_classes: int, embedding_dim: int) -> None:
        super().__init__()
        if num_classes < 1 or embedding_dim < 1:
            raise ValueError(f"num_classes and embedding_dim must be >= 1, got {num_classes}, {embedding_dim}")
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_dim))
        # Same init as nn.Linear's weight: uniform(-1/sqrt(D), 1/sqrt(D)).
        bound = 1.0 / math.sqrt(embedding_dim)
        nn.init.uniform_(self.weight, -bound, bound)

    @property
    def num_classes(self) -> int:
        return self.weight.shape[0]

    def select(self, labels: Tensor, ratio: float) -> tuple[Tensor, Tensor]:
        """Return (weights of the sampled classes [K, D], labels remapped into [0, K))."""
        if ratio >= 1.0:
            return self.weight, labels
        present = torch.unique(labels)
        # ceil(r * C) in exact arithmetic on r as written: 0.035 * 200 is 7, not 7.000000000000001.
        target = max(math.ceil(Fraction(str(ratio)) * self.num_classes), present.numel())
        others = sample_other_classes(present, target - present.numel(), self.num_classes)
        # Rows in increasing order make the sparse gradient's indices sorted and unique, which
        # lets SGD's sparse momentum buffer merge rows (CPU) instead of growing by K every step.
        rows = torch.cat([present, others]).sort().values
        return F.embedding(rows, self.weight, sparse=True), torch.searchsorted(rows, labels)


def sample_other_classes(present: Tensor, count: int, num_classes: int) -> Tensor:
    """``count`` distinct class indices drawn uniformly from those not in ``present``.

    Rejection sampling keeps the cost proportional to ``count`` when it is small against
    ``num_classes``; past half of the classes a full permutation is cheaper.
    """
    device = present.device
    if count <= 0:
        return torch.empty(0, dtype=torch.long, device=device)
    taken = torch.zeros(0, dtype=torch.long, device=device)
    if 2 * (count + present.numel()) > num_classes:
        perm = torch.randperm(num_classes, device=device)
        keep = ~torch.isin(perm, present)
        return perm[keep][:count]
    while taken.numel() < count:
        draw = torch.randint(num_classes, (2 * (count - taken.numel()) + 16,), device=device)
        draw = torch.unique(torch.cat([taken, draw[~torch.isin(draw, present)]]))
        taken = draw[torch.randperm(draw.numel(), device=device)]
    return taken[:count]


def cosine_logits(embeddings: Tensor, weights: Tensor) -> Tensor:
    """cos(theta_j) = normalize(x) . normalize(w_j) = (normalize(x) . w_j) / ||w_j||, shape [B, C].

    Dividing the [B, C] products by the weight norms, instead of normalizing the [C, D]
    weights first, halves the time for C >> B: the backward pass then makes one elementwise
    pass over the weights instead of several. The norm is clamped at 1e-12 like F.normalize's.
    Both sides are computed in their promoted dtype (float64 embeddings against float32
    weights: float64; float16/bfloat16 embeddings: the weights' float32).
    """
    dtype = torch.promote_types(embeddings.dtype, weights.dtype)
    embeddings, weights = embeddings.to(dtype), weights.to(dtype)
    weight_norms = weights.norm(dim=1).clamp_min(1e-12)
    return (F.normalize(embeddings, dim=1) @ weights.T) / weight_norms


class CosineSoftmaxLoss(MetricLoss):
    """Softmax cross-entropy over cosine similarities to learned class weights, no bias, with
    the class subsampling of Zhai & Wu (2019, Sec. 4.5); the base of NormSoftmax and CosFace.

    Subclasses turn the cosines ``cos(theta_j)`` [B, K] into logits (:meth:`logits`).
    ``class_subsample`` r in (0, 1]: while training, the softmax runs over the batch's classes
    plus random others, ``ceil(r * C)`` in all; r = 1 uses every class. Subsampling gives the
    class weights sparse gradients.
    """

    miner_refusal = ("it is a classification loss, each embedding against the class weights, "
                     "with no pairs or triplets of samples for a miner to choose")

    def __init__(self, embedding_dim: int, num_classes: int, class_subsample: float) -> None:
        super().__init__()
        if not 0 < class_subsample <= 1:
            raise ValueError(f"class_subsample must lie in (0, 1], got {class_subsample}")
        self.embedding_dim, self.num_classes = embedding_dim, num_classes
        self.class_subsample = class_subsample
        self.proxies = ClassWeights(num_classes, embedding_dim)

    def compute(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        ratio = self.class_subsample if self.training else 1.0
        weights, targets = self.proxies.select(labels, ratio)
        return F.cross_entropy(self.logits(cosine_logits(embeddings, weights), targets), targets)

    def logits(self, cosine: Tensor, targets: Tensor) -> Tensor:
        """Logits [B, K] from the cosines [B, K] and the (remapped) target columns [B]."""
        raise NotImplementedError

    @property
    def sparse_gradients(self) -> bool:
        return self.class_subsample < 1.0
