"""The HTTP and Mastodon-exposure probes against the lab, both ways: on the hardened profile every
http.* and exposure.* check passes (or is skipped for a stated reason), on the weak one each fails or
warns with the evidence in tests/expectations/net-weak-http.yaml.

The scan target carries what the lab host's .env.production says (AUTHORIZED_FETCH,
DISALLOW_UNAUTHENTICATED_API_ACCESS, S3_ALIAS_HOST...), as an audit would, and the S3 public object
the lab stores (as --s3-public-object would).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from mastoaudit import engine
from mastoaudit.net.runner import all_probes
from mastoaudit.net.target import ScanTarget
from mastoaudit.parsers.base import SourceFile
from mastoaudit.parsers.env import parse_mastodon_env
from mastoaudit.registry import default_registry
from mastoaudit.selection import Selection
from mastoaudit.sources.network import collect_network
from mastoaudit.targets import with_env

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
WEAK = yaml.safe_load((REPO / "tests/expectations/net-weak-http.yaml").read_text())
PROBES = ("http-headers", "mastodon-exposure")
REGISTRY = default_registry(plugins=False)
MINE = sorted(c.meta.id for c in REGISTRY if c.meta.id.startswith(("http.", "exposure.")))
# Skipped on the lab for a stated reason: LOCAL_DOMAIN is WEB_DOMAIN there.
SKIPPED_ON_LAB = {"exposure.local-domain-webfinger"}


def _scan(env: dict):
    path = Path(env["paths"]["env_production"])
    mastodon_env = parse_mastodon_env(SourceFile(str(path), path.read_bytes()))
    target = ScanTarget(name=env["domain"], local_domain=env["domain"], web_domain=env["domain"],
                        addresses=(env["public_address"],), resolver=(env["dns"]["server"], env["dns"]["port"]),
                        ca_bundle=env["ca_file"])
    target = with_env(target, mastodon_env)
    target = replace(target, s3=replace(target.s3, public_object=env["s3"]["public_object"]))
    facts = collect_network(target, probes=[p for p in all_probes() if p.name in PROBES])
    result = engine.run("scan", REGISTRY, Selection(), [facts])
    return facts, [f for f in result.findings if f.check_id in MINE or f.check_id.startswith("input.")]


@pytest.fixture(scope="module")
def hardened_scan(the_lab):
    return _scan(the_lab.use("hardened"))


@pytest.fixture(scope="module")
def weak_scan(the_lab):
    return _scan(the_lab.use("weak"))


def test_every_check_has_a_weak_expectation():
    assert sorted(WEAK) == MINE


def test_hardened_has_no_failure_warning_or_error(hardened_scan):
    facts, findings = hardened_scan
    assert not facts.problems, facts.problems
    bad = [(f.status.value, f.check_id, str(f.location), f.message) for f in findings
           if f.status.value in ("fail", "warn", "error")]
    assert not bad


@pytest.mark.parametrize("check_id", MINE)
def test_check_passes_on_hardened(hardened_scan, check_id):
    found = [f for f in hardened_scan[1] if f.check_id == check_id]
    expected = {"skip"} if check_id in SKIPPED_ON_LAB else {"pass"}
    assert found and {f.status.value for f in found} == expected, found


@pytest.mark.parametrize("check_id", MINE)
def test_check_fails_on_weak_with_evidence(weak_scan, check_id):
    findings = [f for f in weak_scan[1] if f.check_id == check_id]
    if not WEAK[check_id]:  # not planted in the lab: it must not invent a problem either
        assert findings and all(f.status.value in ("pass", "skip") for f in findings), findings
        return
    for exp in WEAK[check_id]:
        status = exp.get("status", "fail")
        match = [f for f in findings if f.status.value == status
                 and exp.get("where", "") in str(f.location or "")
                 and exp.get("subject", "") in (f.subject or "")
                 and exp.get("observed", "") in (f.observed or "")]
        assert match, (exp, [(f.status.value, str(f.location), f.subject, f.observed) for f in findings])


def test_weak_scan_is_complete(weak_scan):
    facts, findings = weak_scan
    assert not facts.problems, facts.problems
    assert not [f for f in findings if f.status.value == "error"]


def test_version_and_nodeinfo_facts(hardened_scan, weak_scan):
    for (facts, _), version in ((hardened_scan, "4.5.11"), (weak_scan, "4.1.2")):
        found = facts.first("mastodon_version")
        assert found.version == version
        assert found.location.file == "https://mastodon.lab/api/v2/instance"
        info = facts.first("nodeinfo")
        assert info.ok and (info.software_name, info.software_version, info.schema) == ("mastodon", version, "2.0")


def test_the_version_is_judged_from_the_network(weak_scan):
    facts, _ = weak_scan
    result = engine.run("scan", REGISTRY, Selection.parse(["app.mastodon-version"], None), [facts])
    failed = [f for f in result.findings if f.status.value == "fail"]
    assert failed and all(f.location.file == "https://mastodon.lab/api/v2/instance" for f in failed)


def test_the_grade_breakdown_is_a_fact(hardened_scan, weak_scan):
    hardened = hardened_scan[0].first("http_grade")
    assert (hardened["grade"], hardened["score"]) == ("A+", 120)
    weak = weak_scan[0].first("http_grade")
    lost = {t["test"]: t["points"] for t in weak["tests"] if t["points"] < 0}
    assert lost == {"redirection": -20, "strict-transport-security": -20, "referrer-policy": -5}


def test_media_was_found_on_both_hosts(hardened_scan):
    site = hardened_scan[0].first("http_site")
    hosts = {o.host for o in site.media()}
    assert hosts == {"mastodon.lab", "media.mastodon.lab"}, [(o.url, o.status) for o in site.labelled("media")]
    assert "media.mastodon.lab" in site.csp_media_hosts
