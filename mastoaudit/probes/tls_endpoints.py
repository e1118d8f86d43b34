"""What the TLS probe scans: the web hosts on 443, the SMTP relays on 25, 587 and 465 (which relays:
mastoaudit/net/relays.py), PostgreSQL on 5432 of the target's own addresses; each a Candidate with
the name it is reached by (SNI) and whether not answering is an error (the web domain, the media
host) or only noted."""

from __future__ import annotations

from dataclasses import dataclass

from ..addresses import parse_ip
from ..facts.tls import HTTPS, POSTGRES_STARTTLS, SMTP_STARTTLS, SMTPS
from ..net.relays import RelayPlan
from ..net.runner import ProbeContext, ProbeProblem
from ..net.target import ScanTarget

SMTP_PORTS = {25: SMTP_STARTTLS, 587: SMTP_STARTTLS, 465: SMTPS}
HTTPS_PORT = 443
POSTGRES_PORT = 5432  # module constants: the tests point them at free ports


@dataclass(frozen=True)
class Candidate:
    host: str
    port: int
    address: str
    kind: str
    sni: str
    required: bool  # not answering is an error (the web domain, the media host); else only noted
    where: str
    may_be_closed: bool = False  # the app host's own relay: closed from outside is what it should be


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
        if name not in smtp_names and parse_ip(name) is None:
            names.setdefault(name, False)
    found: list[Candidate] = []
    for name, required in names.items():
        if parse_ip(name) is not None:
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


def web_domain_candidates(target: ScanTarget) -> list[Candidate]:
    """The web domain's HTTPS endpoints at the addresses the target names (an audit's web hosts):
    known before anything is read or resolved, exactly as web_candidates lists them."""
    if not target.addresses or parse_ip(target.web_domain) is not None:
        return []
    several = len(target.addresses) > 1
    return [Candidate(target.web_domain, HTTPS_PORT, a, HTTPS, target.web_domain, True,
                      _where(target.web_domain, HTTPS_PORT, a, several)) for a in target.addresses]


def smtp_candidates(plan: RelayPlan) -> list[Candidate]:
    """The relays' SMTP ports: the configured one, or 25 and 587 (STARTTLS) and 465 (TLS)."""
    found: list[Candidate] = []
    for relay in plan.relays:
        several = len(plan.addresses_of(relay.name)) > 1
        for p in ([relay.port] if relay.port else list(SMTP_PORTS)):
            found.append(Candidate(relay.name, p, relay.address, SMTP_PORTS.get(p, SMTP_STARTTLS), relay.name, False,
                                   _where(relay.name, p, relay.address, several), relay.on_app_host is not None))
    return found


def postgres_candidates(target: ScanTarget) -> list[Candidate]:
    addresses = list(dict.fromkeys([*target.addresses, *target.scan_addresses]))
    sni = target.web_domain
    return [Candidate(a, POSTGRES_PORT, a, POSTGRES_STARTTLS, sni, False, _where(a, POSTGRES_PORT, a, False))
            for a in addresses]
