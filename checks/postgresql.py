"""PostgreSQL: who can reach the database, how they authenticate, and whether the wire is encrypted;
from postgresql.conf and pg_hba.conf, the server as it runs (pg_settings, pg_authid), how Mastodon
connects (.env.production), a compose file, and what answers on port 5432 from outside.

Decisions (documented for admins in each rationale):
- A private listen address is a warning, not a failure: a database on its own host is reached
  over a private network. Every interface or a public address fails.
- `trust` fails for TCP rules (critical beyond loopback); over the local socket it is a warning:
  any account on the host becomes any role, but nothing off the host does.
- `password` (clear text) fails on TCP rules that are not hostssl; `md5` is a warning (the server
  answers it with SCRAM for SCRAM-stored passwords) unless password_encryption is md5, then it fails.
- Mastodon's own setup (peer over the local socket, scram-sha-256 on 127.0.0.1, a CREATEDB role)
  passes everything here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from mastoaudit import kinds, templating
from mastoaudit.addresses import widest_reach
from mastoaudit.checkdef import Remediation, check, errored, failed, passed, skipped, warned
from mastoaudit.facts import FactSet
from mastoaudit.judgments import template_value
from mastoaudit.judgments.compose import (
    COMPOSE_NETWORKS,
    MASTODON_COMPOSE,
    PUBLISHED_PORT_REFERENCES,
    backend_publish,
    service_subject,
    unauthenticated,
)
from mastoaudit.judgments.env import CONFIG_DOCS, templated, var_at
from mastoaudit.judgments.ports import per_service
from mastoaudit.model import Outcome
from mastoaudit.parsers.env import (
    database_endpoints,
)
from mastoaudit.parsers.postgres import HbaRule, PgSetting, PostgresConf

DOCS = "https://www.postgresql.org/docs/current/"
HBA_DOCS = DOCS + "auth-pg-hba-conf.html"
CONN_DOCS = DOCS + "runtime-config-connection.html"
MASTODON_INSTALL = "https://docs.joinmastodon.org/admin/install/"






def _unseen(conf: PostgresConf, setting: PgSetting | None) -> str | None:
    """Why a value might not be the one in force: an include that was not read comes after it."""
    missing = conf.overridable(setting)
    if not missing:
        return None
    first = missing[0]
    return f"{first.directive} {first.target!r} at {first.location} was not read and may change it"


# --- postgresql.conf ----------------------------------------------------------------------------------


def listen_scope(conf: PostgresConf) -> tuple[str | None, PgSetting | None]:
    """The widest reach of listen_addresses ("loopback" when unset), or None when templated."""
    setting = conf.get("listen_addresses")
    if setting is None:
        return "loopback", None
    if setting.templated:
        return None, setting
    parts = [p.strip() for p in setting.value.split(",") if p.strip()]
    if not parts:
        return "loopback", setting  # '' : the Unix socket only
    return widest_reach(parts), setting


def _hba_admits(facts: FactSet) -> str | None:
    """"loopback addresses", "loopback and private addresses" (or "no client") when every pg_hba.conf rule read on
    this target that admits TCP clients names such addresses only; None when none was read, a rule
    is templated or names what cannot be judged here (a host name, samenet: the server's own
    networks), or any rule admits more."""
    hbas = facts.all(kinds.PG_HBA)
    if not hbas:
        return None
    rules = [r for h in hbas for r in h.rules if r.conn_type != "local" and r.method != "reject"]
    if any(r.templated or r.address in (None, "samenet") for r in rules):
        return None
    if not rules:
        return "no client"
    widest = widest_reach(r.address for r in rules if r.address is not None)
    return {"loopback": "loopback addresses", "private": "loopback and private addresses"}.get(widest)


@check(
    id="postgresql.listen-addresses",
    title="PostgreSQL listens on loopback (or a private address) only",
    component="postgresql",
    severity="high",
    threats=["T-DB-EXPOSED"],
    needs=[kinds.POSTGRESQL_CONF],
    reads=[kinds.PG_HBA],
    rationale="""Mastodon reaches PostgreSQL over the local socket or 127.0.0.1 when both run on one
        host, and over a private network when the database has a host of its own. A server that
        listens on every interface or on a public address can be reached, probed and brute-forced
        from the internet; one firewall mistake away from a full data breach. A private address is
        reported as a warning so that you confirm pg_hba.conf and the firewall admit only the
        Mastodon hosts.""",
    remediation=Remediation(
        "Listen on localhost only, or on the private address the Mastodon hosts use.",
        "listen_addresses = 'localhost'",
    ),
    references=[CONN_DOCS, MASTODON_INSTALL],
    tags=["network"],
)
def listen_addresses(facts: FactSet) -> Iterator[Outcome]:
    for conf in facts.all(kinds.POSTGRESQL_CONF):
        scope, setting = listen_scope(conf)
        observed = setting.value if setting else "unset (localhost)"
        where = setting.location if setting else conf.at()
        expected = "localhost (or a private address for a remote database)"
        if scope is None:
            yield skipped("listen_addresses is a template value; it cannot be judged", at=where,
                          observed=observed, expected=expected)
        elif scope in ("any", "public"):
            heard = "every interface" if scope == "any" else "a public address"
            admits = _hba_admits(facts)
            if admits is not None:
                # What the rest of the tree shows: pg_hba refuses every other client before a
                # password is asked; the port still answers (pre-authentication code) and one
                # pg_hba edit opens it.
                yield failed(f"PostgreSQL listens on {heard}; pg_hba.conf admits only {admits} over TCP, so "
                             "other clients are refused before a password is asked, but the port still answers "
                             "every network it is reachable from, one pg_hba.conf line away from exposure",
                             at=where, observed=observed, expected=expected, severity="medium")
            else:
                yield failed(f"PostgreSQL listens on {heard}", at=where, observed=observed, expected=expected,
                             severity="critical" if scope == "any" else None)
        elif scope in ("private", "name"):
            what = "a private address" if scope == "private" else "a host name that cannot be judged here"
            yield warned(f"PostgreSQL listens on {what}: make sure only the Mastodon hosts can reach it",
                         at=where, observed=observed, expected=expected)
        elif (reason := _unseen(conf, setting)) is not None:
            yield warned(f"listen_addresses looks local, but {reason}", at=where, observed=observed,
                         expected=expected)
        else:
            yield passed("PostgreSQL listens on loopback only", at=where, observed=observed, expected=expected)


@check(
    id="postgresql.ssl",
    title="PostgreSQL encrypts connections that leave the host",
    component="postgresql",
    severity="high",
    threats=["T-INTERNAL-CLEARTEXT", "T-DB-EXPOSED"],
    needs=[kinds.POSTGRESQL_CONF],
    rationale="""When PostgreSQL listens beyond loopback, Mastodon's queries, the statuses and
        account data they return, and the login exchange cross a network. Without ssl = on they
        travel in clear text and can be read or altered by anything on the path. On a loopback-only
        server TLS adds nothing and is not required.""",
    remediation=Remediation(
        "Turn on TLS with a certificate for the database host, and set DB_SSLMODE=require (or "
        "verify-full) in Mastodon's .env.production.",
        "ssl = on\nssl_cert_file = '/etc/ssl/certs/db.example.pem'\nssl_key_file = '/etc/ssl/private/db.example.key'",
    ),
    references=[DOCS + "ssl-tcp.html", DOCS + "runtime-config-connection.html#GUC-SSL"],
    tags=["tls", "network"],
)
def ssl(facts: FactSet) -> Iterator[Outcome]:
    for conf in facts.all(kinds.POSTGRESQL_CONF):
        scope, listen = listen_scope(conf)
        setting = conf.get("ssl")
        observed = setting.value if setting else "unset (off)"
        where = setting.location if setting else (listen.location if listen else conf.at())
        if scope is None or (setting is not None and setting.templated):
            yield skipped("listen_addresses or ssl is a template value; it cannot be judged", at=where,
                          observed=observed, expected="on")
        elif scope == "loopback":
            yield passed("PostgreSQL listens on loopback only: no network leg to encrypt", at=where,
                         observed=observed, expected="on when listening beyond loopback")
        elif setting is not None and setting.as_bool():
            yield passed("TLS is on for connections from other hosts", at=where, observed=observed, expected="on")
        else:
            yield failed("PostgreSQL accepts connections from other hosts without TLS", at=where,
                         observed=f"{observed} (listen_addresses = {listen.value if listen else ''})",
                         expected="on")


@check(
    id="postgresql.password-encryption",
    title="PostgreSQL stores passwords as SCRAM-SHA-256",
    component="postgresql",
    severity="high",
    threats=["T-DB-WEAK-CREDENTIALS"],
    needs=[kinds.POSTGRESQL_CONF],
    rationale="""With password_encryption = md5, new and changed role passwords are stored as MD5
        hashes: a stolen hash (a backup, pg_authid) is enough to log in, and MD5 is quick to
        brute-force. scram-sha-256 is the default since PostgreSQL 14; leaving it unset is fine
        there.""",
    remediation=Remediation(
        "Set scram-sha-256 (or remove the line on PostgreSQL 14 and later), then set each role's "
        "password again so that it is stored as SCRAM.",
        "password_encryption = scram-sha-256",
    ),
    references=[DOCS + "runtime-config-connection.html#GUC-PASSWORD-ENCRYPTION", DOCS + "auth-password.html"],
    tags=["auth"],
)
def password_encryption(facts: FactSet) -> Iterator[Outcome]:
    for conf in facts.all(kinds.POSTGRESQL_CONF):
        setting = conf.get("password_encryption")
        if setting is None:
            reason = _unseen(conf, None)
            if reason:
                yield warned(f"password_encryption is unset, but {reason}", at=conf.at(),
                             observed="unset (scram-sha-256)", expected="scram-sha-256")
            else:
                yield passed("password_encryption is unset: scram-sha-256, the default since PostgreSQL 14",
                             at=conf.at(), observed="unset (scram-sha-256)", expected="scram-sha-256")
            continue
        value = setting.value.strip().lower()
        if setting.templated:
            yield template_value(setting, "password_encryption", "scram-sha-256")
        elif value == "scram-sha-256":
            yield passed("passwords are stored as SCRAM-SHA-256", at=setting.location, observed=setting.value,
                         expected="scram-sha-256")
        else:
            yield failed("role passwords are stored as MD5 hashes" if value == "md5"
                         else f"password_encryption {setting.value!r} is not scram-sha-256",
                         at=setting.location, observed=setting.value, expected="scram-sha-256")


@check(
    id="postgresql.log-connections",
    title="PostgreSQL logs connections",
    component="postgresql",
    severity="low",
    threats=["T-DB-WEAK-CREDENTIALS", "T-DB-EXPOSED"],
    needs=[kinds.POSTGRESQL_CONF],
    rationale="""Without log_connections a password-guessing run or a connection from an unexpected
        host leaves only failed-authentication lines, and a successful one leaves nothing. With it,
        each connection is logged with its client address, role and database.""",
    remediation=Remediation("Log connections (and disconnections, for session lengths).",
                            "log_connections = on\nlog_disconnections = on"),
    references=[DOCS + "runtime-config-logging.html#GUC-LOG-CONNECTIONS"],
    tags=["logging"],
)
def log_connections(facts: FactSet) -> Iterator[Outcome]:
    for conf in facts.all(kinds.POSTGRESQL_CONF):
        setting = conf.get("log_connections")
        if setting is not None and setting.templated:
            yield template_value(setting, "log_connections", "on")
        elif setting is not None and setting.as_bool():
            yield passed("connections are logged", at=setting.location, observed=setting.value, expected="on")
        else:
            yield warned("connections are not logged", at=setting.location if setting else conf.at(),
                         observed=setting.value if setting else "unset (off)", expected="on")


# --- pg_hba.conf ------------------------------------------------------------------------------


def _each_rule(facts: FactSet, picks: Callable[[HbaRule], bool], judge: Callable[[HbaRule], Iterator[Outcome]],
               none: str, none_observed: str, expected: str) -> Iterator[Outcome]:
    """Each pg_hba.conf: its templated rules skipped, the rules a check picks judged one by one, or,
    when it picks none, one pass saying so ("none" and "{n} rules, none <none_observed>")."""
    for hba in facts.all(kinds.PG_HBA):
        yield from (skipped("rule holds template values; it cannot be judged", at=r.location, observed=r.text)
                    for r in hba.rules if r.templated)
        rules = [r for r in hba.rules if not r.templated]
        picked = [r for r in rules if picks(r)]
        for rule in picked:
            yield from judge(rule)
        if not picked and rules:
            yield passed(none, at=hba.at(), observed=f"{len(rules)} rules, none {none_observed}", expected=expected)


@check(
    id="postgresql.hba-trust",
    title="pg_hba.conf never trusts a connection without authentication",
    component="postgresql",
    severity="critical",
    threats=["T-DB-EXPOSED", "T-DB-WEAK-CREDENTIALS"],
    needs=[kinds.PG_HBA],
    rationale="""A `trust` rule lets whoever matches it connect as any role, the postgres superuser
        included, without a password. On a TCP rule that is every process on the host (127.0.0.1)
        or every client in the address range. On the local socket it is every account on the host,
        which is reported as a warning: Mastodon's guide uses `peer` there, which ties database
        roles to system accounts.""",
    remediation=Remediation(
        "Use peer for the local socket and scram-sha-256 for TCP.",
        "local   all   all                 peer\nhost    all   all   127.0.0.1/32  scram-sha-256",
    ),
    references=[HBA_DOCS, DOCS + "auth-trust.html"],
    tags=["auth"],
)
def hba_trust(facts: FactSet) -> Iterator[Outcome]:
    def judge(rule: HbaRule) -> Iterator[Outcome]:
        expected = "peer" if rule.conn_type == "local" else "scram-sha-256"
        if rule.conn_type == "local":
            yield warned("any account on this host may connect over the socket as any role, superuser included",
                         at=rule.location, observed=rule.text, expected=expected, subject=rule.text, severity="medium")
        elif rule.loopback_only:
            yield failed("any process on this host may connect as any role without a password",
                         at=rule.location, observed=rule.text, expected=expected, subject=rule.text, severity="high")
        else:
            yield failed("clients in this address range may connect as any role without a password",
                         at=rule.location, observed=rule.text, expected=expected, subject=rule.text)

    yield from _each_rule(facts, lambda r: r.method == "trust", judge,
                          "no rule trusts connections without authentication", "with trust", "no trust rules")


def _listening(facts: FactSet) -> tuple[str, str] | None:
    """How far PostgreSQL listens, as the postgresql.conf files of this target say: (scope, where);
    None when none was read or one is templated. The widest of several wins."""
    found: list[tuple[str, str]] = []
    for conf in facts.all(kinds.POSTGRESQL_CONF):
        scope, setting = listen_scope(conf)
        if scope is None or _unseen(conf, setting):
            return None
        found.append((scope, f"listen_addresses at {setting.location}" if setting else f"the default, {conf.path}"))
    if not found:
        return None
    order = ["any", "public", "name", "private", "loopback"]
    return min(found, key=lambda f: order.index(f[0]) if f[0] in order else 0)


@check(
    id="postgresql.hba-any-address",
    title="pg_hba.conf admits no client from any address",
    component="postgresql",
    severity="critical",
    threats=["T-DB-EXPOSED"],
    needs=[kinds.PG_HBA],
    reads=[kinds.POSTGRESQL_CONF],
    rationale="""A host rule for 0.0.0.0/0, ::/0 or `all` accepts a login attempt from anywhere on the
        internet that reaches the port. For all databases and all roles it leaves the
        password as the only barrier to the whole database. Restrict each rule to the addresses of
        the Mastodon hosts (web, Sidekiq, streaming) and to Mastodon's database and role.""",
    remediation=Remediation(
        "Name the Mastodon hosts' addresses (and database and role) instead of any address.",
        "hostssl  mastodon_production  mastodon  10.0.0.0/24  scram-sha-256",
    ),
    references=[HBA_DOCS],
    tags=["network", "auth"],
)
def hba_any_address(facts: FactSet) -> Iterator[Outcome]:
    listening = _listening(facts)

    def judge(rule: HbaRule) -> Iterator[Outcome]:
        wide = rule.all_users and (rule.all_databases or "replication" in rule.databases)
        verdict = failed if wide else warned
        what = "all databases and roles" if wide else f"{','.join(rule.databases)} as {','.join(rule.users)}"
        severity = None if wide else "medium"
        context = ""
        if listening is not None and listening[0] == "loopback":
            # What the rest of the tree shows: nothing off the host reaches the rule today.
            severity = "medium" if wide else "low"
            context = (f"; but PostgreSQL listens on localhost only ({listening[1]}), so nobody off the host "
                       "reaches this rule today: it opens the database the day listen_addresses changes")
        elif listening is None:
            context = "; whether PostgreSQL listens beyond localhost is not known (no postgresql.conf read)"
        yield verdict(f"clients from any address may log in to {what}{context}", at=rule.location,
                      observed=rule.text, expected="the Mastodon hosts' addresses", subject=rule.text,
                      severity=severity)

    yield from _each_rule(facts, lambda r: r.conn_type != "local" and r.any_address and r.method != "reject", judge,
                          "no rule admits clients from any address", "for any address", "specific addresses")


@check(
    id="postgresql.hba-cleartext-password",
    title="pg_hba.conf does not take clear-text passwords over the network",
    component="postgresql",
    severity="high",
    threats=["T-INTERNAL-CLEARTEXT", "T-DB-WEAK-CREDENTIALS"],
    needs=[kinds.PG_HBA],
    rationale="""The `password` method sends the role's password in clear text. On a TCP rule that
        is not hostssl anyone on the path reads it; over the local socket or hostssl it is not
        exposed on the wire, but scram-sha-256 never reveals the password to the server at all.""",
    remediation=Remediation("Use scram-sha-256.", "host  mastodon_production  mastodon  10.0.0.5/32  scram-sha-256"),
    references=[HBA_DOCS, DOCS + "auth-password.html"],
    tags=["auth", "tls"],
)
def hba_cleartext_password(facts: FactSet) -> Iterator[Outcome]:
    def judge(rule: HbaRule) -> Iterator[Outcome]:
        if rule.conn_type in ("local", "hostssl"):
            over = "the local socket" if rule.conn_type == "local" else "TLS"
            yield passed(f"clear-text password only over {over}", at=rule.location, observed=rule.text,
                         expected="scram-sha-256", subject=rule.text)
        elif rule.loopback_only:
            yield warned("clear-text password over loopback TCP", at=rule.location, observed=rule.text,
                         expected="scram-sha-256", subject=rule.text, severity="low")
        else:
            yield failed("passwords cross the network in clear text", at=rule.location, observed=rule.text,
                         expected="scram-sha-256 (or hostssl)", subject=rule.text)

    yield from _each_rule(facts, lambda r: r.method == "password", judge,
                          "no rule uses the clear-text password method", "with password", "scram-sha-256")


@check(
    id="postgresql.hba-md5",
    title="pg_hba.conf uses scram-sha-256, not md5",
    component="postgresql",
    severity="medium",
    threats=["T-DB-WEAK-CREDENTIALS"],
    needs=[kinds.PG_HBA],
    rationale="""The md5 method accepts roles whose passwords are stored as MD5 hashes, which are
        quick to brute-force and, once stolen, are enough to log in. PostgreSQL answers md5 rules
        with SCRAM for passwords stored as SCRAM, so this is a warning; it fails when
        password_encryption = md5 makes every new password an MD5 hash. PostgreSQL 18 deprecates MD5
        passwords.""",
    remediation=Remediation(
        "Replace md5 with scram-sha-256 once every role's password has been set again under "
        "password_encryption = scram-sha-256.",
        "host  all  all  127.0.0.1/32  scram-sha-256",
    ),
    references=[HBA_DOCS, DOCS + "auth-password.html"],
    tags=["auth"],
)
def hba_md5(facts: FactSet) -> Iterator[Outcome]:
    md5_stored = [s for c in facts.all(kinds.POSTGRESQL_CONF)
                  if (s := c.get("password_encryption")) and s.value.lower() == "md5"]

    def judge(rule: HbaRule) -> Iterator[Outcome]:
        if md5_stored:
            yield failed(f"md5 authentication, and passwords are stored as MD5 ({md5_stored[0].location})",
                         at=rule.location, observed=rule.text, expected="scram-sha-256", subject=rule.text)
        else:
            yield warned("md5 authentication accepts roles with MD5-hashed passwords", at=rule.location,
                         observed=rule.text, expected="scram-sha-256", subject=rule.text)

    yield from _each_rule(facts, lambda r: r.method == "md5", judge, "no rule uses md5", "with md5", "scram-sha-256")


# --- how Mastodon connects (.env.production) ----------------------------------------------------------


SECURE_SSLMODES = ("require", "verify-ca", "verify-full")


@check(
    id="postgresql.env-sslmode",
    title="A database on another host is reached over TLS (DB_SSLMODE)",
    component="postgresql",
    severity="high",
    threats=["T-INTERNAL-CLEARTEXT", "T-DB-WEAK-CREDENTIALS"],
    needs=[kinds.MASTODON_ENV],
    rationale="""DB_SSLMODE defaults to prefer, which falls back to clear text without a word, and
        anyone on the path can force that. Every query, every private message and the database
        password then cross the network readable. A socket or loopback connection never leaves the
        host and needs no TLS.""",
    remediation=Remediation("Require TLS for a remote database (verify-full also checks the certificate).",
                            "DB_SSLMODE=verify-full"),
    references=[CONFIG_DOCS + "#db_sslmode", "https://www.postgresql.org/docs/current/libpq-ssl.html"],
    tags=["tls", "database"],
)
def postgresql_sslmode(facts: FactSet) -> Iterator[Outcome]:
    for env in facts.all(kinds.MASTODON_ENV):
        sslmode_var = env.get("DB_SSLMODE")
        for endpoint in database_endpoints(env):
            if endpoint.templated or (sslmode_var is not None and sslmode_var.templated):
                yield templated(env, endpoint.origin if endpoint.templated else sslmode_var)
                continue
            if endpoint.local:
                yield passed(f"the {endpoint.role} is on this host", at=var_at(env, endpoint.origin),
                             subject=endpoint.role, observed=endpoint.host, expected="socket, loopback or TLS")
                continue
            mode = endpoint.query.get("sslmode") or (sslmode_var.value if sslmode_var and sslmode_var.is_set else "")
            shown = mode or "unset (prefer)"
            where = sslmode_var if sslmode_var and sslmode_var.is_set and "sslmode" not in endpoint.query else None
            if mode in SECURE_SSLMODES:
                yield passed(f"TLS is required to the {endpoint.described}", at=var_at(env, where or endpoint.origin),
                             subject=endpoint.role, observed=shown, expected="require or verify-full")
            else:
                yield failed(f"the {endpoint.described} may be reached without TLS",
                             at=var_at(env, where or endpoint.origin), subject=endpoint.role, observed=shown,
                             expected="require or verify-full")


# --- docker-compose -----------------------------------------------------------------------------------


@check(
    id="postgresql.compose-published-port",
    title="The database container publishes no port beyond loopback",
    component="postgresql",
    severity="high",
    threats=["T-DB-EXPOSED"],
    needs=[kinds.COMPOSE],
    rationale="""Mastodon's containers reach PostgreSQL over the compose network; nothing needs a
        published port. `5432:5432` opens the database on every interface of the host, and Docker's
        own iptables rules put it ahead of ufw or firewalld, so the host firewall does not close it.""",
    remediation=Remediation("Remove the ports of the database service (or bind them to 127.0.0.1 for "
                            "local tools).", "  db:\n    # no ports:\n    networks:\n      - internal_network"),
    references=PUBLISHED_PORT_REFERENCES,
    tags=["docker", "network"],
)
def db_published(facts: FactSet) -> Iterator[Outcome]:
    yield from backend_publish(facts, "postgresql", "the database")


@check(
    id="postgresql.compose-trust-auth",
    title="A database trusting connections without a password is reachable by nothing but its own network",
    component="postgresql",
    severity="critical",
    threats=["T-DB-EXPOSED", "T-DB-WEAK-CREDENTIALS"],
    needs=[kinds.COMPOSE],
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
    for compose in facts.all(kinds.COMPOSE):
        for service in compose.by_role("postgresql"):
            setting = service.env("POSTGRES_HOST_AUTH_METHOD")
            value = (setting.value or "") if setting else ""
            if setting is not None and templating.is_templated(value, "compose"):
                yield skipped("POSTGRES_HOST_AUTH_METHOD is set by a variable: cannot judge", at=setting.location,
                              subject=service_subject(service), observed="templated", expected="not trust")
            elif setting is None and service.env_files:
                files = ", ".join(f.value for f in service.env_files)
                yield skipped(f"POSTGRES_HOST_AUTH_METHOD may be set in env_file {files}, which is not read here",
                              at=service.location, subject=service_subject(service), observed="not in environment",
                              expected="not trust")
            elif value.strip().lower() == "trust":
                yield unauthenticated(compose, service, "the database trusts every connection without a password",
                                       "POSTGRES_HOST_AUTH_METHOD=trust", "internal network only, or a password",
                                       setting.location)
            else:
                method = value or "unset (scram-sha-256 with POSTGRES_PASSWORD)"
                yield passed("the database asks for a password", at=setting.location if setting else service.location,
                             subject=service_subject(service), observed=f"POSTGRES_HOST_AUTH_METHOD={method}",
                             expected="not trust")


# --- from outside (probe: ports) ----------------------------------------------------------------------


@check(
    id="ports.postgres-trust",
    title="A reachable PostgreSQL does not let anyone in without a password",
    component="postgresql",
    severity="critical",
    threats=["T-DB-EXPOSED", "T-DB-WEAK-CREDENTIALS"],
    needs=[kinds.PORT_SCAN],
    rationale="""With `trust` in pg_hba.conf, PostgreSQL answers a login as `mastodon` or
        `postgres` with AuthenticationOk and no password: whoever reaches the port owns the
        database. The probe sends a StartupMessage for each role and never a password.""",
    remediation=Remediation("Replace trust with scram-sha-256 for every host line and allow only the app hosts.",
                            "# pg_hba.conf\nhostssl mastodon_production mastodon 127.0.0.1/32 scram-sha-256"),
    references=["https://www.postgresql.org/docs/current/auth-pg-hba-conf.html"],
    tags=["network", "ports", "auth"],
)
def postgres_trust(facts: FactSet) -> Iterator[Outcome]:
    for row, outcome in per_service(facts, ("postgresql",), "PostgreSQL"):
        if outcome is not None:
            yield outcome
            continue
        logins: dict = row.details.get("logins", {})
        observed = "; ".join(f"{user}: {_login(answer)}" for user, answer in logins.items())
        kw = dict(at=row.at(), subject=f"PostgreSQL {row.where}", observed=observed,
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
    needs=[kinds.PORT_SCAN],
    rationale="""A database reached over a network should encrypt the connection: without TLS
        the password exchange and every query and row travel in clear. The probe sends the
        8-byte SSLRequest; PostgreSQL answers 'S' when it offers TLS and 'N' when it does not.""",
    remediation=Remediation("Turn on ssl in postgresql.conf with a certificate and use hostssl lines "
                            "(DB_SSLMODE=require or verify-full in .env.production).",
                            "ssl = on\nssl_cert_file = '/etc/ssl/certs/db.pem'\n"
                            "ssl_key_file = '/etc/ssl/private/db.key'"),
    references=["https://www.postgresql.org/docs/current/ssl-tcp.html"],
    tags=["network", "ports", "tls"],
)
def postgres_tls(facts: FactSet) -> Iterator[Outcome]:
    for row, outcome in per_service(facts, ("postgresql",), "PostgreSQL"):
        if outcome is not None:
            yield outcome
            continue
        kw = dict(at=row.at(), subject=f"PostgreSQL {row.where}", expected="SSLRequest -> 'S'")
        if row.details.get("tls_offered"):
            yield passed(f"PostgreSQL at {row.where} offers TLS", observed="SSLRequest -> 'S'", **kw)
        else:
            yield failed(f"PostgreSQL at {row.where} does not offer TLS", observed=f"SSLRequest -> {row.banner}", **kw)


# --- as it runs (live) --------------------------------------------------------------------------------


_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


@check(
    id="postgresql.live-settings",
    title="PostgreSQL's running settings keep it local, hashed and encrypted",
    component="postgresql",
    severity="high",
    threats=["T-DB-EXPOSED", "T-DB-WEAK-CREDENTIALS", "T-INTERNAL-CLEARTEXT"],
    needs=[kinds.POSTGRES_LIVE],
    rationale="""What the server runs with is what counts: a setting changed by ALTER SYSTEM, a
        conf.d file or a pending restart makes the files say one thing and the server another.""",
    remediation=Remediation(
        "Set them in postgresql.conf (or ALTER SYSTEM) and restart PostgreSQL.",
        "listen_addresses = 'localhost'\npassword_encryption = scram-sha-256\nssl = on",
    ),
    references=["https://www.postgresql.org/docs/current/runtime-config-connection.html"],
    tags=["live"],
)
def postgres_live_settings(facts: FactSet) -> Iterator[Outcome]:
    for live in facts.all(kinds.POSTGRES_LIVE):
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
    needs=[kinds.POSTGRES_LIVE],
    rationale="""Mastodon's role needs to own its database (and CREATEDB for setup and migrations,
        as the docs create it); as a superuser, a SQL injection or a stolen DB_PASS reads every
        database and runs programs on the server (COPY ... PROGRAM).""",
    remediation=Remediation("Take superuser away from the application role.",
                            "ALTER ROLE mastodon NOSUPERUSER;"),
    references=["https://docs.joinmastodon.org/admin/install/#creating-a-user"],
    tags=["live"],
)
def postgres_roles(facts: FactSet) -> Iterator[Outcome]:
    for live in facts.all(kinds.POSTGRES_LIVE):
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
    id="postgresql.password-hashes",
    title="Every PostgreSQL role's password is stored as SCRAM-SHA-256, not MD5",
    component="postgresql",
    severity="high",
    threats=["T-DB-WEAK-CREDENTIALS"],
    needs=[kinds.POSTGRES_PASSWORD_HASHES],
    rationale="""password_encryption only decides how the next password is stored: a role whose
        password was set while it said md5 (or before PostgreSQL 14, or restored from such a dump)
        keeps an MD5 hash after the setting is fixed. An MD5 hash is the role name and password
        run once through MD5: whoever copies it (a backup, a replica, pg_authid) can log in with
        it under `md5` authentication, and guesses against it cost next to nothing. SCRAM-SHA-256
        hashes are salted and iterated, and are not enough to log in. PostgreSQL 18 deprecates
        MD5 passwords.""",
    remediation=Remediation(
        "With password_encryption = scram-sha-256, set each listed role's password again (the same "
        "one will do: it is stored anew as SCRAM), then make pg_hba.conf ask for scram-sha-256.",
        "ALTER ROLE mastodon PASSWORD '...';  -- or \\password mastodon in psql",
    ),
    references=[DOCS + "auth-password.html", DOCS + "runtime-config-connection.html#GUC-PASSWORD-ENCRYPTION"],
    tags=["live", "auth"],
)
def password_hashes(facts: FactSet) -> Iterator[Outcome]:
    for stored in facts.all(kinds.POSTGRES_PASSWORD_HASHES):
        where = stored.at()
        for role, method in sorted(stored.methods.items()):
            if method == "md5":
                yield failed(f"role {role}'s password is stored as an MD5 hash: a copy of it logs in", at=where,
                             subject=role, observed="md5", expected="scram-sha-256")
            elif method == "scram-sha-256":
                yield passed(f"role {role}'s password is stored as SCRAM-SHA-256", at=where, subject=role,
                             observed=method, expected="scram-sha-256")
            elif method == "other":
                yield warned(f"role {role}'s password is stored neither as SCRAM nor as MD5",
                             at=where, subject=role, observed="neither SCRAM nor MD5", expected="scram-sha-256")
            # "none": no password to hash (peer or cert login); postgresql.roles judges that
