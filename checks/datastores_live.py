"""PostgreSQL and Redis as they run: effective settings and roles, which may differ from the files."""

from __future__ import annotations

from collections.abc import Iterator

from mastoaudit.checkdef import Remediation, check, failed, passed, skipped, warned
from mastoaudit.facts import FactSet
from mastoaudit.model import Outcome
from mastoaudit.parsers.live import PostgresLive, RedisLive

_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


@check(
    id="postgresql.live-settings",
    title="PostgreSQL's running settings keep it local, hashed and encrypted",
    component="postgresql",
    severity="high",
    threats=["T-DB-EXPOSED", "T-DB-WEAK-CREDENTIALS", "T-INTERNAL-CLEARTEXT"],
    needs=["postgres_live"],
    rationale="""What the server runs with is what counts: a setting changed by ALTER SYSTEM, a
        conf.d file or a pending restart makes the files say one thing and the server another.""",
    remediation=Remediation(
        "Set them in postgresql.conf (or ALTER SYSTEM) and restart PostgreSQL.",
        "listen_addresses = 'localhost'\npassword_encryption = scram-sha-256\nssl = on",
    ),
    references=["https://www.postgresql.org/docs/current/runtime-config-connection.html"],
    tags=["live"],
    modes=("live",),
)
def postgres_live_settings(facts: FactSet) -> Iterator[Outcome]:
    for live in facts.all("postgres_live"):
        assert isinstance(live, PostgresLive)
        s = live.settings
        if not s:
            yield skipped("settings could not be read", at=live.at())
            continue
        listen = {a.strip() for a in s.get("listen_addresses", "").split(",") if a.strip()}
        exposed = bool(listen - _LOOPBACK)
        if "*" in listen or "0.0.0.0" in listen or "::" in listen:
            yield failed("PostgreSQL listens on every address", at=live.at(), subject="listen_addresses",
                         observed=s["listen_addresses"], expected="localhost", severity="critical")
        elif exposed:
            yield warned("PostgreSQL listens beyond loopback: keep it firewalled to the app hosts", at=live.at(),
                         subject="listen_addresses", observed=s["listen_addresses"], expected="localhost")
        else:
            yield passed("PostgreSQL listens on loopback only", at=live.at(), subject="listen_addresses",
                         observed=s.get("listen_addresses", ""), expected="localhost")
        enc = s.get("password_encryption")
        if enc is not None:
            outcome = passed if enc == "scram-sha-256" else failed
            yield outcome(f"new passwords are stored as {enc}", at=live.at(), subject="password_encryption",
                          observed=enc, expected="scram-sha-256")
        ssl = s.get("ssl")
        if ssl is not None and exposed:
            outcome = passed if ssl == "on" else failed
            yield outcome(f"TLS is {ssl} for a server reachable over the network", at=live.at(), subject="ssl",
                          observed=ssl, expected="on")


@check(
    id="postgresql.roles",
    title="Only PostgreSQL's own admin role is a superuser, and login roles have passwords",
    component="postgresql",
    severity="high",
    threats=["T-DB-EXPOSED", "T-DB-WEAK-CREDENTIALS"],
    needs=["postgres_live"],
    rationale="""Mastodon's role needs to own its database (and CREATEDB for setup and migrations,
        as the docs create it); as a superuser, a SQL injection or a stolen DB_PASS reads every
        database and runs programs on the server (COPY ... PROGRAM).""",
    remediation=Remediation("Take superuser away from the application role.",
                            "ALTER ROLE mastodon NOSUPERUSER;"),
    references=["https://docs.joinmastodon.org/admin/install/#creating-a-user"],
    tags=["live"],
    modes=("live",),
)
def postgres_roles(facts: FactSet) -> Iterator[Outcome]:
    for live in facts.all("postgres_live"):
        assert isinstance(live, PostgresLive)
        if not live.roles:
            yield skipped("roles could not be read", at=live.at("pg_authid"))
            continue
        for role in live.roles:
            name = role["rolname"]
            if name == "postgres" or name.startswith("pg_"):
                continue
            where = live.at("pg_authid")
            powers = [p for p in ("super", "createrole", "replication", "bypassrls") if role.get(p)]
            if role.get("super"):
                yield failed(f"role {name} is a superuser", at=where, subject=name,
                             observed=", ".join(powers), expected="NOSUPERUSER (CREATEDB is fine)", severity="critical")
            elif powers:
                yield warned(f"role {name} has powers the app does not need: {', '.join(powers)}", at=where,
                             subject=name, observed=", ".join(powers), expected="none beyond CREATEDB")
            elif role.get("login") and role.get("no_password"):
                yield warned(f"role {name} can log in and has no password: only peer or trust rules let it in",
                             at=where, subject=name, observed="no password", expected="a password (scram-sha-256)")
            else:
                yield passed(f"role {name} is not privileged", at=where, subject=name,
                             observed="createdb" if role.get("createdb") else "no special powers",
                             expected="NOSUPERUSER")


@check(
    id="redis.live-auth",
    title="Redis, as it runs, demands a password and stays local",
    component="redis",
    severity="critical",
    threats=["T-CACHE-EXPOSED", "T-SIDEKIQ-QUEUE"],
    needs=["redis_live"],
    rationale="""Redis holds Sidekiq's queue: whoever can write to it runs jobs as Mastodon. The
        running server may differ from redis.conf (CONFIG SET at runtime, a pending restart), so
        the effective settings are asked for too.""",
    remediation=Remediation("Require a password and bind to loopback, then restart Redis.",
                            "requirepass <long random value>\nbind 127.0.0.1 -::1\nprotected-mode yes"),
    references=["https://redis.io/docs/latest/operate/oss_and_stack/management/security/"],
    tags=["live"],
    modes=("live",),
)
def redis_live_auth(facts: FactSet) -> Iterator[Outcome]:
    for live in facts.all("redis_live"):
        assert isinstance(live, RedisLive)
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
        for file_conf in facts.all("redis_conf"):
            file_bind = getattr(file_conf, "get", lambda _k: None)("bind")
            if file_bind is not None and hasattr(file_bind, "value"):
                file_bind = file_bind.value
            if isinstance(file_bind, str) and file_bind.split() != addresses:
                yield warned("the running Redis is bound differently from redis.conf (changed at runtime, or "
                             "waiting for a restart)", at=live.at(), subject="bind drift",
                             observed=f"running: {bind}", expected=f"redis.conf: {file_bind}")
