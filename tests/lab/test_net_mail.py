"""The mail probes against the lab's real Knot, nginx (MTA-STS policy) and Postfix, both ways: on the
hardened profile every mail check passes; on the weak one each fails (or warns) with the evidence in
tests/expectations/net-weak-mail.yaml. Checks the weak profile cannot fail as planted are proven on
the hardened lab with a changed question (VARIANTS): another mail domain, a relay outside the SPF
policy, a name the relay's certificate does not carry.

Every connection goes to the lab's loopback addresses: DNS to 127.0.0.53, SMTP and HTTPS to the
profile's public address (the lab routes those from the public address, so Postfix sees an outside
client) and, in one variant, to 127.0.0.99 where nothing listens.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from mastoaudit.engine import run
from mastoaudit.net.runner import all_probes
from mastoaudit.net.target import ScanTarget
from mastoaudit.registry import default_registry
from mastoaudit.selection import Selection
from mastoaudit.sources.network import collect_network

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
EXPECT = yaml.safe_load((REPO / "tests/expectations/net-weak-mail.yaml").read_text())
PROBES = ("mail-dns", "dns-zone", "smtp")
SELECT = ["mail.*", "smtp.*", "dns.*"]
REGISTRY = default_registry(plugins=False)
# The checks judging what the mail-dns, dns-zone and smtp probes find.
MAIL_KINDS = {"mail_spf", "mail_dkim", "mail_dmarc", "mail_mta_sts", "mail_tls_rpt", "dns_caa", "dns_dnssec",
              "smtp_endpoint"}
MINE = sorted(c.meta.id for c in REGISTRY if c.origin == "builtin" and set(c.meta.needs) & MAIL_KINDS)


def _scan_cli(env: dict, out: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "mastoaudit", "scan", env["domain"], "--resolver", env["dns"]["server"],
         "--ca-bundle", env["ca_file"], "--dkim-selector", env["dns"]["dkim_selector"],
         *[a for p in PROBES for a in ("--probe", p)], *[a for s in SELECT for a in ("--select", s)],
         "-f", "json", "-o", str(out)],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )
    assert done.returncode in (0, 1), done.stderr + done.stdout
    doc = json.loads((out / "mastoaudit-scan.json").read_text())
    doc["_exit"] = done.returncode
    return doc


def _target(env: dict, **changes) -> ScanTarget:
    base = ScanTarget(name=env["domain"], local_domain=env["domain"], web_domain=env["domain"],
                      addresses=(env["public_address"],), resolver=(env["dns"]["server"], env["dns"]["port"]),
                      ca_bundle=env["ca_file"], mail_domains=(env["domain"],),
                      dkim_selectors=(env["dns"]["dkim_selector"],), timeout=3.0)
    return replace(base, **changes)


def _findings(target: ScanTarget, probes: tuple[str, ...]) -> list[dict]:
    facts = collect_network(target, probes=[p for p in all_probes() if p.name in probes])
    result = run("scan", REGISTRY, Selection.parse(SELECT, None), [facts])
    return [f.to_dict() for f in result.findings]


# name -> (target changes, probes): the hardened lab asked another question
VARIANTS = {
    "media-domain": (dict(mail_domains=("media.mastodon.lab",)), ("mail-dns",)),
    "outside-relay": (dict(hosts={"relay.outside.test": "127.0.0.99"}, smtp_hosts=("relay.outside.test",)),
                      ("mail-dns",)),
    "wrong-name": (dict(hosts={"wrong-name.test": "127.0.0.10"}, smtp_hosts=("wrong-name.test",)), ("smtp",)),
}


@pytest.fixture(scope="module")
def hardened_scan(the_lab, tmp_path_factory):
    env = the_lab.use("hardened")
    doc = _scan_cli(env, tmp_path_factory.mktemp("mail-hardened"))
    variants = {name: _findings(_target(env, **changes), probes) for name, (changes, probes) in VARIANTS.items()}
    return doc, variants


@pytest.fixture(scope="module")
def weak_scan(the_lab, tmp_path_factory):
    env = the_lab.use("weak")
    return _scan_cli(env, tmp_path_factory.mktemp("mail-weak"))


def _match(findings: list[dict], check_id: str, exp: dict) -> list[dict]:
    status = exp.get("status", "fail")
    return [f for f in findings if f["check_id"] == check_id and f["status"] == status
            and exp["where"] in ((f["location"] or {}).get("file") or "")
            and exp.get("subject", "") in (f["subject"] or "") and exp.get("observed", "") in (f["observed"] or "")]


def test_every_mail_check_has_an_expectation():
    assert len(MINE) == 15
    assert sorted(EXPECT) == MINE


def test_hardened_lab_passes_every_mail_check(hardened_scan):
    doc, _ = hardened_scan
    assert doc["_exit"] == 0 and doc["run"]["complete"]
    bad = [(f["status"], f["check_id"], f["message"]) for f in doc["findings"]
           if f["status"] in ("fail", "warn", "error")]
    assert not bad
    passed = {f["check_id"] for f in doc["findings"] if f["status"] == "pass"}
    assert passed == set(MINE)


def test_hardened_evidence(hardened_scan):
    doc, _ = hardened_scan
    observed = {(f["check_id"], f["subject"]): f["observed"] for f in doc["findings"]}
    assert observed[("mail.spf-all", "all")] == "-all"
    assert observed[("mail.spf-relay", "MX mail.mastodon.lab (127.0.0.10)")] == "127.0.0.10: pass (mx)"
    assert observed[("mail.dkim", "selector mastodon")] == "RSA 2048 bits"
    assert observed[("mail.dmarc", "policy")] == "p=reject"
    assert observed[("mail.mta-sts", "mode")] == "mode: enforce; mx: mail.mastodon.lab"
    assert observed[("dns.caa", "CAA")].startswith("iodef")
    assert "RRSIG" in observed[("dns.dnssec", "DNSSEC")]
    relay = "MX mail.mastodon.lab:25 (127.0.0.10)"
    assert observed[("smtp.open-relay", relay)].endswith("554 5.7.1 <probe@example.net>: Relay access denied")
    assert observed[("smtp.starttls", relay)].startswith("TLSv1.")
    assert observed[("smtp.banner", relay)] == "220 mail.mastodon.lab ESMTP"


@pytest.mark.parametrize("check_id", sorted(c for c, exps in EXPECT.items() if any("variant" not in e for e in exps)))
def test_weak_lab_fails_with_evidence(weak_scan, check_id):
    for exp in EXPECT[check_id]:
        assert _match(weak_scan["findings"], check_id, exp), (
            exp, [(f["status"], f["location"], f["subject"], f["observed"]) for f in weak_scan["findings"]
                  if f["check_id"] == check_id])


@pytest.mark.parametrize("check_id", sorted(c for c, exps in EXPECT.items() if any("variant" in e for e in exps)))
def test_hardened_variant_fails_with_evidence(hardened_scan, check_id):
    _, variants = hardened_scan
    for exp in EXPECT[check_id]:
        found = variants[exp["variant"]]
        assert _match(found, check_id, exp), (exp, [(f["status"], f["location"], f["subject"], f["observed"])
                                                    for f in found if f["check_id"] == check_id])


def test_weak_scan_is_complete_and_fails(weak_scan):
    assert weak_scan["_exit"] == 1 and weak_scan["run"]["complete"]
    assert not [f for f in weak_scan["findings"] if f["status"] == "error"]
    critical = {f["check_id"] for f in weak_scan["findings"] if f["status"] == "fail" and f["severity"] == "critical"}
    assert critical == {"mail.spf-all", "smtp.open-relay"}


def test_relay_test_never_sent_data(weak_scan, the_lab):
    """The open relay accepted RCPT; the probe stopped there. Postfix names the sender in its log only
    for rejected recipients (NOQUEUE) and for messages that reached the queue manager (after DATA):
    none of the latter from the probe's .invalid sender."""
    log = REPO / "lab/run/log/postfix.log"
    assert log.exists()
    lines = log.read_text(errors="replace").splitlines()
    queued = [line for line in lines if "from=<probe@mastoaudit.invalid>" in line and "NOQUEUE" not in line]
    assert not queued, queued[-3:]
