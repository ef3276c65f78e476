"""Small batch makers and reference pieces shared by the per-loss test files (float64)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path

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


def assert_matches_reference_with_weights(
    ours: nn.Module, theirs: nn.Module, theirs_weights: torch.Tensor, x: torch.Tensor, labels: torch.Tensor,
    *, transposed: bool = False, rtol: float = 1e-9, atol: float = 1e-12,
) -> None:
    """Copy our class weights or proxies (``[C, D]``) into a reference loss (PML's, ``[D, C]``
    when ``transposed``), then compare in float64 the loss, the embedding gradient and the
    weights' gradient."""
    with torch.no_grad():
        theirs_weights.copy_(ours.proxies.weight.T if transposed else ours.proxies.weight)
    value_ours, grad_ours = forward_backward(ours, x, labels)
    value_theirs, grad_theirs = forward_backward(theirs, x, labels)
    torch.testing.assert_close(value_ours, value_theirs, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad_ours, grad_theirs, rtol=rtol, atol=atol)
    weights_grad = theirs_weights.grad.T if transposed else theirs_weights.grad
    torch.testing.assert_close(ours.proxies.weight.grad, weights_grad, rtol=rtol, atol=atol)


def cli_process(*args: str) -> subprocess.Popen:
    """``losszoo ARGS`` in a subprocess of one thread, its stderr kept for the failure message."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "losszoo.cli.main", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for_file(proc: subprocess.Popen, path: Path, timeout: float = 300) -> None:
    """Until ``path`` exists: fails with the process's stderr if it exits first, or on timeout."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.01)
