"""`mastoaudit scan` against the lab, probes ports and s3, both ways: on the hardened profile every
ports.* and s3.* check passes (or says why it does not judge), on the weak one each fails with the
evidence in tests/expectations/net-weak-{ports,s3}.yaml. The S3 settings come from `python -m lab
env`, the lab's S3 credentials from its credentials file through AWS_* (as a user would give them).

A second look runs the ports probe at 127.0.0.1 on the hardened lab, where the internal services
do answer: Redis asks for a password, PostgreSQL for SCRAM and offers TLS, Elasticsearch for
credentials over https. That proves the auth checks pass on real refusals, not only on silence.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mastoaudit.registry import default_registry

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
EXPECTED = {**yaml.safe_load((REPO / "tests/expectations/net-weak-ports.yaml").read_text()),
            **yaml.safe_load((REPO / "tests/expectations/net-weak-s3.yaml").read_text())}
NOT_PLANTED = {"s3.objects-readable": "public-read media is what Mastodon needs: never a failure"}
MINE = sorted(c.meta.id for c in default_registry(plugins=False)
              if c.meta.id.startswith(("ports.", "s3.")) and "network" in c.meta.modes)


def _credentials(env: dict) -> dict[str, str]:
    secrets = json.loads(Path(env["s3"]["credentials_file"]).read_text())
    return {"AWS_ACCESS_KEY_ID": secrets["s3_access_key"], "AWS_SECRET_ACCESS_KEY": secrets["s3_secret_key"]}


def _scan(env: dict, out: Path) -> dict:
    s3 = env["s3"]
    creds = _credentials(env)
    done = subprocess.run(
        [sys.executable, "-m", "mastoaudit", "scan", env["domain"],
         "--resolver", f"{env['dns']['server']}:{env['dns']['port']}", "--ca-bundle", env["ca_file"],
         "--probe", "ports", "--probe", "s3", "--select", "ports.*", "--select", "s3.*",
         "--s3-endpoint", s3["endpoint"], "--s3-bucket", s3["bucket"], "--s3-region", s3["region"],
         "--media-host", env["hostnames"]["media"], "--s3-public-object", s3["public_object"], "--s3-signed",
         "-f", "json", "-f", "terminal", "-o", str(out)],
        capture_output=True, text=True, cwd=REPO, timeout=120, env={**os.environ, **creds},
    )
    assert done.returncode in (0, 1), done.stderr + done.stdout
    doc = json.loads((out / "mastoaudit-scan.json").read_text())
    doc["_exit"], doc["_text"] = done.returncode, (out / "mastoaudit-scan.json").read_text() + done.stdout
    doc["_creds"] = creds
    return doc


@pytest.fixture(scope="module")
def hardened_scan(the_lab, tmp_path_factory):
    return _scan(the_lab.use("hardened"), tmp_path_factory.mktemp("hardened"))


@pytest.fixture(scope="module")
def hardened_inside(the_lab):
    """The ports probe at the hardened host's loopback, where its services listen."""
    from mastoaudit.engine import run
    from mastoaudit.net.runner import all_probes
    from mastoaudit.net.target import ScanTarget
    from mastoaudit.selection import Selection
    from mastoaudit.sources.network import collect_network

    the_lab.use("hardened")
    target = ScanTarget(name="lab-inside", local_domain="mastodon.lab", web_domain="mastodon.lab",
                        addresses=("127.0.0.1",), ports=(5432, 6379, 9200))
    facts = collect_network(target, probes=[p for p in all_probes() if p.name == "ports"])
    return run("scan", default_registry(plugins=False), Selection.parse(["ports.*"], None), [facts])


@pytest.fixture(scope="module")
def weak_scan(the_lab, tmp_path_factory):
    return _scan(the_lab.use("weak"), tmp_path_factory.mktemp("weak"))


def test_every_check_is_planted_or_said_not_to_be():
    assert sorted([*EXPECTED, *NOT_PLANTED]) == MINE


def test_hardened_lab_passes(hardened_scan):
    assert hardened_scan["_exit"] == 0 and hardened_scan["run"]["complete"]
    bad = [(f["status"], f["check_id"], f["message"]) for f in hardened_scan["findings"]
           if f["status"] in ("fail", "warn", "error")]
    assert not bad


@pytest.mark.parametrize("check_id", MINE)
def test_check_passes_on_hardened(hardened_scan, check_id):
    found = [f for f in hardened_scan["findings"] if f["check_id"] == check_id]
    assert any(f["status"] == "pass" for f in found), found


def test_hardened_ports_say_nothing_answered(hardened_scan):
    exposed = [f for f in hardened_scan["findings"] if f["check_id"] == "ports.exposed"]
    assert [f["message"] for f in exposed] == [
        "nothing answered on ports 5432, 6379, 6380, 9200, 3000, 4000, 9394, 11211, 9090 of 127.0.0.10"]


def test_hardened_s3_judged_through_the_media_host(hardened_scan):
    by = {(f["check_id"], f["subject"]): f for f in hardened_scan["findings"]}
    listing = by[("s3.anonymous-list", "listing via the media host")]
    assert listing["status"] == "pass" and listing["location"]["file"] == "https://media.mastodon.lab/"
    # moto lists any bucket anonymously: the loopback endpoint is reported, not judged
    assert by[("s3.anonymous-list", "listing via the endpoint")]["status"] == "skip"
    assert by[("s3.anonymous-write", "anonymous PUT via the media host")]["observed"].startswith("HTTP 403")
    assert "Location: https://media.mastodon.lab/" in by[("s3.https", "media host plain http")]["observed"]
    assert "with the credentials" in by[("s3.acl-consistent", "bucket ACL")]["message"]


def _inside(result, check_id):
    return [f for f in result.findings if f.check_id == check_id]


def test_inside_redis_requires_a_password(hardened_inside):
    [finding] = _inside(hardened_inside, "ports.redis-noauth")
    assert finding.status.value == "pass" and "-NOAUTH" in finding.observed


def test_inside_postgres_asks_for_scram_and_offers_tls(hardened_inside):
    [trust] = _inside(hardened_inside, "ports.postgres-trust")
    assert trust.status.value == "pass" and "mastodon: asks for password (SASL SCRAM-SHA-256" in trust.observed
    [tls] = _inside(hardened_inside, "ports.postgres-tls")
    assert tls.status.value == "pass" and tls.observed == "SSLRequest -> 'S'"


def test_inside_elasticsearch_requires_credentials_over_https(hardened_inside):
    [finding] = _inside(hardened_inside, "ports.elasticsearch-open")
    assert finding.status.value == "pass" and finding.location.file == "https://127.0.0.1:9200/"
    assert finding.observed == "HTTP 401"


@pytest.mark.parametrize("check_id", sorted(EXPECTED))
def test_check_fails_on_weak_with_evidence(weak_scan, check_id):
    failures = [f for f in weak_scan["findings"] if f["check_id"] == check_id and f["status"] in ("fail", "warn")]
    assert failures, f"{check_id} did not fail on the weak lab"
    for exp in EXPECTED[check_id]:
        match = [f for f in failures
                 if f["status"] == exp.get("status", "fail")
                 and exp["where"] in (f["location"] or {}).get("file", "") and exp["subject"] in (f["subject"] or "")
                 and exp["observed"] in (f["observed"] or "")]
        assert match, (exp, [(f["location"], f["subject"], f["observed"]) for f in failures])


@pytest.mark.parametrize("check_id", sorted(NOT_PLANTED))
def test_not_planted_checks_pass_on_weak_too(weak_scan, check_id):
    found = [f for f in weak_scan["findings"] if f["check_id"] == check_id]
    assert found and all(f["status"] == "pass" for f in found), found


def test_weak_scan_removed_its_probe_object_and_leaks_no_secret(the_lab, weak_scan):
    write = next(f for f in weak_scan["findings"] if f["check_id"] == "s3.anonymous-write")
    assert "written and removed again" in write["message"]
    assert weak_scan["_exit"] == 1 and weak_scan["run"]["complete"]
    for value in weak_scan["_creds"].values():
        assert value not in weak_scan["_text"]
    import boto3
    from botocore.config import Config

    env = the_lab.use("weak")
    creds = _credentials(env)
    client = boto3.client("s3", endpoint_url=env["s3"]["endpoint"], region_name=env["s3"]["region"],
                          aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
                          config=Config(s3={"addressing_style": "path"}))
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=env["s3"]["bucket"]).get("Contents", [])]
    assert not [k for k in keys if k.startswith("mastoaudit-probe/")], keys
