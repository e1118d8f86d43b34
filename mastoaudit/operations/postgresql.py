"""PostgreSQL: postgresql.conf settings (password_encryption, log_connections) and pg_hba.conf rules
(trust and md5 to scram-sha-256 or peer, any-address narrowed to loopback), as one transaction.

PostgreSQL itself validates: the files on disk are read back through pg_hba_file_rules and
pg_file_settings, which report every line the server would refuse, before pg_reload_conf()
applies them; after the reload the settings are read back with SHOW and the app's own credentials
(DB_HOST, DB_USER, DB_PASS from .env.production) must still log in. Any failure puts the files back.

A rule moved to scram-sha-256 needs the app's role to have its password stored as SCRAM: it is set
again, from DB_PASS on the host (the same password, hashed anew), before the rules change; when
DB_PASS is empty a password is generated on the host and written to .env.production.
"""

from __future__ import annotations

import shlex
from io import StringIO

from pyinfra import host, logger
from pyinfra.api import FileUploadCommand, OperationError, StringCommand, operation

from ..hostfacts import EnvValues, FileBytes, PgRolePassword, SecretsSet, psql
from . import conf_text, shell
from .transaction import Control, backup_dir, control, host_data, on_host, q, script

APP_LOCAL = ("", "localhost", "127.0.0.1", "::1")

PG_VALIDATE = (
    "n=$({psql} -c \"SELECT (SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL)"
    " + (SELECT count(*) FROM pg_file_settings WHERE error IS NOT NULL"
    " AND error <> 'setting could not be applied')\") && [ \"$n\" = 0 ] ||"
    " { {psql} -c \"SELECT 'pg_hba.conf line ' || line_number || ': ' || error FROM pg_hba_file_rules"
    " WHERE error IS NOT NULL UNION ALL SELECT sourcefile || ' line ' || sourceline || ': ' || error"
    " FROM pg_file_settings WHERE error IS NOT NULL AND error <> 'setting could not be applied'\"; false; }"
)
PG_RELOAD = "{psql} -c 'SELECT pg_reload_conf()' >/dev/null"


def _app_login_check(env: str) -> str:
    """Shell: log in as Mastodon does, as the owner of .env.production (its OS user, for peer)."""
    reads = [shell.env_read(env, key, var) for key, var in
             (("DB_HOST", "h"), ("DB_PORT", "p"), ("DB_USER", "u"), ("DB_NAME", "n"), ("DB_PASS", "w"))]
    return ("; ".join(reads) + f"; who=$(stat -c %U {q(env)});"
            " PGPASSWORD=\"$w\" PGCONNECT_TIMEOUT=5 runuser -u \"$who\" --"
            " psql -X -A -t -q -w -h \"${h:-/var/run/postgresql}\" -p \"${p:-5432}\" -U \"${u:-mastodon}\""
            " -d \"${n:-mastodon_production}\" -c 'SELECT 1' >/dev/null")


# Settings that would write a statement's text to the server's log, and their values for a session
# that must not: an ALTER ROLE ... PASSWORD would put the password there in clear (log_statement =
# ddl is a common hardening; a slow or failing statement is logged whatever that says; pgaudit).
# Set only where the server knows them (PostgreSQL 12 has no log_min_duration_sample).
_QUIET_LOG = {"log_statement": "none", "log_min_duration_statement": "-1", "log_min_duration_sample": "-1",
              "log_min_error_statement": "panic", "pgaudit.log": "none"}


def scram_password_command(role: str, sql: str) -> str:
    """Shell: set `role`'s password again from $w, hashed as SCRAM. The SQL text reaches psql on
    stdin (not its command line, which `ps` shows), in a superuser session whose statements are not
    logged (the password is in the statement)."""
    cases = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in _QUIET_LOG.items())
    quiet = (f"SELECT set_config(name, CASE name {cases} END, false) FROM pg_settings"
             f" WHERE name IN ({', '.join(repr(k) for k in _QUIET_LOG)});")
    return ("ws=$(printf %s \"$w\" | sed \"s/'/''/g\"); printf \"%s\\nSET password_encryption = 'scram-sha-256';"
            f"\\nALTER ROLE %s PASSWORD '%s';\\n\" {shlex.quote(quiet)} {shlex.quote(chr(34) + role + chr(34))}"
            f" \"$ws\" | ( {sql} -f - ) >/dev/null || mastoaudit_fail 'could not set the app role password as SCRAM'")


@operation()
def fix(checks: list[str], conf: str | None = None, hba: str | None = None, settings: dict[str, str] | None = None,
        rules: dict[str, str] | None = None, env: str | None = None):
    pg = host_data(host, "mastoaudit_postgres", {}) or {}
    socket_dir, port = str(pg.get("socket_dir", "/var/run/postgresql")), int(pg.get("port", 5432))
    sql = psql(socket_dir, port)
    env_path = on_host(host, env) if env else None
    app = host.get_fact(EnvValues, path=env_path, keys=("DB_HOST", "DB_USER")) if env_path else {}
    app_local = env_path is not None and (app.get("DB_HOST", "").strip("[]") in APP_LOCAL
                                          or app.get("DB_HOST", "").startswith("/"))
    texts = {}
    for kind, path in (("conf", conf), ("hba", hba)):
        if path:
            target = on_host(host, path)
            data = host.get_fact(FileBytes, path=target)
            if data is None:
                raise OperationError(f"{target}: no such file on the host")
            texts[kind] = (target, data.decode("utf-8", "surrogateescape"))
    new = {}
    if "conf" in texts and settings:
        target, text = texts["conf"]
        new["conf"] = (target, conf_text.pg_set(text, settings, checks))
    scram_rules = False
    if "hba" in texts and rules:
        wanted = {}
        for old, rule in rules.items():
            old_addr = conf_text.hba_rule_with(old).split()[3:4]
            if rule.split()[3:4] != old_addr and not app_local:
                logger.warning(f"{host.name}: Mastodon reaches PostgreSQL at {app.get('DB_HOST') or 'another host'}: "
                               f"'{old}' keeps its address")
                rule = conf_text.hba_rule_with(rule, address=" ".join(conf_text.hba_rule_with(old).split()[3:4]))
            wanted[old] = rule
            scram_rules = scram_rules or rule.split()[-1] == "scram-sha-256" or "scram-sha-256" in rule.split()
        target, text = texts["hba"]
        new["hba"] = (target, conf_text.hba_rewrite(text, wanted))
    changed = {k: v for k, v in new.items() if v[1] != texts[k][1]}
    prepare = []
    env_file = []
    backups = f"{backup_dir(host)}/postgresql"
    staging = f"{backups}/.staging"
    if changed and scram_rules and env_path:
        role = app.get("DB_USER") or "mastodon"
        stored = host.get_fact(PgRolePassword, role=role, socket_dir=socket_dir, port=port)
        if stored in ("md5", "none"):
            prepare.append(shell.env_read(env_path, "DB_PASS", "w"))
            if "DB_PASS" not in host.get_fact(SecretsSet, path=env_path, keys=("DB_PASS",)):
                prepare.append(f"w=$({shell.GENERATE_SECRET})")
                prepare.append(shell.env_edit(env_path, f"{staging}/env", set_from_var={"DB_PASS": "w"}))
                env_file = [(env_path, f"{staging}/env")]
            prepare.append(scram_password_command(role, sql))
    if not changed:
        return
    prepare.insert(0, f"mkdir -p {q(staging)}")
    yield StringCommand(f"umask 077; mkdir -p {q(staging)}")
    pairs = []
    for kind, (target, text) in changed.items():
        yield FileUploadCommand(StringIO(text), f"{staging}/{kind}")
        pairs.append((target, f"{staging}/{kind}"))
    ctl = control(host, "postgresql")
    shows = ""
    if "conf" in changed:
        shows = " && ".join(f"[ \"$({sql} -c {q('SHOW ' + k)})\" = {q(v)} ]" for k, v in (settings or {}).items())
    # (The check runs in a subshell of its own: `exit 1` ends the check, not the transaction.)
    settle = (f"i=0; until {shows}; do i=$((i+1)); [ $i -ge 25 ] && {{ echo 'a setting did not take effect "
              "(set again in a later file, conf.d or postgresql.auto.conf?)'; exit 1; }; sleep 0.2; done"
              if shows else "")
    checks_sh = " && ".join(x for x in (settle, f"{{ {_app_login_check(env_path)}; }}" if env_path else "") if x)
    ctl = Control(
        (ctl.validate or "").replace("{pg_validate}", PG_VALIDATE).replace("{psql}", sql) or None,
        (ctl.reload or "").replace("{pg_reload}", PG_RELOAD).replace("{psql}", sql) or None,
        " && ".join(x for x in (ctl.check, checks_sh) if x) or None,
    )
    what = ", ".join(sorted(set(checks)))
    yield StringCommand(script(f"postgresql ({what})", pairs + env_file, ctl, backups=backups,
                               prepare="\n".join(prepare)))
