"""Peers: the data model the sweep fills in, and the peer lists it starts from.

A `Peer` is a domain the instance federates with, as Mastodon names it (`accounts.domain`: lower
case, punycode, with a port when not the default). A `PeerResult` is what became of reading its
NodeInfo: the software and version, or the kind of error that stopped it. The NodeInfo sweep
(built on the outbound client) produces PeerResults; everything here only holds and reads them.

Peer lists come from the instance's database (distinct `accounts.domain`, with Mastodon's
`unavailable_domains` marking the peers it already gave up delivering to; see `queries`), from a
file (one domain a line, normalised or reported here), or from the instance API (with the sweep).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

import idna

from ..addresses import parse_ip, split_host_port

MAX_PEER_FILE_BYTES = 64 * 1024 * 1024
MAX_DOMAIN_CHARS = 253
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


class PeerError(StrEnum):
    """Why a peer's software could not be read (the sweep's vocabulary; the JSON uses the values)."""

    DNS = "dns"  # the name does not resolve (or DNS did not answer in time)
    PRIVATE_ADDRESS = "private-address"  # the name resolves only to addresses the policy does not allow
    REFUSED = "refused"  # nothing listens (connection refused)
    UNREACHABLE = "unreachable"  # no route to the address, network unreachable
    TLS = "tls"  # handshake failed or the certificate is not trusted for the name
    TIMEOUT = "timeout"  # no complete answer within the per-peer time limit (a slow trickle ends here)
    RESET = "reset"  # the connection broke during the answer
    PROTOCOL = "protocol"  # something answered, but not valid HTTP (junk, too many or too long headers)
    HTTP_STATUS = "http-status"  # the NodeInfo documents answered with an error status
    NOT_NODEINFO = "not-nodeinfo"  # an answer, but not a NodeInfo document (HTML, wrong shape, no software)
    INVALID_JSON = "invalid-json"  # JSON that does not parse
    TOO_DEEP = "too-deep"  # JSON nested deeper than the parser's limit
    TOO_LARGE = "too-large"  # a document over the size cap (gzip bombs included: inflated only to the cap)
    REDIRECT_REFUSED = "redirect-refused"  # a redirect to an address the policy does not allow (not followed)
    REDIRECT_LOOP = "redirect-loop"  # too many redirects
    LINK_REFUSED = "link-refused"  # the NodeInfo link points where the policy does not allow (not fetched)
    NOT_SWEPT = "not-swept"  # the run's time limit ended before this peer's turn: unknown, not unreachable
    OTHER = "other"


# Something answered at the peer's address: the server is up (Mastodon can deliver), even if its
# NodeInfo could not be read.
REACHABLE_ERRORS = {PeerError.HTTP_STATUS, PeerError.NOT_NODEINFO, PeerError.INVALID_JSON, PeerError.TOO_DEEP,
                    PeerError.TOO_LARGE, PeerError.REDIRECT_REFUSED, PeerError.REDIRECT_LOOP, PeerError.PROTOCOL,
                    PeerError.LINK_REFUSED}


@dataclass(frozen=True)
class Peer:
    domain: str
    unavailable: bool = False  # in Mastodon's unavailable_domains (deliveries failed for 7 days)
    source: str = "database"  # database, file, api


@dataclass
class PeerResult:
    """What the sweep learned of one peer. Either `software` (and usually `version`) or `error`."""

    domain: str
    software: str | None = None  # NodeInfo software.name, lower case
    version: str | None = None  # NodeInfo software.version, as announced
    error: PeerError | None = None
    detail: str | None = None  # a short, escaped excerpt of what went wrong
    unavailable: bool = False  # Mastodon lists the domain in unavailable_domains
    nodeinfo_url: str | None = None
    schema: str | None = None  # the NodeInfo schema version read ("2.1", "2.0")
    address: str | None = None  # the address the sweep connected to
    # An admin contact the peer publishes (NodeInfo metadata, /api/v2/instance). Public, but a
    # person's address: held in memory for the --contacts file only, never written to a report.
    contact: Contact | None = None
    extra: dict = field(default_factory=dict)

    @property
    def reachable(self) -> bool:
        """Something answered: a document, or at least an HTTP answer that was not NodeInfo."""
        return self.error is None or self.error in REACHABLE_ERRORS

    @property
    def swept(self) -> bool:
        return self.error is not PeerError.NOT_SWEPT

    def to_dict(self) -> dict:
        return {"domain": self.domain, "software": self.software, "version": self.version,
                "error": self.error.value if self.error else None, "detail": self.detail,
                "unavailable": self.unavailable, "nodeinfo_url": self.nodeinfo_url, "contact": None,
                "contact_found": self.extra.get("contact_found"),  # None: not looked for
                "schema": self.schema, "address": self.address}

    @classmethod
    def from_dict(cls, data: dict) -> PeerResult:
        error = data.get("error")
        try:
            kind = PeerError(error) if error else None
        except ValueError:
            kind = PeerError.OTHER
        software = data.get("software")

        def text(key: str) -> str | None:
            value = data.get(key)
            return None if value is None else str(value)

        return cls(domain=str(data["domain"]), software=str(software).lower() if software else None,
                   version=text("version"), error=kind, detail=text("detail"),
                   unavailable=bool(data.get("unavailable")), nodeinfo_url=text("nodeinfo_url"),
                   schema=text("schema"), address=text("address"))


@dataclass(frozen=True)
class Contact:
    """An admin contact a peer publishes, for the letter seed 000 sent to the peers it blocked."""

    email: str | None
    account: str | None  # an account to write to (acct or profile URL)
    source: str  # nodeinfo, api/v2/instance, api/v1/instance


# --- names -------------------------------------------------------------------------------------


class BadPeerName(ValueError):
    pass


def normalise_domain(text: str) -> str:
    """A peer name as Mastodon stores it: lower case, punycode (IDNA 2008 with UTS 46 mapping), no
    trailing dot, ':port' kept when given. BadPeerName says why a line is not a peer name."""
    raw = text.strip()
    if not raw:
        raise BadPeerName("empty")
    if _SCHEME.match(raw):
        raise BadPeerName("a URL, not a domain (write the host name alone)")
    if any(c in raw for c in "/@?# \t") or any(ord(c) < 0x20 or ord(c) == 0x7F for c in raw):
        raise BadPeerName("not a host name")
    try:
        host, port = split_host_port(raw)
    except ValueError as exc:
        raise BadPeerName(str(exc)) from None
    if parse_ip(host) is not None:  # (BadPeerName is a ValueError: raised outside any try)
        raise BadPeerName("an IP address: peers are named by domain")
    host = host.rstrip(".")
    if not host or "." not in host:
        raise BadPeerName("not a fully qualified domain")
    try:
        ascii_host = idna.encode(host, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise BadPeerName(f"not a valid internationalised name ({exc})") from None
    ascii_host = ascii_host.lower()
    if len(ascii_host) > MAX_DOMAIN_CHARS or not all(_LABEL.match(label) for label in ascii_host.split(".")):
        raise BadPeerName("not a valid host name")
    if ascii_host.split(".")[-1].isdigit():
        raise BadPeerName("the last label is numeric: not a domain")
    return f"{ascii_host}:{port}" if port else ascii_host


@dataclass
class PeerList:
    peers: list[Peer]
    problems: list[tuple[int, str, str]] = field(default_factory=list)  # (line, excerpt, why)
    normalised: int = 0  # lines whose name was rewritten (case, punycode, trailing dot)
    duplicates: int = 0


def read_peer_lines(lines: Iterable[str], source: str = "file") -> PeerList:
    """One domain a line; '#' starts a comment; blank lines are skipped. Every other line is a
    peer (normalised) or a reported problem with its line number; duplicates are merged."""
    seen: dict[str, Peer] = {}
    out = PeerList([])
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        excerpt = text[:80].encode("unicode_escape").decode("ascii")
        try:
            name = normalise_domain(text)
        except BadPeerName as exc:
            out.problems.append((number, excerpt, str(exc)))
            continue
        if name != text:
            out.normalised += 1
        if name in seen:
            out.duplicates += 1
            continue
        seen[name] = Peer(name, source=source)
    out.peers = list(seen.values())
    return out


def read_peer_file(path) -> PeerList:
    from pathlib import Path

    p = Path(path)
    if p.stat().st_size > MAX_PEER_FILE_BYTES:
        raise BadPeerName(f"{p}: larger than {MAX_PEER_FILE_BYTES // (1024 * 1024)} MiB")
    data = p.read_bytes().decode("utf-8", "replace")
    return read_peer_lines(data.splitlines(), source="file")


def peers_from_rows(rows: Iterable[tuple[str, bool]]) -> list[Peer]:
    """The database's (domain, unavailable) rows as peers."""
    return [Peer(domain, bool(unavailable), "database") for domain, unavailable in rows]
