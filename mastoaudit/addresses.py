"""The one address-scope rule: what kind of address an IP is, and whether a request may go there.

Every part of mastoaudit that asks "is this address public?" asks here: the checks judging where a
service listens, the network probes, and the federation crawler deciding whether it may connect.
Special-purpose ranges follow the IANA registries (RFC 6890 and successors); addresses that embed
an IPv4 address (IPv4-mapped, NAT64, 6to4) are judged by the address they embed, so
`::ffff:127.0.0.1` is loopback and `64:ff9b::a9fe:a9fe` is the cloud metadata address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Scope(StrEnum):
    PUBLIC = "public"
    LOOPBACK = "loopback"
    UNSPECIFIED = "unspecified"  # 0.0.0.0, :: (a socket bound there listens on every address)
    PRIVATE = "private"  # RFC 1918, IPv6 unique local (fc00::/7)
    LINK_LOCAL = "link-local"  # 169.254/16, fe80::/10: where cloud metadata services answer
    SHARED = "shared"  # 100.64/10, carrier-grade NAT (RFC 6598)
    SPECIAL = "special"  # documentation, benchmarking, reserved, multicast, broadcast, 0/8 ...


# Cloud instance metadata endpoints (AWS, GCP, Azure, OpenStack; AWS's IPv6 one): named in
# messages because reaching one from a scanner is the classic SSRF prize.
METADATA_ADDRESSES = frozenset({"169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200"})

_SPECIAL_V4 = [ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "198.18.0.0/15", "198.51.100.0/24",
    "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
)]
_SPECIAL_V6 = [ipaddress.ip_network(n) for n in (
    "100::/64", "2001::/23", "2001:db8::/32", "ff00::/8", "::/128", "3fff::/20", "5f00::/16",
)]
_PRIVATE_V4 = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]
_SHARED_V4 = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = [ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48")]
# The only IPv6 space assigned for global unicast. Outside it, what the cases above have not named
# is reserved, and Python calls some of it global: the deprecated IPv4-compatible ::a.b.c.d and
# SIIT's ::ffff:0:a.b.c.d, which a gateway doing NAT64/SIIT may carry to the IPv4 address inside.
_GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")


def parse_ip(text: str) -> IPAddress | None:
    """An IP address from text ('::1', '[::1]', 'fe80::1%eth0'), or None when it is not one."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    return None


def scope(address: str | IPAddress) -> Scope | None:
    """The scope of an address, or None when `address` is not an IP address at all."""
    ip = parse_ip(address) if isinstance(address, str) else address
    if ip is None:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_v4(ip)
        if inner is not None:
            return scope(inner)
        if ip.is_loopback:
            return Scope.LOOPBACK
        if ip.is_unspecified:
            return Scope.UNSPECIFIED
        if ip.is_link_local or ip.is_site_local:
            return Scope.LINK_LOCAL
        if ip in ipaddress.IPv6Network("fc00::/7"):
            return Scope.PRIVATE
        if any(ip in net for net in _SPECIAL_V6) or not ip.is_global or ip not in _GLOBAL_UNICAST_V6:
            return Scope.SPECIAL
        return Scope.PUBLIC
    if ip.is_loopback:
        return Scope.LOOPBACK
    if ip == ipaddress.IPv4Address("0.0.0.0"):
        return Scope.UNSPECIFIED
    if ip.is_link_local:
        return Scope.LINK_LOCAL
    if any(ip in net for net in _PRIVATE_V4):
        return Scope.PRIVATE
    if ip in _SHARED_V4:
        return Scope.SHARED
    if any(ip in net for net in _SPECIAL_V4) or not ip.is_global:
        return Scope.SPECIAL
    return Scope.PUBLIC


def is_public(address: str | IPAddress) -> bool:
    """True only for a globally routable unicast address (anything else, names included: False)."""
    return scope(address) is Scope.PUBLIC


def describe(address: str) -> str:
    """'10.0.0.5 (private)', '169.254.169.254 (link-local, cloud metadata)' for messages."""
    found = scope(address)
    if found is None:
        return address
    extra = ", cloud metadata" if str(parse_ip(address)) in METADATA_ADDRESSES else ""
    return f"{address} ({found.value}{extra})"


@dataclass(frozen=True)
class AddressPolicy:
    """Where outbound connections may go: public addresses always; anything else only when the user
    named it, as an address, a network, or a host name (the scanned site, a lab, a test)."""

    allowed_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    allowed_names: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def allowing(cls, entries: Iterable[str] = (), names: Iterable[str] = ()) -> AddressPolicy:
        """From user text: addresses or networks ('10.0.0.5', '127.0.0.0/8') and host names (a
        "name" that is an IP address, such as an endpoint's host, allows that address).
        ValueError for an entry that is neither an address nor a network."""
        names = list(names)
        nets = [ipaddress.ip_network(str(ip)) for n in names if n and (ip := parse_ip(n)) is not None]
        names = [n for n in names if n and parse_ip(n) is None]
        for entry in entries:
            entry = entry.strip()
            if not entry:
                continue
            try:
                nets.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                raise ValueError(f"not an address or network: {entry!r}") from None
        return cls(tuple(nets), frozenset(n.lower().rstrip(".") for n in names if n))

    def refusal(self, address: str | IPAddress, name: str | None = None) -> str | None:
        """None when a connection to `address` (reached as `name`) is allowed, else why not."""
        ip = parse_ip(address) if isinstance(address, str) else address
        if ip is None:
            return f"{address!s} is not an IP address"
        found = scope(ip)
        if found is Scope.PUBLIC:
            return None
        if name is not None and name.lower().rstrip(".") in self.allowed_names:
            return None
        if any(ip.version == net.version and ip in net for net in self.allowed_networks):
            return None
        if isinstance(ip, ipaddress.IPv6Address):
            inner = _embedded_v4(ip)
            if inner is not None and any(inner in net for net in self.allowed_networks if net.version == 4):
                return None
        return f"{describe(str(ip))} is not a public address and was not allowed"

    def permits(self, address: str | IPAddress, name: str | None = None) -> bool:
        return self.refusal(address, name) is None


def split_host_port(text: str, default_port: int | None = None, *, strict: bool = True) -> tuple[str, int | None]:
    """'host', 'host:25', '[2001:db8::1]:25', '2001:db8::1' -> (host, port or default_port).
    ValueError for an empty host or a port that is not 1-65535; with strict=False, such text is
    returned whole as the host (a config value to show as it is, not an address to connect to)."""
    if not strict:
        try:
            return split_host_port(text, default_port)
        except ValueError:
            return text.strip(), default_port
    text = text.strip()
    port_text: str | None = None
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise ValueError(f"unclosed '[' in {text!r}")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"unexpected text after ']' in {text!r}")
            port_text = rest[1:]
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host = text  # a name, an IPv4 address, or a bare IPv6 address
    if not host:
        raise ValueError(f"no host in {text!r}")
    if port_text is None:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"not a port: {port_text!r}")
    return host, int(port_text)


# --- who can reach a listening address, as config files write it ------------------------------------

# The reach of a service bound to an address, narrowest first: "name" (a host or interface name the
# file alone cannot resolve) ranks above "private" because it might be anything.
REACH = ("loopback", "private", "name", "public", "any")
_EVERY = {"*", "::*", "0.0.0.0", "::", "::0", "0.0.0.0/0", "::/0", "all"}
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
_LOOPBACK_WORDS = {*_LOCAL_NAMES, "_local_", "_local:ipv4_", "_local:ipv6_", "samehost"}


def reach(address: str) -> str:
    """Who can reach a service bound to `address`: "any" (every interface), "loopback", "private"
    (a private, shared or link-local network), "public", or "name".

    Knows the forms configs use: PostgreSQL's `*` and `samehost`/`samenet`, Redis' `*`, `::*` and
    optional `-addr`, Elasticsearch's `_local_`, `_site_` and `_global_`, networks (`10.0.0.0/8`),
    bracketed IPv6. Documentation and other special-purpose ranges count as public: examples use
    them to stand for public addresses."""
    text = address.strip().strip("[]").lstrip("-").lower()
    if text in _EVERY:
        return "any"
    if text.startswith("_global"):
        return "public"
    if text in _LOOPBACK_WORDS or text.endswith(".localhost"):
        return "loopback"
    if text.startswith("_site") or text == "samenet":
        return "private"
    try:
        net = ipaddress.ip_network(text.split("%", 1)[0], strict=False)
    except ValueError:
        return "name"
    if net.prefixlen == 0:
        return "any"
    found = scope(net.network_address)
    if found is Scope.UNSPECIFIED:
        return "any"
    if found is Scope.LOOPBACK:
        return "loopback"
    if found in (Scope.PRIVATE, Scope.SHARED, Scope.LINK_LOCAL):
        return "private"
    return "public"


def widest_reach(addresses: Iterable[str]) -> str:
    """The widest reach of several listen addresses (a service listens on all of them)."""
    return max((reach(a) for a in addresses), key=REACH.index, default="loopback")


def is_loopback(address: str) -> bool:
    """A loopback address (IPv4-mapped included), or a name that always means this host."""
    text = address.strip().strip("[]").lower()
    return scope(text) is Scope.LOOPBACK or text in _LOCAL_NAMES or text.endswith(".localhost")
