"""What the TLS probe scans: the web hosts on 443, the SMTP relays on 25, 587 and 465, PostgreSQL on
5432 of the target's own addresses; each a Candidate with the name it is reached by (SNI) and
whether not answering is an error (the web domain, the media host) or only noted."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from ..facts.tls import HTTPS, POSTGRES_STARTTLS, SMTP_STARTTLS, SMTPS
from ..model import Status
from ..net.runner import ProbeContext, ProbeProblem
from ..net.target import ScanTarget, is_public
from ..net.text import excerpt

SMTP_PORTS = {25: SMTP_STARTTLS, 587: SMTP_STARTTLS, 465: SMTPS}
HTTPS_PORT = 443
POSTGRES_PORT = 5432  # module constants: the tests point them at free ports


class ExchangeError(Exception):
    """The peer's answer was not what the protocol says (the message holds an escaped excerpt)."""


_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.)*"
                       r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?$")


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


def web_candidates(target: ScanTarget, ctx: ProbeContext, smtp_names: set[str],
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


def smtp_hosts(target: ScanTarget, ctx: ProbeContext, problems: list[ProbeProblem],
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


def smtp_candidates(target: ScanTarget, ctx: ProbeContext, hosts: list[tuple[str, int | None, bool]],
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


def postgres_candidates(target: ScanTarget) -> list[Candidate]:
    addresses = list(dict.fromkeys([*target.addresses, *target.scan_addresses]))
    sni = target.web_domain
    return [Candidate(a, POSTGRES_PORT, a, POSTGRES_STARTTLS, sni, False, _where(a, POSTGRES_PORT, a, False))
            for a in addresses]
