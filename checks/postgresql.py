"""PostgreSQL: who can reach the database, how they authenticate, and whether the wire is encrypted.

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

from collections.abc import Iterator

from mastoaudit.checkdef import Remediation, check, failed, passed, skipped, warned
from mastoaudit.facts import FactSet
from mastoaudit.model import Outcome
from mastoaudit.parsers.postgres import HbaRule, PgHba, PgSetting, PostgresConf, address_scope

DOCS = "https://www.postgresql.org/docs/current/"
HBA_DOCS = DOCS + "auth-pg-hba-conf.html"
CONN_DOCS = DOCS + "runtime-config-connection.html"
MASTODON_INSTALL = "https://docs.joinmastodon.org/admin/install/"
_SCOPE_RANK = {"loopback": 0, "private": 1, "name": 2, "public": 3, "any": 4}


def _confs(facts: FactSet) -> list[PostgresConf]:
    return facts.all("postgresql_conf")


def _hbas(facts: FactSet) -> list[PgHba]:
    return facts.all("pg_hba")


def _unseen(conf: PostgresConf, setting: PgSetting | None) -> str | None:
    """Why a value might not be the one in force: an include that was not read comes after it."""
    missing = conf.overridable(setting)
    if not missing:
        return None
    first = missing[0]
    return f"{first.directive} {first.target!r} at {first.location} was not read and may change it"


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
    return max((address_scope(p) for p in parts), key=_SCOPE_RANK.__getitem__), setting


@check(
    id="postgresql.listen-addresses",
    title="PostgreSQL listens on loopback (or a private address) only",
    component="postgresql",
    severity="high",
    threats=["T-DB-EXPOSED"],
    needs=["postgresql_conf"],
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
    for conf in _confs(facts):
        scope, setting = listen_scope(conf)
        observed = setting.value if setting else "unset (localhost)"
        where = setting.location if setting else conf.at()
        expected = "localhost (or a private address for a remote database)"
        if scope is None:
            yield skipped("listen_addresses is a template value; it cannot be judged", at=where,
                          observed=observed, expected=expected)
        elif scope in ("any", "public"):
            yield failed(f"PostgreSQL listens on {'every interface' if scope == 'any' else 'a public address'}",
                         at=where, observed=observed, expected=expected,
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
    needs=["postgresql_conf"],
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
    for conf in _confs(facts):
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
    needs=["postgresql_conf"],
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
    for conf in _confs(facts):
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
            yield skipped("password_encryption is a template value", at=setting.location,
                          observed=setting.value, expected="scram-sha-256")
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
    needs=["postgresql_conf"],
    rationale="""Without log_connections a password-guessing run or a connection from an unexpected
        host leaves only failed-authentication lines, and a successful one leaves nothing. With it,
        each connection is logged with its client address, role and database.""",
    remediation=Remediation("Log connections (and disconnections, for session lengths).",
                            "log_connections = on\nlog_disconnections = on"),
    references=[DOCS + "runtime-config-logging.html#GUC-LOG-CONNECTIONS"],
    tags=["logging"],
)
def log_connections(facts: FactSet) -> Iterator[Outcome]:
    for conf in _confs(facts):
        setting = conf.get("log_connections")
        if setting is not None and setting.templated:
            yield skipped("log_connections is a template value", at=setting.location, observed=setting.value,
                          expected="on")
        elif setting is not None and setting.as_bool():
            yield passed("connections are logged", at=setting.location, observed=setting.value, expected="on")
        else:
            yield warned("connections are not logged", at=setting.location if setting else conf.at(),
                         observed=setting.value if setting else "unset (off)", expected="on")


# --- pg_hba.conf ------------------------------------------------------------------------------


def _rules(facts: FactSet) -> Iterator[tuple[PgHba, list[HbaRule]]]:
    for hba in _hbas(facts):
        yield hba, [r for r in hba.rules if not r.templated]


def _templated(hba: PgHba) -> list[Outcome]:
    return [skipped("rule holds template values; it cannot be judged", at=r.location, observed=r.text)
            for r in hba.rules if r.templated]


@check(
    id="postgresql.hba-trust",
    title="pg_hba.conf never trusts a connection without authentication",
    component="postgresql",
    severity="critical",
    threats=["T-DB-EXPOSED", "T-DB-WEAK-CREDENTIALS"],
    needs=["pg_hba"],
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
    for hba, rules in _rules(facts):
        yield from _templated(hba)
        trusting = [r for r in rules if r.method == "trust"]
        for rule in trusting:
            expected = "peer" if rule.conn_type == "local" else "scram-sha-256"
            if rule.conn_type == "local":
                yield warned("any account on this host may connect over the socket as any role, superuser included",
                             at=rule.location, observed=rule.text, expected=expected, subject=rule.text,
                             severity="medium")
            elif rule.loopback_only:
                yield failed("any process on this host may connect as any role without a password",
                             at=rule.location, observed=rule.text, expected=expected, subject=rule.text,
                             severity="high")
            else:
                yield failed("clients in this address range may connect as any role without a password",
                             at=rule.location, observed=rule.text, expected=expected, subject=rule.text)
        if not trusting and rules:
            yield passed("no rule trusts connections without authentication", at=hba.at(),
                         observed=f"{len(rules)} rules, none with trust", expected="no trust rules")


@check(
    id="postgresql.hba-any-address",
    title="pg_hba.conf admits no client from any address",
    component="postgresql",
    severity="critical",
    threats=["T-DB-EXPOSED"],
    needs=["pg_hba"],
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
    for hba, rules in _rules(facts):
        yield from _templated(hba)
        open_rules = [r for r in rules if r.conn_type != "local" and r.any_address and r.method != "reject"]
        for rule in open_rules:
            wide = rule.all_users and (rule.all_databases or "replication" in rule.databases)
            verdict = failed if wide else warned
            what = "all databases and roles" if wide else f"{','.join(rule.databases)} as {','.join(rule.users)}"
            yield verdict(f"clients from any address may log in to {what}", at=rule.location, observed=rule.text,
                          expected="the Mastodon hosts' addresses", subject=rule.text,
                          severity=None if wide else "medium")
        if not open_rules and rules:
            yield passed("no rule admits clients from any address", at=hba.at(),
                         observed=f"{len(rules)} rules, none for any address", expected="specific addresses")


@check(
    id="postgresql.hba-cleartext-password",
    title="pg_hba.conf does not take clear-text passwords over the network",
    component="postgresql",
    severity="high",
    threats=["T-INTERNAL-CLEARTEXT", "T-DB-WEAK-CREDENTIALS"],
    needs=["pg_hba"],
    rationale="""The `password` method sends the role's password in clear text. On a TCP rule that
        is not hostssl anyone on the path reads it; over the local socket or hostssl it is not
        exposed on the wire, but scram-sha-256 never reveals the password to the server at all.""",
    remediation=Remediation("Use scram-sha-256.", "host  mastodon_production  mastodon  10.0.0.5/32  scram-sha-256"),
    references=[HBA_DOCS, DOCS + "auth-password.html"],
    tags=["auth", "tls"],
)
def hba_cleartext_password(facts: FactSet) -> Iterator[Outcome]:
    for hba, rules in _rules(facts):
        yield from _templated(hba)
        clear = [r for r in rules if r.method == "password"]
        for rule in clear:
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
        if not clear and rules:
            yield passed("no rule uses the clear-text password method", at=hba.at(),
                         observed=f"{len(rules)} rules, none with password", expected="scram-sha-256")


@check(
    id="postgresql.hba-md5",
    title="pg_hba.conf uses scram-sha-256, not md5",
    component="postgresql",
    severity="medium",
    threats=["T-DB-WEAK-CREDENTIALS"],
    needs=["pg_hba"],
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
    md5_stored = [s for c in _confs(facts) if (s := c.get("password_encryption")) and s.value.lower() == "md5"]
    for hba, rules in _rules(facts):
        yield from _templated(hba)
        md5 = [r for r in rules if r.method == "md5"]
        for rule in md5:
            if md5_stored:
                yield failed(f"md5 authentication, and passwords are stored as MD5 ({md5_stored[0].location})",
                             at=rule.location, observed=rule.text, expected="scram-sha-256", subject=rule.text)
            else:
                yield warned("md5 authentication accepts roles with MD5-hashed passwords", at=rule.location,
                             observed=rule.text, expected="scram-sha-256", subject=rule.text)
        if not md5 and rules:
            yield passed("no rule uses md5", at=hba.at(), observed=f"{len(rules)} rules, none with md5",
                         expected="scram-sha-256")
