"""Shared fixtures. Every test that registers something does so inside a scoped registry; an
autouse fixture checks that no test leaves an entry behind (and removes it if one does), so the
"no leak" tests hold whatever order the tests run in."""

from __future__ import annotations

import pytest
import torch

from losszoo.data.registry import DATASETS
from losszoo.losses.registry import LOSSES
from losszoo.models.registry import BACKBONES
from losszoo.samplers.registry import SAMPLERS

REGISTRIES = (LOSSES, BACKBONES, DATASETS, SAMPLERS)


@pytest.fixture
def loss_registry():
    """The loss registry, restored to its previous state after the test."""
    with LOSSES.scoped() as registry:
        yield registry


@pytest.fixture(autouse=True)
def _no_registry_leak():
    """Snapshot every registry; after the test restore it, and fail the test if it leaked."""
    saved = []
    for registry in REGISTRIES:
        registry.names()  # loads every plugin and namespace plugin first
        saved.append((dict(registry._entries), dict(registry._aliases)))
    yield
    leaks = []
    for registry, (entries, aliases) in zip(REGISTRIES, saved):
        extra = sorted(set(registry._entries) - set(entries)) + sorted(set(registry._aliases) - set(aliases))
        if extra or set(entries) - set(registry._entries):
            leaks.append(f"{registry.kind}: {extra or sorted(set(entries) - set(registry._entries))}")
        registry._entries, registry._aliases = entries, aliases
    if leaks:
        pytest.fail(f"the test changed a registry without scoping it: {'; '.join(leaks)}")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _process_threads_restored():
    """A test that runs ``losszoo.cli.main.main`` in this process lets losszoo manage its threads
    (runtime.tune_process); undo that, so later tests keep the threads they set themselves."""
    from losszoo import runtime

    managed, threads = runtime._threads_managed, torch.get_num_threads()
    yield
    runtime._threads_managed = managed
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
