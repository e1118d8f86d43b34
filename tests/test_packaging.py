"""`pip install .` ships every package and data file (the project maps checks/ and templates/)."""

from __future__ import annotations

import tomllib

from .conftest import ROOT


def test_every_package_is_listed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "mastoaudit").rglob("__init__.py")}
    assert found <= listed, f"packages missing from pyproject.toml: {sorted(found - listed)}"
    assert {"mastoaudit_checks", "mastoaudit_templates"} <= listed
    data = config["package-data"]
    assert {"*.yaml", "*.json"} <= set(data["mastoaudit.data"])
    shipped = {p.suffix for p in (ROOT / "templates").iterdir() if p.is_file() and p.suffix != ".py"}
    assert {f"*{s}" for s in shipped} <= set(data["mastoaudit_templates"])
