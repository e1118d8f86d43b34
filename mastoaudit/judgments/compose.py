"""docker-compose services, judged alike for every backing service: what a container publishes, and
how far a service that accepts connections without a password can be reached.

Mastodon's own compose file runs PostgreSQL with `trust` and Redis without a password on a network
marked `internal: true`, publishing nothing but the web and streaming ports on 127.0.0.1. That is
judged safe here; the same services published, or on a network with a way out, are not. Ports that
Docker publishes are opened in iptables ahead of ufw/firewalld rules, so a host firewall does not
cover them.
"""

from __future__ import annotations

from collections.abc import Iterator

from .. import kinds
from ..checkdef import failed, passed, skipped, warned
from ..facts import FactSet
from ..model import Outcome
from ..parsers.compose import ComposeFile, ComposeService, PortPublish

COMPOSE_NETWORKS = "https://docs.docker.com/reference/compose-file/networks/"


COMPOSE_PORTS = "https://docs.docker.com/reference/compose-file/services/#ports"


DOCKER_UFW = "https://docs.docker.com/engine/network/packet-filtering-firewalls/"


MASTODON_COMPOSE = "https://github.com/mastodon/mastodon/blob/main/docker-compose.yml"
# What the checks of a published port (one per backing service) cite.
PUBLISHED_PORT_REFERENCES = (COMPOSE_PORTS, DOCKER_UFW, MASTODON_COMPOSE)


def service_subject(service: ComposeService) -> str:
    return f"service {service.name}"


def publish_outcomes(compose: ComposeFile, service: ComposeService, what: str,
                      loopback_note: str) -> Iterator[Outcome]:
    """One outcome per published port (or one for none) of a service that must stay internal."""
    subject = service_subject(service)
    mode = service.network_mode.value if service.network_mode is not None else ""
    owner = compose.services.get(mode.split(":", 1)[1]) if mode.startswith("service:") else None
    if owner is not None and owner is not service and owner.ports:
        # It lives in another service's network namespace: that service's ports reach it too.
        for port in owner.ports:
            yield from judge_port(port, f"{what} (in the network of service {owner.name})", subject,
                                   loopback_note, _written(compose, port))
        return
    if service.network_mode is not None and service.network_mode.value == "host":
        yield failed(f"{what} shares the host's network stack: it listens on the host's interfaces "
                     "and no port mapping limits it", at=service.network_mode.location, subject=subject,
                     observed="network_mode: host", expected="compose networks, no published port")
        return
    if not service.ports:
        yield passed(f"{what} publishes no port: only containers on its networks reach it",
                     at=service.location, subject=subject, observed="no ports", expected="no ports")
        return
    for port in service.ports:
        yield from judge_port(port, what, subject, loopback_note, _written(compose, port))


def _written(compose: ComposeFile, port: PortPublish) -> str:
    """How .env filled the entry in, for the evidence: ' (written ${PORT}:4000, with .env)'."""
    written = compose.written(port.location)
    return f" (written {written}, interpolated from {compose.env_path})" if written else ""


def judge_port(port: PortPublish, what: str, subject: str, loopback_note: str, how: str = "") -> Iterator[Outcome]:
    exposure = port.exposure
    shown = port.raw + how
    if exposure == "templated":
        yield skipped(f"{what} is published at an address set by a variable ({shown}): cannot judge",
                      at=port.location, subject=subject, observed="templated", expected="127.0.0.1 or none")
    elif exposure == "all":
        why = "" if port.host_port else " (an ephemeral host port, still on every interface)"
        yield failed(f"{what} is published on every interface of the host{why}; Docker opens it ahead of "
                     "the host firewall", at=port.location, subject=subject, observed=shown,
                     expected="no ports (or 127.0.0.1:...)")
    elif exposure == "public":
        yield failed(f"{what} is published on a public address", at=port.location, subject=subject,
                     observed=shown, expected="no ports (or 127.0.0.1:...)")
    elif exposure in ("private", "unknown"):
        yield warned(f"{what} is published on {port.host_ip}: reachable by every host on that network",
                     at=port.location, subject=subject, observed=shown, expected="no ports (or 127.0.0.1:...)")
    else:
        yield passed(f"{what} is published on loopback only. {loopback_note}", at=port.location,
                     subject=subject, observed=shown, expected="no ports (or 127.0.0.1:...)")


BACKEND_LOOPBACK = ("Not reachable from the network; the other containers do not need it, and every "
                     "local user of the host can connect.")


def backend_publish(facts: FactSet, role: str, what: str) -> Iterator[Outcome]:
    for compose in facts.all(kinds.COMPOSE):
        for service in compose.by_role(role):
            yield from publish_outcomes(compose, service, what, BACKEND_LOOPBACK)


APP_LOOPBACK = "The reverse proxy on the host reaches it there, as in Mastodon's compose file."


def service_reach(compose: ComposeFile, service: ComposeService, depth: int = 0) -> tuple[str, str]:
    """How far an unauthenticated service can be reached: (level, description).

    level: all | public | private | loopback | host | external-network | open-network | internal | templated
    """
    mode = service.network_mode.value if service.network_mode is not None else None
    if mode == "host":
        return "host", "network_mode: host"
    if mode is not None and mode.startswith("service:") and depth < 5:
        other = compose.services.get(mode.split(":", 1)[1])
        if other is not None:
            level, how = service_reach(compose, other, depth + 1)
            return level, f"shares the network of service {other.name}: {how}"
    if mode is not None and mode != "none" and not service.ports:
        return "open-network", f"network_mode: {mode}"
    order = ["all", "public", "templated", "private", "unknown", "loopback"]
    worst = min((p for p in service.ports), key=lambda p: order.index(p.exposure), default=None)
    if worst is not None:
        return worst.exposure, f"published {worst.raw}"
    networks = compose.service_networks(service)
    external = [n.name for n in networks if n.external and not n.internal]
    if external:
        return "external-network", ("on network " + ", ".join(external) + ", created outside this file "
                                    "(external: true): which other containers join it is not known from here")
    open_networks = [n.name for n in networks if not n.internal]
    if open_networks:
        return "open-network", "on network " + ", ".join(open_networks) + " (not internal)"
    names = ", ".join(n.name for n in compose.service_networks(service)) or "none"
    return "internal", f"internal networks only ({names}), no published port"


def unauthenticated(compose: ComposeFile, service: ComposeService, what: str, observed: str,
                     expected: str, at) -> Outcome:
    """The verdict for a service that accepts connections without a password."""
    level, how = service_reach(compose, service)
    subject = service_subject(service)
    first = service.ports[0].location if service.ports else at
    if level == "internal":
        return passed(f"{what}, but only containers on its internal network reach it ({how})", at=at,
                      subject=subject, observed=f"{observed}; {how}", expected=expected)
    if level == "templated":
        return skipped(f"{what}; its published address is set by a variable: cannot judge", at=first,
                       subject=subject, observed=f"{observed}; {how}", expected=expected)
    if level in ("all", "public", "host"):
        return failed(f"{what}, and it is reachable from the network ({how})", at=at, subject=subject,
                      observed=f"{observed}; {how}", expected=expected, severity="critical")
    if level in ("private", "unknown", "loopback"):
        where = "every local user of the host" if level == "loopback" else "every host on that network"
        return failed(f"{what}, and {where} can connect ({how})", at=at, subject=subject,
                      observed=f"{observed}; {how}", expected=expected, severity="high")
    if level == "external-network":
        return failed(f"{what} {how}: every container any other project attaches to that network can connect",
                      at=at, subject=subject, observed=f"{observed}; {how}", expected=expected, severity="medium")
    return failed(f"{what} on a network that is not internal ({how}): any container there, and hosts "
                  "routed to the bridge, can connect", at=at, subject=subject, observed=f"{observed}; {how}",
                  expected=expected, severity="medium")
