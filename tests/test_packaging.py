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


def _externally_managed(python: str) -> bool:
    import subprocess

    probe = ("import os, sys, sysconfig; sys.exit(0 if os.path.exists(os.path.join("
             "sysconfig.get_path('stdlib'), 'EXTERNALLY-MANAGED')) else 1)")
    try:
        return subprocess.run([python, "-c", probe], timeout=30).returncode == 0
    except OSError:
        return False


def test_setup_installs_into_a_venv_where_the_system_python_refuses_pip(tmp_path):
    """README: two commands on a fresh Debian 12. Debian's python3 refuses `pip install` outside a
    virtual environment (PEP 668): setup.sh stopped at "externally-managed-environment" there (CI
    only passed because its python3 is not Debian's). It now makes .venv and installs into it."""
    import os
    import shutil
    import subprocess

    import pytest

    system = "/usr/bin/python3"
    if not _externally_managed(system):
        pytest.skip(f"{system} is not an externally managed (PEP 668) Python here")
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "setup.sh", tmp_path / "scripts" / "setup.sh")
    # No pyproject.toml: pip fails right after the decision this test is about, without installing.
    env = {**os.environ, "PYTHON": system}
    done = subprocess.run(["bash", str(tmp_path / "scripts" / "setup.sh"), "none"], capture_output=True, text=True,
                          env=env, timeout=300)
    assert "externally-managed-environment" not in done.stdout + done.stderr
    assert (tmp_path / ".venv" / "bin" / "python").exists() and "PEP 668" in done.stdout
    first_on_path = '[ -x .venv/bin/python ] && export PATH="$PWD/.venv/bin:$PATH"'
    for script in ("demo", "test"):  # and they put it first on PATH
        assert first_on_path in (ROOT / "scripts" / script).read_text()
