"""The mail-DNS parsers (DKIM, DMARC, MTA-STS, TLS-RPT, CAA) on small and hostile records, and the
verdicts of checks/mail_net.py's DNS checks on facts built from them. The lab tests
(tests/lab/test_net_mail.py) prove the same checks against the lab's real Knot and nginx."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mastoaudit.facts import FactSet
from mastoaudit.model import Status
from mastoaudit.net.dns import Answer
from mastoaudit.net.spf import SpfEvaluator
from mastoaudit.probes.mail_dns import (
    CaaFact,
    DkimFact,
    DkimKey,
    DmarcFact,
    DnssecFact,
    MtaStsFact,
    RelayCoverage,
    SpfFact,
    TagError,
    TlsRptFact,
    mx_pattern_matches,
    parse_caa,
    parse_dkim,
    parse_dmarc,
    parse_sts_policy,
    parse_sts_record,
    parse_tags,
    parse_tlsrpt,
)


def spki(key) -> str:
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


@pytest.fixture(scope="module")
def keys() -> dict[str, str]:
    r2048 = rsa.generate_private_key(65537, 2048).public_key()
    r1024 = rsa.generate_private_key(65537, 1024).public_key()
    r512 = rsa.RSAPublicNumbers(65537, (1 << 511) | (987654321 << 64) | 1).public_key()
    pkcs1 = r2048.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    ed = ed25519.Ed25519PrivateKey.generate().public_key()
    ed_raw = ed.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"2048": spki(r2048), "1024": spki(r1024), "512": spki(r512), "pkcs1": base64.b64encode(pkcs1).decode(),
            "ed25519": base64.b64encode(ed_raw).decode(), "ed-spki": spki(ed)}


# --- tag lists ----------------------------------------------------------------------------------------

def test_tags_parse_with_spaces_and_trailing_semicolon():
    assert parse_tags(" v=DMARC1 ;p = reject; rua=mailto:a@b.example ; ") == {
        "v": "DMARC1", "p": "reject", "rua": "mailto:a@b.example"}


@pytest.mark.parametrize("text, message", [
    ("v=DMARC1; p=none; p=reject", "appears twice"),
    ("v=DMARC1; garbage", "not a tag=value"),
    ("v=DMARC1; 1p=none", "not a tag=value"),
    ("v=DMARC1;\x00p=none", "control characters"),
    ("x" * 9000, "longer than 8192"),
    (";".join(f"t{i}=1" for i in range(100)), "more than 64"),
])
def test_malformed_tag_lists(text, message):
    with pytest.raises(TagError, match=message):
        parse_tags(text)


# --- DKIM ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, bits, key_type", [
    ("2048", 2048, "rsa"), ("1024", 1024, "rsa"), ("512", 512, "rsa"), ("pkcs1", 2048, "rsa"),
])
def test_dkim_rsa_sizes(keys, name, bits, key_type):
    key = parse_dkim("s", "s._domainkey.e.example", f"v=DKIM1; k=rsa; p={keys[name]}")
    assert (key.bits, key.key_type, key.error, key.revoked) == (bits, key_type, None, False)


def test_dkim_key_split_by_whitespace_and_default_type(keys):
    p = keys["2048"]
    key = parse_dkim("s", "n", f"v=DKIM1; p={p[:100]} {p[100:200]}\t{p[200:]}")
    assert key.bits == 2048 and key.key_type == "rsa"


def test_dkim_ed25519(keys):
    key = parse_dkim("s", "n", f"v=DKIM1; k=ed25519; p={keys['ed25519']}")
    assert (key.key_type, key.bits, key.error) == ("ed25519", 256, None)
    wrong = parse_dkim("s", "n", f"v=DKIM1; k=rsa; p={keys['ed-spki']}")
    assert "ed25519" in wrong.error


@pytest.mark.parametrize("text, flag_or_error", [
    ("v=DKIM1; k=rsa; p=", "revoked"),
    ("v=DKIM1; k=rsa", "no p= tag"),
    ("k=rsa; v=DKIM1; p=AAAA", "come first"),
    ("v=DKIM2; p=AAAA", "must be DKIM1"),
    ("v=DKIM1; p=not*base64!", "not base64"),
    ("v=DKIM1; p=" + base64.b64encode(b"\x30\x82junk" * 20).decode(), "not an RSA public key"),
    ("v=DKIM1; k=dsa; p=AAAA", "unknown key type"),
    ("v=DKIM1; k=ed25519; p=AAAA", "32 bytes"),
    ("v=DKIM1; p==;; p=x", "appears twice"),
    ("\x00\x01\x02\xff", "malformed"),
])
def test_dkim_bad_records(text, flag_or_error):
    key = parse_dkim("s", "n", text)
    if flag_or_error == "revoked":
        assert key.revoked and key.error is None
    else:
        assert flag_or_error in key.error
    assert len(key.record or "") <= 200


def test_dkim_testing_flag(keys):
    assert parse_dkim("s", "n", f"v=DKIM1; t=y:s; p={keys['2048']}").testing


# --- DMARC --------------------------------------------------------------------------------------------

def test_dmarc_valid():
    tags, error = parse_dmarc("v=DMARC1; p=Reject; sp=none; pct=50; adkim=s; rua=mailto:a@x.example, "
                              "mailto:b@y.example!10m")
    assert error is None and tags["p"] == "reject" and tags["rua"] == "mailto:a@x.example,mailto:b@y.example!10m"


@pytest.mark.parametrize("text, message", [
    ("p=reject; v=DMARC1", "first tag"),
    ("v=DMARC2; p=reject", "first tag"),
    ("v=DMARC1; ruf=mailto:a@b.example", "no p="),
    ("v=DMARC1; p=block", "not none, quarantine or reject"),
    ("v=DMARC1; p=reject; sp=yes", "not none, quarantine or reject"),
    ("v=DMARC1; p=reject; adkim=x", "not r or s"),
    ("v=DMARC1; p=reject; pct=150", "not 0-100"),
    ("v=DMARC1; p=reject; pct=-1", "not 0-100"),
    ("v=DMARC1; p=reject; rua=dmarc@example.com", "not a mailto"),
    ("v=DMARC1; p=reject; rua=mailto:<script>", "not a mailto"),
])
def test_dmarc_errors(text, message):
    _, error = parse_dmarc(text)
    assert message in error


@pytest.mark.parametrize("text", ["v=DMARC1; rua=mailto:a@b.example", "v=DMARC1; p=block; rua=mailto:a@b.example",
                                  "v=DMARC1; p=reject; sp=yes; rua=mailto:a@b.example"])
def test_dmarc_without_a_valid_policy_but_with_reports_reads_as_none(text):
    tags, error = parse_dmarc(text)  # RFC 7489 §6.6.3
    assert error is None and tags["p"] == "none" and "sp" not in tags


# --- MTA-STS, TLS-RPT, CAA ----------------------------------------------------------------------------

def test_sts_record():
    assert parse_sts_record("v=STSv1; id=20260101T000000")[1] is None
    assert "id=" in parse_sts_record("v=STSv1; id=2026-01-01")[1]
    assert "id=" in parse_sts_record("v=STSv1")[1]
    assert "first tag" in parse_sts_record("id=1; v=STSv1")[1]


def test_sts_policy_valid():
    policy, error = parse_sts_policy(b"version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\n"
                                     b"mx: *.backup.example.com\r\nmax_age: 604800\r\nextension: ignored\r\n")
    assert error is None
    assert policy == {"version": "STSv1", "mode": "enforce", "mx": ["mail.example.com", "*.backup.example.com"],
                      "max_age": 604800}


@pytest.mark.parametrize("body, message", [
    (b"version: STSv1\nmode: enforce\nmx: a.example\n", "max_age"),
    (b"version: STSv1\nmode: strict\nmx: a.example\nmax_age: 1\n", "mode must be"),
    (b"version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n", "version must be"),
    (b"version: STSv1\nmode: enforce\nmax_age: 86400\n", "no mx"),
    (b"version: STSv1\nmode: enforce\nmode: none\nmx: a\nmax_age: 1\n", "twice"),
    (b"version: STSv1\nmode: enforce\nmx: a\nmax_age: 99999999999\n", "max_age"),
    (b"<html><body>Not found</body></html>", "not a key: value"),
    (b"\xff\xfe\x00binary", "not UTF-8"),
    (b"x" * (64 * 1024 + 1), "larger than"),
])
def test_sts_policy_errors(body, message):
    _, error = parse_sts_policy(body)
    assert message in error
    assert len(error) < 300


@pytest.mark.parametrize("pattern, host, matches", [
    ("mail.example.com", "mail.example.com", True),
    ("mail.example.com", "MAIL.example.com.", True),
    ("*.example.com", "mx1.example.com", True),
    ("*.example.com", "example.com", False),
    ("*.example.com", "a.b.example.com", False),
    ("mail.example.com", "mail2.example.com", False),
])
def test_mx_patterns(pattern, host, matches):
    assert mx_pattern_matches(pattern, host) is matches


def test_tlsrpt():
    assert parse_tlsrpt("v=TLSRPTv1; rua=mailto:r@example.com,https://r.example/v1")[1] is None
    assert "no rua" in parse_tlsrpt("v=TLSRPTv1")[1]
    assert "not a mailto" in parse_tlsrpt("v=TLSRPTv1; rua=http://insecure.example")[1]
    assert "first tag" in parse_tlsrpt("rua=mailto:a@b; v=TLSRPTv1")[1]


def test_caa():
    assert parse_caa('0 issue "letsencrypt.org"') == (0, "issue", "letsencrypt.org")
    assert parse_caa('128 issuewild ";"') == (128, "issuewild", ";")
    assert parse_caa("0 issue letsencrypt.org") is None
    assert parse_caa('999 issue "x"') is None
    assert parse_caa("\x00garbage") is None


# --- check verdicts on facts --------------------------------------------------------------------------

def run(registry, check_id: str, *facts_by_kind: tuple[str, object]) -> list:
    facts = FactSet("test")
    for kind, fact in facts_by_kind:
        facts.add(kind, fact)
    return list(registry.get(check_id).run(facts))


def spf_fact(txt: list[str] | str, relay: str | None = "192.0.2.10") -> SpfFact:
    data = {("e.example", "MX"): ["10 mx.e.example."], ("mx.e.example", "A"): ["192.0.2.10"]}

    def lookup(name: str, rdtype: str) -> Answer:
        if (name, rdtype) == ("e.example", "TXT"):
            return Answer(name, rdtype, (), txt) if isinstance(txt, str) else Answer(name, rdtype, tuple(txt))
        return Answer(name, rdtype, tuple(data.get((name, rdtype), ())))

    ev = SpfEvaluator(lookup)
    fact = SpfFact("e.example", ev.analyze("e.example"), relay_source="MX")
    if relay and fact.analysis.record:
        fact.relays.append(RelayCoverage("mx.e.example", relay, ev.check_host(relay, "e.example")))
    return fact


def statuses(outcomes) -> list[str]:
    return [o.status.value for o in outcomes]


def test_spf_record_verdicts(registry):
    assert set(statuses(run(registry, "mail.spf-record", ("mail_spf", spf_fact(["v=spf1 mx -all"]))))) == {"pass"}
    none = run(registry, "mail.spf-record", ("mail_spf", spf_fact([])))
    assert statuses(none) == ["fail"] and none[0].location.file == "e.example IN TXT"
    two = run(registry, "mail.spf-record", ("mail_spf", spf_fact(["v=spf1 -all", "v=spf1 mx -all"])))
    assert statuses(two) == ["fail"] and "2 SPF records" in two[0].message
    dns = run(registry, "mail.spf-record", ("mail_spf", spf_fact("SERVFAIL")))
    assert statuses(dns) == ["error"]
    many = "v=spf1 " + " ".join(f"a:h{i}.e.example" for i in range(12)) + " -all"
    over = run(registry, "mail.spf-record", ("mail_spf", spf_fact([many])))
    assert "fail" in statuses(over)
    assert any(o.subject == "DNS lookups" and o.observed == "12 DNS-querying terms" for o in over)
    assert any(o.subject == "void lookups" for o in over)


@pytest.mark.parametrize("txt, dmarc_p, status, observed", [
    ("v=spf1 mx -all", None, "pass", "-all"),
    ("v=spf1 mx +all", None, "fail", "+all"),
    ("v=spf1 mx ?all", None, "fail", "?all"),
    ("v=spf1 mx", None, "fail", "no all"),
    ("v=spf1 mx ~all", "reject", "pass", "~all, DMARC reject"),
    ("v=spf1 mx ~all", "none", "warn", "~all, DMARC none"),
    ("v=spf1 mx ~all", None, "warn", "~all, DMARC absent"),
])
def test_spf_all_verdicts(registry, txt, dmarc_p, status, observed):
    facts = [("mail_spf", spf_fact([txt]))]
    if dmarc_p:
        facts.append(("mail_dmarc", DmarcFact("e.example", "_dmarc.e.example", "_dmarc.e.example",
                                              [f"v=DMARC1; p={dmarc_p}"], {"v": "DMARC1", "p": dmarc_p})))
    out = run(registry, "mail.spf-all", *facts)
    assert statuses(out) == [status] and observed in out[0].observed
    if txt.endswith("+all"):
        assert out[0].severity.value == "critical"


def test_spf_relay_verdicts(registry):
    ok = run(registry, "mail.spf-relay", ("mail_spf", spf_fact(["v=spf1 mx -all"])))
    assert statuses(ok) == ["pass"] and ok[0].observed == "192.0.2.10: pass (mx)"
    bad = run(registry, "mail.spf-relay", ("mail_spf", spf_fact(["v=spf1 mx -all"], relay="198.51.100.9")))
    assert statuses(bad) == ["fail"] and bad[0].observed == "198.51.100.9: fail (-all)"
    only_all = run(registry, "mail.spf-relay", ("mail_spf", spf_fact(["v=spf1 +all"], relay="198.51.100.9")))
    assert statuses(only_all) == ["warn"]
    unknown = run(registry, "mail.spf-relay", ("mail_spf", spf_fact(["v=spf1 mx -all"], relay=None)))
    assert statuses(unknown) == ["skip"]


def test_dkim_verdicts(registry, keys):
    def fact(*records: str, explicit: bool = True) -> DkimFact:
        return DkimFact("e.example", ["a", "b"], explicit,
                        [parse_dkim(f"s{i}", f"s{i}._domainkey.e.example", r) for i, r in enumerate(records)])

    assert statuses(run(registry, "mail.dkim", ("mail_dkim", fact(f"p={keys['2048']}")))) == ["pass"]
    weak = run(registry, "mail.dkim", ("mail_dkim", fact(f"p={keys['1024']}")))
    assert statuses(weak) == ["warn"] and weak[0].observed == "RSA 1024 bits"
    assert weak[0].location.file == "s0._domainkey.e.example IN TXT"
    assert statuses(run(registry, "mail.dkim", ("mail_dkim", fact(f"p={keys['512']}")))) == ["fail"]
    assert statuses(run(registry, "mail.dkim", ("mail_dkim", fact("v=DKIM1; p=")))) == ["fail"]
    assert statuses(run(registry, "mail.dkim", ("mail_dkim", fact("v=DKIM1; p=", f"p={keys['2048']}")))) == \
        ["pass", "pass"]
    assert statuses(run(registry, "mail.dkim", ("mail_dkim", fact("v=DKIM1; p=%%%")))) == ["fail"]
    assert statuses(run(registry, "mail.dkim", ("mail_dkim", fact(f"k=ed25519; p={keys['ed25519']}")))) == ["warn"]
    assert statuses(run(registry, "mail.dkim", ("mail_dkim", fact()))) == ["fail"]
    guessed = run(registry, "mail.dkim", ("mail_dkim", fact(explicit=False)))
    assert statuses(guessed) == ["warn"] and "--dkim-selector" in guessed[0].message


def dmarc_fact(*records: str, found_at: str | None = "_dmarc.e.example", unauthorized=()) -> DmarcFact:
    fact = DmarcFact("e.example", "_dmarc.e.example", found_at if records else None, list(records))
    if len(records) == 1:
        fact.tags, fact.error = parse_dmarc(records[0])
    elif records:
        fact.error = "2 DMARC records"
    fact.unauthorized_rua = list(unauthorized)
    return fact


def by_subject(outcomes) -> dict[str, str]:
    return {o.subject: o.status.value for o in outcomes}


def test_dmarc_verdicts(registry):
    good = run(registry, "mail.dmarc", ("mail_dmarc", dmarc_fact("v=DMARC1; p=reject; rua=mailto:d@e.example")))
    assert by_subject(good) == {"policy": "pass", "sp": "pass", "rua": "pass", "alignment": "pass"}
    weak = run(registry, "mail.dmarc", ("mail_dmarc", dmarc_fact("v=DMARC1; p=none")))
    assert by_subject(weak) == {"policy": "fail", "rua": "warn", "alignment": "pass"}
    partial = run(registry, "mail.dmarc", ("mail_dmarc", dmarc_fact("v=DMARC1; p=quarantine; pct=20; sp=none; "
                                                                      "rua=mailto:d@other.example")))
    assert by_subject(partial) == {"policy": "pass", "pct": "warn", "sp": "warn", "rua": "pass", "alignment": "pass"}
    external = run(registry, "mail.dmarc", ("mail_dmarc", dmarc_fact("v=DMARC1; p=reject; rua=mailto:d@o.example",
                                                                       unauthorized=["o.example"])))
    assert by_subject(external)["rua"] == "warn"
    assert statuses(run(registry, "mail.dmarc", ("mail_dmarc", dmarc_fact()))) == ["fail"]
    assert statuses(run(registry, "mail.dmarc", ("mail_dmarc", dmarc_fact("v=DMARC1; p=reject", "v=DMARC1; p=none"
                                                                           )))) == ["fail"]
    inherited = run(registry, "mail.dmarc", ("mail_dmarc", dmarc_fact("v=DMARC1; p=reject; sp=none",
                                                                        found_at="_dmarc.example")))
    assert by_subject(inherited)["policy"] == "fail"  # the parent's sp=none is what applies
    assert "inherited" in next(o.observed for o in inherited if o.subject == "policy")


def test_mta_sts_verdicts(registry):
    def fact(**kw) -> MtaStsFact:
        base = MtaStsFact("e.example", records=["v=STSv1; id=1"], policy_url="https://mta-sts.e.example/x",
                          policy_status=200, cert_verified=True, mx_hosts=["mx.e.example"],
                          policy={"version": "STSv1", "mode": "enforce", "mx": ["mx.e.example"], "max_age": 604800})
        for key, value in kw.items():
            setattr(base, key, value)
        return base

    assert by_subject(run(registry, "mail.mta-sts", ("mail_mta_sts", fact()))) == {"mode": "pass"}
    assert statuses(run(registry, "mail.mta-sts", ("mail_mta_sts", fact(records=[])))) == ["warn"]
    assert statuses(run(registry, "mail.mta-sts", ("mail_mta_sts", fact(cert_verified=False)))) == ["fail"]
    assert statuses(run(registry, "mail.mta-sts", ("mail_mta_sts", fact(policy_error="HTTP 404")))) == ["fail"]
    assert statuses(run(registry, "mail.mta-sts", ("mail_mta_sts", fact(dns_error="DNS SERVFAIL")))) == ["error"]
    uncovered = run(registry, "mail.mta-sts", ("mail_mta_sts", fact(uncovered_mx=["mx.e.example"])))
    assert by_subject(uncovered) == {"mx": "fail", "mode": "pass"}
    testing = fact(policy={"version": "STSv1", "mode": "testing", "mx": ["mx.e.example"], "max_age": 60})
    assert by_subject(run(registry, "mail.mta-sts", ("mail_mta_sts", testing))) == {"mode": "warn", "max_age": "warn"}


def test_tls_rpt_caa_dnssec_verdicts(registry):
    assert statuses(run(registry, "mail.tls-rpt", ("mail_tls_rpt", TlsRptFact("e.example")))) == ["warn"]
    assert statuses(run(registry, "mail.tls-rpt", ("mail_tls_rpt", TlsRptFact(
        "e.example", ["v=TLSRPTv1; rua=mailto:a@e.example"])))) == ["pass"]
    assert statuses(run(registry, "mail.tls-rpt", ("mail_tls_rpt", TlsRptFact(
        "e.example", ["v=TLSRPTv1"], error="no rua")))) == ["fail"]
    assert statuses(run(registry, "dns.caa", ("dns_caa", CaaFact("e.example")))) == ["warn"]
    assert statuses(run(registry, "dns.caa", ("dns_caa", CaaFact("e.example", "e.example",
                                                                 [(0, "issue", "letsencrypt.org")])))) == ["pass"]
    assert statuses(run(registry, "dns.caa", ("dns_caa", CaaFact("e.example", "e.example",
                                                                 [(0, "iodef", "mailto:x@e.example")])))) == ["warn"]
    assert statuses(run(registry, "dns.caa", ("dns_caa", CaaFact("e.example", "e.example", [],
                                                                 ["unreadable"])))) == ["fail"]
    assert statuses(run(registry, "dns.dnssec", ("dns_dnssec", DnssecFact("e.example", "A", True, True)))) == ["pass"]
    unsigned = run(registry, "dns.dnssec", ("dns_dnssec", DnssecFact("e.example", "A")))
    assert statuses(unsigned) == ["warn"] and unsigned[0].severity.value == "low"
    assert statuses(run(registry, "dns.dnssec", ("dns_dnssec", DnssecFact("e.example", "A", rcode="TIMEOUT")))) == \
        ["error"]


def test_every_outcome_has_a_location_and_evidence(registry, keys):
    facts = [("mail_spf", spf_fact(["v=spf1 +all"])), ("mail_dmarc", dmarc_fact("v=DMARC1; p=none")),
             ("mail_dkim", DkimFact("e.example", ["s"], True, [DkimKey("s", "s._domainkey.e.example", error="x")])),
             ("mail_mta_sts", MtaStsFact("e.example")), ("mail_tls_rpt", TlsRptFact("e.example")),
             ("dns_caa", CaaFact("e.example")), ("dns_dnssec", DnssecFact("e.example", "A"))]
    for check_id in ("mail.spf-record", "mail.spf-all", "mail.spf-relay", "mail.dkim", "mail.dmarc",
                     "mail.mta-sts", "mail.tls-rpt", "dns.caa", "dns.dnssec"):
        for outcome in run(registry, check_id, *facts):
            assert outcome.location is not None, (check_id, outcome)
            if outcome.status is not Status.SKIP:
                assert outcome.subject and outcome.observed and outcome.expected, (check_id, outcome)
