"""What answered on the internal services' ports from the auditor's side (mastoaudit/probes/ports.py):
a PortResult per address and port (`port`) and the scan as a whole (`port_scan`). Plain data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..model import Location


def where(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


@dataclass
class PortResult:
    """One address:port as the auditor saw it (the fact kind "port")."""

    address: str
    port: int
    state: str  # open, closed, filtered, unreachable
    reason: str = ""
    in_scope: bool = True  # an address of the web domain (target.addresses) rather than an extra one
    public: bool = False
    service: str | None = None  # postgresql, redis, elasticsearch, opensearch, memcached, prometheus, ...
    label: str = ""  # what the report calls it: "Redis 7.0.15", "PostgreSQL", ...
    banner: str = ""  # escaped excerpt of the first answer
    tls: bool | None = None  # the service spoke TLS (or PostgreSQL offered it)
    details: dict[str, Any] = field(default_factory=dict)  # per service: auth findings, versions
    unparseable: list[str] = field(default_factory=list)  # answers that could not be understood

    @property
    def where(self) -> str:
        return where(self.address, self.port)

    def at(self) -> Location:
        return Location(self.where)


@dataclass(frozen=True)
class PortScan:
    """The scan as a whole (the fact kind "port_scan"): which ports of which addresses."""

    addresses: tuple[str, ...]
    ports: tuple[int, ...]
    in_scope: tuple[str, ...]
