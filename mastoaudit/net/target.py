"""What a network scan looks at: the instance's names, the addresses to reach them at, where to
ask DNS, which CA to trust, and what the instance's configuration says it should see."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..addresses import AddressPolicy, split_host_port

# Ports that must never answer from outside (issue: Ports); `--ports` adds to them.
SENSITIVE_PORTS = (5432, 6379, 6380, 9200, 3000, 4000, 9394, 11211, 9090)


@dataclass(frozen=True)
class S3Settings:
    endpoint: str  # https://s3.example.com or http://127.0.0.1:9000
    bucket: str
    region: str = "us-east-1"
    permission: str = "public-read"  # S3_PERMISSION as Mastodon is configured
    alias_host: str | None = None  # S3_ALIAS_HOST: the media host in front of the bucket
    public_object: str | None = None  # a key known to exist, to prove objects are readable
    # Sign requests with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY from the environment to read the
    # bucket's ACL, policy and Block Public Access. Off unless asked: keys that happen to be in the
    # auditor's environment must not be sent to a target's endpoint.
    signed: bool = False


@dataclass(frozen=True)
class ScanTarget:
    name: str  # the target's name in reports (the domain, or the inventory host)
    local_domain: str
    web_domain: str
    addresses: tuple[str, ...] = ()  # where the web domain is reached; resolved when empty
    hosts: dict[str, str] = field(default_factory=dict)  # name -> address, like curl --resolve
    resolver: tuple[str, int] | None = None  # DNS server (address, port); the system's when None
    ca_bundle: str | None = None  # CA certificates to trust (internal CAs, the lab)
    ports: tuple[int, ...] = SENSITIVE_PORTS
    scan_addresses: tuple[str, ...] = ()  # extra addresses for the port scan (the hosts' others)
    smtp_hosts: tuple[str, ...] = ()  # relays to probe; the mail domain's MX when empty
    mail_domains: tuple[str, ...] = ()  # SMTP_FROM_ADDRESS's domain and LOCAL_DOMAIN
    dkim_selectors: tuple[str, ...] = ("mastodon", "default", "mail", "dkim", "s1", "s2", "google", "selector1")
    media_host: str | None = None
    s3: S3Settings | None = None
    tls_profile: str = "intermediate"  # Mozilla's: intermediate or modern
    timeout: float = 5.0  # per connection and per answer
    # What the instance's configuration says (from .env.production in an audit); None: unknown.
    expects: dict[str, bool | None] = field(default_factory=dict)
    # Of those, the settings .env.production leaves unset: Mastodon's default applies (false).
    unset: frozenset[str] = frozenset()
    # More addresses or networks connections may go to although they are not public (--allow-private).
    allow_private: tuple[str, ...] = ()

    def own_addresses(self) -> set[str]:
        """Addresses the user pointed us at: redirects and probes may go there even when private."""
        return {*self.addresses, *self.hosts.values(), *self.scan_addresses}

    def named_hosts(self) -> set[str]:
        """Host names the user (or the instance's own configuration) named: the media host, the S3
        endpoint, the SMTP relays. They may be reached whatever their addresses; names found on the
        network (a CSP, NodeInfo, a redirect, an MX record) may not."""
        names = {(urlsplit(h if "://" in h else f"//{h}").hostname or "") for h in
                 (self.media_host, self.s3.alias_host if self.s3 else None, self.s3.endpoint if self.s3 else None)
                 if h}
        for text in self.smtp_hosts:
            try:
                names.add(split_host_port(text)[0])
            except ValueError:
                continue
        return {n.lower().rstrip(".") for n in names if n}

    def address_policy(self) -> AddressPolicy:
        """Where this scan's connections may go: public addresses, the addresses the user pointed it
        at (--address, --resolve, the inventory's hosts), --allow-private, and the named hosts."""
        return AddressPolicy.allowing([*self.own_addresses(), *self.allow_private], self.named_hosts())


def parse_resolver(text: str) -> tuple[str, int]:
    """'IP' or 'IP:PORT' (IPv6: '[IP]:PORT' or a bare IPv6 address) -> (ip, port); ValueError."""
    host, port = split_host_port(text, 53)
    return str(ipaddress.ip_address(host)), port or 53
