"""The package list in pyproject.toml names every package folder (a package-dir mapping installs
adapters/ as `losszoo_adapters`, so setuptools cannot discover the packages by itself), and no
generic top-level name is installed."""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_installed_under_a_losszoo_name():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    folders = {".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "losszoo").rglob("__init__.py")}
    assert folders <= listed, f"add to pyproject.toml packages: {sorted(folders - listed)}"
    assert setuptools["package-dir"] == {"losszoo_adapters": "adapters"}
    assert all(name.split(".")[0] in {"losszoo", "losszoo_adapters"} for name in listed)


def test_the_pml_entry_point_names_the_installed_module():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["losszoo.losses.namespaces"]["pml"] == "losszoo_adapters.pml:register"
