"""Shared fixtures. Every test that registers something does so inside a scoped registry; an
autouse fixture checks that no test leaves an entry behind (and removes it if one does), so the
"no leak" tests hold whatever order the tests run in. Plugins installed in the environment
(e.g. the example plugin, pip-installed as its README says) are hidden from the registries:
the suite sees losszoo's own entry points and the throwaway plugins tests install themselves."""

from __future__ import annotations

from importlib.metadata import distributions, entry_points

import pytest
import torch

import losszoo.registry
from losszoo.data.registry import DATASETS
from losszoo.losses.registry import LOSSES
from losszoo.miners.registry import MINERS
from losszoo.models.registry import BACKBONES
from losszoo.samplers.registry import SAMPLERS

REGISTRIES = (LOSSES, MINERS, BACKBONES, DATASETS, SAMPLERS)


def _installed_plugin_locations() -> set[str]:
    """Where the distributions other than losszoo that declare losszoo entry points live."""
    return {str(dist.locate_file("")) for dist in distributions()
            if dist.metadata["Name"] != "losszoo"
            and any(ep.group.startswith("losszoo.") for ep in dist.entry_points)}


@pytest.fixture(autouse=True, scope="session")
def _hide_installed_plugins():
    installed = _installed_plugin_locations()

    def own_entry_points(**selection):
        return [ep for ep in entry_points(**selection)
                if ep.dist is None or ep.dist.metadata["Name"] == "losszoo"
                or str(ep.dist.locate_file("")) not in installed]

    patch = pytest.MonkeyPatch()
    patch.setattr(losszoo.registry, "entry_points", own_entry_points)
    for registry in REGISTRIES:  # none read yet at collection; reset in case one was
        registry._plugins_loaded = registry.entry_point_group is None
        registry._namespaces_loaded = set()
    yield
    patch.undo()


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


@pytest.fixture
def one_thread(monkeypatch):
    """One torch thread in this process and in the subprocesses it starts, so runs in both
    compute bit for bit alike. ``OMP_NUM_THREADS`` too: losszoo's command sizes its threads to
    the cores when it starts (``runtime.tune_process``) unless that variable is set."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MKL_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
