"""Redis: Mastodon's cache, timelines and Sidekiq queue (T-CACHE-EXPOSED, T-SIDEKIQ-QUEUE).

Whoever can write to Redis can enqueue Sidekiq jobs, so an open Redis is a path to code execution
in Mastodon's workers, not only a cache leak.

What Mastodon needs from Redis, and so what these checks never ask to disable: Sidekiq and
sidekiq-unique-jobs run Lua scripts (SCRIPT LOAD, EVALSHA, EVAL); Sidekiq and the admin dashboard
read INFO; `tootctl feeds clear` uses KEYS. Mastodon never needs FLUSHALL, FLUSHDB, CONFIG, DEBUG
or MODULE (its cache is namespaced, so `tootctl cache clear` deletes by pattern, not FLUSHDB).
"""

from __future__ import annotations

from collections.abc import Iterator

from mastoaudit.checkdef import Remediation, check, failed, passed, skipped, warned
from mastoaudit.facts import FactSet
from mastoaudit.model import Location, Outcome
from mastoaudit.parsers.postgres import address_scope, is_templated
from mastoaudit.parsers.redis import RedisConf

SECURITY_DOCS = "https://redis.io/docs/latest/operate/oss_and_stack/management/security/"
ACL_DOCS = "https://redis.io/docs/latest/operate/oss_and_stack/management/security/acl/"
MASTODON_ENV = "https://docs.joinmastodon.org/admin/config/#redis"
_SCOPE_RANK = {"loopback": 0, "private": 1, "name": 2, "public": 3, "any": 4}
# Commands an attacker uses to wipe data or turn Redis into a file writer / module loader.
DANGEROUS = ("flushall", "flushdb", "config", "debug", "module")
# Off by default since Redis 7 unless these directives say yes (or local).
SWITCHED = {"debug": "enable-debug-command", "module": "enable-module-command"}
NEEDED = ("eval", "evalsha", "script")  # Sidekiq's scheduler and sidekiq-unique-jobs
SAMPLE_PASSWORDS = {"foobared", "password", "redis", "changeme", "secret", "mastodon"}
MIN_PASSWORD = 16


def _confs(facts: FactSet) -> list[RedisConf]:
    return facts.all("redis_conf")


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
    scope = max((address_scope(a) for a in bind.args), key=_SCOPE_RANK.__getitem__)
    return scope, bind.value, bind.location


@check(
    id="redis.bind",
    title="Redis listens on loopback (or a private address) only",
    component="redis",
    severity="high",
    threats=["T-CACHE-EXPOSED", "T-SIDEKIQ-QUEUE"],
    needs=["redis_conf"],
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
    for conf in _confs(facts):
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
    needs=["redis_conf"],
    rationale="""Protected mode is Redis' safety net: while the default user has no password and no
        bind is set, it refuses clients that do not come from loopback. Turning it off removes the
        net exactly when it is needed, after a bind or password mistake.""",
    remediation=Remediation("Leave protected mode on.", "protected-mode yes"),
    references=[SECURITY_DOCS],
    tags=["network"],
)
def protected_mode(facts: FactSet) -> Iterator[Outcome]:
    for conf in _confs(facts):
        setting = conf.get("protected-mode")
        if setting is not None and setting.templated:
            yield skipped("protected-mode is a template value", at=setting.location, observed=setting.value,
                          expected="yes")
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
    if any(is_templated(p) for p in passwords):
        return skipped(f"the password of {who} is a template value", at=at, subject=f"user {user}",
                       observed="templated", expected=f"a random password of {MIN_PASSWORD}+ characters")
    sample = [p for p in passwords if p.lower() in SAMPLE_PASSWORDS]
    shortest = min(len(p) for p in passwords)
    if sample:
        return failed(f"{who} has a well-known sample password", at=at, subject=f"user {user}",
                      observed="a sample value", expected=f"a random password of {MIN_PASSWORD}+ characters")
    if shortest < MIN_PASSWORD:
        return warned(f"the password of {who} is short: Redis answers many thousands of guesses a second", at=at,
                      subject=f"user {user}", observed=f"{shortest} characters",
                      expected=f"a random password of {MIN_PASSWORD}+ characters")
    return passed(f"{who} needs a password", at=at, subject=f"user {user}",
                  observed=f"password of {shortest} characters", expected="a password")


@check(
    id="redis.auth",
    title="Redis requires a password",
    component="redis",
    severity="high",
    threats=["T-CACHE-EXPOSED", "T-SIDEKIQ-QUEUE"],
    needs=["redis_conf"],
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
    for conf in _confs(facts):
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
    needs=["redis_conf"],
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
    for conf in _confs(facts):
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
