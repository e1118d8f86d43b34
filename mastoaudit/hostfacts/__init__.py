"""What the remediation deploy reads on a host before it changes anything (pyinfra facts).

These only read, as pyinfra's facts do; the changes live in mastoaudit.operations. They are not the
audit's fixed command table (mastoaudit/sources/remote_commands.py), which stays the complete list
of what `mastoaudit audit` runs. Files that hold secrets (.env.production, redis.conf) are never
read whole: the facts return the lines of the keys the deploy changes, and for secrets only whether
a value is set.
"""

from __future__ import annotations

import base64
import binascii
import re
import shlex

from pyinfra.api import FactBase

_MISSING = "@@mastoaudit-missing"
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def _keys(keys) -> str:
    names = list(keys)
    for k in names:
        if not _KEY.match(k):
            raise ValueError(f"not a key name: {k!r}")
    return "|".join(names)


class FileBytes(FactBase):
    """A file's exact content (None when it does not exist). For configuration without secrets."""

    def command(self, path: str) -> str:
        p = shlex.quote(path)
        return f"if [ -f {p} ]; then base64 -w0 < {p}; echo; else echo {_MISSING}; fi"

    def process(self, output):
        text = "".join(line.strip() for line in output)
        if text == _MISSING:
            return None
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            return None


class EnvValues(FactBase):
    """The values of some keys of a dotenv file (`KEY=value` lines; the last one counts), for keys
    whose values are not secret. {} when the file does not exist."""

    @staticmethod
    def default():
        return {}

    def command(self, path: str, keys: tuple[str, ...]) -> str:
        return (f"grep -E '^[[:space:]]*(export[[:space:]]+)?({_keys(keys)})=' {shlex.quote(path)} 2>/dev/null"
                " || true")

    def process(self, output):
        values = {}
        for line in output:
            key, _, value = line.strip().removeprefix("export ").strip().partition("=")
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            values[key.strip()] = value
        return values


class SecretsSet(FactBase):
    """For secret keys of a dotenv file: which are set to a non-empty value (the values stay on the
    host: only the key names come back)."""

    @staticmethod
    def default():
        return []

    def command(self, path: str, keys: tuple[str, ...]) -> str:
        value = "[\"'\\'']?[^\"'\\''[:space:]]"  # an optional quote, then a character that is not one
        return (f"sed -n -E 's/^[[:space:]]*(export[[:space:]]+)?({_keys(keys)})={value}.*$/\\2/p'"
                f" {shlex.quote(path)} 2>/dev/null || true")

    def process(self, output):
        return sorted({line.strip() for line in output if line.strip()})


class RedisDirectives(FactBase):
    """Lines of some directives of redis.conf (not requirepass, masteruser or masterauth: for those
    see RedisPasswordSet). [] when the file does not exist."""

    @staticmethod
    def default():
        return []

    def command(self, path: str, names: tuple[str, ...]) -> str:
        if any(n.lower() in ("requirepass", "masterauth", "user") for n in names):
            raise ValueError("secret directives are not read")
        return f"grep -iE '^[[:space:]]*({_keys(names)})([[:space:]]|$)' {shlex.quote(path)} 2>/dev/null || true"

    def process(self, output):
        out = []
        for line in output:
            words = line.split()
            if words:
                out.append((words[0].lower(), words[1:]))
        return out


class RedisPasswordSet(FactBase):
    """Whether redis.conf sets requirepass (the value stays on the host)."""

    @staticmethod
    def default():
        return False

    def command(self, path: str) -> str:
        return f"grep -cE '^[[:space:]]*requirepass[[:space:]]+[^[:space:]]' {shlex.quote(path)} 2>/dev/null || true"

    def process(self, output):
        return bool(output) and output[0].strip() not in ("", "0")


def psql(socket_dir: str, port: int, database: str = "postgres") -> str:
    """psql as the postgres superuser over the local socket, as the audit reads PostgreSQL."""
    return (f"cd / && runuser -u postgres -- psql -X -A -t -q -v ON_ERROR_STOP=1 -h {shlex.quote(socket_dir)}"
            f" -p {int(port)} -d {shlex.quote(database)}")


class PgRolePassword(FactBase):
    """How a role's password is stored: "scram", "md5", "none" (no password) or "absent" (no role)."""

    def command(self, role: str, socket_dir: str, port: int) -> str:
        if not _KEY.match(role):
            raise ValueError(f"not a role name: {role!r}")
        sql = ("SELECT CASE WHEN rolpassword IS NULL THEN 'none' WHEN rolpassword LIKE 'SCRAM-SHA-256$%' "
               f"THEN 'scram' ELSE 'md5' END FROM pg_authid WHERE rolname = '{role}'")
        return f"{psql(socket_dir, port)} -c {shlex.quote(sql)}"

    def process(self, output):
        words = [line.strip() for line in output if line.strip()]
        return words[0] if words else "absent"


class PgSetting(FactBase):
    """A setting as the running server has it (SHOW)."""

    def command(self, setting: str, socket_dir: str, port: int) -> str:
        if not _KEY.match(setting):
            raise ValueError(f"not a setting name: {setting!r}")
        return f"{psql(socket_dir, port)} -c {shlex.quote('SHOW ' + setting)}"

    def process(self, output):
        words = [line.strip() for line in output if line.strip()]
        return words[0] if words else None
