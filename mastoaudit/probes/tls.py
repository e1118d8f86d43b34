"""TLS of every endpoint an outsider reaches, scanned with sslyze's Python API.

Endpoints: the web domain on 443 (and the local domain, the media host and any other web host the
target names), the SMTP relays (STARTTLS on 25 and 587, implicit TLS on 465) and PostgreSQL on
5432 when it answers on the target's own addresses. A quick TCP connect decides which ports are
tried; a plain EHLO (SMTP) or SSLRequest (PostgreSQL) tells "no TLS offered" apart from "not this
protocol"; then every TLS endpoint goes into ONE sslyze Scanner, which scans them in parallel.

Facts: `tls_endpoint` (a TlsEndpoint per host:port, TLS offered or not) and `tls_scan` (a
TlsScanSummary: what was tried and did not answer). sslyze is imported inside the probe only: the
checks import the fact types from here without paying for it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import queue
import re
import threading
import time
import warnings
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from ..model import Location, Status
from ..net.runner import ProbeContext, ProbeFact, ProbeProblem, probe
from ..net.sockets import TcpGate
from ..net.target import ScanTarget, is_public
from ..net.text import excerpt

HTTPS, SMTP_STARTTLS, SMTPS, POSTGRES_STARTTLS = "https", "smtp-starttls", "smtps", "postgres-starttls"
SMTP_PORTS = {25: SMTP_STARTTLS, 587: SMTP_STARTTLS, 465: SMTPS}
HTTPS_PORT = 443
POSTGRES_PORT = 5432  # module constants: the tests point them at free ports
BUDGET_S = 30.0  # the whole probe; the runner's limit is a little longer
EHLO_NAME = "mastoaudit.invalid"
MAX_SANS = 100
MAX_REPLY_LINES = 64
MAX_LINE_BYTES = 1024

# sslyze's scan result field, our name, Mozilla's name.
PROTOCOLS = (
    ("ssl_2_0_cipher_suites", "SSL 2.0", "SSLv2"),
    ("ssl_3_0_cipher_suites", "SSL 3.0", "SSLv3"),
    ("tls_1_0_cipher_suites", "TLS 1.0", "TLSv1"),
    ("tls_1_1_cipher_suites", "TLS 1.1", "TLSv1.1"),
    ("tls_1_2_cipher_suites", "TLS 1.2", "TLSv1.2"),
    ("tls_1_3_cipher_suites", "TLS 1.3", "TLSv1.3"),
)
MOZILLA_TO_OURS = {moz: ours for _, ours, moz in PROTOCOLS}
VULNERABILITY_COMMANDS = ("heartbleed", "robot", "openssl_ccs_injection", "session_renegotiation",
                          "tls_compression", "tls_fallback_scsv", "tls_extended_master_secret")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.)*"
                       r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?$")




# --- facts ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cipher:
    name: str  # IANA name, as sslyze reports it
    protocol: str  # "TLS 1.2"
    key_size: int = 0
    anonymous: bool = False

    @property
    def weaknesses(self) -> tuple[str, ...]:
        return cipher_weaknesses(self.name, self.key_size, self.anonymous)


def cipher_weaknesses(name: str, key_size: int = 0, anonymous: bool = False) -> tuple[str, ...]:
    """Why a cipher suite is broken (not merely outside a profile): empty when it is not."""
    n = name.upper()
    found: list[str] = []
    if "_NULL_" in n or n.endswith("_NULL") or "WITH_NULL" in n:
        found.append("no encryption (NULL)")
    if anonymous or "_ANON_" in n:
        found.append("anonymous (no authentication)")
    if "EXPORT" in n:
        found.append("export grade")
    if "RC4" in n:
        found.append("RC4")
    if "RC2" in n:
        found.append("RC2")
    if "3DES" in n or "DES_EDE" in n or "EDE3" in n:
        found.append("3DES (64-bit block, Sweet32)")
    elif "_DES_" in n or "_DES40_" in n or "_DES_64" in n:
        found.append("DES")
    if "_IDEA_" in n:
        found.append("IDEA (64-bit block)")
    if n.endswith("_MD5"):
        found.append("MD5 MAC")
    if 0 < key_size < 112 and not any(w.startswith(("export", "DES", "RC")) for w in found):
        found.append(f"{key_size}-bit key")
    return tuple(found)


@dataclass(frozen=True)
class CertSummary:
    subject: str
    issuer: str
    sans: tuple[str, ...]
    not_before: datetime | None
    not_after: datetime | None
    key_type: str  # RSA, EC, Ed25519, Ed448, DSA, or the key's class name
    key_size: int | None
    curve: str | None = None
    signature: str = ""
    ocsp_urls: tuple[str, ...] = ()
    crl_urls: tuple[str, ...] = ()
    must_staple: bool = False
    problems: tuple[str, ...] = ()  # fields that could not be read

    @property
    def key(self) -> str:
        return f"{self.key_type} {self.key_size}" + (f" ({self.curve})" if self.curve else "")


@dataclass(frozen=True)
class CertDeployment:
    """One certificate chain the server sends (servers with RSA and ECDSA certificates send two)."""

    leaf: CertSummary
    chain: tuple[CertSummary, ...]  # as received, leaf first
    trusted: bool
    trusted_by: tuple[str, ...] = ()  # trust stores that validated it ("Supplied CA file", "Mozilla", ...)
    trust_error: str | None = None
    hostname_match: bool = False
    ocsp_stapled: bool = False
    ocsp_status: str | None = None
    ocsp_trusted: bool | None = None


@dataclass(frozen=True)
class ProfileSpec:
    """What Mozilla's profile (as bundled with sslyze) allows, kept with the facts so checks judge alone."""

    name: str
    version: str
    protocols: tuple[str, ...]
    ciphers: frozenset[str]  # TLS 1.2 and below, IANA names
    ciphersuites: frozenset[str]  # TLS 1.3
    curves: frozenset[str]
    max_lifespan_days: int


@dataclass(frozen=True)
class TlsEndpoint:
    host: str
    port: int
    address: str
    kind: str  # https, smtp-starttls, smtps, postgres-starttls
    sni: str
    where: str  # "host:port" (with the address when the name has several)
    tls_offered: bool = True
    refusal: str | None = None  # why TLS was not offered (EHLO without STARTTLS, SSLRequest answered N)
    smtp_extensions: tuple[str, ...] = ()
    protocols: tuple[str, ...] = ()  # accepted
    protocols_scanned: tuple[str, ...] = ()  # the versions sslyze could judge
    ciphers: tuple[Cipher, ...] = ()
    curves: tuple[str, ...] = ()
    min_dh_bits: int | None = None
    min_ecdh_bits: int | None = None
    certificates: tuple[CertDeployment, ...] = ()
    # heartbleed, ccs_injection, compression, insecure_renegotiation, client_renegotiation_dos,
    # no_fallback_scsv, no_extended_master_secret: True (vulnerable) / False / None (not determined);
    # robot: sslyze's verdict name or None.
    vulnerabilities: dict[str, Any] = field(default_factory=dict)
    profile: ProfileSpec | None = None
    mozilla_deviations: dict[str, str] = field(default_factory=dict)
    mozilla_error: str | None = None
    errors: dict[str, str] = field(default_factory=dict)  # scan command -> why it failed

    @property
    def location(self) -> Location:
        return Location(self.where)


@dataclass(frozen=True)
class TlsScanSummary:
    profile: str
    scanned: tuple[str, ...] = ()
    closed: tuple[str, ...] = ()  # optional endpoints that did not answer
    postgres_tried: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    duration_s: float = 0.0


# --- small protocol exchanges (hostile input: bounded, never raising past their callers) ----------


class ExchangeError(Exception):
    """The peer's answer was not what the protocol says (the message holds an escaped excerpt)."""


def read_smtp_reply(stream: BinaryIO) -> tuple[int, list[str]]:
    """One SMTP reply (RFC 5321 4.2): lines "ddd-text" then "ddd text"; bounded in lines and bytes."""
    lines: list[str] = []
    code: int | None = None
    for _ in range(MAX_REPLY_LINES):
        raw = stream.readline(MAX_LINE_BYTES + 1)
        if not raw:
            raise ExchangeError(f"connection closed after {len(lines)} reply lines")
        if len(raw) > MAX_LINE_BYTES:
            raise ExchangeError(f"reply line longer than {MAX_LINE_BYTES} bytes: {excerpt(raw[:80])}")
        line = raw.rstrip(b"\r\n")
        if len(line) < 3 or not line[:3].isdigit() or (len(line) > 3 and line[3:4] not in (b" ", b"-")):
            raise ExchangeError(f"not an SMTP reply: {excerpt(raw)}")
        this = int(line[:3])
        if code is not None and this != code:
            raise ExchangeError(f"reply code changed within a reply: {excerpt(raw)}")
        code = this
        lines.append(line[4:].decode("ascii", "replace"))
        if line[3:4] != b"-":
            return code, lines
    raise ExchangeError(f"reply longer than {MAX_REPLY_LINES} lines")


def smtp_extensions(ehlo_lines: list[str]) -> tuple[str, ...]:
    """EHLO keywords (the first line is the greeting name)."""
    words = []
    for line in ehlo_lines[1:]:
        keyword = line.split(" ", 1)[0].upper()
        if keyword and keyword.replace("-", "").isalnum():
            words.append(keyword)
    return tuple(words)


def smtp_probe(gate: TcpGate, address: str, port: int, timeout: float) -> tuple[str, tuple[str, ...]]:
    """Greeting and EHLO in clear: (greeting excerpt, EHLO keywords)."""
    with gate.connect(address, port, timeout) as sock:
        sock.settimeout(timeout)
        stream = sock.makefile("rb")
        code, greeting = read_smtp_reply(stream)
        if code != 220:
            raise ExchangeError(f"greeting {code} {excerpt(' '.join(greeting))}")
        sock.sendall(f"EHLO {EHLO_NAME}\r\n".encode())
        code, ehlo = read_smtp_reply(stream)
        if code != 250:
            raise ExchangeError(f"EHLO answered {code} {excerpt(' '.join(ehlo))}")
        with contextlib.suppress(OSError):
            sock.sendall(b"QUIT\r\n")
        return excerpt(" ".join(greeting), 120), smtp_extensions(ehlo)


SSL_REQUEST = b"\x00\x00\x00\x08\x04\xd2\x16\x2f"  # length 8, code 80877103


def interpret_ssl_response(data: bytes) -> bool:
    """PostgreSQL's one-byte answer to SSLRequest: True for S, False for N; anything else raises."""
    if data == b"S":
        return True
    if data == b"N":
        return False
    if data[:1] == b"E":
        raise ExchangeError(f"PostgreSQL answered SSLRequest with an error: {excerpt(data)}")
    raise ExchangeError(f"not a PostgreSQL answer to SSLRequest: {excerpt(data)}")


def postgres_probe(gate: TcpGate, address: str, port: int, timeout: float) -> bool:
    with gate.connect(address, port, timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(SSL_REQUEST)
        data = sock.recv(1)
        if data in (b"S", b"N"):
            return interpret_ssl_response(data)
        with contextlib.suppress(OSError):  # read a little more to show what answered
            data += sock.recv(255)
        return interpret_ssl_response(data)


def tcp_open(gate: TcpGate, address: str, port: int, timeout: float) -> bool:
    try:
        with gate.connect(address, port, timeout):
            return True
    except OSError:
        return False


# --- names and addresses ---------------------------------------------------------------------------


def parse_mx(record: str) -> str | None:
    """The exchange of an MX record's text ("10 mail.example.com."); None for the null MX ("0 .")."""
    parts = record.split()
    if len(parts) != 2 or not parts[0].isdigit():
        raise ExchangeError(f"malformed MX record: {excerpt(record)}")
    host = parts[1].rstrip(".").lower()
    if host == "":
        return None
    if not _HOSTNAME.match(host):
        raise ExchangeError(f"MX names no valid host: {excerpt(record)}")
    return host


def parse_smtp_host(text: str) -> tuple[str, int | None]:
    """--smtp-host / SMTP_SERVER: "host", "host:port", "[v6]:port" or a bare address."""
    text = text.strip()
    host, port = text, None
    if text.startswith("["):
        inner, _, rest = text[1:].partition("]")
        host = inner
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
    elif text.count(":") == 1:
        name, _, num = text.partition(":")
        if num.isdigit():
            host, port = name, int(num)
    if port is not None and not 0 < port < 65536:
        raise ExchangeError(f"not a port: {excerpt(text)}")
    if not (_is_ip(host) or _HOSTNAME.match(host)):
        raise ExchangeError(f"not a host name: {excerpt(text)}")
    return host.lower().rstrip("."), port


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def hostname_matches(host: str, sans: Iterable[str]) -> bool:
    """RFC 6125: exact or one left-most wildcard label; IP addresses match IP SANs only."""
    host = host.lower().rstrip(".")
    if _is_ip(host):
        return any(_is_ip(s) and ipaddress.ip_address(s) == ipaddress.ip_address(host) for s in sans)
    for san in sans:
        san = san.lower().rstrip(".")
        if san == host:
            return True
        if san.startswith("*.") and "." in host and host.split(".", 1)[1] == san[2:] and san.count(".") >= 2:
            return True
    return False


# --- certificates ------------------------------------------------------------------------------------


def summarize_certificate(cert: Any) -> CertSummary:
    """The fields the checks read, from a cryptography Certificate; unreadable fields are noted."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
    from cryptography.x509.oid import AuthorityInformationAccessOID, ExtensionOID

    problems: list[str] = []

    def read(what: str, fn, default):
        try:
            return fn()
        except Exception as exc:  # a hostile certificate: note it, keep the rest
            problems.append(f"{what}: {excerpt(str(exc), 100)}")
            return default

    subject = read("subject", lambda: excerpt(cert.subject.rfc4514_string()), "")
    issuer = read("issuer", lambda: excerpt(cert.issuer.rfc4514_string()), "")

    def sans() -> tuple[str, ...]:
        try:
            ext = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
        except x509.ExtensionNotFound:
            return ()
        names = [excerpt(n, 100) for n in ext.get_values_for_type(x509.DNSName)]
        names += [str(a) for a in ext.get_values_for_type(x509.IPAddress)]
        return tuple(names[:MAX_SANS])

    def ocsp() -> tuple[str, ...]:
        try:
            aia = cert.extensions.get_extension_for_oid(ExtensionOID.AUTHORITY_INFORMATION_ACCESS).value
        except x509.ExtensionNotFound:
            return ()
        return tuple(excerpt(d.access_location.value, 100) for d in aia
                     if d.access_method == AuthorityInformationAccessOID.OCSP)[:5]

    def crl() -> tuple[str, ...]:
        try:
            points = cert.extensions.get_extension_for_oid(ExtensionOID.CRL_DISTRIBUTION_POINTS).value
        except x509.ExtensionNotFound:
            return ()
        return tuple(excerpt(n.value, 100) for p in points for n in (p.full_name or ())
                     if isinstance(n, x509.UniformResourceIdentifier))[:5]

    def must_staple() -> bool:
        try:
            feature = cert.extensions.get_extension_for_oid(ExtensionOID.TLS_FEATURE).value
        except x509.ExtensionNotFound:
            return False
        return x509.TLSFeatureType.status_request in list(feature)

    def key() -> tuple[str, int | None, str | None]:
        pub = cert.public_key()
        if isinstance(pub, rsa.RSAPublicKey):
            return "RSA", pub.key_size, None
        if isinstance(pub, ec.EllipticCurvePublicKey):
            return "EC", pub.curve.key_size, pub.curve.name
        if isinstance(pub, ed25519.Ed25519PublicKey):
            return "Ed25519", 256, None
        if isinstance(pub, ed448.Ed448PublicKey):
            return "Ed448", 456, None
        if isinstance(pub, dsa.DSAPublicKey):
            return "DSA", pub.key_size, None
        return type(pub).__name__, None, None

    key_type, key_size, curve = read("public key", key, ("unreadable", None, None))
    oid = read("signature algorithm", lambda: cert.signature_algorithm_oid, None)
    signature = (getattr(oid, "_name", "") or getattr(oid, "dotted_string", "")) if oid is not None else ""
    return CertSummary(
        subject=subject, issuer=issuer, sans=read("subjectAltName", sans, ()),
        not_before=read("notBefore", lambda: cert.not_valid_before_utc, None),
        not_after=read("notAfter", lambda: cert.not_valid_after_utc, None),
        key_type=key_type, key_size=key_size, curve=curve, signature=excerpt(signature, 80),
        ocsp_urls=read("authorityInfoAccess", ocsp, ()), crl_urls=read("cRLDistributionPoints", crl, ()),
        must_staple=read("TLS feature", must_staple, False),
        problems=tuple(problems),
    )


def _deployment(dep: Any, host: str, custom_store: bool) -> CertDeployment:
    chain = tuple(summarize_certificate(c) for c in dep.received_certificate_chain[:10])
    results = list(dep.path_validation_results)
    trusted_by = tuple(r.trust_store.name for r in results if r.was_validation_successful)
    # The error worth showing: the store the user gave (the lab, internal CAs), else Mozilla's.
    preferred = "Supplied CA file" if custom_store else "Mozilla"
    failing = [r for r in results if not r.was_validation_successful]
    shown = next((r for r in failing if r.trust_store.name == preferred), failing[0] if failing else None)
    ocsp = dep.ocsp_response
    status = None
    if ocsp is not None:
        status = getattr(getattr(ocsp, "response_status", None), "name", None) or "unknown"
    return CertDeployment(
        leaf=chain[0], chain=chain, trusted=bool(trusted_by), trusted_by=trusted_by,
        trust_error=None if trusted_by or shown is None else excerpt(str(shown.validation_error), 160),
        hostname_match=hostname_matches(host, chain[0].sans),
        ocsp_stapled=ocsp is not None, ocsp_status=status, ocsp_trusted=dep.ocsp_response_is_trusted,
    )


# --- planning ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    host: str
    port: int
    address: str
    kind: str
    sni: str
    required: bool  # not answering is an error (the web domain, the media host); else only noted
    where: str


def _where(host: str, port: int, address: str, several: bool) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{port}" + (f" ({address})" if several and address != host else "")


def _web_candidates(target: ScanTarget, ctx: ProbeContext, smtp_names: set[str],
                    problems: list[ProbeProblem], notes: list[str]) -> list[Candidate]:
    names: dict[str, bool] = {target.web_domain: True}
    if target.local_domain != target.web_domain:
        names.setdefault(target.local_domain, False)
    if target.media_host:
        names.setdefault(target.media_host.lower(), True)
    for name in target.hosts:  # e.g. a streaming host named with --resolve
        if name not in smtp_names and not _is_ip(name):
            names.setdefault(name, False)
    found: list[Candidate] = []
    for name, required in names.items():
        if _is_ip(name):
            addresses = [name]
        elif name == target.web_domain and target.addresses:
            addresses = list(target.addresses)
        else:
            addresses = ctx.resolver.addresses(name)[:2]
        if not addresses:
            if required:
                problems.append(ProbeProblem("tls_endpoint", f"{name} does not resolve: its TLS was not checked",
                                             f"{name}:{HTTPS_PORT}"))
            else:
                notes.append(f"{name} does not resolve")
            continue
        for address in addresses:
            found.append(Candidate(name, HTTPS_PORT, address, HTTPS, name, required,
                                   _where(name, HTTPS_PORT, address, len(addresses) > 1)))
    return found


def _smtp_hosts(target: ScanTarget, ctx: ProbeContext, problems: list[ProbeProblem],
                notes: list[str]) -> list[tuple[str, int | None, bool]]:
    """(host, port or None for all three, named by the user)."""
    hosts: list[tuple[str, int | None, bool]] = []
    for text in target.smtp_hosts:
        try:
            host, port = parse_smtp_host(text)
        except ExchangeError as exc:
            problems.append(ProbeProblem("tls_endpoint", f"SMTP host {exc}", excerpt(text, 80)))
            continue
        hosts.append((host, port, True))
    if hosts:
        return hosts
    seen: set[str] = set()
    for domain in target.mail_domains:
        answer = ctx.resolver.query(domain, "MX")
        if not answer.ok:
            if answer.rcode != "NXDOMAIN":
                notes.append(f"MX of {domain}: {excerpt(answer.rcode, 80)}")
            continue
        for record in answer.records[:10]:
            try:
                host = parse_mx(record)
            except ExchangeError as exc:
                problems.append(ProbeProblem("tls_endpoint", f"MX of {domain}: {exc}", domain, Status.WARN))
                continue
            if host and host not in seen:
                seen.add(host)
                hosts.append((host, None, False))
    return hosts


def _smtp_candidates(target: ScanTarget, ctx: ProbeContext, hosts: list[tuple[str, int | None, bool]],
                     problems: list[ProbeProblem], notes: list[str]) -> list[Candidate]:
    own = target.own_addresses()
    found: list[Candidate] = []
    for host, port, named in hosts:
        addresses = [host] if _is_ip(host) else ctx.resolver.addresses(host)[:2]
        if host == "localhost" or (addresses and all(_loopback(a) and a not in own for a in addresses)):
            notes.append(f"SMTP relay {host} is on the app host's loopback: not reachable from outside, not probed")
            continue
        if not addresses:
            problems.append(ProbeProblem("tls_endpoint", f"SMTP relay {host} does not resolve", host))
            continue
        for address in addresses:
            if not named and not is_public(address) and address not in own:
                # An MX may point anywhere; probe private addresses only when the user named them.
                notes.append(f"MX {host} resolves to the non-public {address}: not probed (name it with --resolve)")
                continue
            for p in ([port] if port else list(SMTP_PORTS)):
                kind = SMTP_PORTS.get(p, SMTP_STARTTLS)
                found.append(Candidate(host, p, address, kind, host, False,
                                       _where(host, p, address, len(addresses) > 1)))
    return found


def _postgres_candidates(target: ScanTarget) -> list[Candidate]:
    addresses = list(dict.fromkeys([*target.addresses, *target.scan_addresses]))
    sni = target.web_domain
    return [Candidate(a, POSTGRES_PORT, a, POSTGRES_STARTTLS, sni, False, _where(a, POSTGRES_PORT, a, False))
            for a in addresses]


# --- sslyze ----------------------------------------------------------------------------------------------


def load_profile(name: str) -> ProfileSpec:
    from sslyze.mozilla_tls_profile.tls_config_checker import MozillaTlsConfiguration, TlsConfigurationEnum

    config = MozillaTlsConfiguration.get(TlsConfigurationEnum(name))
    return ProfileSpec(
        name=name, version=MozillaTlsConfiguration._JSON_PROFILE_PATH.stem,
        protocols=tuple(MOZILLA_TO_OURS.get(v, v) for v in sorted(config.tls_versions)),
        ciphers=frozenset(config.ciphers.iana), ciphersuites=frozenset(config.ciphersuites),
        curves=frozenset(config.tls_curves), max_lifespan_days=config.maximum_certificate_lifespan,
    )


def _scan_request(target: ScanTarget, c: Candidate) -> Any:
    from sslyze import (
        CertificateInfoExtraArgument,
        ProtocolWithOpportunisticTlsEnum,
        ScanCommand,
        ScanCommandsExtraArguments,
        ServerNetworkConfiguration,
        ServerNetworkLocation,
        ServerScanRequest,
    )

    opportunistic = {SMTP_STARTTLS: ProtocolWithOpportunisticTlsEnum.SMTP,
                     POSTGRES_STARTTLS: ProtocolWithOpportunisticTlsEnum.POSTGRES}.get(c.kind)
    commands = {getattr(ScanCommand, f.upper()) for f, _, _ in PROTOCOLS} | {
        ScanCommand.CERTIFICATE_INFO, ScanCommand.ELLIPTIC_CURVES, ScanCommand.HEARTBLEED, ScanCommand.ROBOT,
        ScanCommand.OPENSSL_CCS_INJECTION, ScanCommand.SESSION_RENEGOTIATION, ScanCommand.TLS_COMPRESSION,
        ScanCommand.TLS_FALLBACK_SCSV, ScanCommand.TLS_EXTENDED_MASTER_SECRET}
    extra = ScanCommandsExtraArguments()
    if target.ca_bundle:
        extra = ScanCommandsExtraArguments(
            certificate_info=CertificateInfoExtraArgument(custom_ca_file=Path(target.ca_bundle)))
    return ServerScanRequest(
        server_location=ServerNetworkLocation(c.host, c.port, ip_address=c.address),
        network_configuration=ServerNetworkConfiguration(
            tls_server_name_indication=c.sni, tls_opportunistic_encryption=opportunistic,
            smtp_ehlo_hostname=EHLO_NAME if c.kind == SMTP_STARTTLS else None,
            network_timeout=max(1, round(target.timeout)), network_max_retries=1),
        scan_commands=commands, scan_commands_extra_arguments=extra,
    )


def _error_text(trace: Any) -> str:
    if trace is None:
        return "unknown error"
    try:
        text = "".join(trace.format_exception_only()).strip()
    except Exception:  # a trace that cannot even be formatted
        text = repr(trace)
    return excerpt(text.removeprefix("sslyze.errors."), 240)


def _completed(attempt: Any) -> Any | None:
    return attempt.result if attempt is not None and attempt.status.name == "COMPLETED" else None


def endpoint_from_result(c: Candidate, result: Any, target: ScanTarget, profile: ProfileSpec) -> TlsEndpoint:
    """An sslyze ServerScanResult (completed) as a TlsEndpoint fact."""
    from nassl.ephemeral_key_info import DhEphemeralKeyInfo, EcDhEphemeralKeyInfo

    scan = result.scan_result
    errors: dict[str, str] = {}

    def get(name: str) -> Any | None:
        attempt = getattr(scan, name, None)
        done = _completed(attempt)
        if done is None:
            reason = getattr(getattr(attempt, "error_reason", None), "name", "not run")
            errors[name] = f"{reason}: {_error_text(getattr(attempt, 'error_trace', None))}"
        return done

    protocols, scanned, ciphers = [], [], []
    min_dh: int | None = None
    min_ecdh: int | None = None
    for field_name, ours, _ in PROTOCOLS:
        res = get(field_name)
        if res is None:
            continue
        scanned.append(ours)
        if res.is_tls_version_supported:
            protocols.append(ours)
        for accepted in res.accepted_cipher_suites:
            suite = accepted.cipher_suite
            ciphers.append(Cipher(suite.name, ours, suite.key_size, suite.is_anonymous))
            key = accepted.ephemeral_key
            if isinstance(key, EcDhEphemeralKeyInfo):
                min_ecdh = min(min_ecdh or 10**6, key.size + 3 if key.size in (253, 445) else key.size)
            elif isinstance(key, DhEphemeralKeyInfo):
                min_dh = min(min_dh or 10**6, key.size)
    certificates: list[CertDeployment] = []
    cert_info = get("certificate_info")
    if cert_info is not None:
        for dep in cert_info.certificate_deployments[:4]:
            certificates.append(_deployment(dep, c.sni, bool(target.ca_bundle)))
    curves_result = get("elliptic_curves")
    curves = tuple(cv.name for cv in (curves_result.supported_curves or ())) if curves_result else ()
    vulns: dict[str, Any] = {}
    r = get("heartbleed")
    vulns["heartbleed"] = None if r is None else r.is_vulnerable_to_heartbleed
    r = get("openssl_ccs_injection")
    vulns["ccs_injection"] = None if r is None else r.is_vulnerable_to_ccs_injection
    r = get("robot")
    vulns["robot"] = None if r is None else r.robot_result.name
    r = get("session_renegotiation")
    vulns["insecure_renegotiation"] = None if r is None else not r.supports_secure_renegotiation
    vulns["client_renegotiation_dos"] = None if r is None else r.is_vulnerable_to_client_renegotiation_dos
    r = get("tls_compression")
    vulns["compression"] = None if r is None else r.supports_compression
    r = get("tls_fallback_scsv")
    vulns["no_fallback_scsv"] = None if r is None else not r.supports_fallback_scsv
    r = get("tls_extended_master_secret")
    vulns["no_extended_master_secret"] = None if r is None else not r.supports_ems_extension
    deviations, mozilla_error = mozilla_check(result, profile.name)
    return TlsEndpoint(
        host=c.host, port=c.port, address=c.address, kind=c.kind, sni=c.sni, where=c.where,
        protocols=tuple(protocols), protocols_scanned=tuple(scanned), ciphers=tuple(ciphers), curves=curves,
        min_dh_bits=min_dh, min_ecdh_bits=min_ecdh, certificates=tuple(certificates), vulnerabilities=vulns,
        profile=profile, mozilla_deviations=deviations, mozilla_error=mozilla_error, errors=errors,
    )


def mozilla_check(result: Any, profile: str) -> tuple[dict[str, str], str | None]:
    """sslyze's MozillaTlsConfigurationChecker: (deviations by key, or why it could not judge)."""
    from sslyze.mozilla_tls_profile.tls_config_checker import (
        MozillaTlsConfiguration,
        ServerNotCompliantWithTlsConfiguration,
        ServerScanResultIncomplete,
        TlsConfigurationEnum,
        check_server_against_tls_configuration,
    )

    try:
        check_server_against_tls_configuration(result, MozillaTlsConfiguration.get(TlsConfigurationEnum(profile)))
    except ServerNotCompliantWithTlsConfiguration as exc:
        return {str(k): excerpt(str(v), 2000) for k, v in exc.issues.items()}, None
    except ServerScanResultIncomplete as exc:
        return {}, excerpt(str(exc))
    except Exception as exc:  # sslyze asserts on partial results
        return {}, excerpt(f"{type(exc).__name__}: {exc}")
    return {}, None


def run_scanner(requests: list[Any], deadline: float) -> tuple[dict[Any, Any], str | None]:
    """All requests in one Scanner; results by uuid, and what went wrong (deadline, scanner error)."""
    from sslyze import Scanner

    with warnings.catch_warnings():
        # sslyze's bundled trust stores hold a root with a negative serial number: noise, not a finding.
        warnings.filterwarnings("ignore", message=".*serial number.*")
        return _run_scanner(Scanner(per_server_concurrent_connections_limit=5, concurrent_server_scans_limit=10),
                            requests, deadline)


def _run_scanner(scanner: Any, requests: list[Any], deadline: float) -> tuple[dict[Any, Any], str | None]:
    scanner.queue_scans(requests)
    out: queue.Queue = queue.Queue()

    def consume() -> None:
        try:
            for res in scanner.get_results():
                out.put(res)
        except Exception as exc:  # reported, never raised into the runner
            out.put(exc)
        out.put(None)

    threading.Thread(target=consume, name="tls-sslyze", daemon=True).start()
    results: dict[Any, Any] = {}
    while True:
        try:
            item = out.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return results, "the TLS scan did not finish in time"
        if item is None:
            return results, None
        if isinstance(item, Exception):
            return results, f"sslyze failed: {type(item).__name__}: {excerpt(str(item))}"
        results[item.uuid] = item


# --- the probe ------------------------------------------------------------------------------------------------


def _pre_check(gate: TcpGate, c: Candidate, timeout: float) -> TlsEndpoint | ProbeProblem | None:
    """None: go on with sslyze. A TlsEndpoint: the service answers but offers no TLS."""
    try:
        if c.kind == SMTP_STARTTLS:
            _, extensions = smtp_probe(gate, c.address, c.port, timeout)
            if "STARTTLS" not in extensions:
                return TlsEndpoint(c.host, c.port, c.address, c.kind, c.sni, c.where, tls_offered=False,
                                   refusal=f"EHLO lists {', '.join(extensions) or 'nothing'} (no STARTTLS)",
                                   smtp_extensions=extensions)
        elif c.kind == POSTGRES_STARTTLS and not postgres_probe(gate, c.address, c.port, timeout):
            return TlsEndpoint(c.host, c.port, c.address, c.kind, c.sni, c.where, tls_offered=False,
                               refusal="PostgreSQL answered N to SSLRequest (no TLS)")
    except ExchangeError as exc:
        what = "SMTP" if c.kind == SMTP_STARTTLS else "PostgreSQL"
        return ProbeProblem("tls_endpoint", f"{c.where} answers, but not as {what}: {exc}", c.where, Status.WARN)
    except OSError as exc:
        return ProbeProblem("tls_endpoint", f"{c.where}: {excerpt(str(exc) or type(exc).__name__)}", c.where)
    return None


@probe("tls", timeout=BUDGET_S + 5, description="TLS of the web, media, mail relay and database endpoints (sslyze)")
def tls_probe(target: ScanTarget, ctx: ProbeContext) -> Iterator[ProbeFact | ProbeProblem]:
    started = time.monotonic()
    deadline = started + BUDGET_S
    problems: list[ProbeProblem] = []
    notes: list[str] = []
    smtp_hosts = _smtp_hosts(target, ctx, problems, notes)
    candidates = _web_candidates(target, ctx, {h for h, _, _ in smtp_hosts}, problems, notes)
    candidates += _smtp_candidates(target, ctx, smtp_hosts, problems, notes)
    postgres = _postgres_candidates(target)
    candidates += postgres
    yield from problems
    # sslyze connects to the addresses handed to it: the scan's policy judges them first.
    gate = ctx.http.gate
    for c in [c for c in candidates if gate.refusal(c.address, c.host) is not None]:
        candidates.remove(c)
        notes.append(f"{c.where} not probed: {gate.refusal(c.address, c.host)}")

    quick = min(target.timeout, 3.0)
    with ThreadPoolExecutor(max_workers=16) as pool:
        open_flags = list(pool.map(lambda c: tcp_open(gate, c.address, c.port, quick), candidates))
        reachable = [c for c, ok in zip(candidates, open_flags, strict=True) if ok]
        closed = [c for c, ok in zip(candidates, open_flags, strict=True) if not ok]
        pre = list(pool.map(lambda c: _pre_check(gate, c, target.timeout), reachable))
    for c in closed:
        if c.required:
            yield ProbeProblem("tls_endpoint", f"{c.where} does not answer (TCP connect to {c.address} failed)",
                               c.where)
    smtp_answered = {c.host for c in reachable if c.kind in (SMTP_STARTTLS, SMTPS)}
    for host in dict.fromkeys(c.host for c in closed if c.kind in (SMTP_STARTTLS, SMTPS)):
        if host not in smtp_answered:
            yield ProbeProblem("tls_endpoint", f"SMTP relay {host} answers on none of 25, 587, 465", host)
    to_scan: list[Candidate] = []
    for c, outcome in zip(reachable, pre, strict=True):
        if outcome is None:
            to_scan.append(c)
        elif isinstance(outcome, TlsEndpoint):
            yield ProbeFact("tls_endpoint", outcome)
        else:
            yield outcome

    scanned: list[str] = []
    if to_scan:
        profile = load_profile(target.tls_profile)
        requests = {}
        for c in to_scan:
            try:
                requests[c] = _scan_request(target, c)
            except (ValueError, UnicodeError) as exc:
                yield ProbeProblem("tls_endpoint", f"{c.where}: cannot be scanned: {excerpt(str(exc))}", c.where)
        results, trouble = run_scanner(list(requests.values()), deadline) if requests else ({}, None)
        for c, request in requests.items():
            result = results.get(request.uuid)
            if result is None:
                yield ProbeProblem("tls_endpoint", f"{c.where}: {trouble or 'no result'} "
                                   f"({BUDGET_S:.0f} s for the whole TLS scan)", c.where)
            elif result.scan_result is None:
                trace = result.connectivity_error_trace
                kind = getattr(getattr(trace, "exc_type", None), "__name__", "")
                if kind == "ServerRejectedOpportunisticTlsNegotiation":
                    yield ProbeFact("tls_endpoint", TlsEndpoint(
                        c.host, c.port, c.address, c.kind, c.sni, c.where, tls_offered=False,
                        refusal=_error_text(trace)))
                else:
                    yield ProbeProblem("tls_endpoint", f"{c.where}: TLS could not be negotiated: {_error_text(trace)}",
                                       c.where)
            else:
                try:
                    endpoint = endpoint_from_result(c, result, target, profile)
                except Exception as exc:  # one odd server must not cost the others
                    yield ProbeProblem("tls_endpoint", f"{c.where}: the scan result could not be read: "
                                       f"{type(exc).__name__}: {excerpt(str(exc))}", c.where)
                    continue
                scanned.append(c.where)
                yield ProbeFact("tls_endpoint", endpoint)
    yield ProbeFact("tls_scan", TlsScanSummary(
        profile=target.tls_profile, scanned=tuple(scanned), closed=tuple(c.where for c in closed),
        postgres_tried=tuple(c.where for c in postgres), notes=tuple(notes),
        duration_s=round(time.monotonic() - started, 2)))
