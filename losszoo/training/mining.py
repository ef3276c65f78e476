"""A loss fed by a miner: each step the miner's tuples (``indices_tuple``) replace the loss's own
choice of pairs/triplets (pytorch-metric-learning's convention, ``loss(x, y, miner(x, y))``)."""

from __future__ import annotations

from torch import Tensor, nn


class MinedLoss(nn.Module):
    """``loss(embeddings, labels, miner(embeddings, labels))``; owns no state of its own, so the
    loss's state dict is unchanged (the miner has none to save)."""

    def __init__(self, loss: nn.Module, miner: nn.Module) -> None:
        super().__init__()
        self.loss = loss
        self.miner = miner

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        return self.loss(embeddings, labels, self.miner(embeddings, labels))
