"""What answers on the internal services' ports from the auditor's side (probe: ports).

A scan address in 127.0.0.0/8 is what the user pointed the scan at (the lab's public address), so it
is the outside view; an extra address that is private (RFC 1918) only warns: the auditor may be
inside the network the app hosts share.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator

from mastoaudit.checkdef import Remediation, check, errored, failed, passed, skipped, warned
from mastoaudit.facts import FactSet
from mastoaudit.facts.ports import PortResult, PortScan, where
from mastoaudit.model import Location, Outcome

# service -> (what the report calls it, severity when it answers from outside)
SERVICES = {
    "postgresql": ("PostgreSQL", "critical"),
    "redis": ("Redis", "critical"),
    "elasticsearch": ("Elasticsearch", "critical"),
    "opensearch": ("OpenSearch", "critical"),
    "memcached": ("memcached", "high"),
    "mastodon-web": ("Puma (Mastodon web)", "high"),
    "mastodon-streaming": ("Mastodon streaming", "high"),
    "metrics": ("Prometheus metrics", "medium"),
    "prometheus": ("Prometheus", "medium"),
}
# What a port usually is, for services that could not be identified.
PORT_SERVICES = {5432: "postgresql", 6379: "redis", 6380: "redis", 9200: "elasticsearch", 11211: "memcached",
                 3000: "mastodon-web", 4000: "mastodon-streaming", 9394: "metrics", 9090: "prometheus"}


def _scan(facts: FactSet) -> tuple[PortScan | None, list[PortResult]]:
    return facts.first("port_scan"), [r for r in facts.all("port") if isinstance(r, PortResult)]


def _by_address(scan: PortScan, results: list[PortResult]) -> Iterator[tuple[str, list[PortResult]]]:
    for address in scan.addresses:
        yield address, [r for r in results if r.address == address]


def _ports(scan: PortScan) -> str:
    return ", ".join(map(str, scan.ports))


def _nothing(scan: PortScan, address: str, rows: list[PortResult], what: str = "") -> Outcome:
    """The pass (or skip) when nothing of interest answered on an address."""
    states = {s: sum(1 for r in rows if r.state == s) for s in ("open", "closed", "filtered", "unreachable")}
    observed = ", ".join(f"{n} {s}" for s, n in states.items() if n)
    if rows and states["unreachable"] == len(rows):
        return skipped(f"{address} could not be reached at all ({rows[0].reason}): nothing could be judged",
                       at=Location(address), subject=address, observed=observed, expected="an answer or a refusal")
    opened = [str(r.port) for r in rows if r.state == "open"]
    head = f"no {what} answered" if what and opened else "nothing answered"
    extra = f" (open: {', '.join(opened)})" if opened else ""
    return passed(f"{head} on ports {_ports(scan)} of {address}{extra}", at=Location(address), subject=address,
                  observed=observed or "no answer", expected="nothing reachable from outside")


def _label(row: PortResult) -> str:
    if row.service and row.service != "unknown":
        return row.label or row.service
    guess = SERVICES.get(PORT_SERVICES.get(row.port, ""), ("", ""))[0]
    return f"{row.label or 'unidentified service'}{f' on the {guess} port' if guess else ''}"


def _severity(row: PortResult) -> str:
    service = row.service if row.service in SERVICES else PORT_SERVICES.get(row.port, "")
    return SERVICES.get(service, ("", "medium"))[1]


@check(
    id="ports.exposed",
    title="Internal services do not answer from outside",
    component="host",
    severity="critical",
    threats=["T-DB-EXPOSED", "T-CACHE-EXPOSED", "T-SIDEKIQ-QUEUE", "T-SEARCH-EXPOSED", "T-APP-INFO-LEAK",
             "T-PROXY-MISCONFIG"],
    needs=["port_scan"],
    rationale="""PostgreSQL, Redis, Elasticsearch, memcached, Puma (3000), the streaming server
        (4000) and the metrics exporters are meant to be reached through nginx or from the app hosts
        only. Anything that answers a stranger's TCP connection on these ports is one weak password
        (or none) away from the instance's data, its job queue or its search index.""",
    remediation=Remediation(
        "Bind internal services to 127.0.0.1 (or the private network the app hosts share) and drop "
        "everything else at the packet filter.",
        "# redis.conf\nbind 127.0.0.1 -::1\n# postgresql.conf\nlisten_addresses = 'localhost'\n"
        "# .env.production\nBIND=127.0.0.1\n# nftables\ntcp dport { 3000, 4000, 5432, 6379, 9200 } drop"),
    references=["https://docs.joinmastodon.org/admin/prerequisites/",
                "https://docs.joinmastodon.org/admin/install/"],
    tags=["network", "ports"],
    modes=("network",),
)
def exposed(facts: FactSet) -> Iterator[Outcome]:
    scan, results = _scan(facts)
    if scan is None:
        return
    for address, rows in _by_address(scan, results):
        opened = [r for r in rows if r.state == "open"]
        if not opened:
            yield _nothing(scan, address, rows)
            continue
        for row in opened:
            label = _label(row)
            notes = []
            if row.details.get("metrics_public"):
                notes.append("/metrics readable")
            if row.banner:
                notes.append(f"first answer {row.banner}")
            observed = f"open: {label}" + (f" ({'; '.join(notes)})" if notes else "")
            kw = dict(at=Location(row.where), subject=f"port {row.where}", observed=observed,
                      expected="closed or filtered from outside", severity=_severity(row))
            if row.in_scope or row.public or not _private(row.address):
                yield failed(f"{label} answers on {row.where} from the auditor's side", **kw)
            else:
                yield warned(f"{label} answers on the private address {row.where}: keep it firewalled to the app "
                             "hosts", **kw)


def _private(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    return ip.is_private and not ip.is_loopback


Row = tuple[PortResult | None, Outcome | None]


def _per_service(facts: FactSet, services: Iterable[str], what: str) -> Iterator[Row]:
    """Each scanned address: its rows of the given services, or the pass saying none answered."""
    scan, results = _scan(facts)
    if scan is None:
        return
    for address, rows in _by_address(scan, results):
        found = [r for r in rows if r.state == "open" and r.service in services]
        if not found:
            yield None, _nothing(scan, address, rows, what)
        for row in found:
            yield row, None


@check(
    id="ports.redis-noauth",
    title="A reachable Redis requires a password",
    component="redis",
    severity="critical",
    threats=["T-CACHE-EXPOSED", "T-SIDEKIQ-QUEUE"],
    needs=["port_scan"],
    rationale="""A Redis that answers PING with PONG to a stranger lets them read sessions and
        timelines, rewrite cached content, and push Sidekiq jobs that the workers run: an exposed,
        password-less Redis is remote code execution on the app hosts.""",
    remediation=Remediation("Set a long requirepass (and REDIS_PASSWORD in .env.production), keep protected mode "
                            "on and bind Redis to loopback.",
                            "requirepass <a long random secret>\nprotected-mode yes\nbind 127.0.0.1 -::1"),
    references=["https://redis.io/docs/latest/operate/oss_and_stack/management/security/"],
    tags=["network", "ports", "auth"],
    modes=("network",),
)
def redis_noauth(facts: FactSet) -> Iterator[Outcome]:
    for row, outcome in _per_service(facts, ("redis",), "Redis"):
        if outcome is not None:
            yield outcome
            continue
        auth = row.details.get("auth")
        version = row.details.get("version")
        kw = dict(at=Location(row.where), subject=f"Redis {row.where}", expected="-NOAUTH (a password is required)")
        if auth == "none":
            seen = "PING -> +PONG" + (f", INFO server -> redis_version {version}" if version else "")
            yield failed(f"{row.label} at {row.where} answers without a password", observed=seen, **kw)
        elif auth == "protected-mode":
            yield passed(f"Redis at {row.where} refuses outside clients (protected mode)", observed=row.banner, **kw)
        else:
            yield passed(f"Redis at {row.where} requires a password", observed=row.banner, **kw)


@check(
    id="ports.postgres-trust",
    title="A reachable PostgreSQL does not let anyone in without a password",
    component="postgresql",
    severity="critical",
    threats=["T-DB-EXPOSED", "T-DB-WEAK-CREDENTIALS"],
    needs=["port_scan"],
    rationale="""With `trust` in pg_hba.conf, PostgreSQL answers a login as `mastodon` or
        `postgres` with AuthenticationOk and no password: whoever reaches the port owns the
        database. The probe sends a StartupMessage for each role and never a password.""",
    remediation=Remediation("Replace trust with scram-sha-256 for every host line and allow only the app hosts.",
                            "# pg_hba.conf\nhostssl mastodon_production mastodon 127.0.0.1/32 scram-sha-256"),
    references=["https://www.postgresql.org/docs/current/auth-pg-hba-conf.html"],
    tags=["network", "ports", "auth"],
    modes=("network",),
)
def postgres_trust(facts: FactSet) -> Iterator[Outcome]:
    for row, outcome in _per_service(facts, ("postgresql",), "PostgreSQL"):
        if outcome is not None:
            yield outcome
            continue
        logins: dict = row.details.get("logins", {})
        observed = "; ".join(f"{user}: {_login(answer)}" for user, answer in logins.items())
        kw = dict(at=Location(row.where), subject=f"PostgreSQL {row.where}", observed=observed,
                  expected="a password asked for (scram-sha-256) or the connection refused")
        trusted = [user for user, answer in logins.items() if answer.get("result") == "trust"]
        if trusted:
            yield failed(f"PostgreSQL at {row.where} lets {' and '.join(trusted)} in without a password (trust)", **kw)
        elif logins and all(a.get("result") == "unparseable" for a in logins.values()):
            yield errored(f"PostgreSQL at {row.where}: the login answers could not be understood", **kw)
        else:
            yield passed(f"PostgreSQL at {row.where} lets no one in without a password", **kw)


def _login(answer: dict) -> str:
    result = answer.get("result")
    if result == "trust":
        return "AuthenticationOk without a password"
    if result == "password":
        return f"asks for {answer.get('method')}" + (" over TLS" if answer.get("over") == "tls" else "")
    if result == "refused":
        return f"refused ({answer.get('sqlstate', '')}: {answer.get('message', '')[:120]})"
    return f"not understood ({answer.get('message', '')[:160]})"


@check(
    id="ports.postgres-tls",
    title="A reachable PostgreSQL offers TLS",
    component="postgresql",
    severity="medium",
    threats=["T-INTERNAL-CLEARTEXT", "T-DB-EXPOSED"],
    needs=["port_scan"],
    rationale="""A database reached over a network should encrypt the connection: without TLS
        the password exchange and every query and row travel in clear. The probe sends the
        8-byte SSLRequest; PostgreSQL answers 'S' when it offers TLS and 'N' when it does not.""",
    remediation=Remediation("Turn on ssl in postgresql.conf with a certificate and use hostssl lines "
                            "(DB_SSLMODE=require or verify-full in .env.production).",
                            "ssl = on\nssl_cert_file = '/etc/ssl/certs/db.pem'\n"
                            "ssl_key_file = '/etc/ssl/private/db.key'"),
    references=["https://www.postgresql.org/docs/current/ssl-tcp.html"],
    tags=["network", "ports", "tls"],
    modes=("network",),
)
def postgres_tls(facts: FactSet) -> Iterator[Outcome]:
    for row, outcome in _per_service(facts, ("postgresql",), "PostgreSQL"):
        if outcome is not None:
            yield outcome
            continue
        kw = dict(at=Location(row.where), subject=f"PostgreSQL {row.where}", expected="SSLRequest -> 'S'")
        if row.details.get("tls_offered"):
            yield passed(f"PostgreSQL at {row.where} offers TLS", observed="SSLRequest -> 'S'", **kw)
        else:
            yield failed(f"PostgreSQL at {row.where} does not offer TLS", observed=f"SSLRequest -> {row.banner}", **kw)


@check(
    id="ports.elasticsearch-open",
    title="A reachable Elasticsearch or OpenSearch requires authentication",
    component="elasticsearch",
    severity="critical",
    threats=["T-SEARCH-EXPOSED"],
    needs=["port_scan"],
    rationale="""Without security, Elasticsearch answers anyone: the indexed statuses and
        accounts can be read, changed or deleted. The probe asks for `/` over http and https; a
        200 with the cluster's JSON means no credentials were needed, 401 means security is on.""",
    remediation=Remediation("Enable security (authentication and TLS) and bind to loopback; set ES_USER and ES_PASS.",
                            "xpack.security.enabled: true\nxpack.security.http.ssl.enabled: true\n"
                            "network.host: 127.0.0.1"),
    references=["https://docs.joinmastodon.org/admin/elasticsearch/",
                "https://www.elastic.co/guide/en/elasticsearch/reference/current/security-minimal-setup.html"],
    tags=["network", "ports", "auth"],
    modes=("network",),
)
def elasticsearch_open(facts: FactSet) -> Iterator[Outcome]:
    for row, outcome in _per_service(facts, ("elasticsearch", "opensearch"), "Elasticsearch"):
        if outcome is not None:
            yield outcome
            continue
        scheme = row.details.get("scheme", "http")
        url = f"{scheme}://{where(row.address, row.port)}/"
        kw = dict(at=Location(url), subject=f"{row.service} {row.where}",
                  expected="401 (authentication required)")
        status = row.details.get("status")
        if row.details.get("open"):
            cluster = row.details.get("cluster_name") or "?"
            version = row.details.get("version") or "?"
            yield failed(f"{row.label} at {url} answers without credentials", observed=(
                f"HTTP {status} with the cluster's JSON (cluster_name {cluster!r}, version {version})"), **kw)
        else:
            yield passed(f"{row.label.split(' (')[0]} at {url} requires authentication", observed=f"HTTP {status}",
                         **kw)
