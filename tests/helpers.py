"""Small batch makers and reference pieces shared by the per-loss test files (float64)."""

from __future__ import annotations

import math

import torch
from torch import nn


def gaussian_batch(seed: int, batch: int, dim: int, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Standard normal embeddings [batch, dim] and uniform labels in [0, num_classes)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, dim, generator=g, dtype=torch.float64)
    labels = torch.randint(num_classes, (batch,), generator=g)
    return x, labels


def clustered(labels: torch.Tensor, dim: int, noise: float, g: torch.Generator) -> torch.Tensor:
    """Embeddings around one random centre per class, so that classes overlap by ``noise``."""
    centers = torch.randn(int(labels.max()) + 1, dim, generator=g, dtype=torch.float64)
    return centers[labels] + noise * torch.randn(len(labels), dim, generator=g, dtype=torch.float64)


def vary_class_weight_norms(loss: nn.Module) -> nn.Module:
    """Rescale each class weight row to a random norm: the loss under test must normalize them."""
    weight = loss.proxies.weight
    with torch.no_grad():
        weight.mul_(torch.rand(weight.shape[0], 1, dtype=weight.dtype) * 3 + 0.1)
    return loss


def unit_distance(u: list[float], v: list[float]) -> float:
    """Euclidean distance between u / |u| and v / |v|, in plain Python."""
    nu, nv = math.sqrt(sum(a * a for a in u)), math.sqrt(sum(b * b for b in v))
    return math.sqrt(sum((a / nu - b / nv) ** 2 for a, b in zip(u, v)))


def forward_backward(loss: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss at a fresh copy of ``x`` after backward, and the gradient there."""
    x = x.clone().requires_grad_()
    value = loss(x, labels)
    value.backward()
    return value, x.grad
