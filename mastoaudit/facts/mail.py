"""The mail domains' DNS as a receiving MTA sees it (mastoaudit/probes/mail_dns.py): SPF (evaluated
for the relay), DKIM keys, DMARC, MTA-STS, TLS-RPT, and the web domain's CAA and DNSSEC. Plain data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..net.spf import SpfAnalysis, SpfResult


def where(name: str, rdtype: str) -> str:
    return f"{name} IN {rdtype}"


@dataclass
class RelayCoverage:
    host: str  # the relay's name (or address) as configured or found in MX
    address: str
    result: SpfResult


@dataclass
class SpfFact:
    domain: str
    analysis: SpfAnalysis
    relays: list[RelayCoverage] = field(default_factory=list)
    relay_source: str = ""  # "SMTP relay" or "MX"

    @property
    def location(self) -> str:
        return where(self.domain, "TXT")


@dataclass
class DkimKey:
    selector: str
    name: str
    record: str | None = None
    key_type: str | None = None  # rsa, ed25519, or what the record says
    bits: int | None = None
    revoked: bool = False
    testing: bool = False  # t=y
    error: str | None = None


@dataclass
class DkimFact:
    domain: str
    selectors: list[str]  # tried
    explicit: bool  # the user named the selectors (otherwise common guesses)
    keys: list[DkimKey] = field(default_factory=list)  # the selectors that answered (or failed to)


@dataclass
class DmarcFact:
    domain: str
    name: str  # where the record was looked up first (_dmarc.<domain>)
    found_at: str | None = None  # where a record was found (the domain's, or a parent's)
    records: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    dns_error: str | None = None
    unauthorized_rua: list[str] = field(default_factory=list)  # external report addresses not authorized

    @property
    def inherited(self) -> bool:
        return self.found_at is not None and self.found_at != self.name

    @property
    def policy(self) -> str | None:
        """The policy that applies to mail from the domain: sp= of a parent's record, else p=."""
        if self.inherited and "sp" in self.tags:
            return self.tags["sp"]
        return self.tags.get("p")


@dataclass
class MtaStsFact:
    domain: str
    records: list[str] = field(default_factory=list)  # v=STSv1 TXT strings at _mta-sts
    record_error: str | None = None
    dns_error: str | None = None
    policy_url: str = ""
    policy_status: int | None = None
    policy_error: str | None = None
    cert_verified: bool | None = None
    policy: dict[str, object] = field(default_factory=dict)  # version, mode, mx (list), max_age (int)
    mx_hosts: list[str] = field(default_factory=list)
    uncovered_mx: list[str] = field(default_factory=list)


@dataclass
class TlsRptFact:
    domain: str
    records: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    dns_error: str | None = None


@dataclass
class CaaFact:
    domain: str
    found_at: str | None = None
    records: list[tuple[int, str, str]] = field(default_factory=list)  # (flags, tag, value)
    errors: list[str] = field(default_factory=list)
    dns_error: str | None = None


@dataclass
class DnssecFact:
    name: str
    rdtype: str  # the record type whose answer was judged
    signed: bool = False  # RRSIGs came with the answer
    authenticated: bool = False  # the resolver's AD flag (or signatures)
    dnskey: bool = False  # DNSKEY records at the name
    rcode: str = "NOERROR"
