"""The lab tests start real daemons: they need root and the Debian packages named in lab/README.md.

The session fixture `the_lab` holds the lab for the whole test session (lab.core.exclusive_use) and
brings it down at the end; `hardened` and `weak` switch it to a profile only when needed, so all
modules under tests/lab share one lab and one switch per profile.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def pytest_configure(config):
    config.addinivalue_line("markers", "lab: brings up the live lab (root, Debian packages; lab/README.md)")


def pytest_collection_modifyitems(items):
    # Everything else first, then the lab's own tests (they check the services), then the audits and
    # scans that use them; each module switches profiles in order (hardened, then weak).
    def rank(item) -> int:
        if "/tests/lab/" not in str(item.fspath):
            return 0
        return 1 if Path(str(item.fspath)).name == "test_lab.py" else 2

    items.sort(key=rank)


def _preflight_problem() -> str | None:
    if os.geteuid() != 0:
        return "the lab needs root"
    try:
        from lab.core import preflight
        from lab.procs import LabError
    except ImportError as e:  # cryptography
        return f"the lab cannot be imported: {e}"

    try:
        preflight()
    except LabError as e:
        return str(e)
    try:
        import moto.server  # noqa: F401
    except ImportError:
        return 'moto is not installed (pip install "moto[server]")'
    return None


PROBLEM = _preflight_problem()


def lab(*args: str, check: bool = True, timeout: float = 90) -> subprocess.CompletedProcess:
    cp = subprocess.run([sys.executable, "-m", "lab", *args], cwd=REPO, capture_output=True, text=True,
                        timeout=timeout)
    if check and cp.returncode != 0:
        raise AssertionError(f"python -m lab {' '.join(args)} exited {cp.returncode}:\n{cp.stderr}")
    return cp


class Lab:
    """Brings the lab up in a profile only when it is not already in it (one `up` per switch)."""

    def __init__(self) -> None:
        self.profile: str | None = None
        self.env: dict = {}
        self.up_output: dict[str, subprocess.CompletedProcess] = {}

    def use(self, profile: str) -> dict:
        if self.profile != profile:
            cp = lab("up", "--profile", profile)
            self.up_output[profile] = cp
            self.profile = profile
            self.env = json.loads(lab("env", "--profile", profile).stdout)
        return self.env


@pytest.fixture(scope="session")
def the_lab():
    if PROBLEM:
        pytest.skip(f"lab unavailable: {PROBLEM}")
    from lab.core import exclusive_use

    with exclusive_use():
        before = json.loads(lab("status", check=False).stdout or "{}")
        session = Lab()
        yield session
        lab("down", check=False)
        if before.get("running") and before.get("profile"):
            lab("up", "--profile", before["profile"], check=False)


@pytest.fixture
def hardened(the_lab) -> dict:
    return the_lab.use("hardened")


@pytest.fixture
def weak(the_lab) -> dict:
    return the_lab.use("weak")


