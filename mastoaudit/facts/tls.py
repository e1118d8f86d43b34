"""TLS facts: what the `tls` probe learned of each endpoint (mastoaudit/probes/tls.py), as plain data.

`tls_endpoint` holds a TlsEndpoint per host:port (TLS offered or not), `tls_scan` a TlsScanSummary
(what was tried and did not answer). Nothing here opens a socket or imports sslyze: the checks read
these types without loading the network stack.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..model import Location

# Kinds of TLS endpoint.
HTTPS, SMTP_STARTTLS, SMTPS, POSTGRES_STARTTLS = "https", "smtp-starttls", "smtps", "postgres-starttls"

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
    # Stores whose roots the chain's signatures lead to although strict X.509 validation (RFC 5280,
    # as sslyze checks it) refused the chain: OpenSSL's default verification accepts it.
    lenient_trusted_by: tuple[str, ...] = ()
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

    def at(self) -> Location:
        return Location(self.where)


@dataclass(frozen=True)
class TlsScanSummary:
    profile: str
    scanned: tuple[str, ...] = ()
    closed: tuple[str, ...] = ()  # optional endpoints that did not answer
    postgres_tried: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    duration_s: float = 0.0
