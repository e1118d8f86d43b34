"""`mastoaudit audit` over real SSH against the lab, both ways: on the hardened profile every check
passes (or is skipped for a stated reason), and on the weak profile every live-only check fails with
the evidence listed in tests/expectations/live-weak.yaml.

The lab's inventories (lab/run/inventory-<profile>.yaml) log in as an audit user with passwordless
sudo, the way the README advises for production hosts.
"""

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
LIVE_WEAK = yaml.safe_load((REPO / "tests/expectations/live-weak.yaml").read_text())
LIVE_ONLY = sorted(c.meta.id for c in default_registry(plugins=False)
                   if "live" in c.meta.modes and "static" not in c.meta.modes)
# Skips that are right on the lab, by what their reason says: the lab host runs Mastodon from a
# checkout, not in containers; LOCAL_DOMAIN is WEB_DOMAIN; the S3 endpoint (moto on 127.0.0.1) is
# internal, so the media host in front of it is judged instead.
LEGITIMATE_SKIPS = ("no compose found", "LOCAL_DOMAIN and WEB_DOMAIN are the same", "on the internal address")


def _audit(profile: str, out: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "mastoaudit", "audit", "-i", str(REPO / f"lab/run/inventory-{profile}.yaml"),
         "-q", "-f", "json", "-f", "terminal", "-o", str(out)],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )
    assert done.returncode in (0, 1), done.stderr + done.stdout
    doc = json.loads((out / "mastoaudit-audit.json").read_text())
    doc["_exit"] = done.returncode
    return doc


@pytest.fixture(scope="module")
def hardened_audit(the_lab, tmp_path_factory):
    the_lab.use("hardened")
    return _audit("hardened", tmp_path_factory.mktemp("hardened"))


@pytest.fixture(scope="module")
def weak_audit(the_lab, tmp_path_factory):
    the_lab.use("weak")
    return _audit("weak", tmp_path_factory.mktemp("weak"))


def test_every_live_only_check_has_a_weak_expectation():
    # and app.mastodon-version, which also reads image tags statically, is held to version.rb here
    assert set(LIVE_ONLY) <= set(LIVE_WEAK) and "app.mastodon-version" in LIVE_WEAK


def test_hardened_lab_passes_everything(hardened_audit):
    assert hardened_audit["_exit"] == 0
    assert hardened_audit["run"]["complete"]
    bad = [(f["status"], f["check_id"], f["message"]) for f in hardened_audit["findings"]
           if f["status"] in ("fail", "warn", "error")]
    assert not bad
    skipped = [(f["check_id"], f["message"]) for f in hardened_audit["findings"] if f["status"] == "skip"]
    assert all(any(reason in message for reason in LEGITIMATE_SKIPS) for _, message in skipped), skipped


@pytest.mark.parametrize("check_id", sorted(LIVE_WEAK))
def test_live_check_passes_on_hardened(hardened_audit, check_id):
    found = [f for f in hardened_audit["findings"] if f["check_id"] == check_id]
    assert found and all(f["status"] == "pass" for f in found), found


@pytest.mark.parametrize("check_id", sorted(LIVE_WEAK))
def test_live_check_fails_on_weak_with_evidence(weak_audit, check_id):
    failures = [f for f in weak_audit["findings"] if f["check_id"] == check_id and f["status"] == "fail"]
    assert failures, f"{check_id} did not fail on the weak lab"
    for exp in LIVE_WEAK[check_id]:
        match = [f for f in failures
                 if (f["location"] or {}).get("file", "").endswith(exp["file"])
                 and exp.get("subject", "") in (f["subject"] or "")
                 and exp.get("observed", "") in (f["observed"] or "")]
        assert match, (exp, [(f["location"], f["subject"], f["observed"]) for f in failures])


def test_weak_lab_fails_and_names_the_host(weak_audit):
    assert weak_audit["_exit"] == 1
    assert {t["name"] for t in weak_audit["run"]["targets"]} == {"mastodon-lab-weak"}
    critical = [f for f in weak_audit["findings"] if f["status"] == "fail" and f["severity"] == "critical"]
    assert len(critical) >= 5


def test_no_lab_secret_reaches_the_reports(weak_audit, hardened_audit, the_lab, tmp_path):
    """The lab's generated secrets (lab/run/secrets.json) appear in no report of either profile."""
    env = the_lab.use("weak")
    secrets_file = Path(env["secrets_file"])
    values = [v for v in json.loads(secrets_file.read_text()).values() if isinstance(v, str) and len(v) >= 8]
    env_file = Path(env["paths"]["env_production"]).read_text()
    for line in env_file.splitlines():
        key, _, value = line.partition("=")
        if any(w in key for w in ("SECRET", "_KEY", "PASS", "SALT", "TOKEN")) and len(value) >= 8:
            values.append(value.strip())
    from mastoaudit.redact import PUBLIC_WORDS

    values = [v for v in values if v.lower() not in PUBLIC_WORDS]
    assert values
    text = json.dumps(weak_audit) + json.dumps(hardened_audit)
    leaked = [v[:3] + "…" for v in values if v in text]
    assert not leaked, f"secret values in a report (first letters): {leaked}"
