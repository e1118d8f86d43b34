"""The TLS probe's parsers and the TLS checks' judgements, without the lab.

- parsers fed hostile answers (binary junk, oversized lines, malformed MX, odd certificates): a
  clear error, never an exception;
- every TLS check both ways on facts (including what the lab does not plant: weak keys, expiring
  and untrusted certificates, Must-Staple, Heartbleed...);
- the probe end to end against hostile loopback peers (an SMTP server that speaks junk, one that
  breaks the TLS handshake after STARTTLS, a port 5432 that is not PostgreSQL), and sslyze against
  a real loopback TLS server (Python's ssl, i.e. OpenSSL) with a planted weak certificate.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import socket
import socketserver
import ssl
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from mastoaudit.facts import FactSet
from mastoaudit.facts.tls import (
    HTTPS,
    SMTP_STARTTLS,
    SMTPS,
    CertDeployment,
    Cipher,
    ProfileSpec,
    TlsEndpoint,
    TlsScanSummary,
    cipher_weaknesses,
)
from mastoaudit.model import Status
from mastoaudit.net.dns import Resolver
from mastoaudit.net.http import HttpClient
from mastoaudit.net.runner import ProbeContext, ProbeFact, ProbeProblem
from mastoaudit.net.target import ScanTarget
from mastoaudit.net.text import MAX_TEXT, excerpt
from mastoaudit.probes import tls, tls_endpoints, tls_sslyze
from mastoaudit.probes.tls import ExchangeError, interpret_ssl_response, read_smtp_reply, smtp_extensions
from mastoaudit.probes.tls_sslyze import hostname_matches, summarize_certificate

from ..conftest import check_fn

NOW = dt.datetime.now(dt.UTC)

# --- hostile input to the parsers ----------------------------------------------------------------


def test_excerpt_escapes_and_bounds():
    assert excerpt(b"\x00\xff" * 500).startswith("b'\\x00\\xff")
    assert len(excerpt(b"x" * 5000)) == MAX_TEXT
    assert excerpt("line\r\nInjected: yes\x1b[31m") == "line\\r\\nInjected: yes\\x1b[31m"
    assert excerpt("plain") == "plain"


def test_smtp_reply_multiline():
    stream = io.BytesIO(b"250-mail.example Hello\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 8BITMIME\r\n")
    code, lines = read_smtp_reply(stream)
    assert code == 250 and smtp_extensions(lines) == ("PIPELINING", "STARTTLS", "8BITMIME")


@pytest.mark.parametrize("data, message", [
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)), "not an SMTP reply"),
    (b"HTTP/1.1 400 Bad Request\r\n", "not an SMTP reply"),
    (b"220" + b"A" * 5000 + b"\r\n", "longer than"),
    (b"250-x\r\n" * 100, "longer than 64 lines"),
    (b"250-first\r\n550 second\r\n", "code changed"),
    (b"220-partial\r\n", "connection closed"),
    (b"", "connection closed"),
    (b"22\r\n", "not an SMTP reply"),
    (b"220Xjunk\r\n", "not an SMTP reply"),
])
def test_smtp_reply_hostile(data, message):
    with pytest.raises(ExchangeError, match=message) as info:
        read_smtp_reply(io.BytesIO(data))
    assert len(str(info.value)) < 300 and "\x00" not in str(info.value)


def test_smtp_extensions_ignore_junk_keywords():
    lines = ["mail", "STARTTLS", "<script>", "AUTH PLAIN LOGIN", "\x00\x01", "", "SIZE 1000"]
    assert smtp_extensions(lines) == ("STARTTLS", "AUTH", "SIZE")


def test_postgres_ssl_answer():
    assert interpret_ssl_response(b"S") is True
    assert interpret_ssl_response(b"N") is False
    with pytest.raises(ExchangeError, match="error"):
        interpret_ssl_response(b"EFATAL unsupported frontend protocol")
    for junk in (b"", b"HTTP/1.0 400 Bad Request\r\n", b"\xff\xfe" * 200, b"SSH-2.0-OpenSSH_9.2\r\n"):
        with pytest.raises(ExchangeError, match="not a PostgreSQL answer") as info:
            interpret_ssl_response(junk)
        assert len(str(info.value)) < 300


def test_hostname_matching():
    assert hostname_matches("mastodon.example", ["mastodon.example"])
    assert hostname_matches("media.example.social", ["*.example.social"])
    assert not hostname_matches("a.b.example.social", ["*.example.social"])
    assert not hostname_matches("example.social", ["*.example.social"])
    assert not hostname_matches("evil.com", ["*.com"])  # a wildcard needs two labels under it
    assert hostname_matches("192.0.2.1", ["example", "192.0.2.1"])
    assert not hostname_matches("192.0.2.1", ["*.2.1"])


@pytest.mark.parametrize("name, size, anon, expected", [
    ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", 128, False, ()),
    ("TLS_RSA_WITH_AES_128_CBC_SHA", 128, False, ()),  # outside the profile, but not broken
    ("TLS_RSA_WITH_3DES_EDE_CBC_SHA", 168, False, ("3DES (64-bit block, Sweet32)",)),
    ("TLS_RSA_WITH_RC4_128_MD5", 128, False, ("RC4", "MD5 MAC")),
    ("TLS_RSA_WITH_NULL_SHA256", 0, False, ("no encryption (NULL)",)),
    ("TLS_DH_anon_WITH_AES_128_GCM_SHA256", 128, True, ("anonymous (no authentication)",)),
    ("TLS_RSA_EXPORT_WITH_DES40_CBC_SHA", 40, False, ("export grade", "DES")),
    ("TLS_RSA_WITH_DES_CBC_SHA", 56, False, ("DES",)),
    ("SSL_CK_DES_192_EDE3_CBC_WITH_MD5", 168, False, ("3DES (64-bit block, Sweet32)", "MD5 MAC")),
    ("TLS_RSA_WITH_IDEA_CBC_SHA", 128, False, ("IDEA (64-bit block)",)),
])
def test_cipher_weaknesses(name, size, anon, expected):
    assert cipher_weaknesses(name, size, anon) == expected


# --- certificates ------------------------------------------------------------------------------


def make_cert(*, key=None, cn: str = "mastodon.example", sans=("mastodon.example",), days: float = 60,
              not_before_days: float = -1, ocsp: str | None = None, crl: str | None = None, must_staple: bool = False,
              issuer_key=None, issuer_cn: str | None = None) -> tuple[x509.Certificate, object]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn or cn)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW + dt.timedelta(days=min(not_before_days, days - 1)))
        .not_valid_after(NOW + dt.timedelta(days=days))
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False)
    if ocsp:
        builder = builder.add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
            AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp))]), critical=False)
    if crl:
        builder = builder.add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
            [x509.UniformResourceIdentifier(crl)], None, None, None)]), critical=False)
    if must_staple:
        builder = builder.add_extension(x509.TLSFeature([x509.TLSFeatureType.status_request]), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256()), key


def test_certificate_summary_fields():
    cert, _ = make_cert(ocsp="http://ocsp.example/", must_staple=True, sans=("mastodon.example", "media.example"),
                        crl="http://crl.example/1.crl")
    s = summarize_certificate(cert)
    assert s.crl_urls == ("http://crl.example/1.crl",)
    assert (s.key_type, s.key_size, s.curve) == ("EC", 256, "secp256r1")
    assert s.sans == ("mastodon.example", "media.example") and s.subject == "CN=mastodon.example"
    assert s.ocsp_urls == ("http://ocsp.example/",) and s.must_staple and not s.problems
    assert s.signature == "ecdsa-with-SHA256"


def test_certificate_summary_hostile_values():
    weird = "evil\x00\r\nX-Injected: 1\x1b[2J" + "A" * 400
    cert, _ = make_cert(cn=weird[:64], sans=tuple(f"h{i}.example" for i in range(500)),
                        key=rsa.generate_private_key(public_exponent=65537, key_size=1024))
    s = summarize_certificate(cert)
    assert "\x00" not in s.subject and "\r" not in s.subject and "\x1b" not in s.subject
    assert len(s.sans) == tls_sslyze.MAX_SANS
    assert (s.key_type, s.key_size) == ("RSA", 1024)


def test_certificate_summary_survives_unreadable_fields():
    def fails(message: str) -> property:
        def get(self):
            raise ValueError(message)
        return property(get)

    class Broken:  # what a certificate cryptography half-parses looks like to the summariser
        subject = issuer = fails("bad \x00 DN")
        extensions = fails("duplicate extension")
        not_valid_before_utc = not_valid_after_utc = fails("date")
        signature_algorithm_oid = fails("oid")

        def public_key(self):
            raise ValueError("unsupported key")

    s = summarize_certificate(Broken())
    assert s.key_type == "unreadable" and s.not_after is None and s.sans == ()
    assert any("subject" in p for p in s.problems) and all("\x00" not in p for p in s.problems)


# --- the checks, both ways, on facts --------------------------------------------------------------

PROFILE = ProfileSpec(
    name="intermediate", version="5.7", protocols=("TLS 1.2", "TLS 1.3"),
    ciphers=frozenset({"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"}),
    ciphersuites=frozenset({"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384"}),
    curves=frozenset({"X25519", "secp256r1", "secp384r1"}), max_lifespan_days=366,
)
GOOD_VULNS = {"heartbleed": False, "ccs_injection": False, "robot": "NOT_VULNERABLE_NO_ORACLE",
              "insecure_renegotiation": False, "client_renegotiation_dos": False, "compression": False,
              "no_fallback_scsv": False, "no_extended_master_secret": False}


def deployment(cert=None, **kw) -> CertDeployment:
    cert = cert or make_cert()[0]
    leaf = summarize_certificate(cert)
    values = dict(leaf=leaf, chain=(leaf,), trusted=True, trusted_by=("Mozilla",), hostname_match=True)
    values.update(kw)
    return CertDeployment(**values)


def endpoint(**kw) -> TlsEndpoint:
    values = dict(
        host="mastodon.example", port=443, address="192.0.2.10", kind=HTTPS, sni="mastodon.example",
        where="mastodon.example:443", protocols=("TLS 1.2", "TLS 1.3"),
        protocols_scanned=("SSL 2.0", "SSL 3.0", "TLS 1.0", "TLS 1.1", "TLS 1.2", "TLS 1.3"),
        ciphers=(Cipher("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS 1.2", 128),
                 Cipher("TLS_AES_128_GCM_SHA256", "TLS 1.3", 128)),
        curves=("X25519", "secp256r1"), certificates=(deployment(),), vulnerabilities=dict(GOOD_VULNS),
        profile=PROFILE,
    )
    values.update(kw)
    return TlsEndpoint(**values)


def judge(check_id: str, *facts, summary: TlsScanSummary | None = None):
    fs = FactSet(target="mastodon.example")
    for fact in facts:
        fs.add("tls_endpoint", fact)
    if summary:
        fs.add("tls_scan", summary)
    return list(check_fn(check_id)(fs))


def statuses(outcomes) -> list[str]:
    return [o.status.value for o in outcomes]


def test_good_endpoint_passes_every_tls_check():
    for check_id in ("tls.protocols", "tls.ciphers", "tls.certificate-trusted", "tls.certificate-expiry",
                     "tls.key-size", "tls.ocsp-stapling", "tls.vulnerabilities", "tls.mozilla-profile"):
        found = judge(check_id, endpoint())
        assert found and statuses(found) == ["pass"] * len(found), (check_id, found)
        assert all(o.location and o.location.file == "mastodon.example:443" for o in found)


def test_protocols_fail_on_ssl3_and_tls10():
    [o] = judge("tls.protocols", endpoint(protocols=("SSL 3.0", "TLS 1.0", "TLS 1.2")))
    assert o.status is Status.FAIL and o.severity.value == "high" and "SSL 3.0" in o.observed
    [o] = judge("tls.protocols", endpoint(protocols=("SSL 2.0", "TLS 1.2")))
    assert o.severity.value == "critical"
    [o] = judge("tls.protocols", endpoint(protocols=("TLS 1.1", "TLS 1.2")))
    assert o.severity.value == "medium" and o.expected == "TLS 1.2, TLS 1.3"


def test_protocols_modern_profile_rejects_tls12():
    modern = replace(PROFILE, name="modern", protocols=("TLS 1.3",))
    [o] = judge("tls.protocols", endpoint(profile=modern))
    assert o.status is Status.FAIL and o.severity.value == "low" and o.expected == "TLS 1.3"


def test_protocols_unscanned_is_an_error_not_a_pass():
    [o] = judge("tls.protocols", endpoint(protocols_scanned=("TLS 1.2", "TLS 1.3"),
                                            errors={"tls_1_0_cipher_suites": "CLIENT_ERROR: timeout"}))
    assert o.status is Status.ERROR and "TLS 1.0" in o.message


def test_ciphers_broken_and_outside_profile():
    weak = endpoint(ciphers=(Cipher("TLS_RSA_WITH_3DES_EDE_CBC_SHA", "TLS 1.2", 168),
                             Cipher("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS 1.2", 128)))
    [o] = judge("tls.ciphers", weak)
    assert o.status is Status.FAIL and o.severity is None and "Sweet32" in o.observed
    cbc = endpoint(ciphers=(Cipher("TLS_RSA_WITH_AES_128_CBC_SHA", "TLS 1.2", 128),))
    [o] = judge("tls.ciphers", cbc)
    assert o.status is Status.FAIL and o.severity.value == "medium" and "TLS_RSA_WITH_AES_128_CBC_SHA" in o.observed


def test_ciphers_port_25_tolerates_anonymous_but_not_broken():
    anon = (Cipher("TLS_DH_anon_WITH_AES_128_GCM_SHA256", "TLS 1.2", 128, True),
            Cipher("TLS_RSA_WITH_AES_128_CBC_SHA", "TLS 1.2", 128))
    mx = endpoint(kind=SMTP_STARTTLS, port=25, where="mx.example:25", ciphers=anon)
    [o] = judge("tls.ciphers", mx)
    assert o.status is Status.PASS and "1 anonymous" in o.message
    [o] = judge("tls.ciphers", replace(mx, port=587, where="mx.example:587"))
    assert o.status is Status.FAIL and "anonymous" in o.observed  # submission carries passwords
    rc4 = replace(mx, ciphers=(Cipher("TLS_RSA_WITH_RC4_128_SHA", "TLS 1.2", 128),))
    [o] = judge("tls.ciphers", rc4)
    assert o.status is Status.FAIL and "RC4" in o.observed


def test_ciphers_unscanned_protocol_is_no_pass():
    """A relay whose TLS 1.2 suites were not scanned (the split-off half of its scan timed out, or
    that one sslyze command failed) has not shown it offers no broken suites: an error, not a pass."""
    relay = endpoint(kind=SMTP_STARTTLS, port=587, where="mx.example:587", protocols=("TLS 1.3",),
                     protocols_scanned=("SSL 2.0", "SSL 3.0", "TLS 1.0", "TLS 1.1", "TLS 1.3"),
                     ciphers=(Cipher("TLS_AES_128_GCM_SHA256", "TLS 1.3", 128),),
                     errors={"tls_1_2_cipher_suites": "mx.example:587: the TLS scan did not finish in time"})
    [o] = judge("tls.ciphers", relay)
    assert o.status is Status.ERROR and "TLS 1.2" in o.message and "did not finish" in o.message
    # broken suites found in what was scanned still fail
    weak = replace(relay, ciphers=(Cipher("TLS_RSA_WITH_RC4_128_SHA", "TLS 1.1", 128),))
    [o] = judge("tls.ciphers", weak)
    assert o.status is Status.FAIL and "RC4" in o.observed


def test_certificate_untrusted_and_wrong_name():
    [o] = judge("tls.certificate-trusted", endpoint(certificates=(deployment(
        trusted=False, trusted_by=(), trust_error="validation failed: candidates exhausted"),)))
    assert o.status is Status.FAIL and "candidates exhausted" in o.observed
    [o] = judge("tls.certificate-trusted", endpoint(certificates=(deployment(
        make_cert(sans=("other.example",))[0], hostname_match=False),)))
    assert o.status is Status.FAIL and "other.example" in o.observed and o.expected.endswith("mastodon.example")


@pytest.mark.parametrize("days, status, severity", [
    (-2, "fail", "critical"), (3, "fail", None), (15, "warn", "medium"), (40, "pass", None)])
def test_certificate_expiry_thresholds(days, status, severity):
    [o] = judge("tls.certificate-expiry", endpoint(certificates=(deployment(make_cert(days=days)[0]),)))
    assert o.status.value == status and (o.severity.value if o.severity else None) == severity


def test_certificate_not_yet_valid_and_expiring_intermediate():
    [o] = judge("tls.certificate-expiry", endpoint(certificates=(deployment(make_cert(not_before_days=2)[0]),)))
    assert o.status is Status.FAIL and "not valid before" in o.message
    ca_key = ec.generate_private_key(ec.SECP384R1())
    inter, _ = make_cert(key=ca_key, cn="Intermediate CA", issuer_cn="Root CA", sans=(), days=4)
    leaf, _ = make_cert(issuer_key=ca_key, issuer_cn="Intermediate CA", days=80)
    leaf_s, inter_s = summarize_certificate(leaf), summarize_certificate(inter)
    dep = deployment(leaf, chain=(leaf_s, inter_s))
    [o] = judge("tls.certificate-expiry", endpoint(certificates=(dep,)))
    assert o.status is Status.FAIL and "Intermediate CA" in o.message


def test_key_size_fails_on_small_rsa_and_ec():
    rsa1024, _ = make_cert(key=rsa.generate_private_key(public_exponent=65537, key_size=1024))
    [o] = judge("tls.key-size", endpoint(certificates=(deployment(rsa1024),)))
    assert o.status is Status.FAIL and o.observed == "RSA 1024"
    ec192, _ = make_cert(key=ec.generate_private_key(ec.SECP192R1()))
    [o] = judge("tls.key-size", endpoint(certificates=(deployment(ec192),)))
    assert o.status is Status.FAIL and "EC 192" in o.observed
    rsa2048, _ = make_cert(key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    [o] = judge("tls.key-size", endpoint(certificates=(deployment(rsa2048),)))
    assert o.status is Status.PASS


def test_ocsp_stapling_cases():
    no_url = judge("tls.ocsp-stapling", endpoint())
    assert statuses(no_url) == ["pass"] and no_url[0].observed == "no OCSP responder (no CRL either)"
    crl_only = deployment(make_cert(crl="http://x1.c.lencr.org/12.crl")[0])
    [o] = judge("tls.ocsp-stapling", endpoint(certificates=(crl_only,)))
    assert o.status is Status.PASS and "x1.c.lencr.org" in o.observed
    url = deployment(make_cert(ocsp="http://r3.o.lencr.org")[0])
    [o] = judge("tls.ocsp-stapling", endpoint(certificates=(url,)))
    assert o.status is Status.WARN and o.severity is None  # the check's own severity: info
    must = deployment(make_cert(ocsp="http://ocsp.example", must_staple=True)[0])
    [o] = judge("tls.ocsp-stapling", endpoint(certificates=(must,)))
    assert o.status is Status.FAIL and o.severity.value == "high"
    stapled = replace(url, ocsp_stapled=True, ocsp_status="SUCCESSFUL", ocsp_trusted=True)
    assert statuses(judge("tls.ocsp-stapling", endpoint(certificates=(stapled,)))) == ["pass"]
    revoked = replace(url, ocsp_stapled=True, ocsp_status="UNAUTHORIZED")
    assert statuses(judge("tls.ocsp-stapling", endpoint(certificates=(revoked,)))) == ["warn"]
    smtp = endpoint(kind=SMTP_STARTTLS, port=25, where="mx:25", certificates=(url,))
    assert judge("tls.ocsp-stapling", smtp) == []  # mail servers do not check OCSP


def test_vulnerabilities_each_reported():
    bad = dict(GOOD_VULNS, heartbleed=True, robot="VULNERABLE_STRONG_ORACLE", compression=True)
    found = judge("tls.vulnerabilities", endpoint(vulnerabilities=bad))
    assert statuses(found) == ["fail", "fail", "fail"]
    assert {o.severity.value for o in found} == {"critical", "high"}
    assert any("Heartbleed" in o.message for o in found) and any("ROBOT" in o.message for o in found)
    unknown = judge("tls.vulnerabilities", endpoint(vulnerabilities=dict(GOOD_VULNS, heartbleed=None)))
    assert statuses(unknown) == ["error"] and "Heartbleed" in unknown[0].message
    odd = judge("tls.vulnerabilities",
                endpoint(vulnerabilities=dict(GOOD_VULNS, robot="UNKNOWN_INCONSISTENT_RESULTS")))
    assert statuses(odd) == ["warn"]


def test_mozilla_profile_leaves_out_what_other_checks_say():
    deviations = {"tls_versions": "TLS versions {'TLSv1'}", "ciphers": "Cipher suites {...}",
                  "certificate_path_validation": "failed", "rsa_key_size": "1024",
                  "tls_vulnerability_heartbleed": "vulnerable",
                  "maximum_certificate_lifespan": "Certificate life span is 1095 days, should be less than 366.",
                  "tls_vulnerability_fallback_scsv": "no SCSV",
                  "tls_curves": "TLS curves {'X448', 'secp521r1', 'sect163k1'} are supported"}
    e = endpoint(mozilla_deviations=deviations, curves=("X25519", "X448", "secp521r1", "sect163k1"))
    [o] = judge("tls.mozilla-profile", e)
    assert o.status is Status.FAIL and "3 points" in o.message and "X448, secp521r1" in o.message
    assert "1095 days" in o.observed and "fallback" in o.observed and "sect163k1" in o.observed
    assert "TLSv1" not in o.observed and "heartbleed" not in o.observed and "1024" not in o.observed


def test_mozilla_profile_strong_extra_curves_only_pass():
    e = endpoint(mozilla_deviations={"tls_curves": "X448"}, curves=("X25519", "X448", "secp521r1"))
    [o] = judge("tls.mozilla-profile", e)
    assert o.status is Status.PASS and "not counted" in o.message
    [o] = judge("tls.mozilla-profile", endpoint(mozilla_error="The robot result is missing."))
    assert o.status is Status.ERROR


def test_no_raw_bytes_in_what_a_peer_said():
    # A peer's words reach findings only through excerpt(): escaped and bounded.
    shown = excerpt("EHLO \x00\x1b[2J" + "x" * 1000)
    assert "\x00" not in shown and "\x1b" not in shown and len(shown) <= MAX_TEXT


# --- the probe against hostile loopback peers ---------------------------------------------------------


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def serve(address: str, port: int, handle) -> _Server:
    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.settimeout(5)
            with contextlib.suppress(OSError):
                handle(self.request)

    server = _Server((address, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def junk_smtp(sock):
    sock.sendall(b"\x16\x03\x01 not smtp at all \xff\xfe\r\n")


def smtp_then_broken_tls(sock):
    stream = sock.makefile("rb")
    sock.sendall(b"220 relay.test ESMTP\r\n")
    while line := stream.readline(1024):
        verb = line[:8].upper()
        if verb.startswith((b"EHLO", b"HELO")):
            sock.sendall(b"250-relay.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n")
        elif verb.startswith(b"STARTTLS"):
            sock.sendall(b"220 go ahead\r\n")
            sock.recv(4096)  # the ClientHello
            sock.sendall(b"\x15\x03\x03garbage instead of a ServerHello" + bytes(range(256)))
            return
        else:
            sock.sendall(b"250 ok\r\n")


def not_postgres(sock):
    sock.recv(8)
    sock.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n" + b"\x00" * 64)


@pytest.fixture(autouse=True)
def _free_service_ports(monkeypatch):
    # The probe's web and PostgreSQL ports, moved to free ones: a lab running on this machine (its
    # weak PostgreSQL listens on *:5432) must not answer these tests.
    for name in ("HTTPS_PORT", "POSTGRES_PORT"):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            monkeypatch.setattr(tls_endpoints, name, s.getsockname()[1])


def _target(**kw) -> ScanTarget:
    values = dict(name="hostile.test", local_domain="hostile.test", web_domain="hostile.test",
                  addresses=("127.0.0.97",), timeout=2.0, mail_domains=())
    values.update(kw)
    return ScanTarget(**values)


def run_probe(target: ScanTarget) -> tuple[list, list]:
    resolver = Resolver(target)
    items = list(tls.tls_probe(target, ProbeContext(resolver, HttpClient(target, resolver))))
    return ([i.fact for i in items if isinstance(i, ProbeFact)], [i for i in items if isinstance(i, ProbeProblem)])


def test_probe_reports_hostile_peers_as_findings_not_crashes():
    junk = serve("127.0.0.1", 0, junk_smtp)
    broken = serve("127.0.0.1", 0, smtp_then_broken_tls)
    pg = serve("127.0.0.1", tls_endpoints.POSTGRES_PORT, not_postgres)
    try:
        target = _target(hosts={"junk.test": "127.0.0.1", "broken.test": "127.0.0.1"},
                         smtp_hosts=(f"junk.test:{junk.server_address[1]}", f"broken.test:{broken.server_address[1]}",
                                     "bad host!"),
                         scan_addresses=("127.0.0.1",))
        facts, problems = run_probe(target)
    finally:
        for s in (junk, broken, pg):
            s.shutdown()
            s.server_close()
    text = {p.where: p for p in problems}
    web = text[f"hostile.test:{tls_endpoints.HTTPS_PORT}"]
    assert web.status is Status.ERROR and "does not answer" in web.message
    junk_problem = text[f"junk.test:{junk.server_address[1]}"]
    assert "not as SMTP" in junk_problem.message and "\\xff" in junk_problem.message
    tls_problem = text[f"broken.test:{broken.server_address[1]}"]
    assert tls_problem.status is Status.ERROR and "TLS could not be negotiated" in tls_problem.message
    pg_problem = text[f"127.0.0.1:{tls_endpoints.POSTGRES_PORT}"]
    assert "not as PostgreSQL" in pg_problem.message and "\x00" not in pg_problem.message
    assert all(len(p.message) < 600 for p in problems)
    summary = [f for f in facts if isinstance(f, TlsScanSummary)]
    assert len(summary) == 1 and f"127.0.0.97:{tls_endpoints.POSTGRES_PORT}" in summary[0].closed
    # a relay that is no host name: noted here, reported by the smtp probe (one report for both)
    assert any("not a host name" in n for n in summary[0].notes)


def test_the_app_host_s_own_relay_is_tried_at_the_web_address():
    """SMTP_SERVER=localhost: outsiders reach that relay, if at all, at the web host's address; nothing
    answering there is what it should be (a note), not a problem."""
    facts, problems = run_probe(_target(smtp_hosts=("localhost",)))
    [summary] = [f for f in facts if isinstance(f, TlsScanSummary)]
    assert {"hostile.test:25", "hostile.test:587", "hostile.test:465"} <= set(summary.closed)
    assert any("the app host's own SMTP relay answers on none" in n for n in summary.notes)
    assert not any("SMTP" in p.message for p in problems)


# --- sslyze against a real loopback TLS server with a planted weak certificate --------------------------


@pytest.fixture(scope="module")
def weak_tls_server(tmp_path_factory):
    """OpenSSL (Python's ssl) serving a self-signed RSA-1024 certificate for another name, expiring in 3 days."""
    folder: Path = tmp_path_factory.mktemp("weak-tls")
    cert, key = make_cert(key=rsa.generate_private_key(public_exponent=65537, key_size=1024), cn="other.test",
                          sans=("other.test",), days=3)
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let OpenSSL 3 load the 1024-bit key
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")

    def handshake(sock):
        with context.wrap_socket(sock, server_side=True) as tls_sock:
            tls_sock.recv(64)

    def quiet(sock):
        with contextlib.suppress(ssl.SSLError, OSError):
            handshake(sock)

    server = serve("127.0.0.1", 0, quiet)
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_sslyze_scan_of_a_planted_weak_certificate(weak_tls_server):
    port = weak_tls_server
    target = _target(web_domain="weak.test", addresses=("127.0.0.1",))
    candidate = tls_endpoints.Candidate("weak.test", port, "127.0.0.1", HTTPS, "weak.test", True, f"weak.test:{port}")
    request = tls_sslyze.scan_request(target, candidate)
    results, trouble = tls_sslyze.run_scanner([request], time.monotonic() + 25)
    assert trouble is None
    profile = tls_sslyze.load_profile("intermediate")
    e = tls_sslyze.endpoint_from_result(candidate, results[request.uuid], target, profile)
    assert e.protocols and "TLS 1.2" in e.protocols and not e.errors
    [key] = judge("tls.key-size", e)
    assert key.status is Status.FAIL and key.observed == "RSA 1024"
    [trust] = judge("tls.certificate-trusted", e)
    assert trust.status is Status.FAIL and "other.test" in trust.observed
    [expiry] = judge("tls.certificate-expiry", e)
    assert expiry.status is Status.FAIL and "(2 days)" in expiry.observed
    [vulns] = judge("tls.vulnerabilities", e)
    assert vulns.status is Status.PASS  # a current OpenSSL
    [profile] = judge("tls.mozilla-profile", e)
    assert "certificate_path_validation" not in profile.observed and "rsa_key_size" not in profile.observed


def test_unknown_profile_name_is_refused():
    with pytest.raises(ValueError):
        tls_sslyze.load_profile("ancient")


def test_the_probe_is_registered():
    from mastoaudit.net.runner import all_probes

    [p] = [p for p in all_probes() if p.name == "tls"]
    assert p.timeout > tls.BUDGET_S


# --- a CA that only strict X.509 validation refuses ------------------------------------------------------


def _ca_without_key_usage(folder: Path) -> tuple[Path, Path, Path]:
    """A private CA with basicConstraints but no keyUsage (as many hand-made CAs are), and a server
    certificate for strict.test it signs: OpenSSL's default verification accepts the pair, strict
    RFC 5280 validation (cryptography's, sslyze's) refuses the CA."""
    name = lambda cn: x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])  # noqa: E731
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("Hand-made CA")).issuer_name(name("Hand-made CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=60))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(name("strict.test")).issuer_name(name("Hand-made CA"))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("strict.test")]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = folder / "ca.pem", folder / "chain.pem", folder / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def test_a_certificate_only_strict_validation_rejects_says_so(tmp_path):
    ca, chain, key = _ca_without_key_usage(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain, key)
    client = ssl.create_default_context(cafile=str(ca))  # OpenSSL's default verification: accepts the chain
    client.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)

    def handshake(sock):
        with contextlib.suppress(ssl.SSLError, OSError), context.wrap_socket(sock, server_side=True) as tls_sock:
            tls_sock.recv(64)

    server = serve("127.0.0.1", 0, handshake)
    port = server.server_address[1]
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                client.wrap_socket(raw, server_hostname="strict.test") as verified:
            assert verified.version()  # the lenient handshake succeeds
        target = _target(web_domain="strict.test", addresses=("127.0.0.1",), ca_bundle=str(ca))
        candidate = tls_endpoints.Candidate("strict.test", port, "127.0.0.1", HTTPS, "strict.test", True,
                                            f"strict.test:{port}")
        request = tls_sslyze.scan_request(target, candidate)
        results, trouble = tls_sslyze.run_scanner([request], time.monotonic() + 25)
        assert trouble is None
        e = tls_sslyze.endpoint_from_result(candidate, results[request.uuid], target,
                                            tls_sslyze.load_profile("intermediate"))
    finally:
        server.shutdown()
        server.server_close()
    [dep] = e.certificates
    assert not dep.trusted and "Supplied CA file" in dep.lenient_trusted_by
    [trust] = judge("tls.certificate-trusted", e)
    assert trust.status is Status.FAIL and trust.severity.value == "medium"
    assert "strict X.509 validation (RFC 5280) rejects it" in trust.message and "OpenSSL's default" in trust.message
    assert "2.5.29.15" in trust.message  # the missing keyUsage, as the validator names it


def test_an_untrusted_chain_is_not_called_strictness(tmp_path):
    [o] = judge("tls.certificate-trusted", endpoint(certificates=(deployment(
        trusted=False, trusted_by=(), trust_error="validation failed: candidates exhausted"),)))
    assert "strict" not in o.message and o.severity is None


def test_scans_in_the_worker_process_equal_scans_here(weak_tls_server, monkeypatch):
    """The TLS worker (net/workers.py, net/tls_worker.py) scans each endpoint in a process of its
    own; what comes back is the same TlsEndpoint as a scan in this process. When the worker has
    ended, what was waiting fails over and the next scan starts a new one."""
    from mastoaudit.net import workers

    port = weak_tls_server
    target = _target(web_domain="weak.test", addresses=("127.0.0.1",))
    candidates = [tls_endpoints.Candidate("weak.test", port, "127.0.0.1", HTTPS, "weak.test", True,
                                          f"weak.test:{port}")]
    monkeypatch.delenv("MASTOAUDIT_WORKERS", raising=False)
    scanner = workers.scanner()
    assert scanner is not None
    [remote] = tls._scan_all(target, candidates, time.monotonic() + 25)
    monkeypatch.setenv("MASTOAUDIT_WORKERS", "0")
    assert workers.scanner() is None
    [here] = tls._scan_all(target, candidates, time.monotonic() + 25)

    def comparable(outcome):
        e = outcome.fact
        return (e.where, e.protocols, e.protocols_scanned, tuple(sorted(c.name for c in e.ciphers)),
                e.certificates[0].leaf.key, e.certificates[0].trusted, e.vulnerabilities, e.errors)

    assert isinstance(remote.fact, TlsEndpoint) and remote.fact.tls_offered
    assert comparable(remote) == comparable(here)
    scanner.close()
    future = scanner.submit(target, candidates[0], time.monotonic() + 25)
    with pytest.raises(workers.WorkerGone):
        future.result(timeout=5)
    monkeypatch.delenv("MASTOAUDIT_WORKERS")
    fresh = workers.scanner()
    assert fresh is not None and fresh is not scanner
    workers.shutdown()


def test_prefetch_lists_what_the_probe_scans_first():
    """The audit's early scans are the web domain's endpoints exactly as the probe lists them, so
    the probe finds them; an address the scan's policy refuses is not scanned early either."""
    target = _target(web_domain="m.example", local_domain="m.example", addresses=("192.0.2.10", "192.0.2.11"))
    early = tls_endpoints.web_domain_candidates(target)
    listed = tls_endpoints.web_candidates(target, None, set(), [], [])
    assert early and early == [c for c in listed if c.host == "m.example"]
    assert tls_endpoints.web_domain_candidates(_target(web_domain="m.example", addresses=())) == []


def test_a_relay_scanned_in_two_parts_is_judged_as_one_scan(weak_tls_server, monkeypatch):
    """A mail relay's scan runs in two processes of the TLS worker (its TLS 1.2 cipher suites apart
    from the rest); the merged fact is the one a single scan gives: same protocols, suites, certificate,
    vulnerabilities, no errors. Such an endpoint is never scanned for curves nor held to Mozilla's
    profile (nothing reads them), and HTTPS endpoints are scanned whole."""
    from mastoaudit.net import workers

    port = weak_tls_server
    target = _target(web_domain="weak.test", addresses=("127.0.0.1",))
    relay = tls_endpoints.Candidate("weak.test", port, "127.0.0.1", SMTPS, "weak.test", False, f"weak.test:{port}")
    assert tls_sslyze.splits(relay)
    assert not tls_sslyze.splits(replace(relay, kind=HTTPS))
    monkeypatch.delenv("MASTOAUDIT_WORKERS", raising=False)
    assert workers.scanner() is not None
    [parts] = tls._scan_all(target, [relay], time.monotonic() + 25)
    monkeypatch.setenv("MASTOAUDIT_WORKERS", "0")
    [whole] = tls._scan_all(target, [relay], time.monotonic() + 25)
    workers.shutdown()

    def comparable(outcome):
        e = outcome.fact
        return (e.where, e.protocols, e.protocols_scanned, tuple(sorted(c.name for c in e.ciphers)), e.curves,
                e.min_dh_bits, e.min_ecdh_bits, e.certificates[0].leaf.key_size, e.certificates[0].trusted,
                e.vulnerabilities, e.errors, e.mozilla_deviations, e.mozilla_error)

    assert isinstance(parts, ProbeFact) and parts.fact.tls_offered
    assert comparable(parts) == comparable(whole)
    e = parts.fact
    assert "TLS 1.2" in e.protocols and "TLS 1.2" in e.protocols_scanned and not e.errors
    assert any(c.protocol == "TLS 1.2" for c in e.ciphers) and e.curves == ()
    assert set(e.vulnerabilities) >= {"heartbleed", "robot", "ccs_injection"} and e.mozilla_error
    [key] = judge("tls.key-size", e)
    assert key.status is Status.FAIL and key.observed == "RSA 1024"
    # a part that fails is that command's error, as in a whole scan; a refusal of the rest is the answer
    lost = ProbeProblem("tls_endpoint", "the TLS scan did not finish in time", relay.where)
    rest_only = tls_sslyze.joined(relay, ProbeFact("tls_endpoint", replace(e, ciphers=tuple(
        c for c in e.ciphers if c.protocol != "TLS 1.2"), protocols_scanned=tuple(
        p for p in e.protocols_scanned if p != "TLS 1.2"))), lost)
    assert "TLS 1.2" not in rest_only.fact.protocols_scanned and "did not finish" in rest_only.fact.errors[
        "tls_1_2_cipher_suites"]
    refused = ProbeFact("tls_endpoint", TlsEndpoint("weak.test", port, "127.0.0.1", SMTPS, "weak.test",
                                                    relay.where, tls_offered=False, refusal="no"))
    assert tls_sslyze.joined(relay, refused, parts) is refused
    assert tls_sslyze.joined(relay, lost, parts) is lost
