"""The servers themselves: administrative access (sshd), the systemd units of Mastodon's processes,
what containers may do to their host (compose), what only a live host shows (listening sockets, who
runs what, updates, the packet filter) and, from outside, what answers on the internal services'
ports (T-HOST-COMPROMISE, T-ADMIN-ACCESS, T-APP-UPLOAD-RCE, T-DB-EXPOSED, T-CACHE-EXPOSED).

Mastodon ships its units in dist/ with a strict sandbox; the unit checks hold installed units to
that shape. Only units that run Mastodon are judged (by name, or by a Mastodon command and path);
wrapper units that run nothing (mastodon-streaming.service starting its @ instances) are not.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from mastoaudit import kinds, templating
from mastoaudit.addresses import reach
from mastoaudit.checkdef import Remediation, check, failed, passed, skipped, warned
from mastoaudit.facts import FactSet
from mastoaudit.facts.ports import PortResult
from mastoaudit.judgments.compose import (
    service_subject,
)
from mastoaudit.judgments.ports import by_address, nothing_answers, scanned
from mastoaudit.model import Outcome
from mastoaudit.parsers.systemd import SystemdUnit, parse_bool

# --- as it runs (live) --------------------------------------------------------------------------------


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


@check(
    id="host.internal-services-exposed",
    title="Databases, Redis, search and the app servers listen only on loopback",
    component="host",
    severity="critical",
    threats=["T-DB-EXPOSED", "T-CACHE-EXPOSED", "T-SEARCH-EXPOSED", "T-PROXY-MISCONFIG"],
    needs=[kinds.LISTENING],
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
)
def internal_services_exposed(facts: FactSet) -> Iterator[Outcome]:
    for fact in facts.all(kinds.LISTENING):
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
            elif reach(sock.address) == "private":
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
    needs=[kinds.PROCESSES],
    rationale="""A bug in any of these services (TootRoot was a file-write bug in media processing)
        runs with the service's privileges. As root it owns the server; as its own user it is
        contained by file permissions and the unit's sandbox.""",
    remediation=Remediation(
        "Run each service as its own unprivileged user (User= in its systemd unit).",
        "[Service]\nUser=mastodon",
    ),
    tags=["live", "privileges"],
)
def services_not_root(facts: FactSet) -> Iterator[Outcome]:
    for fact in facts.all(kinds.PROCESSES):
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
    id="host.unattended-upgrades",
    title="Security updates install themselves",
    component="host",
    severity="medium",
    threats=["T-HOST-COMPROMISE", "T-APP-VULNERABLE-VERSION"],
    needs=[kinds.PACKAGES],
    rationale="""nginx, OpenSSL, PostgreSQL, Redis and the kernel get security fixes every month;
        without unattended upgrades they wait for someone to remember.""",
    remediation=Remediation(
        "Install unattended-upgrades and turn on the daily run.",
        "apt-get install unattended-upgrades\n# /etc/apt/apt.conf.d/20auto-upgrades\n"
        'APT::Periodic::Update-Package-Lists "1";\nAPT::Periodic::Unattended-Upgrade "1";',
    ),
    references=["https://wiki.debian.org/UnattendedUpgrades"],
    tags=["live", "updates"],
)
def unattended_upgrades(facts: FactSet) -> Iterator[Outcome]:
    packages = facts.first(kinds.PACKAGES)
    if "unattended-upgrades" not in packages.versions:
        yield failed("unattended-upgrades is not installed", at=packages.at(),
                     observed="not installed", expected="installed and enabled")
        return
    enabled = None
    for source in facts.all(kinds.APT_CONFIG):
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
    needs=[kinds.FIREWALL],
    rationale="""A default-deny input policy is what keeps a service that listens too widely (a
        Redis on 0.0.0.0 after an upgrade, a debug port) unreachable. Only 22, 80 and 443 need to
        be open on a Mastodon host, plus 25/465/587 where a mail relay runs.""",
    remediation=Remediation(
        "Drop input by default and accept only the ports the host serves.",
        "nft add rule inet filter input tcp dport { 22, 80, 443 } accept\n"
        "nft chain inet filter input '{ policy drop; }'",
    ),
    tags=["live", "network"],
)
def firewall(facts: FactSet) -> Iterator[Outcome]:
    fw = facts.first(kinds.FIREWALL)
    where = fw.at()
    rules = fw.rules
    allowed_extra = set(_MAIL_PORTS) if facts.host is not None and "mail" in facts.host.roles else set()
    for conf in facts.all(kinds.SSHD_CONFIG):  # SSH on another port is still SSH
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


# --- docker-compose: what containers may do to the host -----------------------------------------------


_CONTAINER_CAPS = {"ALL", "SYS_ADMIN", "SYS_MODULE", "SYS_PTRACE", "SYS_RAWIO", "DAC_READ_SEARCH",
                   "NET_ADMIN", "BPF", "SYS_BOOT"}


@check(
    id="host.compose-privileged",
    title="No container runs privileged",
    component="host",
    severity="high",
    threats=["T-HOST-COMPROMISE"],
    needs=[kinds.COMPOSE],
    rationale="""A privileged container has every capability and the host's devices: a compromise of
        the process inside is a compromise of the host. The same holds in part for SYS_ADMIN and
        friends, the host's PID namespace, and seccomp or AppArmor turned off.""",
    remediation=Remediation("Remove privileged: true and broad cap_add; grant the one capability a service "
                            "needs, if any.", "    # privileged: true   <- remove\n    cap_drop: [ALL]"),
    references=["https://docs.docker.com/reference/compose-file/services/#privileged",
                "https://docs.docker.com/engine/containers/run/#runtime-privilege-and-linux-capabilities"],
    tags=["docker", "cis"],
)
def privileged(facts: FactSet) -> Iterator[Outcome]:
    for compose in facts.all(kinds.COMPOSE):
        for service in compose.services.values():
            subject = service_subject(service)
            problems = []
            if service.privileged is not None and service.privileged.value == "true":
                problems.append((service.privileged.location, "privileged: true"))
            for cap in service.cap_add:
                if cap.value.upper().removeprefix("CAP_") in _CONTAINER_CAPS:
                    problems.append((cap.location, f"cap_add {cap.value}"))
            if service.pid is not None and service.pid.value == "host":
                problems.append((service.pid.location, "pid: host"))
            for opt in service.security_opt:
                if re.search(r"(seccomp|apparmor)[:=]unconfined", opt.value):
                    problems.append((opt.location, f"security_opt {opt.value}"))
            if problems:
                for where, what in problems:
                    yield failed(f"the container may act on the host ({what})", at=where, subject=subject,
                                 observed=what, expected="not privileged, no broad capabilities")
            else:
                yield passed("not privileged", at=service.location, subject=subject, observed="not privileged",
                             expected="not privileged")


_SENSITIVE = {"/": "the host's root file system", "/etc": "the host's configuration",
              "/root": "root's home", "/boot": "the boot files", "/proc": "the host's /proc",
              "/sys": "the host's /sys", "/dev": "the host's devices", "/var/run": "the host's runtime sockets",
              "/run": "the host's runtime sockets", "/var/lib/docker": "Docker's state",
              "/home": "every user's home", "/usr": "the host's programs"}


def _mount_risk(source: str) -> tuple[str, str] | None:
    """(what, severity) for a host path that gives a container power over its host."""
    path = source.rstrip("/") or "/"
    if path.endswith("docker.sock") or path.endswith("containerd.sock") or path.endswith("podman.sock"):
        return "the container engine's socket (root on the host)", "critical"
    if path in _SENSITIVE:
        return _SENSITIVE[path], "high"
    return None


@check(
    id="host.compose-sensitive-mounts",
    title="No container mounts the Docker socket or the host's system directories",
    component="host",
    severity="critical",
    threats=["T-HOST-COMPROMISE"],
    needs=[kinds.COMPOSE],
    rationale="""The Docker socket is root on the host: a container that reaches it starts a
        privileged container with the host's disk mounted, read-only mount or not. Mounting /, /etc
        or /var/run hands over the host's files and sockets the same way.""",
    remediation=Remediation("Remove the mount; for container updates or monitoring, run the tool outside the "
                            "instance's project or behind a socket proxy that allows read-only calls.",
                            "    volumes:\n      # - /var/run/docker.sock:/var/run/docker.sock   <- remove"),
    references=["https://docs.docker.com/engine/security/#docker-daemon-attack-surface",
                "https://cheatsheetseries.owasp.org/cheatsheets/Docker_Security_Cheat_Sheet.html"],
    tags=["docker", "cis"],
)
def sensitive_mounts(facts: FactSet) -> Iterator[Outcome]:
    for compose in facts.all(kinds.COMPOSE):
        for service in compose.services.values():
            subject = service_subject(service)
            bad = False
            for mount in service.mounts:
                if mount.kind != "bind" or not mount.source:
                    continue
                if templating.is_templated(mount.source, "compose"):
                    yield skipped(f"a mount's host path is set by a variable ({mount.target}): cannot judge",
                                  at=mount.location, subject=subject, observed="templated",
                                  expected="no host system paths")
                    continue
                risk = _mount_risk(mount.source)
                if risk:
                    bad = True
                    what, severity = risk
                    ro = " (read-only does not limit the API)" if mount.read_only and "socket" in what else ""
                    yield failed(f"the container mounts {what}{ro}", at=mount.location, subject=subject,
                                 observed=f"{mount.source}:{mount.target}", expected="no host system paths",
                                 severity=severity)
            if not bad:
                yield passed("mounts no host system path or engine socket", at=service.location, subject=subject,
                             observed="no sensitive mounts", expected="no host system paths")


# --- from outside (probe: ports) ----------------------------------------------------------------------


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


def _label(row: PortResult) -> str:
    if row.service and row.service != "unknown":
        return row.label or row.service
    guess = SERVICES.get(PORT_SERVICES.get(row.port, ""), ("", ""))[0]
    return f"{row.label or 'unidentified service'}{f' on the {guess} port' if guess else ''}"


def _severity(row: PortResult) -> str:
    """By what answered: an identified service's own severity (an SSH or web server on the PostgreSQL
    port is not PostgreSQL); the port's usual owner's only for what could not be identified."""
    if row.service and row.service != "unknown":
        return SERVICES.get(row.service, ("", "medium"))[1]
    return SERVICES.get(PORT_SERVICES.get(row.port, ""), ("", "medium"))[1]


@check(
    id="ports.exposed",
    title="Internal services do not answer from outside",
    component="host",
    severity="critical",
    threats=["T-DB-EXPOSED", "T-CACHE-EXPOSED", "T-SIDEKIQ-QUEUE", "T-SEARCH-EXPOSED", "T-APP-INFO-LEAK",
             "T-PROXY-MISCONFIG"],
    needs=[kinds.PORT_SCAN],
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
)
def exposed(facts: FactSet) -> Iterator[Outcome]:
    scan, results = scanned(facts)
    if scan is None:
        return
    for address, rows in by_address(scan, results):
        opened = [r for r in rows if r.state == "open"]
        if not opened:
            yield nothing_answers(scan, address, rows)
            continue
        for row in opened:
            label = _label(row)
            notes = []
            if row.details.get("metrics_public"):
                notes.append("/metrics readable")
            if row.banner:
                notes.append(f"first answer {row.banner}")
            observed = f"open: {label}" + (f" ({'; '.join(notes)})" if notes else "")
            kw = dict(at=row.at(), subject=f"port {row.where}", observed=observed,
                      expected="closed or filtered from outside", severity=_severity(row))
            if row.in_scope or row.public or reach(row.address) != "private":
                yield failed(f"{label} answers on {row.where} from the auditor's side", **kw)
            else:
                yield warned(f"{label} answers on the private address {row.where}: keep it firewalled to the app "
                             "hosts", **kw)


# --- sshd ---------------------------------------------------------------------------------------------


SSHD_MAN = "https://man.openbsd.org/sshd_config"


@check(
    id="host.sshd-root-login",
    title="SSH refuses logins as root",
    component="host",
    severity="high",
    threats=["T-ADMIN-ACCESS", "T-HOST-COMPROMISE"],
    needs=[kinds.SSHD_CONFIG],
    rationale="""Root is the account every attacker tries first, and a root session leaves no
        trace of which administrator acted. Administrators log in as themselves and use sudo.""",
    remediation=Remediation("Set PermitRootLogin to no.", "PermitRootLogin no"),
    references=[SSHD_MAN],
    tags=["ssh", "cis"],
)
def sshd_root_login(facts: FactSet) -> Iterator[Outcome]:
    for conf in facts.all(kinds.SSHD_CONFIG):
        setting = conf.get("PermitRootLogin")
        if setting is None and conf.default("PermitRootLogin") == "no":
            yield passed(f"root logins are refused (PermitRootLogin is not set: {conf.defaults_of}'s sshd "
                         "then refuses root)", at=conf.at(), observed="unset (no)", expected="no")
        elif setting is None:
            yield warned("PermitRootLogin is not set: OpenSSH then allows root logins with a key",
                         at=conf.at(), observed="unset (prohibit-password)", expected="no")
        elif setting.value.lower() == "no":
            yield passed("root logins are refused", at=setting.location, observed=setting.value, expected="no")
        elif setting.value.lower() in ("prohibit-password", "without-password", "forced-commands-only"):
            yield warned(f"root may log in with a key (PermitRootLogin {setting.value})", at=setting.location,
                         observed=setting.value, expected="no")
        elif setting.value.lower() == "yes":
            yield failed("root may log in over SSH, with a password too", at=setting.location,
                         observed=setting.value, expected="no")
        else:
            yield warned("PermitRootLogin has a value sshd does not take (templated or mistyped)",
                         at=setting.location, observed=setting.value, expected="no")


@check(
    id="host.sshd-password-auth",
    title="SSH accepts keys only, not passwords",
    component="host",
    severity="high",
    threats=["T-ADMIN-ACCESS", "T-HOST-COMPROMISE"],
    needs=[kinds.SSHD_CONFIG],
    rationale="""Password logins are brute-forced around the clock on every public address; keys
        are not. OpenSSH accepts passwords unless PasswordAuthentication is no, and keyboard-
        interactive authentication through PAM asks for the same password.""",
    remediation=Remediation(
        "Turn off password and keyboard-interactive authentication once every administrator has a key.",
        "PasswordAuthentication no\nKbdInteractiveAuthentication no",
    ),
    references=[SSHD_MAN],
    tags=["ssh", "cis"],
)
def sshd_password_auth(facts: FactSet) -> Iterator[Outcome]:
    for conf in facts.all(kinds.SSHD_CONFIG):
        pw = conf.get("PasswordAuthentication")
        kbd = conf.get("KbdInteractiveAuthentication") or conf.get("ChallengeResponseAuthentication")
        pam = conf.get("UsePAM")
        unset = f"unset: {conf.defaults_of}'s default"
        if pw is not None and pw.value.lower() not in ("yes", "no"):
            yield warned("PasswordAuthentication has a value sshd does not take (templated or mistyped)",
                         at=pw.location, observed=pw.value, expected="no")
        elif conf.value("PasswordAuthentication") == "yes":
            yield failed("SSH accepts passwords" + ("" if pw else f" (PasswordAuthentication {unset} yes)"),
                         at=pw.location if pw else conf.at(), observed=pw.value if pw else "unset (yes)",
                         expected="no")
        elif (kbd.value.lower() if kbd else conf.default("KbdInteractiveAuthentication")) == "yes" and \
                conf.value("UsePAM") == "yes":
            said = [f"{s.keyword} {s.value}" if s else f"{name} {unset} {conf.default(name)}"
                    for s, name in ((kbd, "KbdInteractiveAuthentication"), (pam, "UsePAM"))]
            yield failed("keyboard-interactive authentication through PAM still asks for passwords ("
                         + ", ".join(said) + ")", at=kbd.location if kbd else pam.location if pam else conf.at(),
                         observed=f"{kbd.keyword if kbd else 'KbdInteractiveAuthentication'} yes with UsePAM yes",
                         expected="no")
        else:
            yield passed("password authentication is off" + ("" if pw else f" (PasswordAuthentication {unset} no)"),
                         at=pw.location if pw else conf.at(), observed=pw.value if pw else "unset (no)",
                         expected="no")


@check(
    id="host.sshd-empty-passwords",
    title="SSH refuses accounts with empty passwords",
    component="host",
    severity="critical",
    threats=["T-ADMIN-ACCESS", "T-HOST-COMPROMISE"],
    needs=[kinds.SSHD_CONFIG],
    rationale="""With PermitEmptyPasswords yes, any system account without a password is a login
        for anyone who knows its name.""",
    remediation=Remediation("Set PermitEmptyPasswords to no (the default).", "PermitEmptyPasswords no"),
    references=[SSHD_MAN],
    tags=["ssh", "cis"],
)
def sshd_empty_passwords(facts: FactSet) -> Iterator[Outcome]:
    for conf in facts.all(kinds.SSHD_CONFIG):
        setting = conf.get("PermitEmptyPasswords")
        if setting is None:
            yield passed("empty passwords are refused (the default)", at=conf.at(), observed="unset (no)",
                         expected="no")
        elif setting.value.lower() == "yes":
            yield failed("accounts with empty passwords may log in", at=setting.location,
                         observed="yes", expected="no")
        elif setting.value.lower() == "no":
            yield passed("empty passwords are refused", at=setting.location, observed="no", expected="no")
        else:
            yield warned("PermitEmptyPasswords has a value sshd does not take (templated or mistyped)",
                         at=setting.location, observed=setting.value, expected="no")


# --- systemd units of Mastodon's processes ------------------------------------------------------------


SYSTEMD_EXEC = "https://www.freedesktop.org/software/systemd/man/latest/systemd.exec.html"
MASTODON_UNIT = "https://github.com/mastodon/mastodon/blob/main/dist/mastodon-web.service"
MASTODON_INSTALL = "https://docs.joinmastodon.org/admin/install/#setting-up-systemd-services"


def _units(facts: FactSet) -> list[SystemdUnit]:
    return [u for u in facts.all(kinds.SYSTEMD_UNIT) if u.has_service and u.is_mastodon]


def _subject(unit: SystemdUnit) -> str:
    return f"unit {unit.name}"


def _service_at(unit: SystemdUnit):
    return unit.sections.get("Service", unit.at())


@check(
    id="host.systemd-service-user",
    title="Mastodon's services run as their own unprivileged user",
    component="host",
    severity="high",
    threats=["T-HOST-COMPROMISE", "T-APP-UPLOAD-RCE"],
    needs=[kinds.SYSTEMD_UNIT],
    rationale="""Without User=, systemd runs the service as root: a file-write or code-execution bug in
        Puma, Sidekiq or the streaming server (TootRoot wrote files anywhere the process could) is then
        a root compromise of the host. Mastodon's units run as the mastodon user.""",
    remediation=Remediation("Run the service as the mastodon user.", "[Service]\nUser=mastodon"),
    references=[SYSTEMD_EXEC, MASTODON_UNIT, MASTODON_INSTALL],
    tags=["systemd", "cis"],
)
def service_user(facts: FactSet) -> Iterator[Outcome]:
    for unit in _units(facts):
        subject = _subject(unit)
        dynamic, dyn_setting = unit.boolean("DynamicUser")
        user = unit.last("User")
        if dynamic and dyn_setting is not None:
            yield passed("runs as a dynamic unprivileged user", at=dyn_setting.location, subject=subject,
                         observed="DynamicUser=yes", expected="a non-root User=")
        elif user is None or not user.value:
            yield failed("no User= is set: systemd runs the service as root", at=user.location if user else
                         _service_at(unit), subject=subject, observed="unset (root)", expected="User=mastodon")
        elif templating.is_templated(user.value, "systemd"):
            yield skipped(f"User= is templated ({user.value}): cannot tell who runs it", at=user.location,
                          subject=subject, observed="templated", expected="a non-root user")
        elif user.value in ("root", "0"):
            yield failed("the service runs as root", at=user.location, subject=subject,
                         observed=f"User={user.value}", expected="User=mastodon")
        else:
            yield passed(f"runs as {user.value}", at=user.location, subject=subject,
                         observed=f"User={user.value}", expected="a non-root user")


@check(
    id="host.systemd-no-new-privileges",
    title="Mastodon's services cannot gain privileges (NoNewPrivileges)",
    component="host",
    severity="medium",
    threats=["T-HOST-COMPROMISE", "T-APP-UPLOAD-RCE"],
    needs=[kinds.SYSTEMD_UNIT],
    rationale="""NoNewPrivileges=true stops the service and its children from gaining privileges
        through setuid programs or file capabilities (sudo, su, pkexec): code run through a bug stays
        the mastodon user. Mastodon's units set it.""",
    remediation=Remediation("Set NoNewPrivileges.", "[Service]\nNoNewPrivileges=true"),
    references=[SYSTEMD_EXEC, MASTODON_UNIT],
    tags=["systemd", "sandbox"],
)
def no_new_privileges(facts: FactSet) -> Iterator[Outcome]:
    for unit in _units(facts):
        subject = _subject(unit)
        value, setting = unit.boolean("NoNewPrivileges")
        if setting is None:
            yield failed("NoNewPrivileges is not set", at=_service_at(unit), subject=subject,
                         observed="unset (no)", expected="NoNewPrivileges=true")
        elif value is True:
            yield passed("the service cannot gain privileges", at=setting.location, subject=subject,
                         observed=f"NoNewPrivileges={setting.value}", expected="true")
        else:
            yield failed("NoNewPrivileges is off", at=setting.location, subject=subject,
                         observed=f"NoNewPrivileges={setting.value}", expected="true")


@check(
    id="host.systemd-protect-system",
    title="Mastodon's services see the operating system read-only (ProtectSystem)",
    component="host",
    severity="medium",
    threats=["T-HOST-COMPROMISE", "T-APP-UPLOAD-RCE"],
    needs=[kinds.SYSTEMD_UNIT],
    rationale="""ProtectSystem=strict mounts the whole file system read-only for the service, so a
        file-write bug cannot plant code or change configuration; `full` protects /usr, /boot and
        /etc. Mastodon's units use strict. `true` protects only /usr and /boot.""",
    remediation=Remediation("Set ProtectSystem=strict, with ReadWritePaths for what the service writes "
                            "(local media).", "[Service]\nProtectSystem=strict\nReadWritePaths=/home/mastodon/live"),
    references=[SYSTEMD_EXEC, MASTODON_UNIT],
    tags=["systemd", "sandbox"],
)
def protect_system(facts: FactSet) -> Iterator[Outcome]:
    for unit in _units(facts):
        subject = _subject(unit)
        setting = unit.last("ProtectSystem")
        value = setting.value.strip().lower() if setting else ""
        if setting is None or parse_bool(value) is False or not value:
            yield failed("the operating system is writable by the service" if setting else
                         "ProtectSystem is not set: the operating system is writable by the service",
                         at=setting.location if setting else _service_at(unit), subject=subject,
                         observed=f"ProtectSystem={setting.value}" if setting else "unset (no)",
                         expected="strict (or full)")
        elif value in ("strict", "full"):
            yield passed(f"ProtectSystem={value}", at=setting.location, subject=subject,
                         observed=f"ProtectSystem={setting.value}", expected="strict (or full)")
        elif parse_bool(value) is True:
            yield warned("ProtectSystem=true protects only /usr and /boot; /etc stays writable", at=setting.location,
                         subject=subject, observed=f"ProtectSystem={setting.value}", expected="strict (or full)")
        else:
            yield warned(f"unrecognised ProtectSystem value {setting.value!r}", at=setting.location,
                         subject=subject, observed=f"ProtectSystem={setting.value}", expected="strict (or full)")


@check(
    id="host.systemd-private-tmp",
    title="Mastodon's services have a private /tmp",
    component="host",
    severity="low",
    threats=["T-HOST-COMPROMISE"],
    needs=[kinds.SYSTEMD_UNIT],
    rationale="""With PrivateTmp=true the service gets its own /tmp: other users' processes cannot
        plant or read files the service writes there (uploads being processed, temporary exports), and
        the service cannot reach theirs.""",
    remediation=Remediation("Set PrivateTmp.", "[Service]\nPrivateTmp=true"),
    references=[SYSTEMD_EXEC, MASTODON_UNIT],
    tags=["systemd", "sandbox"],
)
def private_tmp(facts: FactSet) -> Iterator[Outcome]:
    for unit in _units(facts):
        subject = _subject(unit)
        value, setting = unit.boolean("PrivateTmp")
        if value is True:
            yield passed("/tmp is private to the service", at=setting.location, subject=subject,
                         observed=f"PrivateTmp={setting.value}", expected="true")
        else:
            yield failed("the service shares the host's /tmp", at=setting.location if setting else _service_at(unit),
                         subject=subject, observed=f"PrivateTmp={setting.value}" if setting else "unset (no)",
                         expected="true")


_DANGEROUS_CAPS = {"CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_DAC_OVERRIDE",
                   "CAP_DAC_READ_SEARCH", "CAP_SETUID", "CAP_SETGID", "CAP_CHOWN", "CAP_FOWNER", "CAP_NET_ADMIN",
                   "CAP_NET_RAW", "CAP_BPF", "CAP_SYS_BOOT", "CAP_SETPCAP", "CAP_SETFCAP", "CAP_MKNOD",
                   "CAP_LINUX_IMMUTABLE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_CONTROL", "CAP_MAC_ADMIN",
                   "CAP_MAC_OVERRIDE", "CAP_SYSLOG", "CAP_PERFMON", "CAP_CHECKPOINT_RESTORE", "CAP_FSETID"}


def bounding_set(unit: SystemdUnit) -> tuple[str, set[str]] | None:
    """The capability bounding set in force: ('only', caps) or ('except', caps); None when unset.

    Assignments accumulate: plain lists add, `~` lists remove, an empty assignment empties it.
    """
    state: tuple[str, set[str]] | None = None
    for setting in unit.assignments("CapabilityBoundingSet"):
        text = setting.value.strip()
        if not text:
            state = ("only", set())
            continue
        invert = text.startswith("~")
        caps = {c.upper() for c in text.lstrip("~").split()}
        if state is None:
            state = ("except" if invert else "only", caps)
        elif state[0] == "only":
            state = ("only", state[1] - caps if invert else state[1] | caps)
        else:
            state = ("except", state[1] | caps if invert else state[1] - caps)
    return state


@check(
    id="host.systemd-capabilities",
    title="Mastodon's services hold no Linux capabilities",
    component="host",
    severity="medium",
    threats=["T-HOST-COMPROMISE", "T-APP-UPLOAD-RCE"],
    needs=[kinds.SYSTEMD_UNIT],
    rationale="""Mastodon's processes need no capability: they bind ports above 1024 and write their own
        files. An empty CapabilityBoundingSet= removes every capability from the service and whatever
        it starts, so even a root process or a setuid program inside it cannot use them. Mastodon's
        units set it empty.""",
    remediation=Remediation("Empty the capability bounding set.", "[Service]\nCapabilityBoundingSet="),
    references=[SYSTEMD_EXEC, MASTODON_UNIT, "https://man7.org/linux/man-pages/man7/capabilities.7.html"],
    tags=["systemd", "sandbox"],
)
def capabilities(facts: FactSet) -> Iterator[Outcome]:
    for unit in _units(facts):
        subject = _subject(unit)
        found = unit.assignments("CapabilityBoundingSet")
        at = found[-1].location if found else _service_at(unit)
        state = bounding_set(unit)
        if state is None:
            yield failed("CapabilityBoundingSet is not set: the service may hold every capability", at=at,
                         subject=subject, observed="unset (all)", expected="CapabilityBoundingSet= (empty)")
        elif state[0] == "except":
            shown = "~" + " ".join(sorted(state[1]))
            yield failed("the bounding set keeps every capability but a few", at=at, subject=subject,
                         observed=f"CapabilityBoundingSet={shown}", expected="empty, or a few harmless ones")
        elif not state[1]:
            yield passed("the service holds no capability", at=at, subject=subject,
                         observed="CapabilityBoundingSet= (empty)", expected="empty")
        else:
            shown = " ".join(sorted(state[1]))
            risky = sorted(state[1] & _DANGEROUS_CAPS)
            if risky:
                yield failed(f"the bounding set keeps powerful capabilities ({', '.join(risky)})", at=at,
                             subject=subject, observed=f"CapabilityBoundingSet={shown}", expected="empty")
            else:
                yield passed(f"the bounding set is limited to {shown}", at=at, subject=subject,
                             observed=f"CapabilityBoundingSet={shown}", expected="empty, or a few harmless ones")


# What Mastodon's dist units set beyond the settings judged on their own above.
SANDBOX = [
    ("PrivateDevices", "true"), ("ProtectHostname", "true"), ("ProtectKernelTunables", "true"),
    ("ProtectKernelModules", "true"), ("ProtectKernelLogs", "true"), ("ProtectControlGroups", "true"),
    ("ProtectClock", "true"), ("RestrictNamespaces", "true"), ("RestrictRealtime", "true"),
    ("RestrictSUIDSGID", "true"), ("LockPersonality", "true"), ("RestrictAddressFamilies", "list"),
    ("SystemCallFilter", "list"), ("SystemCallArchitectures", "native"),
]


def _sandbox_present(unit: SystemdUnit, key: str, kind: str) -> bool:
    if kind == "list":
        return bool(unit.items(key))
    setting = unit.last(key)
    if setting is None:
        return False
    value = setting.value.strip()
    if kind == "native":
        return "native" in value.split()
    if key == "RestrictNamespaces":
        return parse_bool(value) is True or (bool(value) and parse_bool(value) is None)  # a list allows some
    return parse_bool(value) is True


@check(
    id="host.systemd-sandboxing",
    title="Mastodon's services are sandboxed like Mastodon's own units",
    component="host",
    severity="medium",
    threats=["T-HOST-COMPROMISE", "T-APP-UPLOAD-RCE"],
    needs=[kinds.SYSTEMD_UNIT],
    rationale="""Mastodon's units shut the kernel's tunables, modules, logs and clock, namespaces,
        exotic socket families and unneeded system calls away from the service. Each closes a way for
        code run through a bug to reach the kernel or the rest of the host. The finding lists what is
        missing; a few missing is a warning, most of them a failure.""",
    remediation=Remediation(
        "Add the missing settings from Mastodon's dist/mastodon-*.service.",
        "PrivateDevices=true\nProtectKernelTunables=true\nProtectKernelModules=true\nProtectKernelLogs=true\n"
        "ProtectControlGroups=true\nProtectClock=true\nProtectHostname=true\nRestrictNamespaces=true\n"
        "RestrictRealtime=true\nRestrictSUIDSGID=true\nLockPersonality=true\n"
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_NETLINK AF_UNIX\nSystemCallArchitectures=native\n"
        "SystemCallFilter=~@clock @cpu-emulation @debug @keyring @module @mount @obsolete @raw-io @reboot @swap"),
    references=[SYSTEMD_EXEC, MASTODON_UNIT, "https://www.freedesktop.org/software/systemd/man/latest/systemd-analyze.html#systemd-analyze%20security%20%5BUNIT...%5D"],
    tags=["systemd", "sandbox"],
)
def sandboxing(facts: FactSet) -> Iterator[Outcome]:
    for unit in _units(facts):
        subject = _subject(unit)
        missing = [key for key, kind in SANDBOX if not _sandbox_present(unit, key, kind)]
        score = f"{len(SANDBOX) - len(missing)}/{len(SANDBOX)}"
        observed = f"{score} set; missing: {', '.join(missing)}" if missing else f"{score} set"
        expected = "all of " + ", ".join(k for k, _ in SANDBOX)
        at = _service_at(unit)
        if not missing:
            yield passed("the service is sandboxed like Mastodon's units", at=at, subject=subject,
                         observed=observed, expected="all set")
        elif len(missing) * 2 > len(SANDBOX):
            yield failed(f"most of the sandbox is missing ({score} set)", at=at, subject=subject,
                         observed=observed, expected=expected)
        else:
            yield warned(f"part of the sandbox is missing ({score} set)", at=at, subject=subject,
                         observed=observed, expected=expected)


# Paths that must not be made writable for the service: system trees, and homes as a whole (the
# mastodon user's ~/.ssh and ~/.rbenv would let a bug persist or log in).
_BROAD = re.compile(r"^/(|etc|usr|bin|sbin|lib|lib64|lib32|boot|root|home|var|var/lib|opt|srv|run|home/[^/]+)$")


_HIDDEN_IN_HOME = re.compile(r"^/home/[^/]+/\.(ssh|rbenv|bashrc|profile|config)(/|$)")


@check(
    id="host.systemd-writable-paths",
    title="Mastodon's services may write only where Mastodon writes",
    component="host",
    severity="medium",
    threats=["T-HOST-COMPROMISE", "T-APP-UPLOAD-RCE"],
    needs=[kinds.SYSTEMD_UNIT],
    rationale="""ReadWritePaths= punches holes in ProtectSystem=strict. Mastodon needs its live
        directory (local media under public/system) and nothing else; a whole home directory, /var or
        / gives a file-write bug the mastodon user's SSH keys and Ruby shims, or the system, to plant
        code in.""",
    remediation=Remediation("Limit ReadWritePaths to Mastodon's directory (or its public/system).",
                            "ReadWritePaths=/home/mastodon/live"),
    references=[SYSTEMD_EXEC, MASTODON_UNIT],
    tags=["systemd", "sandbox"],
)
def writable_paths(facts: FactSet) -> Iterator[Outcome]:
    for unit in _units(facts):
        subject = _subject(unit)
        paths = unit.items("ReadWritePaths")
        if not paths:
            yield passed("no path is made writable beyond what the sandbox allows", at=_service_at(unit),
                         subject=subject, observed="no ReadWritePaths", expected="Mastodon's directory at most")
            continue
        for word, where in paths:
            path = word.lstrip("-+")
            if templating.is_templated(path, "systemd"):
                yield skipped(f"ReadWritePaths entry {path} uses a specifier or template: cannot judge",
                              at=where, subject=subject, observed="templated", expected="Mastodon's directory at most")
                continue
            norm = "/" + "/".join(p for p in path.split("/") if p and p != ".")
            if _BROAD.match(norm) or _HIDDEN_IN_HOME.match(norm) or ".." in path.split("/"):
                yield failed(f"{path} is made writable for the service", at=where, subject=subject,
                             observed=f"ReadWritePaths={path}", expected="Mastodon's directory at most")
            else:
                yield passed(f"{path} is writable", at=where, subject=subject, observed=f"ReadWritePaths={path}",
                             expected="Mastodon's directory at most")
