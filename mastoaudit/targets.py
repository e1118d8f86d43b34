"""What a network scan looks at, decided here for every command: the target of `scan` (from its
options), the target of `audit` (from the inventory's network section and what the web host's
.env.production says), and which host the network findings are reported under.

The command line only parses arguments into ScanOptions and reports a TargetError as a usage error.
Which SMTP relays the probes judge is decided in mastoaudit/net/relays.py, from the target built here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from . import kinds
from .addresses import AddressPolicy
from .net.target import SENSITIVE_PORTS, S3Settings, ScanTarget, parse_resolver

if TYPE_CHECKING:
    from .facts import FactSet
    from .inventory import Host as InventoryHost
    from .inventory import Inventory
    from .net.runner import Probe
    from .parsers.env import MastodonEnv

DEFAULT_DKIM_SELECTORS = ScanTarget.__dataclass_fields__["dkim_selectors"].default
_TRUE = {"true", "1", "yes", "on"}


class TargetError(ValueError):
    """Options that do not make a target; the message names the option."""


@dataclass(frozen=True)
class ScanOptions:
    """`scan`'s options as the user gave them (text, unchecked)."""

    domain: str
    web_domain: str | None = None
    addresses: Sequence[str] = ()
    resolve: Sequence[str] = ()  # NAME=IP
    resolver: str | None = None
    ca_bundle: str | None = None
    ports: str | None = None  # "8080,9100"
    smtp_hosts: Sequence[str] = ()
    mail_domains: Sequence[str] = ()
    dkim_selectors: Sequence[str] = ()
    media_host: str | None = None
    s3_endpoint: str | None = None
    s3_bucket: str | None = None
    s3_region: str = "us-east-1"
    s3_permission: str = "public-read"
    s3_public_object: str | None = None
    s3_signed: bool = False
    tls_profile: str = "intermediate"
    timeout: float = 5.0
    probes: Sequence[str] = field(default_factory=tuple)  # only these probes (empty: all)
    allow_private: Sequence[str] = ()  # private addresses/networks the probes may connect to


def _address(text: str, what: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise TargetError(f"{what}: not an IP address: {text!r}") from None


def scan_target(options: ScanOptions) -> ScanTarget:
    """The target of `scan DOMAIN`; TargetError for options that do not make one."""
    domain = options.domain.strip().rstrip(".").lower()
    if not domain or " " in domain or "/" in domain:
        raise TargetError(f"not a domain: {options.domain!r}")
    hosts = {}
    for item in options.resolve:
        host, sep, ip = item.partition("=")
        if not sep or not host:
            raise TargetError(f"--resolve {item!r}: expected NAME=IP")
        hosts[host.lower()] = _address(ip, "--resolve")
    resolver = None
    if options.resolver:
        try:
            resolver = parse_resolver(options.resolver)
        except ValueError as exc:
            raise TargetError(f"--resolver {options.resolver!r}: expected IP or IP:PORT ({exc})") from None
    ports = list(SENSITIVE_PORTS)
    for item in (options.ports or "").split(",") if options.ports else ():
        if not item.strip().isdigit() or not 0 < int(item) < 65536:
            raise TargetError(f"--ports: not a port number: {item!r}")
        ports.append(int(item))
    if options.ca_bundle and not Path(options.ca_bundle).is_file():
        raise TargetError(f"--ca-bundle {options.ca_bundle}: no such file")
    s3 = None
    if options.s3_endpoint or options.s3_bucket:
        if not (options.s3_endpoint and options.s3_bucket):
            raise TargetError("--s3-endpoint and --s3-bucket go together")
        s3 = S3Settings(options.s3_endpoint, options.s3_bucket, options.s3_region, options.s3_permission,
                        options.media_host, options.s3_public_object, options.s3_signed)
    if not 0 < options.timeout <= 60:
        raise TargetError("--timeout: between 0 and 60 seconds")
    try:
        AddressPolicy.allowing(options.allow_private)
    except ValueError as exc:
        raise TargetError(f"--allow-private: {exc}") from None
    return ScanTarget(
        name=domain, local_domain=domain, web_domain=(options.web_domain or domain).lower(),
        addresses=tuple(_address(a, "--address") for a in options.addresses), hosts=hosts, resolver=resolver,
        ca_bundle=options.ca_bundle, ports=tuple(dict.fromkeys(ports)), smtp_hosts=tuple(options.smtp_hosts),
        mail_domains=tuple(dict.fromkeys([*options.mail_domains, domain])),
        dkim_selectors=tuple(options.dkim_selectors) or DEFAULT_DKIM_SELECTORS,
        media_host=options.media_host, s3=s3, tls_profile=options.tls_profile, timeout=options.timeout,
        allow_private=tuple(options.allow_private),
    )


def with_addresses(target: ScanTarget) -> ScanTarget:
    """The target with the web domain's addresses, resolved when the user gave none; TargetError when
    it does not resolve."""
    if target.addresses:
        return target
    from .net.dns import Resolver

    found = Resolver(target).addresses(target.web_domain)
    if not found:
        raise TargetError(f"{target.web_domain} does not resolve (use --address or --resolver)")
    return replace(target, addresses=tuple(found[:4]))


def select_probes(names: Sequence[str]) -> list[Probe]:
    """The probes to run: all, or the ones named; TargetError naming an unknown one."""
    from .net.runner import all_probes

    probes = all_probes()
    if names:
        known = {p.name for p in probes}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise TargetError(f"--probe: unknown {', '.join(unknown)} (one of: {', '.join(sorted(known))})")
        probes = [p for p in probes if p.name in names]
    return probes


# --- audit: the network half, from the inventory and the web host's .env.production -----------------


def _env_value(env: MastodonEnv | None, key: str) -> str | None:
    var = env.get(key) if env is not None else None
    if var is None or var.templated:
        return None
    return var.value if var.value != "" else None


def with_env(target: ScanTarget, env: MastodonEnv | None) -> ScanTarget:
    """Fill what the instance's .env.production says into a scan target (the user's options win):
    the secure-mode settings as expectations, the domains, the sending domain, the SMTP relay, the
    media host and the bucket."""
    if env is None:
        return target
    expects = dict(target.expects)
    unset = set(target.unset)
    for key in ("AUTHORIZED_FETCH", "DISALLOW_UNAUTHENTICATED_API_ACCESS", "LIMITED_FEDERATION_MODE"):
        if key in expects:
            continue  # the user's option wins
        var = env.get(key)
        if var is not None and var.templated:
            expects[key] = None  # a template: not known
        elif var is None or not var.is_set:
            expects[key] = False  # unset: Mastodon's documented default (off), not "unknown"
            unset.add(key)
        else:
            expects[key] = var.value.lower() in _TRUE
    changes: dict = {"expects": expects, "unset": frozenset(unset)}
    local = _env_value(env, "LOCAL_DOMAIN")
    web = _env_value(env, "WEB_DOMAIN")
    if local and target.local_domain == target.name:
        changes["local_domain"] = local
        changes["web_domain"] = web or local
    mail_domains = list(target.mail_domains)
    sender = _env_value(env, "SMTP_FROM_ADDRESS")
    if sender and "@" in sender:
        domain = sender.rsplit("@", 1)[1].strip(" >\"'")
        if domain and domain not in mail_domains:
            mail_domains.append(domain)
    if local and local not in mail_domains:
        mail_domains.append(local)
    changes["mail_domains"] = tuple(mail_domains)
    smtp = _env_value(env, "SMTP_SERVER")
    if smtp and not target.smtp_hosts:
        changes["smtp_hosts"] = (smtp,)
    alias = _env_value(env, "S3_ALIAS_HOST")
    if alias and not target.media_host:
        changes["media_host"] = alias
    if target.s3 is None and (_env_value(env, "S3_ENABLED") or "").lower() in _TRUE:
        bucket = _env_value(env, "S3_BUCKET")
        endpoint = _env_value(env, "S3_ENDPOINT") or (
            f"https://s3.{_env_value(env, 'S3_REGION') or 'us-east-1'}.amazonaws.com")
        if bucket:
            changes["s3"] = S3Settings(
                endpoint=endpoint, bucket=bucket, region=_env_value(env, "S3_REGION") or "us-east-1",
                permission=_env_value(env, "S3_PERMISSION") or "public-read", alias_host=alias,
            )
    return replace(target, **changes)


def audit_network_base(inventory: Inventory, audited: Sequence[InventoryHost],
                       hosts: Sequence[InventoryHost] | None = None) -> tuple[InventoryHost, ScanTarget] | None:
    """The network half of an audit before anything is read: the host whose findings the network
    results join (the first web host) and the target from the inventory alone (`with_env` adds what
    its .env.production says). `audited`: this run's hosts; `hosts`: the audited hosts of the whole
    run (all of the inventory's unless --limit; in a --shard run, more than `audited`). None when
    there is no web host, or when it is another shard's (that shard probes). TargetError for a bad
    network section."""
    hosts = inventory.hosts if hosts is None else hosts
    web_hosts = [h for h in hosts if "web" in h.roles]
    home = next((h for h in audited if web_hosts and h.name == web_hosts[0].name), None)
    if home is None:
        return None
    net = inventory.network
    try:
        resolver = parse_resolver(net.resolver) if net.resolver else None
    except ValueError as exc:
        raise TargetError(f"{inventory.source}: network.resolver: {exc}") from None
    return home, ScanTarget(
        name=home.name, local_domain=inventory.local_domain, web_domain=inventory.web_domain,
        addresses=tuple(h.address for h in web_hosts), hosts=dict(net.resolve), resolver=resolver,
        ca_bundle=net.ca_bundle, scan_addresses=tuple(h.address for h in hosts),
        ports=tuple(dict.fromkeys([*SENSITIVE_PORTS, *net.ports])),
        mail_domains=(inventory.local_domain,), dkim_selectors=net.dkim_selectors or DEFAULT_DKIM_SELECTORS,
        tls_profile=net.tls_profile, timeout=net.timeout,
    )


def audit_network(inventory: Inventory, facts: list[FactSet], hosts: Sequence[InventoryHost] | None = None,
                  ) -> tuple[FactSet, ScanTarget] | None:
    """The network half of an audit once the SSH collection is done: the first web host's facts (the
    network results join them) and the target with what its .env.production says (S3 bucket, SMTP
    relay, secure mode) as expectations. `facts`: what this run collected over SSH; `hosts` as in
    audit_network_base. The audit itself starts the probes earlier (sources/overlap.py)."""
    audited = [h for h in (inventory.hosts if hosts is None else hosts) if any(f.target == h.name for f in facts)]
    found = audit_network_base(inventory, audited, hosts)
    if found is None:
        return None
    home, target = found
    env = next((f.first(kinds.MASTODON_ENV) for f in facts if f.has(kinds.MASTODON_ENV)), None)
    return next(f for f in facts if f.target == home.name), with_env(target, env)
