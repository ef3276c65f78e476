"""Shared fixtures. Every test that registers something does so inside a scoped registry."""

from __future__ import annotations

import pytest
import torch

from losszoo.losses.registry import LOSSES


@pytest.fixture
def loss_registry():
    """The loss registry, restored to its previous state after the test."""
    with LOSSES.scoped() as registry:
        yield registry


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
