"""What only a live host shows: listening sockets, who runs what, file modes, updates, firewall."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator

from mastoaudit.checkdef import Remediation, check, failed, passed, skipped, warned
from mastoaudit.facts import FactSet
from mastoaudit.model import Outcome
from mastoaudit.parsers.live import FileStat, ListeningSockets, Processes

# Services that must never be reachable from outside (port -> name, severity when exposed).
INTERNAL_PORTS = {
    5432: ("PostgreSQL", "critical"),
    6379: ("Redis", "critical"),
    6380: ("Redis (TLS)", "critical"),
    9200: ("Elasticsearch", "critical"),
    9300: ("Elasticsearch transport", "critical"),
    11211: ("memcached", "high"),
    3000: ("Puma (Mastodon web)", "high"),
    4000: ("Mastodon streaming", "high"),
    9394: ("Prometheus exporter", "medium"),
    9090: ("Prometheus", "medium"),
}
# Programs recognised on any port.
INTERNAL_PROGRAMS = {"postgres": "PostgreSQL", "redis-server": "Redis", "java": "Elasticsearch/OpenSearch",
                     "memcached": "memcached", "puma": "Puma (Mastodon web)"}


def _is_private(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return ip.is_private and not ip.is_loopback and not ip.is_unspecified


@check(
    id="host.internal-services-exposed",
    title="Databases, Redis, search and the app servers listen only on loopback",
    component="host",
    severity="critical",
    threats=["T-DB-EXPOSED", "T-CACHE-EXPOSED", "T-SEARCH-EXPOSED", "T-PROXY-MISCONFIG"],
    needs=["listening"],
    rationale="""PostgreSQL, Redis, Elasticsearch, Puma (3000), the streaming server (4000) and the
        metrics exporter are meant to be reached through nginx or from the app hosts only. A socket
        bound to 0.0.0.0, :: or a public address is one firewall mistake away from the internet;
        Redis and the stock Elasticsearch accept anyone who reaches them.""",
    remediation=Remediation(
        "Bind each service to 127.0.0.1 (or to the private address the app hosts use, with a firewall).",
        "# redis.conf\nbind 127.0.0.1 -::1\n# postgresql.conf\nlisten_addresses = 'localhost'\n"
        "# .env.production\nBIND=127.0.0.1",
    ),
    references=["https://docs.joinmastodon.org/admin/prerequisites/"],
    tags=["network", "live"],
    modes=("live",),
)
def internal_services_exposed(facts: FactSet) -> Iterator[Outcome]:
    for fact in facts.all("listening"):
        assert isinstance(fact, ListeningSockets)
        judged = 0
        public = facts.public_addresses()
        for sock in fact.sockets:
            name, severity = INTERNAL_PORTS.get(sock.port, (INTERNAL_PROGRAMS.get(sock.process, ""), "high"))
            if not name or sock.proto != "tcp":
                continue
            judged += 1
            shown = f"{sock.address}:{sock.port}" + (f" ({sock.process})" if sock.process else "")
            if sock.loopback_only and sock.address not in public:
                yield passed(f"{name} listens on loopback only", at=fact.at(), subject=f"{name} {shown}",
                             observed=shown, expected="127.0.0.1 or ::1")
            elif _is_private(sock.address):
                yield warned(f"{name} listens on the private address {sock.address}: keep it firewalled to the "
                             "app hosts", at=fact.at(), subject=f"{name} {shown}", observed=shown,
                             expected="loopback, or a private address behind a firewall")
            else:
                yield failed(f"{name} listens on {sock.address or 'all addresses'}, reachable beyond this host",
                             at=fact.at(), subject=f"{name} {shown}", observed=shown,
                             expected="127.0.0.1 or ::1", severity=severity)
        if not judged:
            yield passed("none of the internal services listens on this host", at=fact.at())


_APP_PATTERNS = [
    (re.compile(r"\bpuma\b"), "Puma (Mastodon web)"),
    (re.compile(r"\bsidekiq\b"), "Sidekiq"),
    (re.compile(r"streaming(/index\.js)?\b"), "Mastodon streaming"),
    (re.compile(r"^(/\S*/)?redis-server\b"), "Redis"),
    (re.compile(r"^(/\S*/)?postgres\b|^postgres:"), "PostgreSQL"),
    (re.compile(r"elasticsearch|opensearch"), "Elasticsearch/OpenSearch"),
]


@check(
    id="host.services-not-root",
    title="Mastodon, Sidekiq, streaming, Redis and PostgreSQL do not run as root",
    component="host",
    severity="high",
    threats=["T-HOST-COMPROMISE", "T-APP-UPLOAD-RCE"],
    needs=["processes"],
    rationale="""A bug in any of these services (TootRoot was a file-write bug in media processing)
        runs with the service's privileges. As root it owns the server; as its own user it is
        contained by file permissions and the unit's sandbox.""",
    remediation=Remediation(
        "Run each service as its own unprivileged user (User= in its systemd unit).",
        "[Service]\nUser=mastodon",
    ),
    tags=["live", "privileges"],
    modes=("live",),
)
def services_not_root(facts: FactSet) -> Iterator[Outcome]:
    for fact in facts.all("processes"):
        assert isinstance(fact, Processes)
        seen: set[str] = set()
        for proc in fact.processes:
            for pattern, name in _APP_PATTERNS:
                if not pattern.search(proc.args):
                    continue
                subject = f"{name} (pid {proc.pid})"
                if proc.user == "root":
                    yield failed(f"{name} runs as root", at=fact.at(), subject=name,
                                 observed=f"user root, pid {proc.pid}", expected="an unprivileged user")
                elif name not in seen:
                    yield passed(f"{name} runs as {proc.user}", at=fact.at(), subject=subject,
                                 observed=f"user {proc.user}", expected="not root")
                seen.add(name)
                break
        if not seen:
            yield skipped("none of Mastodon's services runs on this host", at=fact.at())


@check(
    id="mastodon-env.file-permissions",
    title=".env.production is readable by its owner (and group) only",
    component="mastodon-env",
    severity="high",
    threats=["T-SECRETS-EXPOSED"],
    needs=["file_stat"],
    rationale=""".env.production holds SECRET_KEY_BASE, the encryption keys and every service
        password. Any local user or compromised service that can read it can forge sessions and
        decrypt data. It belongs to the mastodon user with mode 600 (or 640 with a dedicated group).""",
    remediation=Remediation("Restrict the file to its owner.",
                            "chown mastodon:mastodon /home/mastodon/live/.env.production\n"
                            "chmod 600 /home/mastodon/live/.env.production"),
    tags=["live", "secrets", "permissions"],
    modes=("live",),
)
def env_file_permissions(facts: FactSet) -> Iterator[Outcome]:
    found = False
    for stat in facts.all("file_stat"):
        assert isinstance(stat, FileStat)
        if not stat.path.endswith("/.env.production"):
            continue
        found = True
        if stat.mode is None:
            yield skipped("mode could not be read", at=stat.at())
            continue
        shown = f"{stat.mode:03o} {stat.owner}:{stat.group}"
        if stat.mode & 0o007:
            yield failed("any local user can read the instance's secrets", at=stat.at(), observed=shown,
                         expected="600 (or 640) owned by mastodon")
        elif stat.mode & 0o020:
            yield failed("the group can change the instance's secrets", at=stat.at(), observed=shown,
                         expected="600 (or 640) owned by mastodon")
        elif stat.owner == "root" and stat.mode & 0o040 == 0:
            yield warned("owned by root: the mastodon user cannot read it, so it is not what the services use",
                         at=stat.at(), observed=shown, expected="600 owned by mastodon")
        else:
            yield passed("readable by its owner (and group) only", at=stat.at(), observed=shown,
                         expected="600 (or 640)")
    if not found:
        yield skipped("no .env.production on this host (not an app host, or elsewhere)")


@check(
    id="host.unattended-upgrades",
    title="Security updates install themselves",
    component="host",
    severity="medium",
    threats=["T-HOST-COMPROMISE", "T-APP-VULNERABLE-VERSION"],
    needs=["packages"],
    rationale="""nginx, OpenSSL, PostgreSQL, Redis and the kernel get security fixes every month;
        without unattended upgrades they wait for someone to remember.""",
    remediation=Remediation(
        "Install unattended-upgrades and turn on the daily run.",
        "apt-get install unattended-upgrades\n# /etc/apt/apt.conf.d/20auto-upgrades\n"
        'APT::Periodic::Update-Package-Lists "1";\nAPT::Periodic::Unattended-Upgrade "1";',
    ),
    references=["https://wiki.debian.org/UnattendedUpgrades"],
    tags=["live", "updates"],
    modes=("live",),
)
def unattended_upgrades(facts: FactSet) -> Iterator[Outcome]:
    packages = facts.first("packages")
    if "unattended-upgrades" not in packages.versions:
        yield failed("unattended-upgrades is not installed", at=packages.at(),
                     observed="not installed", expected="installed and enabled")
        return
    enabled = None
    for source in facts.all("apt_config"):
        for number, line in enumerate(source.text.split("\n"), start=1):
            match = re.match(r'\s*APT::Periodic::Unattended-Upgrade\s+"(\d+)"\s*;', line)
            if match:
                enabled = (match.group(1) != "0", source.at(number))
    if enabled is None:
        yield failed("unattended-upgrades is installed but never runs (no APT::Periodic::Unattended-Upgrade)",
                     at=packages.at(), observed="not enabled", expected='APT::Periodic::Unattended-Upgrade "1"')
    elif not enabled[0]:
        yield failed("unattended-upgrades is switched off", at=enabled[1], observed='"0"', expected='"1"')
    else:
        yield passed("security updates install daily", at=enabled[1], observed='"1"', expected='"1"')


_WEB_PORTS = {22, 80, 443}
_MAIL_PORTS = {25, 465, 587}
_IPT_POLICY = re.compile(r"^:INPUT\s+(ACCEPT|DROP|REJECT)", re.MULTILINE)
_IPT_ACCEPT = re.compile(r"^-A INPUT\b(?P<rule>.*)-j ACCEPT", re.MULTILINE)
_NFT_INPUT = re.compile(r"hook input[^;]*;[^}]*?policy (accept|drop)", re.DOTALL)
_PORT_LIST = re.compile(r"dports?\s+(\{[^}]*\}|[\d,:-]+)")


def _ports(text: str) -> set[int]:
    ports: set[int] = set()
    for match in _PORT_LIST.finditer(text):
        for item in re.split(r"[\s,{}]+", match.group(1)):
            if item.isdigit():
                ports.add(int(item))
            elif re.fullmatch(r"\d+[:-]\d+", item):
                low, high = map(int, re.split(r"[:-]", item))
                ports.update(range(low, min(high, low + 1024) + 1))
    return ports


@check(
    id="host.firewall",
    title="A packet filter leaves only SSH, HTTP(S) and mail ports open",
    component="host",
    severity="high",
    threats=["T-HOST-COMPROMISE", "T-DB-EXPOSED", "T-CACHE-EXPOSED", "T-PROXY-MISCONFIG"],
    needs=["firewall"],
    rationale="""A default-deny input policy is what keeps a service that listens too widely (a
        Redis on 0.0.0.0 after an upgrade, a debug port) unreachable. Only 22, 80 and 443 need to
        be open on a Mastodon host, plus 25/465/587 where a mail relay runs.""",
    remediation=Remediation(
        "Drop input by default and accept only the ports the host serves.",
        "nft add rule inet filter input tcp dport { 22, 80, 443 } accept\n"
        "nft chain inet filter input '{ policy drop; }'",
    ),
    tags=["live", "network"],
    modes=("live",),
)
def firewall(facts: FactSet) -> Iterator[Outcome]:
    fw = facts.first("firewall")
    where = fw.at()
    rules = fw.rules
    allowed_extra = set(_MAIL_PORTS) if facts.host is not None and "mail" in facts.host.roles else set()
    for conf in facts.all("sshd_config"):  # SSH on another port is still SSH
        port = conf.get("Port")
        if port is not None and port.value.isdigit():
            allowed_extra.add(int(port.value))
    policy = None
    if (m := _NFT_INPUT.search(rules)) is not None:
        policy = m.group(1).upper()
        accepted = _ports(rules)
    elif (m := _IPT_POLICY.search(rules)) is not None:
        policy = m.group(1)
        accepted = _ports(" ".join(r.group("rule") for r in _IPT_ACCEPT.finditer(rules)))
        if re.search(r"^-A INPUT\b.*-j (DROP|REJECT)\s*$", rules, re.MULTILINE) and policy == "ACCEPT":
            policy = "DROP (final rule)"
    if policy == "ACCEPT" and re.search(r"^\s*(reject|drop)\s*$", rules, re.MULTILINE) and "hook input" in rules:
        policy = "DROP (final rule)"
    if policy is None or not rules.strip():
        yield failed("no packet filter on the host: every listening port is reachable (a provider's firewall "
                     "is not visible from here)", at=where,
                     observed="no ruleset", expected="input policy drop; 22, 80, 443 accepted")
        return
    if policy == "ACCEPT":
        yield failed("the input policy accepts everything not explicitly dropped", at=where,
                     observed="policy accept", expected="policy drop")
        return
    extra = sorted(p for p in accepted if p not in _WEB_PORTS | allowed_extra)
    if extra:
        shown = ", ".join(map(str, extra[:20])) + ("…" if len(extra) > 20 else "")
        yield warned(f"ports open beyond SSH/HTTP(S){' and mail' if allowed_extra else ''}: {shown}", at=where,
                     observed=shown, expected="22, 80, 443" + (", 25, 465, 587" if allowed_extra else ""))
    else:
        yield passed("input is dropped by default; only the expected ports are accepted", at=where,
                     observed=f"policy {policy.lower()}, accepts {sorted(accepted) or 'nothing'}",
                     expected="22, 80, 443")
