"""The package's module-level import graph has no cycle, and its arrows point one way:
cli -> training/tuning -> {models, data, losses, miners, samplers, evaluation}; losses import only torch
and shared helpers. Imports inside functions (the lazy ones that keep `--help` fast) are not
module-level edges and do not count for the direction, but they close no cycle either (a lazy
import back into the module that imports you is a cycle all the same, only hidden)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "losszoo"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(name: str) -> str | None:
    """The losszoo module an import names (a submodule if there is one, else its package)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _statements(nodes: list[ast.stmt]) -> list[ast.stmt]:
    """Every statement in ``nodes``, nested ones (function bodies) included, except the bodies
    of ``if TYPE_CHECKING:`` (imports for annotations only)."""
    found = []
    for node in nodes:
        found.append(node)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            found += _statements(node.orelse)
            continue
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt):
                found += _statements([child])
    return found


def _edges(module: str, *, lazy: bool = False) -> set[str]:
    """The losszoo modules ``module`` imports: at module level, or anywhere with ``lazy``."""
    tree = ast.parse(MODULES[module].read_text())
    found: set[str] = set()
    # Module level only (`if TYPE_CHECKING:` blocks are skipped with it), or every statement.
    for node in _statements(tree.body) if lazy else tree.body:
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            if name.startswith("losszoo"):
                target = _resolve(name)
                if target and target != module:
                    found.add(target)
    return found


GRAPH = {module: _edges(module) for module in MODULES}
LAZY_GRAPH = {module: _edges(module, lazy=True) for module in MODULES}


def _layer(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def _check_no_cycle(graph: dict[str, set[str]]) -> None:
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done

    def visit(module: str, stack: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycle = stack[stack.index(target):] + [target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, stack + [target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_the_import_graph_has_no_cycle():
    _check_no_cycle(GRAPH)


def test_imports_inside_functions_close_no_cycle():
    """e.g. the backbone registry lazily importing the timm backbones, which import it back."""
    _check_no_cycle(LAZY_GRAPH)


def test_arrows_point_from_the_cli_down():
    lower = {"models", "data", "losses", "miners", "samplers", "evaluation"}
    for module, targets in GRAPH.items():
        layer = _layer(module)
        for target in targets:
            if layer in lower | {"training", "tuning", "distributed"}:
                assert _layer(target) != "cli", f"{module} imports {target}"
            if layer in lower:
                assert _layer(target) not in {"training", "tuning"}, f"{module} imports {target}"


def test_losses_import_only_torch_and_shared_helpers():
    allowed_layers = {"losses", "hyperparams", "errors", "registry"}
    for module, path in MODULES.items():
        if _layer(module) != "losses":
            continue
        for target in GRAPH[module]:
            assert _layer(target) in allowed_layers, f"{module} imports {target}"
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                roots = [a.name.split(".")[0] for a in node.names] if isinstance(node, ast.Import) \
                    else [(node.module or "").split(".")[0]]
                for root in roots:  # the standard library, torch, and losszoo's own helpers
                    assert root in sys.stdlib_module_names or root in {"torch", "losszoo"}, \
                        f"{module} imports {root}"


def test_the_package_never_imports_an_adapter():
    """Plugins (the PML adapter's pml: losses and miners) come through the registries' entry
    points only: no module of the package imports losszoo_adapters, lazily or not."""
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(name.split(".")[0] == "losszoo_adapters" for name in names), module
