"""Shared helpers: run the engine on a tree, pick findings out of a result."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

import pytest

from mastoaudit.engine import RunResult, run
from mastoaudit.model import Finding, Status
from mastoaudit.registry import Registry, default_registry
from mastoaudit.selection import Selection
from mastoaudit.sources.local import collect_tree

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "demo"
FIXTURES = ROOT / "tests" / "fixtures"


def _loopback(address) -> bool:
    host = address[0] if isinstance(address, tuple) else address
    if not isinstance(host, str):
        return True  # AF_UNIX paths and the like
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True, scope="session")
def _loopback_only():
    """The tests talk to servers on loopback only: a connection, datagram or name look-up that
    would leave the machine (the system resolver included) fails the test that made it."""
    real_connect, real_connect_ex, real_sendto = socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto
    real_getaddrinfo = socket.getaddrinfo

    def refuse(what: str, address) -> None:
        raise OSError(f"test guard: {what} to {address!r} would leave loopback")

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address):
            refuse("connect", address)
        return real_connect(self, address)

    def connect_ex(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address):
            refuse("connect", address)
        return real_connect_ex(self, address)

    def sendto(self, data, *args):
        address = args[-1]
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address):
            refuse("sendto", address)
        return real_sendto(self, data, *args)

    def getaddrinfo(host, *args, **kwargs):
        if host is not None and not _loopback(host if isinstance(host, str) else host.decode()):
            raise socket.gaierror(socket.EAI_NONAME, f"test guard: no name look-ups beyond loopback ({host!r})")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto = connect, connect_ex, sendto
    socket.getaddrinfo = getaddrinfo
    yield
    socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto = real_connect, real_connect_ex, real_sendto
    socket.getaddrinfo = real_getaddrinfo


@pytest.fixture(autouse=True, scope="session")
def _repo_cwd():
    # Shown paths are relative to the working directory; tests run from the repository root.
    os.chdir(ROOT)


@pytest.fixture(scope="session")
def registry() -> Registry:
    return default_registry(plugins=False)


def lint(registry: Registry, *paths: Path | str, select: list[str] | None = None) -> RunResult:
    targets = [collect_tree(Path(p)) for p in paths]
    return run("lint", registry, Selection.parse(select, None), targets)


def results_for(result: RunResult, check_id: str, status: Status | None = None) -> list[Finding]:
    return [f for f in result.findings if f.check_id == check_id and (status is None or f.status is status)]


_BUILTIN: Registry | None = None


def check_fn(check_id: str):
    """A built-in check's function, by id (checks live in the module of their component)."""
    global _BUILTIN
    if _BUILTIN is None:
        _BUILTIN = default_registry(plugins=False)
    found = _BUILTIN.get(check_id)
    assert found is not None, check_id
    return found.run
