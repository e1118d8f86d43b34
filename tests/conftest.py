"""Shared helpers: run the engine on a tree, pick findings out of a result."""

from __future__ import annotations

import os
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
