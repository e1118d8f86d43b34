"""`mastoaudit scan --probe tls` against the lab, both ways: one scan per profile (module-scoped),
then assertions. Hardened: every TLS check passes and nothing is an error. Weak: every TLS check
with a planted weakness fails with the evidence in tests/expectations/net-weak-tls.yaml."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mastoaudit.registry import default_registry

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
EXPECT = yaml.safe_load((REPO / "tests/expectations/net-weak-tls.yaml").read_text())
NOT_PLANTED = EXPECT.pop("not_planted")
TLS_CHECKS = sorted(c.meta.id for c in default_registry(plugins=False) if "tls_endpoint" in c.meta.needs)


def _scan(env: dict, out: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "mastoaudit", "scan", env["domain"],
         "--resolver", f"{env['dns']['server']}:{env['dns']['port']}", "--ca-bundle", env["ca_file"],
         "--media-host", env["hostnames"]["media"], "--probe", "tls", "-f", "json", "-o", str(out)],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )
    assert done.returncode in (0, 1), done.stderr + done.stdout
    doc = json.loads((out / "mastoaudit-scan.json").read_text())
    doc["_exit"] = done.returncode
    return doc


@pytest.fixture(scope="module")
def hardened_scan(the_lab, tmp_path_factory):
    return _scan(the_lab.use("hardened"), tmp_path_factory.mktemp("tls-hardened"))


@pytest.fixture(scope="module")
def weak_scan(the_lab, tmp_path_factory):
    return _scan(the_lab.use("weak"), tmp_path_factory.mktemp("tls-weak"))


def _mine(doc: dict) -> list[dict]:
    return [f for f in doc["findings"] if f["check_id"] in TLS_CHECKS or f["check_id"] == "input.tls_endpoint"]


def _where(f: dict) -> str:
    return (f.get("location") or {}).get("file") or ""


def test_every_tls_check_is_proven_failing_somewhere():
    assert sorted([*EXPECT, *NOT_PLANTED]) == TLS_CHECKS
    unit_tests = (REPO / "tests/probes/test_tls.py").read_text()
    for check_id, names in NOT_PLANTED.items():
        for name in names.split(", "):
            assert f"def {name}(" in unit_tests, (check_id, name)


def test_hardened_scan_has_no_tls_failure_warning_or_error(hardened_scan):
    bad = [(f["status"], f["check_id"], _where(f), f["message"]) for f in _mine(hardened_scan)
           if f["status"] in ("fail", "warn", "error")]
    assert not bad
    assert hardened_scan["_exit"] == 0


def test_hardened_scan_covers_web_media_and_mail(hardened_scan):
    protocols = {_where(f) for f in hardened_scan["findings"] if f["check_id"] == "tls.protocols"}
    assert protocols == {"mastodon.lab:443", "media.mastodon.lab:443", "mail.mastodon.lab:25"}


@pytest.mark.parametrize("check_id", TLS_CHECKS)
def test_tls_check_passes_on_hardened(hardened_scan, check_id):
    found = [f for f in hardened_scan["findings"] if f["check_id"] == check_id]
    assert found and all(f["status"] == "pass" for f in found), found


@pytest.mark.parametrize("check_id", sorted(EXPECT))
def test_tls_check_fails_on_weak_with_evidence(weak_scan, check_id):
    failures = [f for f in weak_scan["findings"] if f["check_id"] == check_id and f["status"] == "fail"]
    assert failures, f"{check_id} did not fail on the weak lab"
    for exp in EXPECT[check_id]:
        match = [f for f in failures if exp["where"] in _where(f) and exp.get("subject", "") in (f["subject"] or "")
                 and exp["observed"] in (f["observed"] or "")]
        assert match, (exp, [(_where(f), f["subject"], f["observed"]) for f in failures])


@pytest.mark.parametrize("check_id", sorted(NOT_PLANTED))
def test_unplanted_checks_pass_on_weak_too(weak_scan, check_id):
    found = [f for f in weak_scan["findings"] if f["check_id"] == check_id]
    assert found and all(f["status"] == "pass" for f in found), found


def test_weak_scan_has_no_tls_errors(weak_scan):
    assert not [f for f in _mine(weak_scan) if f["status"] == "error"]
