"""The loss registry: registration rules, lookup, creation, and entry-point plugins."""

from __future__ import annotations

import dataclasses
import fnmatch
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch

import losszoo
from losszoo import MetricLoss, create_loss, get_loss_spec, list_losses, register_loss
from losszoo.errors import ConfigError

PAPER_LOSSES = [
    "contrastive", "cosface", "lifted", "margin", "normsoftmax", "npair", "proxynca", "triplet",
]
MODERN_LOSSES = ["arcface", "multisimilarity", "proxyanchor", "supcon"]


class _Toy(MetricLoss):
    def __init__(self, scale: float = 2.0) -> None:
        super().__init__()
        self.scale = scale

    def compute(self, embeddings, labels):
        return self.scale * embeddings.pow(2).mean()


def test_all_paper_losses_are_registered_and_importable():
    assert set(PAPER_LOSSES) <= set(list_losses())
    assert get_loss_spec("lmcl") is get_loss_spec("cosface")
    for cls_name in ("NormSoftmax", "CosFace", "ProxyNCA", "Triplet", "Margin", "NPair",
                     "LiftedStructure", "Contrastive", "ProxyAnchor", "MultiSimilarity", "ArcFace",
                     "SupCon"):
        assert issubclass(getattr(losszoo, cls_name), MetricLoss)


def test_groups_come_from_the_specs_and_the_paper_group_is_the_default():
    groups = losszoo.losses.loss_groups()
    assert groups["paper"] == PAPER_LOSSES and groups["modern"] == MODERN_LOSSES
    assert groups["all"] == list_losses(namespaced=False)
    assert losszoo.losses.select_losses() == PAPER_LOSSES
    assert losszoo.losses.select_losses(["ms", "modern", "LMCL", "unknown"]) == [
        "multisimilarity", "arcface", "proxyanchor", "supcon", "cosface", "unknown"]


def test_a_registered_group_is_selectable_and_a_loss_shadows_a_group(loss_registry):
    register_loss("toy", group="toys")(_Toy)
    assert losszoo.losses.select_losses(["toys"]) == ["toy"]
    register_loss("toys")(type("_Toys", (_Toy,), {}))
    assert losszoo.losses.select_losses(["toys"]) == ["toys"]
    with pytest.raises(ValueError, match="reserved"):
        register_loss("toy2", group="all")


def test_list_losses_is_sorted_and_filters_with_fnmatch():
    assert list_losses() == sorted(list_losses())
    assert "normsoftmax" in list_losses("*softmax*")
    assert all("softmax" in name for name in list_losses("*softmax*"))
    assert list_losses("NORM*") == ["normsoftmax"]  # patterns are case-insensitive
    assert list_losses("nothing-like-this*") == []


def test_spec_is_frozen_and_read_only():
    spec = get_loss_spec("normsoftmax")
    assert spec.sampler == "class_balanced"
    assert spec.needs_num_classes and spec.needs_embedding_dim
    assert dict(spec.defaults) == {"temperature": 0.05, "class_subsample": 1.0}
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.sampler = "random"  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.defaults["temperature"] = 1.0  # type: ignore[index]


def test_register_and_create_inside_a_scope(loss_registry):
    register_loss("toy", sampler="random", defaults={"scale": 3.0}, aliases=("toy-alias",),
                  tags=("test",))(_Toy)
    assert "toy" in list_losses()
    spec = get_loss_spec("toy-alias")
    assert spec.name == "toy" and spec.defaults["scale"] == 3.0 and not spec.needs_num_classes
    loss = create_loss("toy", embedding_dim=4, scale=None)  # None overrides keep the default
    assert loss.scale == 3.0
    assert create_loss("toy", embedding_dim=4, scale=0.5).scale == 0.5


def test_scope_does_not_leak():
    assert "toy" not in list_losses()


@pytest.mark.parametrize("name", ["Toy", "1toy", "to y", "", "toy!"])
def test_names_are_checked(loss_registry, name):
    with pytest.raises(ValueError, match="invalid loss name"):
        register_loss(name)(_Toy)


def test_duplicates_raise(loss_registry):
    register_loss("toy")(_Toy)
    with pytest.raises(ValueError, match="already registered"):
        register_loss("toy")(_Toy)
    with pytest.raises(ValueError, match="already registered"):
        register_loss("other", aliases=("toy",))(_Toy)


def test_bad_registrations_raise(loss_registry):
    with pytest.raises(TypeError, match="nn.Module"):
        register_loss("notamodule")(int)
    with pytest.raises(TypeError, match="not arguments"):
        register_loss("toy", defaults={"nope": 1})(_Toy)

    class NoDefault(MetricLoss):
        def __init__(self, margin: float) -> None:
            super().__init__()

    with pytest.raises(TypeError, match="needs a default"):
        register_loss("nodefault")(NoDefault)


def test_unknown_loss_suggests_close_names():
    with pytest.raises(KeyError, match="Did you mean 'normsoftmax'"):
        get_loss_spec("normsoftmx")


def test_unknown_hyperparameter_lists_accepted():
    with pytest.raises(ConfigError, match=r"no hyperparameter 'temprature'.*accepted: class_subsample, temperature"):
        create_loss("normsoftmax", embedding_dim=8, num_classes=3, temprature=0.1)


def test_class_weight_losses_need_num_classes():
    with pytest.raises(ValueError, match="num_classes"):
        create_loss("normsoftmax", embedding_dim=8)


def _write_distribution(root, dist, module, body, entry_points, group="losszoo.losses"):
    (root / f"{module}.py").write_text(textwrap.dedent(body))
    info = root / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n" + entry_points)


@pytest.fixture
def plugin_path(tmp_path, monkeypatch, loss_registry):
    """A folder on sys.path where tests drop throwaway distributions; modules cleaned after."""
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]


def test_entry_point_plugin_registers_a_loss(plugin_path, loss_registry):
    _write_distribution(
        plugin_path, "zoo-plugin-demo", "zoo_plugin_demo",
        """
        import losszoo

        @losszoo.register_loss("plugin-demo", sampler="class_balanced", tags=("plugin",))
        class PluginDemo(losszoo.MetricLoss):
            def __init__(self, weight: float = 1.0):
                super().__init__()
                self.weight = weight

            def compute(self, embeddings, labels):
                return self.weight * embeddings.sum() * 0
        """,
        "demo = zoo_plugin_demo\n",
    )
    loss_registry.reload_plugins()
    assert "plugin-demo" in list_losses()
    loss = create_loss("plugin-demo", embedding_dim=4, weight=2.0)
    assert float(loss(torch.ones(2, 4), torch.tensor([0, 1]))) == 0.0


def test_broken_plugin_warns_and_names_itself(plugin_path, loss_registry):
    _write_distribution(plugin_path, "zoo-plugin-broken", "zoo_plugin_broken",
                        "raise ImportError('boom')\n", "broken = zoo_plugin_broken\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loss_registry.reload_plugins()
    assert any("'broken'" in str(w.message) and "boom" in str(w.message) for w in caught)
    assert "normsoftmax" in list_losses()  # the zoo still works


def test_namespace_plugin_is_imported_only_for_its_prefix(plugin_path, loss_registry):
    _write_distribution(
        plugin_path, "zoo-ns-demo", "zoo_ns_demo",
        """
        import losszoo

        def register():
            @losszoo.register_loss("nsdemo:one", sampler="class_balanced")
            class One(losszoo.MetricLoss):
                def compute(self, embeddings, labels):
                    return embeddings.sum() * 0
        """,
        "nsdemo = zoo_ns_demo:register\n",
        group="losszoo.losses.namespaces",
    )
    loss_registry.reload_plugins()
    assert {"nsdemo", "pml"} <= set(loss_registry.namespaces())  # declared, read without importing
    assert "nsdemo:one" not in list_losses(namespaced=False)
    assert "zoo_ns_demo" not in sys.modules  # a plain listing and built-in lookups skip it
    get_loss_spec("normsoftmax")
    assert "zoo_ns_demo" not in sys.modules
    assert get_loss_spec("NSDemo:One").name == "nsdemo:one"  # its prefix imports it
    assert "zoo_ns_demo" in sys.modules
    assert "nsdemo:one" in list_losses("*:one")
    with pytest.raises(KeyError, match="unknown loss 'nsdemo:two'"):
        get_loss_spec("nsdemo:two")


def test_built_in_lookups_import_no_plugin_and_a_miss_loads_them():
    # In a fresh process: the pml adapter (a namespace plugin) takes ~1.5 s to import, so a
    # lookup that the built-ins answer must not load it; a pml: name does.
    script = textwrap.dedent("""
        import sys
        import losszoo
        losszoo.get_loss_spec("normsoftmax"), losszoo.get_loss_spec("lmcl")
        print("pytorch_metric_learning" in sys.modules)
        losszoo.get_loss_spec("pml:arcfaceloss")
        print("pytorch_metric_learning" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]


def test_a_namespace_declared_in_code_resolves_lists_and_reserves_its_prefix():
    """What the backbones' timm: namespace rests on, with a toy registry (no timm needed)."""
    from losszoo.registry import Namespace, Registry

    registry: Registry[str] = Registry("widget")
    registry.add("plain", "a plain widget")
    shapes = {"round": "a round one", "square": "a square one"}
    installed = [True]

    def lookup(name: str) -> str:
        if not installed[0]:
            raise ImportError("shapes need the shapes package: pip install shapes")
        return shapes[name]

    registry.add_namespace(Namespace("shape", lookup, lambda pattern: sorted(fnmatch.filter(shapes, pattern)),
                                     lambda: installed[0]))
    assert registry.get("Shape:Round") == "a round one" and registry.canonical("shape:round") == "shape:round"
    assert registry.names() == ["plain", "shape:<name>"] and registry.names("shape:s*") == ["shape:square"]
    assert registry.names(namespaced=False) == ["plain"]
    assert "shape:round" in registry and "shape:oval" not in registry
    with pytest.raises(KeyError, match="oval"):
        registry.get("shape:oval")
    with pytest.raises(KeyError, match="or 'shape:<name>'"):
        registry.get("plane")
    with pytest.raises(ValueError, match="reserved for shape"):
        registry.add("shape:oval", "an oval")
    installed[0] = False  # the library behind it missing: not listed, a lookup says what to install
    assert registry.names() == ["plain"] and registry.names("shape:*") == []
    with pytest.raises(ImportError, match="pip install shapes"):
        registry.get("shape:round")
    with registry.scoped():
        registry.add_namespace(Namespace("color", lookup, list, lambda: True))
    assert registry.namespaces() == ["shape"]  # a scope undoes a declaration too
