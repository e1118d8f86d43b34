"""Parsers for what only a live host shows: sockets, processes, packages, the packet filter, file
modes, and the effective settings of PostgreSQL and Redis. Each turns one allow-listed command's
output (declared with its kind in mastoaudit/kinds.py) into a fact; bad output becomes a ParseError
like any malformed config. Each is tested on recorded outputs in tests/fixtures/live/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar

from ..addresses import is_loopback, split_host_port
from ..model import Location
from .base import ParseError


@dataclass(frozen=True)
class Socket:
    proto: str
    address: str  # as ss prints it, without brackets: 0.0.0.0, ::, 127.0.0.1, *
    port: int
    process: str  # the program name, when ss could tell

    @property
    def loopback_only(self) -> bool:
        return is_loopback(self.address)


@dataclass
class HostOutput:
    """What one command printed on a host; `at()` points at it, as host:command."""

    host: str
    SHOWN_AS: ClassVar[str] = ""

    def at(self) -> Location:
        return Location(f"{self.host}:{self.SHOWN_AS}")


def _lines(text: str) -> Iterator[tuple[int, list[str], str]]:
    """Each non-blank line: its number, its whitespace-separated fields and the line itself."""
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield number, line.split(), line


@dataclass
class ListeningSockets(HostOutput):
    sockets: list[Socket]
    SHOWN_AS: ClassVar[str] = "ss -ltunp"


_PROCESS_IN_SS = re.compile(r'users:\(\("([^"]+)"')


def parse_listening(host: str, text: str) -> ListeningSockets:
    sockets = []
    for number, parts, line in _lines(text):
        if len(parts) < 5 or parts[0] not in ("tcp", "udp"):
            raise ParseError("unexpected ss output", number)
        try:
            address, port = split_host_port(parts[4])
        except ValueError:
            continue  # "*" ports: nothing to judge
        address = address.split("%", 1)[0]
        if port is None:
            continue
        if parts[0] == "tcp" and parts[1] != "LISTEN":
            continue
        match = _PROCESS_IN_SS.search(line)
        sockets.append(Socket(parts[0], address or "*", port, match.group(1) if match else ""))
    return ListeningSockets(host, sockets)


@dataclass(frozen=True)
class Process:
    user: str
    pid: int
    command: str
    args: str


@dataclass
class Processes(HostOutput):
    processes: list[Process]
    SHOWN_AS: ClassVar[str] = "ps"


def parse_processes(host: str, text: str) -> Processes:
    found = []
    for number, _, line in _lines(text):
        parts = line.split(None, 3)
        if len(parts) < 3 or not parts[1].isdigit():
            raise ParseError("unexpected ps output (command lines can hold passwords: not repeated)", number)
        found.append(Process(parts[0], int(parts[1]), parts[2], parts[3] if len(parts) > 3 else parts[2]))
    return Processes(host, found)


@dataclass
class Packages(HostOutput):
    versions: dict[str, str]  # installed packages only
    SHOWN_AS: ClassVar[str] = "dpkg-query"


def parse_packages(host: str, text: str) -> Packages:
    versions = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and parts[2].strip().startswith("ii"):
            versions[parts[0]] = parts[1]
    return Packages(host, versions)


@dataclass
class FirewallRules(HostOutput):
    """The packet filter's rules as `nft list ruleset` (or `iptables-save`) prints them."""

    rules: str
    SHOWN_AS: ClassVar[str] = "nft list ruleset / iptables-save"


def parse_firewall(host: str, text: str) -> FirewallRules:
    return FirewallRules(host, text)


@dataclass(frozen=True)
class FileStat:
    """A file read on a host: where it is, who owns it, its mode, whether it could be read."""

    host: str
    path: str
    mode: int | None
    owner: str
    group: str
    size: int | None
    readable: bool

    def at(self) -> Location:
        return Location(f"{self.host}:{self.path}")


@dataclass
class PostgresLive(HostOutput):
    settings: dict[str, str] = field(default_factory=dict)
    roles: list[dict] = field(default_factory=list)  # rolname, super, createrole, createdb, login, ..., nopassword

    def at(self, what: str = "pg_settings") -> Location:
        return Location(f"{self.host}:{what}")


_ROLE_COLUMNS = ("rolname", "super", "createrole", "createdb", "login", "replication", "bypassrls", "no_password")


def parse_pg_state(text: str) -> tuple[dict[str, str], list[dict]]:
    """psql's unaligned rows: `setting|name|value` and `role|rolname|t|f|...` (see postgres-state)."""
    settings: dict[str, str] = {}
    roles: list[dict] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        cells = line.split("|")
        if cells[0] == "setting" and len(cells) == 3:
            settings[cells[1]] = cells[2]
        elif cells[0] == "role" and len(cells) == len(_ROLE_COLUMNS) + 1:
            row: dict = {"rolname": cells[1]}
            for name, cell in zip(_ROLE_COLUMNS[1:], cells[2:], strict=True):
                row[name] = cell.strip() == "t"
            roles.append(row)
        else:
            raise ParseError(f"psql: {line[:200]}", number)
    return settings, roles


def parse_postgres_live(host: str, text: str) -> PostgresLive:
    settings, roles = parse_pg_state(text)
    return PostgresLive(host, settings, roles)


HASH_METHODS = ("scram-sha-256", "md5", "none", "other")


@dataclass
class PasswordHashes(HostOutput):
    """How each PostgreSQL role that can log in stores its password: the method's name only (the
    query names it in the database; no hash leaves the host)."""

    methods: dict[str, str]  # role name -> one of HASH_METHODS
    SHOWN_AS: ClassVar[str] = "pg_authid"


def parse_password_hashes(host: str, text: str) -> PasswordHashes:
    """psql's unaligned rows `hash|ROLE|METHOD` (postgres-password-hashes); any other line is
    psql's own error, repeated as the reason."""
    methods: dict[str, str] = {}
    for number, _, line in _lines(text):
        tag, _, rest = line.partition("|")
        role, _, method = rest.rpartition("|")
        if tag != "hash" or not role or method not in HASH_METHODS:
            raise ParseError(f"psql: {line[:200]}", number)
        methods[role] = method
    return PasswordHashes(host, methods)


@dataclass
class RedisLive(HostOutput):
    auth_required: bool
    authenticated: bool
    config: dict[str, str]
    acl_users: list[str]
    config_disabled: bool = False  # CONFIG renamed or denied, as hardening advises
    SHOWN_AS: ClassVar[str] = "redis CONFIG GET"


def parse_redis_cli(host: str, text: str) -> RedisLive:
    """redis-cli's answers to: PING, [AUTH], PING, CONFIG GET x (several), ACL USERS."""
    lines = [line.strip() for line in text.splitlines()]
    if not lines:
        raise ParseError("redis-cli printed nothing (is Redis running on that port?)", None)
    if "Could not connect" in lines[0] or "Connection refused" in lines[0]:
        raise ParseError(f"redis-cli: {lines[0][:200]}", None)
    auth_required = lines[0].startswith("NOAUTH") or lines[0].startswith("(error) NOAUTH")
    authenticated = not auth_required or "PONG" in lines[1:]
    config: dict[str, str] = {}
    acl: list[str] = []
    body = [line for line in lines[1:] if line not in ("OK", "PONG") and not line.startswith("NOAUTH")]
    known = ("bind", "protected-mode", "port", "enable-debug-command", "enable-module-command")
    i = 0
    while i < len(body):
        if body[i] in known and i + 1 < len(body):
            config[body[i]] = body[i + 1]
            i += 2
            continue
        if body[i] and not body[i].startswith("ERR") and not body[i].startswith("(error)"):
            acl.append(body[i])
        i += 1
    disabled = any("unknown command 'CONFIG'" in line or ("NOPERM" in line and "config" in line.lower())
                   for line in lines)
    acl = [a for a in acl if "unknown command" not in a]
    return RedisLive(host, auth_required, authenticated and (bool(config) or disabled), config, acl, disabled)


_VERSION_PART = re.compile(r"def (major|minor|patch)\s*\n\s*(\d+)", re.MULTILINE)
_VERSION_PRE = re.compile(
    r"def default_prerelease\s*\n\s*'([^']*)'"
    r"|def prerelease\s*\n\s*ENV.fetch\('MASTODON_VERSION_PRERELEASE', '([^']*)'\)"
)


def parse_mastodon_version(text: str) -> str:
    """The version from Mastodon's lib/mastodon/version.rb."""
    parts = dict(_VERSION_PART.findall(text))
    if not {"major", "minor", "patch"} <= parts.keys():
        raise ParseError("no major/minor/patch in version.rb", None)
    version = f"{parts['major']}.{parts['minor']}.{parts['patch']}"
    pre = _VERSION_PRE.search(text)
    if pre and (pre.group(1) or pre.group(2)):
        version += f"-{pre.group(1) or pre.group(2)}"
    return version
