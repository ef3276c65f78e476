"""The example plugin package (adapters/example-plugin), really pip-installed into a temp folder.

Its ArcFace is cross-checked against pytorch-metric-learning's ArcFaceLoss. Convention
differences adjusted for: PML takes the margin in degrees (ours: radians) and stores the class
weights as [D, C] (ours: [C, D]).
"""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from pytorch_metric_learning.losses import ArcFaceLoss

from losszoo import create_loss, get_loss_spec, list_losses

PLUGIN_SOURCE = Path(__file__).resolve().parents[1] / "adapters" / "example-plugin"
PLUGIN_MODULE = "losszoo_example_plugin"
NAME = "example:arcface"
DIM, NUM_CLASSES = 6, 5


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    """A folder holding the plugin as pip installs it (module + dist-info with entry points)."""
    pytest.importorskip("setuptools", reason="building the plugin offline needs setuptools")
    root = tmp_path_factory.mktemp("example-plugin")
    source = shutil.copytree(PLUGIN_SOURCE, root / "src")  # pip builds in-tree: keep the repo clean
    site = root / "site"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
         "--no-cache-dir", "--disable-pip-version-check", "--quiet", "--target", str(site), str(source)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return site


@pytest.fixture
def installed_plugin(plugin_site, monkeypatch, loss_registry):
    """The plugin on sys.path and loaded by the registry; modules and registry restored after."""
    monkeypatch.syspath_prepend(str(plugin_site))
    before = set(sys.modules)
    loss_registry.reload_plugins()
    yield sys.modules[PLUGIN_MODULE]
    for name in set(sys.modules) - before:
        del sys.modules[name]


def test_installed_plugin_adds_a_working_loss(installed_plugin, plugin_site):
    assert installed_plugin.__file__.startswith(str(plugin_site))  # the installed copy, not the source
    assert NAME in list_losses() and list_losses("example:*") == [NAME]
    spec = get_loss_spec(NAME)
    assert spec.needs_num_classes and spec.needs_embedding_dim
    assert dict(spec.defaults) == {"scale": 64.0, "margin": 0.5}

    installed_plugin.register()  # idempotent: a second call changes nothing
    assert list_losses("example:*") == [NAME]

    loss = create_loss(NAME, embedding_dim=DIM, num_classes=NUM_CLASSES, margin=0.3)
    assert loss.margin == 0.3
    x = torch.randn(8, DIM, requires_grad=True)
    value = loss(x, torch.tensor([0, 0, 1, 1, 2, 2, 4, 4]))
    value.backward()
    assert torch.isfinite(value) and value > 0
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert torch.isfinite(loss.proxies.weight.grad).all()


def test_plugin_arcface_matches_pml(installed_plugin):
    loss = create_loss(NAME, embedding_dim=DIM, num_classes=NUM_CLASSES).double()
    reference = ArcFaceLoss(NUM_CLASSES, DIM, margin=math.degrees(loss.margin), scale=loss.scale).double()
    with torch.no_grad():
        reference.W.copy_(loss.proxies.weight.T)
    labels = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2])
    x = torch.randn(len(labels), DIM, dtype=torch.float64)
    # Sample 0 points away from its class weight (theta = pi > pi - m): the monotonic branch.
    x[0] = -3.0 * loss.proxies.weight[labels[0]].detach()
    x_ours, x_ref = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ours, theirs = loss(x_ours, labels), reference(x_ref, labels)
    ours.backward()
    theirs.backward()
    assert torch.allclose(ours, theirs, rtol=1e-9, atol=1e-9)
    assert torch.allclose(x_ours.grad, x_ref.grad, rtol=1e-6, atol=1e-9)
    assert torch.allclose(loss.proxies.weight.grad, reference.W.grad.T, rtol=1e-6, atol=1e-9)


def test_plugin_arcface_gradcheck(installed_plugin):
    loss = create_loss(NAME, embedding_dim=DIM, num_classes=NUM_CLASSES, scale=4.0).double()
    x = torch.randn(6, DIM, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1, 3, 3])
    assert torch.autograd.gradcheck(lambda e: loss(e, labels), (x,), eps=1e-6, atol=1e-5)


def test_plugin_leaves_nothing_behind():
    assert NAME not in list_losses()
    assert PLUGIN_MODULE not in sys.modules
