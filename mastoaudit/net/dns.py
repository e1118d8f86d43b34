"""DNS look-ups through dnspython, against a chosen resolver (the lab's Knot) or the system's,
with time limits. Answers are data from the network: callers treat them as hostile."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver

from .target import ScanTarget

MAX_TXT_BYTES = 8192  # an SPF or DMARC record longer than this is not one


@dataclass(frozen=True)
class Answer:
    name: str
    rdtype: str
    records: tuple[str, ...]  # text form of each record (TXT strings joined)
    rcode: str = "NOERROR"  # NOERROR, NXDOMAIN, SERVFAIL, TIMEOUT, ...
    authenticated: bool = False  # the AD flag (DNSSEC validated by the resolver) or signatures present
    signed: bool = False  # RRSIGs came back with the answer (DO bit set)

    @property
    def ok(self) -> bool:
        return self.rcode == "NOERROR"


class Resolver:
    def __init__(self, target: ScanTarget) -> None:
        self.target = target
        self.timeout = target.timeout

    def query(self, name: str, rdtype: str) -> Answer:
        """One question, answered over UDP with TCP on truncation; never raises."""
        try:
            qname = dns.name.from_text(name)
        except (dns.exception.DNSException, ValueError) as exc:
            return Answer(name, rdtype, (), f"BADNAME ({exc})")
        request = dns.message.make_query(qname, rdtype, want_dnssec=True)
        request.flags |= dns.flags.AD
        server, port = self._server()
        try:
            response = dns.query.udp(request, server, port=port, timeout=self.timeout, ignore_trailing=True)
            if response.flags & dns.flags.TC:
                response = dns.query.tcp(request, server, port=port, timeout=self.timeout)
        except dns.exception.Timeout:
            return Answer(name, rdtype, (), "TIMEOUT")
        except (OSError, dns.exception.DNSException) as exc:
            return Answer(name, rdtype, (), f"ERROR ({type(exc).__name__}: {exc})")
        rcode = dns.rcode.to_text(response.rcode())
        records: list[str] = []
        signed = False
        want = dns.rdatatype.from_text(rdtype)
        for rrset in response.answer:
            if rrset.rdtype == dns.rdatatype.RRSIG:
                signed = True
                continue
            if rrset.rdtype != want:
                continue  # CNAME chains: the final type is what the caller asked for
            for rdata in rrset:
                if rrset.rdtype == dns.rdatatype.TXT:
                    text = b"".join(rdata.strings)[:MAX_TXT_BYTES].decode("utf-8", "replace")
                    records.append(text)
                else:
                    records.append(rdata.to_text())
        return Answer(name, rdtype, tuple(records), rcode, bool(response.flags & dns.flags.AD) or signed, signed)

    def addresses(self, name: str) -> list[str]:
        """A and AAAA of a name; the target's fixed host map first, like curl --resolve."""
        if name in self.target.hosts:
            return [self.target.hosts[name]]
        if self.target.resolver is None:
            try:
                infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
            except OSError:
                return []
            return sorted({info[4][0] for info in infos})
        found: list[str] = []
        for rdtype in ("A", "AAAA"):
            found += self.query(name, rdtype).records
        return found

    async def addresses_async(self, name: str) -> list[str]:
        """`addresses` for the event loop: A and AAAA asked at once, within the time limit."""
        if name in self.target.hosts:
            return [self.target.hosts[name]]
        if self.target.resolver is None:
            try:
                async with asyncio.timeout(self.timeout * 2):
                    infos = await asyncio.get_running_loop().getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
            except (OSError, TimeoutError):
                return []
            return sorted({str(info[4][0]) for info in infos})
        answers = await asyncio.gather(*(self._records_async(name, t) for t in ("A", "AAAA")))
        return [*answers[0], *answers[1]]

    async def _records_async(self, name: str, rdtype: str) -> list[str]:
        try:
            request = dns.message.make_query(dns.name.from_text(name), rdtype)
        except (dns.exception.DNSException, ValueError):
            return []
        server, port = self._server()
        try:
            response = await dns.asyncquery.udp(request, server, port=port, timeout=self.timeout,
                                                ignore_trailing=True)
            if response.flags & dns.flags.TC:
                response = await dns.asyncquery.tcp(request, server, port=port, timeout=self.timeout)
        except (OSError, dns.exception.DNSException):
            return []
        want = dns.rdatatype.from_text(rdtype)
        return [rdata.to_text() for rrset in response.answer if rrset.rdtype == want for rdata in rrset][:16]

    def _server(self) -> tuple[str, int]:
        if self.target.resolver is not None:
            return self.target.resolver
        try:
            system = dns.resolver.get_default_resolver()
            return system.nameservers[0], 53
        except (dns.resolver.NoResolverConfiguration, IndexError):
            return "127.0.0.1", 53
