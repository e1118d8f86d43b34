"""Redis: Mastodon's cache, timelines and Sidekiq queue (T-CACHE-EXPOSED, T-SIDEKIQ-QUEUE); from
redis.conf, the server as it runs, how Mastodon connects (.env.production), a compose file, and what
answers on port 6379 from outside.

Whoever can write to Redis can enqueue Sidekiq jobs, so an open Redis is a path to code execution
in Mastodon's workers, not only a cache leak.

What Mastodon needs from Redis, and so what these checks never ask to disable: Sidekiq and
sidekiq-unique-jobs run Lua scripts (SCRIPT LOAD, EVALSHA, EVAL); Sidekiq and the admin dashboard
read INFO; `tootctl feeds clear` uses KEYS. Mastodon never needs FLUSHALL, FLUSHDB, CONFIG, DEBUG
or MODULE (its cache is namespaced, so `tootctl cache clear` deletes by pattern, not FLUSHDB).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from mastoaudit import kinds, templating
from mastoaudit.addresses import widest_reach
from mastoaudit.checkdef import Remediation, check, failed, passed, skipped, warned
from mastoaudit.facts import FactSet
from mastoaudit.judgments import template_value
from mastoaudit.judgments.compose import (
    COMPOSE_NETWORKS,
    MASTODON_COMPOSE,
    PUBLISHED_PORT_REFERENCES,
    backend_publish,
    service_reach,
    service_subject,
    unauthenticated,
)
from mastoaudit.judgments.env import CONFIG_DOCS, templated, var_at
from mastoaudit.judgments.ports import per_service
from mastoaudit.model import Location, Outcome
from mastoaudit.parsers.compose import ComposeFile, ComposeService
from mastoaudit.parsers.env import (
    Endpoint,
    redis_endpoints,
)
from mastoaudit.parsers.redis import RedisConf
from mastoaudit.passwords import MIN_PASSWORD, judge_password

SECURITY_DOCS = "https://redis.io/docs/latest/operate/oss_and_stack/management/security/"
ACL_DOCS = "https://redis.io/docs/latest/operate/oss_and_stack/management/security/acl/"
MASTODON_ENV = "https://docs.joinmastodon.org/admin/config/#redis"
# Commands an attacker uses to wipe data or turn Redis into a file writer / module loader.
DANGEROUS = ("flushall", "flushdb", "config", "debug", "module")
# Off by default since Redis 7 unless these directives say yes (or local).
SWITCHED = {"debug": "enable-debug-command", "module": "enable-module-command"}
NEEDED = ("eval", "evalsha", "script")  # Sidekiq's scheduler and sidekiq-unique-jobs




# --- redis.conf ---------------------------------------------------------------------------------------


def tcp_scope(conf: RedisConf) -> tuple[str | None, str, Location]:
    """(widest reach, what was observed, where): "none" when TCP is off, None when templated."""
    port = conf.get("port")
    tls_port = conf.get("tls-port")
    tcp_off = port is not None and port.args[0] == "0" and (tls_port is None or tls_port.args[0] == "0")
    if tcp_off:
        return "none", "port 0 (Unix socket only)", port.location  # type: ignore[union-attr]
    bind = conf.get("bind")
    if bind is None:
        return "any", "unset (every interface)", conf.at()
    if bind.templated:
        return None, bind.value, bind.location
    scope = widest_reach(bind.args)
    return scope, bind.value, bind.location


@check(
    id="redis.bind",
    title="Redis listens on loopback (or a private address) only",
    component="redis",
    severity="high",
    threats=["T-CACHE-EXPOSED", "T-SIDEKIQ-QUEUE"],
    needs=[kinds.REDIS_CONF],
    rationale="""Redis has no business on a public interface: internet-wide scans find an open Redis
        within hours, and with Mastodon's Sidekiq queue in it an attacker can enqueue jobs. Without
        a bind directive Redis listens on every interface. Bind to 127.0.0.1 -::1 (Debian's
        default), or port 0 with a Unix socket; a private address for Sidekiq hosts elsewhere is
        a warning, to confirm the firewall admits only them.""",
    remediation=Remediation("Bind to loopback.", "bind 127.0.0.1 -::1"),
    references=[SECURITY_DOCS],
    tags=["network"],
)
def bind(facts: FactSet) -> Iterator[Outcome]:
    for conf in facts.all(kinds.REDIS_CONF):
        scope, observed, where = tcp_scope(conf)
        expected = "127.0.0.1 -::1 (or port 0 with a Unix socket)"
        if scope is None:
            yield skipped("bind is a template value; it cannot be judged", at=where, observed=observed,
                          expected=expected)
        elif scope in ("any", "public"):
            yield failed(f"Redis listens on {'every interface' if scope == 'any' else 'a public address'}",
                         at=where, observed=observed, expected=expected)
        elif scope in ("private", "name"):
            yield warned("Redis listens on a private address: make sure only the Mastodon hosts reach it",
                         at=where, observed=observed, expected=expected)
        else:
            yield passed("Redis is reachable from this host only", at=where, observed=observed, expected=expected)


@check(
    id="redis.protected-mode",
    title="Redis protected mode is on",
    component="redis",
    severity="high",
    threats=["T-CACHE-EXPOSED", "T-SIDEKIQ-QUEUE"],
    needs=[kinds.REDIS_CONF],
    rationale="""Protected mode is Redis' safety net: while the default user has no password and no
        bind is set, it refuses clients that do not come from loopback. Turning it off removes the
        net exactly when it is needed, after a bind or password mistake.""",
    remediation=Remediation("Leave protected mode on.", "protected-mode yes"),
    references=[SECURITY_DOCS],
    tags=["network"],
)
def protected_mode(facts: FactSet) -> Iterator[Outcome]:
    for conf in facts.all(kinds.REDIS_CONF):
        setting = conf.get("protected-mode")
        if setting is not None and setting.templated:
            yield template_value(setting, "protected-mode", "yes")
        elif setting is not None and setting.args[0].lower() == "no":
            scope = tcp_scope(conf)[0]
            yield failed("protected mode is off", at=setting.location, observed="no", expected="yes",
                         severity="low" if scope in ("loopback", "none") else None)
        else:
            yield passed("protected mode is on", at=setting.location if setting else conf.at(),
                         observed=setting.args[0] if setting else "unset (yes)", expected="yes")


def _who(user: str) -> str:
    return "the default user" if user == "default" else f"ACL user {user}"


def _password_outcome(conf: RedisConf, user: str, passwords: list[str], where: Location | None) -> Outcome:
    at = where or conf.at()
    who = _who(user)
    if any(templating.is_templated(p, "config") for p in passwords):
        return skipped(f"the password of {who} is a template value", at=at, subject=f"user {user}",
                       observed="templated", expected=f"a random password of {MIN_PASSWORD}+ characters")
    # The one password rule (mastoaudit/passwords.py), as for REDIS_PASSWORD in .env.production.
    weakest = next((v for v in map(judge_password, passwords) if not v.ok), None)
    if weakest is not None:
        return failed(f"the password of {who} is {weakest.why}: Redis answers many thousands of guesses a second",
                      at=at, subject=f"user {user}", observed=weakest.observed,
                      expected=f"a random password of {MIN_PASSWORD}+ characters")
    shortest = min(len(p) for p in passwords)
    return passed(f"{who} needs a password", at=at, subject=f"user {user}",
                  observed=f"password of {shortest} characters", expected="a password")


@check(
    id="redis.auth",
    title="Redis requires a password",
    component="redis",
    severity="high",
    threats=["T-CACHE-EXPOSED", "T-SIDEKIQ-QUEUE"],
    needs=[kinds.REDIS_CONF],
    rationale="""Without a password any process that reaches Redis reads sessions and timelines and
        writes Sidekiq jobs that Mastodon's workers will run. Set requirepass (Mastodon sends it
        from REDIS_PASSWORD), or define ACL users with passwords and switch the passwordless
        default user off (Mastodon also takes REDIS_USER). Note that a `user default` line or an
        aclfile replaces requirepass.""",
    remediation=Remediation(
        "Set a long random password and put it in REDIS_PASSWORD in .env.production.",
        "requirepass <output of: openssl rand -hex 32>",
    ),
    references=[SECURITY_DOCS, ACL_DOCS, MASTODON_ENV],
    tags=["auth"],
)
def auth(facts: FactSet) -> Iterator[Outcome]:
    for conf in facts.all(kinds.REDIS_CONF):
        if conf.acl_unread is not None:
            ref = conf.acl_unread
            yield warned(f"the ACL file {ref.target} is not in the audited tree: who may connect is unknown",
                         at=ref.location, observed=f"aclfile {ref.target}", expected="users with passwords")
            continue
        scope = tcp_scope(conf)[0]
        for name, (state, where) in sorted(conf.user_states().items()):
            at = where or conf.at()
            if not state.enabled:
                yield passed(f"{_who(name)} is off", at=at, subject=f"user {name}", observed="off",
                             expected="off, or a password")
            elif not state.has_password:
                observed = "requirepass unset" if name == "default" and where is None else f"user {name} nopass"
                yield failed(f"clients connect as {_who(name)} without a password", at=at, subject=f"user {name}",
                             observed=observed, expected="requirepass (or ACL users with passwords)",
                             severity="critical" if scope in ("any", "public") else None)
            elif state.passwords:
                yield _password_outcome(conf, name, state.passwords, where)
            else:
                yield passed(f"{_who(name)} needs a password (stored hashed)", at=at, subject=f"user {name}",
                             observed="hashed password", expected="a password")


def _reachable(conf: RedisConf, command: str) -> list[str]:
    """ACL users that can run `command` (empty when it is renamed away or switched off)."""
    if conf.renamed_to(command) is not None:
        return []
    switch = SWITCHED.get(command)
    if switch:
        setting = conf.get(switch)
        if setting is None or setting.args[0].lower() == "no":
            return []
    if conf.acl_unread is not None:
        return ["(users in an unread ACL file)"]
    return [name for name, (state, _) in sorted(conf.user_states().items())
            if state.enabled and state.allows(command)]


@check(
    id="redis.dangerous-commands",
    title="Redis admin commands are disabled, and the ones Sidekiq needs are not",
    component="redis",
    severity="medium",
    threats=["T-CACHE-EXPOSED", "T-SIDEKIQ-QUEUE", "T-HOST-COMPROMISE"],
    needs=[kinds.REDIS_CONF],
    rationale="""FLUSHALL and FLUSHDB wipe timelines and the Sidekiq queue in one call; CONFIG turns
        off protection at run time (and, before Redis 7, writes files where it is told, the classic
        way from Redis to a shell); DEBUG and MODULE crash Redis or load code. Mastodon needs none
        of them: rename them to "" or deny them with ACLs (-@dangerous, then +info +keys). Do not
        disable what Mastodon uses: Sidekiq runs Lua scripts (SCRIPT, EVALSHA, EVAL), so renaming
        those breaks scheduled jobs and retries; INFO and KEYS are used by the dashboard and tootctl.
        DEBUG and MODULE are already off in Redis 7 unless enable-debug-command or
        enable-module-command says otherwise.""",
    remediation=Remediation(
        "Rename the admin commands away (or deny them to Mastodon's ACL user).",
        'rename-command FLUSHALL ""\nrename-command FLUSHDB ""\nrename-command CONFIG ""\nrename-command DEBUG ""',
    ),
    references=[SECURITY_DOCS, ACL_DOCS],
    tags=["hardening"],
)
def dangerous_commands(facts: FactSet) -> Iterator[Outcome]:
    for conf in facts.all(kinds.REDIS_CONF):
        open_commands = {cmd.upper(): users for cmd in DANGEROUS if (users := _reachable(conf, cmd))}
        renames = [conf.renames[c] for c in DANGEROUS if c in conf.renames]
        where = renames[0].location if renames else conf.at()
        expected = 'FLUSHALL, FLUSHDB, CONFIG renamed to "" or denied by ACL; DEBUG, MODULE off'
        if open_commands:
            users = sorted({u for found in open_commands.values() for u in found})
            yield failed(f"{', '.join(open_commands)} can be run by {', '.join(users)}", at=where,
                         subject="admin commands", observed=", ".join(open_commands) + " available",
                         expected=expected)
        else:
            yield passed("admin commands are renamed away, switched off or denied by ACL", at=where,
                         subject="admin commands", observed="none available", expected=expected)
        broken = [c.upper() for c in NEEDED if conf.renamed_to(c) is not None]
        if broken:
            rename = conf.renames[broken[0].lower()]
            yield failed(f"{', '.join(broken)} renamed: Sidekiq's scheduler and unique jobs need Lua scripting",
                         at=rename.location, subject="commands Sidekiq needs", observed=rename.value,
                         expected="EVAL, EVALSHA and SCRIPT left as they are", severity="high")


# --- how Mastodon connects (.env.production) ----------------------------------------------------------


def _compose_service(facts: FactSet, host: str) -> tuple[ComposeFile, ComposeService] | None:
    """The compose service a host name is, in a compose file of the same tree."""
    for compose in facts.all(kinds.COMPOSE):
        service = compose.services.get(host)
        if service is not None:
            return compose, service
    return None


def _redis_where(endpoint: Endpoint) -> str:
    if endpoint.scheme:
        return f"{endpoint.scheme}:// to {endpoint.host}"
    return f"{endpoint.origin.key if endpoint.origin else 'REDIS_HOST'}={endpoint.host}"


@check(
    id="redis.env-password",
    title="Mastodon authenticates to Redis",
    component="redis",
    severity="high",
    threats=["T-SIDEKIQ-QUEUE", "T-CACHE-EXPOSED"],
    needs=[kinds.MASTODON_ENV],
    reads=[kinds.COMPOSE],
    rationale="""Whoever can write to Mastodon's Redis can queue Sidekiq jobs with arbitrary
        arguments and rewrite cached timelines. A Redis on another host must require a password;
        on this host a password still stops other local processes and SSRF-style tricks, so its
        absence there is a warning.""",
    remediation=Remediation("Set requirepass (or an ACL user) in redis.conf and give it to Mastodon.",
                            "REDIS_PASSWORD=<output of: openssl rand -hex 24>"),
    references=[CONFIG_DOCS + "#redis_password", "https://redis.io/docs/latest/operate/oss_and_stack/management/security/"],
    tags=["redis", "credentials"],
)
def redis_password(facts: FactSet) -> Iterator[Outcome]:
    for env in facts.all(kinds.MASTODON_ENV):
        for endpoint in redis_endpoints(env):
            if endpoint.templated or endpoint.password_templated:
                yield templated(env, endpoint.password_templated or endpoint.origin)
            elif endpoint.password_set:
                yield passed(f"the {endpoint.role} connection has a password", at=var_at(env, endpoint.origin),
                             subject=endpoint.role, observed="password set", expected="password set")
            elif (service := _compose_service(facts, endpoint.host)) is not None:
                compose, svc = service
                level, how = service_reach(compose, svc)
                if level == "internal":
                    yield passed(f"the {endpoint.role} is the compose service {svc.name} without a password, which "
                                 f"only containers on its internal network reach ({how}: Mastodon's compose setup)",
                                 at=var_at(env, endpoint.origin), subject=endpoint.role,
                                 observed=f"no password ({_redis_where(endpoint)}); {how}", expected="password set")
                else:
                    yield warned(f"the {endpoint.role} is the compose service {svc.name}, used without a password; "
                                 f"it is reachable beyond an internal network ({how}; redis.compose-no-password "
                                 "judges that)", at=var_at(env, endpoint.origin), subject=endpoint.role,
                                 observed=f"no password ({_redis_where(endpoint)})", expected="password set",
                                 severity="medium")
            elif endpoint.local:
                yield warned(f"the {endpoint.role} on this host is used without a password (other local processes "
                             "can use it; redis.auth judges the server's own settings where redis.conf is read)",
                             at=var_at(env, endpoint.origin), subject=endpoint.role,
                             observed=f"no password ({_redis_where(endpoint)})", expected="password set",
                             severity="medium")
            else:
                yield failed(f"the {endpoint.role} at {endpoint.host} is used without a password",
                             at=var_at(env, endpoint.origin), subject=endpoint.role,
                             observed=f"no password ({_redis_where(endpoint)})", expected="password set")


@check(
    id="redis.env-tls",
    title="A Redis on another host is reached over TLS (rediss://)",
    component="redis",
    severity="medium",
    threats=["T-INTERNAL-CLEARTEXT", "T-CACHE-EXPOSED"],
    needs=[kinds.MASTODON_ENV],
    rationale="""Redis speaks clear text unless the client asks for TLS, which Mastodon does only
        with a rediss:// REDIS_URL (and REDIS_DRIVER=ruby). Across a network, sessions, job
        arguments and the Redis password are then readable and the queue can be tampered with.""",
    remediation=Remediation("Enable TLS on the Redis server and connect with a rediss:// URL.",
                            "REDIS_URL=rediss://:<password>@redis.internal:6380\nREDIS_DRIVER=ruby"),
    references=[CONFIG_DOCS + "#redis_url"],
    tags=["redis", "tls"],
)
def redis_tls(facts: FactSet) -> Iterator[Outcome]:
    for env in facts.all(kinds.MASTODON_ENV):
        for endpoint in redis_endpoints(env):
            if endpoint.templated:
                yield templated(env, endpoint.origin)
            elif endpoint.local:
                yield passed(f"the {endpoint.role} is on this host", at=var_at(env, endpoint.origin),
                             subject=endpoint.role, observed=_redis_where(endpoint), expected="local or rediss://")
            elif endpoint.scheme == "rediss":
                yield passed(f"the {endpoint.role} at {endpoint.host} is reached over TLS",
                             at=var_at(env, endpoint.origin), subject=endpoint.role, observed="rediss://",
                             expected="rediss://")
            else:
                yield failed(f"the {endpoint.role} at {endpoint.host} is reached in clear",
                             at=var_at(env, endpoint.origin), subject=endpoint.role, observed=_redis_where(endpoint), expected="rediss://")


# --- docker-compose -----------------------------------------------------------------------------------


@check(
    id="redis.compose-published-port",
    title="The Redis container publishes no port beyond loopback",
    component="redis",
    severity="high",
    threats=["T-CACHE-EXPOSED", "T-SIDEKIQ-QUEUE"],
    needs=[kinds.COMPOSE],
    rationale="""Redis holds sessions, caches and Sidekiq's job queue; whoever writes to it can enqueue
        jobs that Sidekiq runs. The Redis image turns protected mode off, so a published port with no
        password is open to anyone who can reach it, and Docker publishes ahead of the host firewall.""",
    remediation=Remediation("Remove the ports of the Redis service; the containers reach it over the "
                            "compose network.", "  redis:\n    networks:\n      - internal_network"),
    references=PUBLISHED_PORT_REFERENCES,
    tags=["docker", "network"],
)
def redis_published(facts: FactSet) -> Iterator[Outcome]:
    yield from backend_publish(facts, "redis", "Redis")


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
    needs=[kinds.COMPOSE],
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
    for compose in facts.all(kinds.COMPOSE):
        for service in compose.by_role("redis"):
            how = _redis_password(service)
            if how == "?":
                level, where = service_reach(compose, service)
                if level == "internal":
                    yield passed(f"Redis reads a mounted config, and only its internal network reaches it ({where})",
                                 at=service.location, subject=service_subject(service), observed=where,
                                 expected="internal network only, or a password")
                else:
                    yield skipped("Redis reads a mounted config file: whether it asks for a password is "
                                  "decided there (audit that file)", at=service.location,
                                  subject=service_subject(service))
            elif how:
                yield passed("Redis asks for a password", at=service.location, subject=service_subject(service),
                             observed=how, expected="a password, or internal network only")
            else:
                yield unauthenticated(compose, service, "Redis accepts connections without a password",
                                       "no password", "internal network only, or a password", service.location)


# --- from outside (probe: ports) ----------------------------------------------------------------------


@check(
    id="ports.redis-noauth",
    title="A reachable Redis requires a password",
    component="redis",
    severity="critical",
    threats=["T-CACHE-EXPOSED", "T-SIDEKIQ-QUEUE"],
    needs=[kinds.PORT_SCAN],
    rationale="""A Redis that answers PING with PONG to a stranger lets them read sessions and
        timelines, rewrite cached content, and push Sidekiq jobs that the workers run: an exposed,
        password-less Redis is remote code execution on the app hosts.""",
    remediation=Remediation("Set a long requirepass (and REDIS_PASSWORD in .env.production), keep protected mode "
                            "on and bind Redis to loopback.",
                            "requirepass <a long random secret>\nprotected-mode yes\nbind 127.0.0.1 -::1"),
    references=["https://redis.io/docs/latest/operate/oss_and_stack/management/security/"],
    tags=["network", "ports", "auth"],
)
def redis_noauth(facts: FactSet) -> Iterator[Outcome]:
    for row, outcome in per_service(facts, ("redis",), "Redis"):
        if outcome is not None:
            yield outcome
            continue
        auth = row.details.get("auth")
        version = row.details.get("version")
        kw = dict(at=row.at(), subject=f"Redis {row.where}", expected="-NOAUTH (a password is required)")
        if auth == "none":
            seen = "PING -> +PONG" + (f", INFO server -> redis_version {version}" if version else "")
            yield failed(f"{row.label} at {row.where} answers without a password", observed=seen, **kw)
        elif auth == "protected-mode":
            yield passed(f"Redis at {row.where} refuses outside clients (protected mode)", observed=row.banner, **kw)
        else:
            yield passed(f"Redis at {row.where} requires a password", observed=row.banner, **kw)


# --- as it runs (live) --------------------------------------------------------------------------------


@check(
    id="redis.live-auth",
    title="Redis, as it runs, demands a password and stays local",
    component="redis",
    severity="critical",
    threats=["T-CACHE-EXPOSED", "T-SIDEKIQ-QUEUE"],
    needs=[kinds.REDIS_LIVE],
    rationale="""Redis holds Sidekiq's queue: whoever can write to it runs jobs as Mastodon. The
        running server may differ from redis.conf (CONFIG SET at runtime, a pending restart), so
        the effective settings are asked for too.""",
    remediation=Remediation("Require a password and bind to loopback, then restart Redis.",
                            "requirepass <long random value>\nbind 127.0.0.1 -::1\nprotected-mode yes"),
    references=["https://redis.io/docs/latest/operate/oss_and_stack/management/security/"],
    tags=["live"],
)
def redis_live_auth(facts: FactSet) -> Iterator[Outcome]:
    for live in facts.all(kinds.REDIS_LIVE):
        if not live.auth_required:
            yield failed("Redis answers commands without a password", at=live.at(), subject="auth",
                         observed="PING answered without AUTH", expected="NOAUTH until authenticated")
        else:
            yield passed("Redis refuses commands until authenticated", at=live.at(), subject="auth",
                         observed="NOAUTH", expected="NOAUTH")
        if live.config_disabled:
            yield passed("CONFIG is renamed or denied: the running settings can be neither read nor changed "
                         "over the protocol (redis.conf is judged instead)", at=live.at(), subject="config",
                         observed="CONFIG unavailable", expected="CONFIG disabled, or bound and protected")
            continue
        if not live.config:
            yield skipped("the effective config could not be read (the password in redis.conf did not work)",
                          at=live.at(), subject="config")
            continue
        bind = live.config.get("bind", "")
        addresses = bind.split()
        wide = [a for a in addresses if a.lstrip("-") in ("*", "0.0.0.0", "::", "::*")]
        if wide or not addresses:
            yield failed("Redis is bound to every address", at=live.at(), subject="bind",
                         observed=bind or "(all)", expected="127.0.0.1 -::1")
        else:
            yield passed("Redis is bound to specific addresses", at=live.at(), subject="bind",
                         observed=bind, expected="127.0.0.1 -::1")
        protected = live.config.get("protected-mode")
        if protected is not None:
            outcome = passed if protected == "yes" else failed
            yield outcome(f"protected mode is {protected}", at=live.at(), subject="protected-mode",
                          observed=protected, expected="yes")
        for file_conf in facts.all(kinds.REDIS_CONF):
            file_bind = file_conf.get("bind")
            if file_bind is not None and file_bind.value.split() != addresses:
                yield warned("the running Redis is bound differently from redis.conf (changed at runtime, or "
                             "waiting for a restart)", at=live.at(), subject="bind drift",
                             observed=f"running: {bind}", expected=f"redis.conf: {file_bind.value}")
