"""Which SMTP relays a scan judges: decided here, once, for every probe that looks at them (the TLS
probe's STARTTLS scan, the SMTP probe's dialogue, the SPF coverage of the mail DNS probe).

- The configured relay (`SMTP_SERVER` from .env.production, or `--smtp-host`) when there is one,
  else the mail domains' MX hosts.
- A configured relay on the app host itself (`SMTP_SERVER=localhost`, as a local Postfix is often
  set up) is what outsiders reach at the web host's addresses: it is probed there, under the web
  domain's name (the name a certificate on that host carries). If nothing answers there, the relay
  is not reachable from outside, which is what it should be: a note, not a problem.
- An MX host on an address that is not public (and that the user did not point the scan at) is not
  probed: an MX may point anywhere, and a scan never reaches a private address it was not given.
- A name that does not resolve from here (an internal name, a compose service) is reported and
  not probed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol

from ..addresses import Scope, is_public, parse_ip, scope, split_host_port
from ..model import Status
from .target import ScanTarget
from .text import excerpt

MAX_ADDRESSES = 2  # per relay name: a hostile DNS answer must not multiply the connections
MAX_MX = 10
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.)*"
                       r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?$")


class Lookups(Protocol):
    """What the plan needs of a resolver (mastoaudit.net.dns.Resolver)."""

    def query(self, name: str, rdtype: str): ...

    def addresses(self, name: str) -> list[str]: ...


@dataclass(frozen=True)
class Relay:
    name: str  # the name it is reached by, and its certificate is checked for
    address: str  # where it is reached from outside
    port: int | None = None  # the configured port; None: 25, 587 and 465
    named: bool = True  # configured (SMTP_SERVER, --smtp-host) rather than found in MX
    on_app_host: str | None = None  # the configured name, when the relay is the app host's own (localhost)

    @property
    def configured(self) -> str:
        return self.on_app_host or self.name


@dataclass
class RelayPlan:
    relays: list[Relay] = field(default_factory=list)
    source: str = "MX"  # "SMTP relay" (configured) or "MX"
    problems: list[tuple[str, str, Status]] = field(default_factory=list)  # (message, where, status)
    notes: list[str] = field(default_factory=list)

    def names(self) -> list[str]:
        return list(dict.fromkeys(r.name for r in self.relays))

    def addresses_of(self, name: str) -> list[str]:
        return [r.address for r in self.relays if r.name == name]


def parse_mx(record: str) -> str | None:
    """The exchange of an MX record's text ("10 mail.example.com."); None for the null MX ("0 .").
    ValueError (with an escaped excerpt) for a record that is not one."""
    parts = record.split()
    if len(parts) != 2 or not parts[0].isdigit():
        raise ValueError(f"malformed MX record: {excerpt(record)}")
    host = parts[1].rstrip(".").lower()
    if host == "":
        return None
    if not _HOSTNAME.match(host):
        raise ValueError(f"MX names no valid host: {excerpt(record)}")
    return host


def parse_relay(text: str) -> tuple[str, int | None]:
    """A configured relay: "host", "host:port", "[v6]:port" or a bare address; ValueError otherwise."""
    try:
        host, port = split_host_port(text)
    except ValueError as exc:
        raise ValueError(f"{excerpt(text, 80)}: {exc}") from None
    if parse_ip(host) is None and not _HOSTNAME.match(host):
        raise ValueError(f"not a host name: {excerpt(text, 80)}")
    return host.lower().rstrip("."), port


def _on_this_host(name: str, addresses: list[str], own: set[str]) -> bool:
    """A relay name or addresses that mean the app host itself, not an address we were pointed at."""
    if name in ("localhost", "localhost.localdomain", "ip6-localhost") or name.endswith(".localhost"):
        return True
    return bool(addresses) and all(scope(a) in (Scope.LOOPBACK, Scope.UNSPECIFIED) and a not in own
                                   for a in addresses)


def _configured(target: ScanTarget, dns: Lookups, plan: RelayPlan) -> None:
    own = target.own_addresses()
    for text in target.smtp_hosts:
        try:
            name, port = parse_relay(text)
        except ValueError as exc:
            plan.problems.append((f"SMTP relay {exc}", excerpt(text, 80), Status.WARN))
            continue
        addresses = [name] if parse_ip(name) is not None else dns.addresses(name)[:MAX_ADDRESSES]
        if _on_this_host(name, addresses, own):
            if not target.addresses:
                plan.notes.append(f"SMTP relay {name} is on the app host, whose address is not known: not probed")
            plan.relays += [Relay(target.web_domain, a, port, True, name) for a in target.addresses]
        elif not addresses:
            plan.problems.append((f"SMTP relay {name} does not resolve from here: not probed", name, Status.WARN))
        else:
            plan.relays += [Relay(name, a, port, True) for a in addresses]


def mx_hosts(dns: Lookups, domain: str, plan: RelayPlan | None = None) -> list[str]:
    """The domain's MX host names by preference (the null MX left out); a failed look-up or a
    malformed record is recorded in `plan` when one is given."""
    answer = dns.query(domain, "MX")
    if not answer.ok and plan is not None and answer.rcode != "NXDOMAIN":
        plan.notes.append(f"MX of {domain}: {excerpt(answer.rcode, 80)}")
    found: list[tuple[int, str]] = []
    for record in answer.records[:MAX_MX]:
        try:
            host = parse_mx(record)
        except ValueError as exc:
            if plan is not None:
                plan.problems.append((f"MX of {domain}: {exc}", domain, Status.WARN))
            continue
        if host:
            found.append((int(record.split()[0]), host))
    return [h for _, h in sorted(set(found))]


def _mx(target: ScanTarget, dns: Lookups, plan: RelayPlan) -> None:
    own = target.own_addresses()
    hosts = dict.fromkeys(h for domain in target.mail_domains for h in mx_hosts(dns, domain, plan))
    for host in hosts:
        addresses = dns.addresses(host)[:MAX_ADDRESSES]
        if not addresses:
            plan.notes.append(f"MX {host} does not resolve")
        for address in addresses:
            if is_public(address) or address in own:
                plan.relays.append(Relay(host, address, None, False))
            else:
                plan.notes.append(f"MX {host} resolves to the non-public {address}: not probed "
                                  "(name it with --resolve)")


def smtp_relays(target: ScanTarget, dns: Lookups) -> RelayPlan:
    """The relays to judge, where they came from, and what could not be used (see the module's doc)."""
    plan = RelayPlan(source="SMTP relay" if target.smtp_hosts else "MX")
    if target.smtp_hosts:
        _configured(target, dns, plan)
    else:
        _mx(target, dns, plan)
    plan.relays = list(dict.fromkeys(plan.relays))
    return plan
