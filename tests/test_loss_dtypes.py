"""Class-weight losses take the floating dtypes the pair losses take: float64 embeddings against
float32 weights compute in float64 (as if the module were .double()), float16/bfloat16
embeddings in the weights' float32 (as if the input were .float())."""

from __future__ import annotations

import copy

import pytest
import torch

from losszoo import create_loss

CLASS_WEIGHT_LOSSES = ("normsoftmax", "cosface", "proxynca")


@pytest.mark.parametrize("name", CLASS_WEIGHT_LOSSES)
def test_float64_embeddings_compute_as_the_double_module(name):
    loss = create_loss(name, embedding_dim=8, num_classes=5)
    x = torch.randn(10, 8, dtype=torch.float64)
    y = torch.arange(10) % 5
    assert loss(x, y).dtype == torch.float64
    assert loss(x, y).item() == copy.deepcopy(loss).double()(x, y).item()


@pytest.mark.parametrize("name", CLASS_WEIGHT_LOSSES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_embeddings_compute_in_float32_and_get_their_gradient(name, dtype):
    loss = create_loss(name, embedding_dim=8, num_classes=5)
    x = torch.randn(10, 8).to(dtype).requires_grad_()
    y = torch.arange(10) % 5
    value = loss(x, y)
    value.backward()
    assert value.dtype == torch.float32 and torch.isfinite(value)
    assert value.item() == loss(x.detach().float(), y).item()
    assert x.grad.dtype == dtype and torch.isfinite(x.grad.float()).all()
