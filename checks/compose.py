"""docker-compose deployments: what the containers publish, how the backing services authenticate,
and what the containers may do to their host (T-DB-EXPOSED, T-CACHE-EXPOSED, T-SEARCH-EXPOSED,
T-PROXY-MISCONFIG, T-HOST-COMPROMISE).

Mastodon's own compose file runs PostgreSQL with `trust` and Redis without a password on a network
marked `internal: true`, publishing nothing but the web and streaming ports on 127.0.0.1. That is
judged safe here; the same services published, or on a network with a way out, are not. Ports that
Docker publishes are opened in iptables ahead of ufw/firewalld rules, so a host firewall does not
cover them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from mastoaudit.checkdef import Remediation, check, failed, passed, skipped, warned
from mastoaudit.facts import FactSet
from mastoaudit.model import Outcome
from mastoaudit.parsers.compose import ComposeFile, ComposeService, PortPublish, is_templated

COMPOSE_NETWORKS = "https://docs.docker.com/reference/compose-file/networks/"
COMPOSE_PORTS = "https://docs.docker.com/reference/compose-file/services/#ports"
DOCKER_UFW = "https://docs.docker.com/engine/network/packet-filtering-firewalls/"
MASTODON_COMPOSE = "https://github.com/mastodon/mastodon/blob/main/docker-compose.yml"


def _files(facts: FactSet) -> list[ComposeFile]:
    return facts.all("compose")


def _subject(service: ComposeService) -> str:
    return f"service {service.name}"


# --- published ports -------------------------------------------------------------------------------


def _publish_outcomes(compose: ComposeFile, service: ComposeService, what: str,
                      loopback_note: str) -> Iterator[Outcome]:
    """One outcome per published port (or one for none) of a service that must stay internal."""
    subject = _subject(service)
    mode = service.network_mode.value if service.network_mode is not None else ""
    owner = compose.services.get(mode.split(":", 1)[1]) if mode.startswith("service:") else None
    if owner is not None and owner is not service and owner.ports:
        # It lives in another service's network namespace: that service's ports reach it too.
        for port in owner.ports:
            yield from _judge_port(port, f"{what} (in the network of service {owner.name})", subject,
                                   loopback_note)
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
        yield from _judge_port(port, what, subject, loopback_note)


def _judge_port(port: PortPublish, what: str, subject: str, loopback_note: str) -> Iterator[Outcome]:
    exposure = port.exposure
    shown = port.raw
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


_BACKEND_LOOPBACK = ("Not reachable from the network; the other containers do not need it, and every "
                     "local user of the host can connect.")


def _backend_publish(facts: FactSet, role: str, what: str) -> Iterator[Outcome]:
    for compose in _files(facts):
        for service in compose.by_role(role):
            yield from _publish_outcomes(compose, service, what, _BACKEND_LOOPBACK)


@check(
    id="postgresql.compose-published-port",
    title="The database container publishes no port beyond loopback",
    component="postgresql",
    severity="high",
    threats=["T-DB-EXPOSED"],
    needs=["compose"],
    rationale="""Mastodon's containers reach PostgreSQL over the compose network; nothing needs a
        published port. `5432:5432` opens the database on every interface of the host, and Docker's
        own iptables rules put it ahead of ufw or firewalld, so the host firewall does not close it.""",
    remediation=Remediation("Remove the ports of the database service (or bind them to 127.0.0.1 for "
                            "local tools).", "  db:\n    # no ports:\n    networks:\n      - internal_network"),
    references=[COMPOSE_PORTS, DOCKER_UFW, MASTODON_COMPOSE],
    tags=["docker", "network"],
)
def db_published(facts: FactSet) -> Iterator[Outcome]:
    yield from _backend_publish(facts, "postgresql", "the database")


@check(
    id="redis.compose-published-port",
    title="The Redis container publishes no port beyond loopback",
    component="redis",
    severity="high",
    threats=["T-CACHE-EXPOSED", "T-SIDEKIQ-QUEUE"],
    needs=["compose"],
    rationale="""Redis holds sessions, caches and Sidekiq's job queue; whoever writes to it can enqueue
        jobs that Sidekiq runs. The Redis image turns protected mode off, so a published port with no
        password is open to anyone who can reach it, and Docker publishes ahead of the host firewall.""",
    remediation=Remediation("Remove the ports of the Redis service; the containers reach it over the "
                            "compose network.", "  redis:\n    networks:\n      - internal_network"),
    references=[COMPOSE_PORTS, DOCKER_UFW, MASTODON_COMPOSE],
    tags=["docker", "network"],
)
def redis_published(facts: FactSet) -> Iterator[Outcome]:
    yield from _backend_publish(facts, "redis", "Redis")


@check(
    id="elasticsearch.compose-published-port",
    title="The search container publishes no port beyond loopback",
    component="elasticsearch",
    severity="high",
    threats=["T-SEARCH-EXPOSED"],
    needs=["compose"],
    rationale="""Elasticsearch or OpenSearch holds the indexed statuses and accounts, and its HTTP API
        can read, change or delete them. Mastodon reaches it over the compose network; a port
        published on every interface puts the API on the host's public address.""",
    remediation=Remediation("Remove the ports of the search service, or bind them to 127.0.0.1.",
                            "    ports:\n      - '127.0.0.1:9200:9200'"),
    references=[COMPOSE_PORTS, DOCKER_UFW, MASTODON_COMPOSE],
    tags=["docker", "network"],
)
def es_published(facts: FactSet) -> Iterator[Outcome]:
    yield from _backend_publish(facts, "elasticsearch", "the search cluster")


_APP_LOOPBACK = "The reverse proxy on the host reaches it there, as in Mastodon's compose file."


@check(
    id="app.compose-published-port",
    title="The web container is published on 127.0.0.1 only",
    component="app",
    severity="high",
    threats=["T-PROXY-MISCONFIG", "T-TRANSPORT-MITM"],
    needs=["compose"],
    rationale="""Puma speaks plain HTTP and trusts the proxy for TLS, HSTS, client addresses and
        limits. Mastodon's compose file publishes it on 127.0.0.1:3000 for the proxy on the host;
        `3000:3000` publishes it on every interface, around the proxy and ahead of the firewall.""",
    remediation=Remediation("Publish the web port on loopback only.", "    ports:\n      - '127.0.0.1:3000:3000'"),
    references=[COMPOSE_PORTS, DOCKER_UFW, MASTODON_COMPOSE],
    tags=["docker", "network"],
)
def web_published(facts: FactSet) -> Iterator[Outcome]:
    for compose in _files(facts):
        for service in compose.by_role("web", "mastodon"):
            yield from _publish_outcomes(compose, service, "the web (Puma) port", _APP_LOOPBACK)


@check(
    id="streaming.compose-published-port",
    title="The streaming container is published on 127.0.0.1 only",
    component="streaming",
    severity="high",
    threats=["T-PROXY-MISCONFIG", "T-STREAM-EAVESDROP"],
    needs=["compose"],
    rationale="""The streaming server speaks plain HTTP and WebSocket; tokens sent to it directly
        cross the network in clear. Mastodon's compose file publishes it on 127.0.0.1:4000 for the
        proxy; `4000:4000` puts it on every interface.""",
    remediation=Remediation("Publish the streaming port on loopback only.",
                            "    ports:\n      - '127.0.0.1:4000:4000'"),
    references=[COMPOSE_PORTS, DOCKER_UFW, MASTODON_COMPOSE],
    tags=["docker", "network"],
)
def streaming_published(facts: FactSet) -> Iterator[Outcome]:
    for compose in _files(facts):
        for service in compose.by_role("streaming"):
            yield from _publish_outcomes(compose, service, "the streaming port", _APP_LOOPBACK)


# --- services without authentication ---------------------------------------------------------------


def _reach(compose: ComposeFile, service: ComposeService, depth: int = 0) -> tuple[str, str]:
    """How far an unauthenticated service can be reached: (level, description).

    level: all | public | private | loopback | host | open-network | internal | templated
    """
    mode = service.network_mode.value if service.network_mode is not None else None
    if mode == "host":
        return "host", "network_mode: host"
    if mode is not None and mode.startswith("service:") and depth < 5:
        other = compose.services.get(mode.split(":", 1)[1])
        if other is not None:
            level, how = _reach(compose, other, depth + 1)
            return level, f"shares the network of service {other.name}: {how}"
    if mode is not None and mode != "none" and not service.ports:
        return "open-network", f"network_mode: {mode}"
    order = ["all", "public", "templated", "private", "unknown", "loopback"]
    worst = min((p for p in service.ports), key=lambda p: order.index(p.exposure), default=None)
    if worst is not None:
        return worst.exposure, f"published {worst.raw}"
    open_networks = [n.name for n in compose.service_networks(service) if not n.internal]
    if open_networks:
        return "open-network", "on network " + ", ".join(open_networks) + " (not internal)"
    names = ", ".join(n.name for n in compose.service_networks(service)) or "none"
    return "internal", f"internal networks only ({names}), no published port"


def _unauthenticated(compose: ComposeFile, service: ComposeService, what: str, observed: str,
                     expected: str, at) -> Outcome:
    """The verdict for a service that accepts connections without a password."""
    level, how = _reach(compose, service)
    subject = _subject(service)
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
    return failed(f"{what} on a network that is not internal ({how}): any container there, and hosts "
                  "routed to the bridge, can connect", at=at, subject=subject, observed=f"{observed}; {how}",
                  expected=expected, severity="medium")


@check(
    id="postgresql.compose-trust-auth",
    title="A database trusting connections without a password is reachable by nothing but its own network",
    component="postgresql",
    severity="critical",
    threats=["T-DB-EXPOSED", "T-DB-WEAK-CREDENTIALS"],
    needs=["compose"],
    rationale="""POSTGRES_HOST_AUTH_METHOD=trust lets any connection in as any role, superuser
        included, with no password. Mastodon's compose file uses it for a database on a network marked
        `internal: true` with no published port, where only the Mastodon containers reach it; that is
        accepted here. Published, or on a network with a way out, it hands the whole database to
        whoever connects.""",
    remediation=Remediation(
        "Keep the database on an internal network with no ports, or set a password "
        "(POSTGRES_PASSWORD_FILE with a Docker secret) and drop trust.",
        "  db:\n    networks:\n      - internal_network\nnetworks:\n  internal_network:\n    internal: true"),
    references=["https://hub.docker.com/_/postgres", COMPOSE_NETWORKS, MASTODON_COMPOSE],
    tags=["docker", "auth"],
)
def db_trust(facts: FactSet) -> Iterator[Outcome]:
    for compose in _files(facts):
        for service in compose.by_role("postgresql"):
            setting = service.env("POSTGRES_HOST_AUTH_METHOD")
            value = (setting.value or "") if setting else ""
            if setting is not None and is_templated(value):
                yield skipped("POSTGRES_HOST_AUTH_METHOD is set by a variable: cannot judge", at=setting.location,
                              subject=_subject(service), observed="templated", expected="not trust")
            elif setting is None and service.env_files:
                files = ", ".join(f.value for f in service.env_files)
                yield skipped(f"POSTGRES_HOST_AUTH_METHOD may be set in env_file {files}, which is not read here",
                              at=service.location, subject=_subject(service), observed="not in environment",
                              expected="not trust")
            elif value.strip().lower() == "trust":
                yield _unauthenticated(compose, service, "the database trusts every connection without a password",
                                       "POSTGRES_HOST_AUTH_METHOD=trust", "internal network only, or a password",
                                       setting.location)
            else:
                method = value or "unset (scram-sha-256 with POSTGRES_PASSWORD)"
                yield passed("the database asks for a password", at=setting.location if setting else service.location,
                             subject=_subject(service), observed=f"POSTGRES_HOST_AUTH_METHOD={method}",
                             expected="not trust")


_REDIS_AUTH = re.compile(r"--requirepass\b|--aclfile\b")


def _redis_password(service: ComposeService) -> str | None:
    """How the Redis service asks for a password, '?' when a mounted config decides, None for none."""
    if _REDIS_AUTH.search(service.command):
        return "--requirepass in command"
    for name in ("REDIS_PASSWORD", "REDIS_PASSWORD_FILE"):
        setting = service.env(name)
        if setting is not None and setting.value:
            return f"{name} set"
    if any(m.target.endswith(".conf") or m.target.rstrip("/") in ("/usr/local/etc/redis", "/etc/redis")
           for m in service.mounts) or re.search(r"redis-server\s+\S+\.conf", service.command):
        return "?"
    return None


@check(
    id="redis.compose-no-password",
    title="A Redis without a password is reachable by nothing but its own network",
    component="redis",
    severity="critical",
    threats=["T-CACHE-EXPOSED", "T-SIDEKIQ-QUEUE"],
    needs=["compose"],
    rationale="""The Redis image runs with protected mode off and no password. Mastodon's compose file
        keeps it on an internal network with no published port, which is accepted here. Reachable from
        anywhere else, anyone can read sessions and enqueue Sidekiq jobs.""",
    remediation=Remediation("Keep Redis on an internal network with no ports, or start it with a password "
                            "(and set REDIS_PASSWORD for Mastodon).",
                            "    command: redis-server --requirepass \"$${REDIS_PASSWORD}\""),
    references=["https://hub.docker.com/_/redis", COMPOSE_NETWORKS, MASTODON_COMPOSE],
    tags=["docker", "auth"],
)
def redis_no_password(facts: FactSet) -> Iterator[Outcome]:
    for compose in _files(facts):
        for service in compose.by_role("redis"):
            how = _redis_password(service)
            if how == "?":
                level, where = _reach(compose, service)
                if level == "internal":
                    yield passed(f"Redis reads a mounted config, and only its internal network reaches it ({where})",
                                 at=service.location, subject=_subject(service), observed=where,
                                 expected="internal network only, or a password")
                else:
                    yield skipped("Redis reads a mounted config file: whether it asks for a password is "
                                  "decided there (audit that file)", at=service.location, subject=_subject(service))
            elif how:
                yield passed("Redis asks for a password", at=service.location, subject=_subject(service),
                             observed=how, expected="a password, or internal network only")
            else:
                yield _unauthenticated(compose, service, "Redis accepts connections without a password",
                                       "no password", "internal network only, or a password", service.location)


def _es_security(service: ComposeService) -> tuple[str, str]:
    """('off'|'on'|'templated', why) for an Elasticsearch or OpenSearch service."""
    for name in ("xpack.security.enabled", "plugins.security.disabled", "DISABLE_SECURITY_PLUGIN"):
        setting = service.env(name)
        flag = re.search(rf"-E\s*{re.escape(name)}=(\S+)", service.command)
        value = setting.value if setting is not None else (flag.group(1) if flag else None)
        if value is None:
            continue
        if is_templated(value):
            return "templated", f"{name} set by a variable"
        off = value.strip().lower() == ("false" if name == "xpack.security.enabled" else "true")
        return ("off" if off else "on"), f"{name}={value}"
    repo = (service.image_repo or "").lower()
    tag = service.image_tag or ""
    major = re.match(r"v?(\d+)\.", tag)
    if "elasticsearch" in repo and major and int(major.group(1)) < 8:
        return "off", f"Elasticsearch {tag}: security is off unless xpack.security.enabled=true"
    return "on", "the image's default (security on)"


@check(
    id="elasticsearch.compose-security-off",
    title="A search cluster with security off is reachable by nothing but its own network",
    component="elasticsearch",
    severity="critical",
    threats=["T-SEARCH-EXPOSED"],
    needs=["compose"],
    rationale="""With xpack.security.enabled=false (or OpenSearch's security plugin disabled, or an
        Elasticsearch 7 image left at its default), the HTTP API reads, changes and deletes every index
        without a password. Mastodon's compose file shows it that way on loopback; anything wider hands
        the search data to whoever connects.""",
    remediation=Remediation("Enable security and give Mastodon a user (ES_USER/ES_PASS), or keep the cluster "
                            "on an internal network with no published port.",
                            "      - xpack.security.enabled=true\n      - ELASTIC_PASSWORD_FILE=/run/secrets/es"),
    references=["https://www.elastic.co/guide/en/elasticsearch/reference/current/security-settings.html",
                "https://docs.joinmastodon.org/admin/elasticsearch/"],
    tags=["docker", "auth"],
)
def es_security(facts: FactSet) -> Iterator[Outcome]:
    for compose in _files(facts):
        for service in compose.by_role("elasticsearch"):
            state, why = _es_security(service)
            subject = _subject(service)
            if state == "templated":
                yield skipped(f"security is set by a variable ({why}): cannot judge", at=service.location,
                              subject=subject, observed="templated", expected="security on")
            elif state == "on":
                yield passed(f"security is on ({why})", at=service.location, subject=subject, observed=why,
                             expected="security on, or internal network only")
            else:
                level, how = _reach(compose, service)
                at = service.ports[0].location if service.ports else service.location
                expected = "security on, or internal network only"
                if level == "loopback":
                    yield warned(f"security is off and the API is published on loopback ({how}): every local "
                                 "user of the host can read and wipe the indexes", at=at, subject=subject,
                                 observed=f"{why}; {how}", expected=expected)
                else:
                    yield _unauthenticated(compose, service, f"security is off ({why})", why, expected, at)


# --- the host: privileges and mounts ---------------------------------------------------------------

_DANGEROUS_CAPS = {"ALL", "SYS_ADMIN", "SYS_MODULE", "SYS_PTRACE", "SYS_RAWIO", "DAC_READ_SEARCH",
                   "NET_ADMIN", "BPF", "SYS_BOOT"}


@check(
    id="host.compose-privileged",
    title="No container runs privileged",
    component="host",
    severity="high",
    threats=["T-HOST-COMPROMISE"],
    needs=["compose"],
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
    for compose in _files(facts):
        for service in compose.services.values():
            subject = _subject(service)
            problems = []
            if service.privileged is not None and service.privileged.value == "true":
                problems.append((service.privileged.location, "privileged: true"))
            for cap in service.cap_add:
                if cap.value.upper().removeprefix("CAP_") in _DANGEROUS_CAPS:
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
    needs=["compose"],
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
    for compose in _files(facts):
        for service in compose.services.values():
            subject = _subject(service)
            bad = False
            for mount in service.mounts:
                if mount.kind != "bind" or not mount.source:
                    continue
                if is_templated(mount.source):
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


# --- image versions --------------------------------------------------------------------------------


@check(
    id="app.compose-image-pinned",
    title="Mastodon's images are pinned to a release",
    component="app",
    severity="low",
    threats=["T-APP-VULNERABLE-VERSION"],
    needs=["compose"],
    rationale="""With `latest`, `nightly` or no tag, what runs depends on when the image was last pulled:
        a restart can bring an unreleased build (nightly), and nobody can tell from the file which
        release, and so which advisories, apply. A release tag (v4.5.x) says both, and upgrades become a
        reviewed edit of the file.""",
    remediation=Remediation("Name the release in the image tag, and raise it with each security release.",
                            "    image: ghcr.io/mastodon/mastodon:v4.5.11"),
    references=["https://github.com/mastodon/mastodon/releases", "https://docs.joinmastodon.org/admin/upgrading/"],
    tags=["docker", "version"],
)
def image_pinned(facts: FactSet) -> Iterator[Outcome]:
    for compose in _files(facts):
        for service in compose.services.values():
            if not service.is_mastodon:
                continue
            subject = _subject(service)
            at = service.image_location or service.location
            if not service.image:
                yield skipped("built from source (build:): the version is the checkout's", at=at, subject=subject)
                continue
            tag = service.image_tag
            if service.image_digest:
                yield passed("pinned by digest", at=at, subject=subject, observed=service.image,
                             expected="a release tag or digest")
            elif tag and is_templated(tag):
                yield skipped(f"the tag is set by a variable ({tag}): cannot tell the version", at=at,
                              subject=subject, observed="templated", expected="a release tag")
            elif service.mastodon_version:
                yield passed(f"pinned to release {service.mastodon_version}", at=at, subject=subject,
                             observed=service.image, expected="a release tag")
            else:
                shown = tag or "no tag (latest)"
                yield warned(f"the image is not pinned to a release ({shown})", at=at, subject=subject,
                             observed=service.image, expected="a release tag such as v4.5.11")
