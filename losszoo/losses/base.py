"""The one interface every loss shares: ``loss(embeddings[B, D], labels[B]) -> scalar``.

``loss(embeddings, labels, indices_tuple)`` also takes a miner's output in
pytorch-metric-learning's formats: triplets ``(anchors, positives, negatives)`` or pairs
``(a1, p, a2, n)`` of batch indices. A loss whose math is over pairs or triplets uses exactly
those instead of choosing its own; a loss without pairs (a classifier) refuses them with a
:class:`~losszoo.errors.ConfigError` saying why (``miner_refusal``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from losszoo.errors import ConfigError
from losszoo.losses.functional import check_indices_tuple


def check_inputs(
    embeddings: Tensor,
    labels: Tensor,
    *,
    embedding_dim: int | None = None,
    num_classes: int | None = None,
) -> None:
    """Raise a clear ``TypeError``/``ValueError`` for inputs no loss can make sense of."""
    if not isinstance(embeddings, Tensor) or not isinstance(labels, Tensor):
        raise TypeError("embeddings and labels must be torch.Tensors")
    if not embeddings.is_floating_point():
        raise TypeError(f"embeddings must be floating point, got {embeddings.dtype}")
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise TypeError(f"labels must be an integer tensor, got {labels.dtype}")
    if embeddings.dim() != 2:
        raise ValueError(f"embeddings must be 2-D [batch, dim], got shape {tuple(embeddings.shape)}")
    if labels.dim() != 1 or labels.shape[0] != embeddings.shape[0]:
        raise ValueError(
            f"labels must be 1-D with one label per embedding: embeddings {tuple(embeddings.shape)}, "
            f"labels {tuple(labels.shape)}"
        )
    if embeddings.shape[0] == 0:
        raise ValueError("empty batch")
    if embedding_dim is not None and embeddings.shape[1] != embedding_dim:
        raise ValueError(
            f"embedding dim {embeddings.shape[1]} does not match the loss's embedding_dim {embedding_dim}"
        )
    # NaN or inf anywhere makes the sum NaN or inf: one cheap reduction on the hot path. Only a
    # non-finite sum (which large finite values can also give) needs the elementwise check.
    if not torch.isfinite(embeddings.detach().sum()) and not torch.isfinite(embeddings).all():
        raise ValueError("embeddings contain NaN or inf")
    if num_classes is not None:
        low, high = (int(bound) for bound in torch.aminmax(labels))
        if low < 0 or high >= num_classes:
            raise ValueError(f"labels must lie in [0, {num_classes}); got min {low}, max {high}")


class MetricLoss(nn.Module):
    """Base class: validates the inputs, then calls :meth:`compute`.

    Subclasses set ``embedding_dim`` / ``num_classes`` when they own class weights, so inputs
    are checked against them, and implement :meth:`compute` as their paper's equation.
    """

    embedding_dim: int | None = None
    num_classes: int | None = None
    # Why this loss cannot use mined pairs/triplets; a loss that can overrides compute_mined.
    miner_refusal: str = "it does not define its loss over given pairs or triplets"

    def forward(
        self, embeddings: Tensor, labels: Tensor, indices_tuple: tuple[Tensor, ...] | None = None
    ) -> Tensor:
        check_inputs(
            embeddings, labels, embedding_dim=self.embedding_dim, num_classes=self.num_classes
        )
        labels = labels.to(embeddings.device, torch.long)
        if indices_tuple is None:
            return self.compute(embeddings, labels)
        if not takes_miner(type(self)):
            raise ConfigError(
                f"{type(self).__name__} cannot use a miner's indices_tuple: {self.miner_refusal}"
            )
        return self.compute_mined(embeddings, labels, check_indices_tuple(indices_tuple, labels))

    def compute(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        raise NotImplementedError

    def compute_mined(
        self, embeddings: Tensor, labels: Tensor, indices_tuple: tuple[Tensor, ...]
    ) -> Tensor:
        """The loss over exactly the given triplets (3 tensors) or pairs (4), validated."""
        raise NotImplementedError

    @property
    def sparse_gradients(self) -> bool:
        """Whether some parameter gets sparse gradients (then it needs weight_decay=0 in SGD)."""
        return False


def takes_miner(loss_class: type) -> bool:
    """Whether ``loss_class`` can use a miner's tuples: a :class:`MetricLoss` that defines
    :meth:`~MetricLoss.compute_mined` (any other module is trusted to take ``indices_tuple``).
    Read once, at registration (``LossSpec.takes_miner``)."""
    return not issubclass(loss_class, MetricLoss) or loss_class.compute_mined is not MetricLoss.compute_mined


def supports_memory(loss_class: type) -> bool:
    """Whether ``loss_class`` can be computed against a cross-batch memory: it defines
    ``compute_against`` (:mod:`losszoo.losses.xbm`). Read once, at registration
    (``LossSpec.supports_memory``)."""
    return callable(getattr(loss_class, "compute_against", None))
