"""Every check is proven both ways on the bundled demo: it passes on the hardened tree and fails,
with the expected evidence, on the weak one. A check missing from the expectations fails here."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mastoaudit.model import Status
from mastoaudit.registry import default_registry

from .conftest import DEMO, lint, results_for

EXPECT = Path(__file__).parent / "expectations"


def _merged(folder: str) -> dict:
    """One YAML file per component module, so each can be edited on its own."""
    merged: dict = {}
    for path in sorted((EXPECT / folder).glob("*.yaml")):
        for key, value in (yaml.safe_load(path.read_text()) or {}).items():
            assert key not in merged, f"{key} expected twice ({path.name})"
            merged[key] = value
    return merged


WEAK = _merged("weak")
HARDENED_SKIPS = _merged("hardened-skips")
STATIC_IDS = sorted(c.meta.id for c in default_registry(plugins=False) if "static" in c.meta.modes)


@pytest.fixture(scope="module")
def weak(registry):
    return lint(registry, DEMO / "weak")


@pytest.fixture(scope="module")
def hardened(registry):
    return lint(registry, DEMO / "hardened")


def test_every_static_check_has_a_weak_expectation():
    missing = [cid for cid in STATIC_IDS if cid not in WEAK]
    assert not missing, f"checks with no planted weakness in demo/weak: {missing}"


def test_hardened_run_is_complete(hardened):
    assert hardened.complete, [f.message for f in hardened.findings if f.status is Status.ERROR]


@pytest.mark.parametrize("check_id", STATIC_IDS)
def test_passes_on_hardened(hardened, check_id):
    found = results_for(hardened, check_id)
    bad = [f for f in found if f.status in (Status.FAIL, Status.ERROR, Status.WARN)]
    assert not bad, [(f.status.value, f.message, str(f.location)) for f in bad]
    if check_id in HARDENED_SKIPS:
        assert all(f.status is Status.SKIP for f in found), HARDENED_SKIPS[check_id]
    else:
        assert any(f.status is Status.PASS for f in found), [(f.status.value, f.message) for f in found]


@pytest.mark.parametrize("check_id", STATIC_IDS)
def test_fails_on_weak_with_evidence(weak, check_id):
    expected = WEAK[check_id]
    failures = results_for(weak, check_id, Status.FAIL) + results_for(weak, check_id, Status.WARN)
    assert failures, f"{check_id} did not fail on demo/weak"
    for exp in expected:
        want_status = exp.get("status", "fail")
        match = [
            f for f in failures
            if f.status.value == want_status
            and f.location is not None
            and f.location.file.endswith(exp["file"])
            and ("line" not in exp or f.location.line == exp["line"])
            and ("observed" not in exp or exp["observed"] in (f.observed or ""))
        ]
        assert match, (
            f"{check_id}: no {want_status} at {exp['file']}:{exp.get('line')} observing {exp.get('observed')!r}; got "
            + repr([(f.status.value, str(f.location), f.observed) for f in failures])
        )
