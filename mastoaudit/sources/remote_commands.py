"""The fixed list of read-only commands mastoaudit may run on an audited host, and how they travel.

Nothing else is ever sent over SSH. Each command is declared once, beside the fact it reads, in
`mastoaudit/kinds.py` (`LiveFact`: the template, the roles it runs for, its parameters and its
parser); `table()` collects them, and tests/fixtures/live/commands.txt holds every template as
reviewed, so a change to what runs on a host shows as a change to that file. A command is a
template; its parameters (paths, ports) are validated and shell-quoted before they are filled in,
and the SSH worker builds the command text itself from the table, so a caller can choose *which*
commands run, never *what* they say. Every command only reads: no template writes a file, changes
a setting or restarts a service.

Output sizes are bounded on the host (`head -c`), and files travel base64-encoded, one per line, so
that a file's content can never be mistaken for the framing around it.

A host's commands travel together as one `bundle`: one SSH session and one sudo per host instead of
one per command (session setup dominates on loopback and small VMs). Each command in the bundle
keeps its own time limit (coreutils `timeout`) and its own exit status.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_OUTPUT_BYTES = 24 * 1024 * 1024
MAX_FILES = 200

_SAFE_PATH = re.compile(r"^/[A-Za-z0-9_@%+=:,./*?\[\]-]*$")  # absolute; globs allowed; no spaces or quotes


class CommandRefused(ValueError):
    """A command id or parameter that is not on the list: refused before anything is sent."""


@dataclass(frozen=True)
class RemoteCommand:
    id: str
    purpose: str
    template: str  # shell text; {name} fields are filled from validated parameters
    params: tuple[str, ...] = ()
    needs_root: bool = False  # run through sudo when the SSH user is not root and sudo is allowed
    stdin: str | None = None  # fixed text fed to the command's standard input


def _paths(value: object) -> str:
    if not isinstance(value, list | tuple) or not value:
        raise CommandRefused("paths must be a non-empty list")
    out = []
    for item in value:
        if not isinstance(item, str) or not _SAFE_PATH.match(item) or ".." in item.split("/"):
            raise CommandRefused(f"path refused: {item!r}")
        # Globs must expand on the host, so they are not quoted; the pattern admits no shell syntax.
        out.append(item)
    return " ".join(out)


def _path(value: object) -> str:
    if not isinstance(value, str) or not _SAFE_PATH.match(value) or any(c in value for c in "*?[]"):
        raise CommandRefused(f"path refused: {value!r}")
    return shlex.quote(value)


def _port(value: object) -> str:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 65536:
        raise CommandRefused(f"port refused: {value!r}")
    return str(value)


_VALIDATORS = {"paths": _paths, "path": _path, "port": _port, "config": _path, "socket_dir": _path}

# Reads each existing file matched by the globs: a header line (base64 path, mode, owner, group,
# size, readable or not) and a line with the first MAX_FILE_BYTES of the content, base64-encoded.
READ_FILES = (
    "n=0; for f in {paths}; do [ -f \"$f\" ] || continue; n=$((n+1)); [ $n -gt " + str(MAX_FILES) + " ] && break; "
    "p=$(printf %s \"$f\" | base64 -w0); m=$(stat -c '%a %U %G %s' -- \"$f\" 2>/dev/null); "
    "if [ -r \"$f\" ]; then printf '@@file %s %s readable\\n' \"$p\" \"$m\"; "
    "head -c " + str(MAX_FILE_BYTES) + " -- \"$f\" | base64 -w0; echo; "
    "else printf '@@file %s %s denied\\n' \"$p\" \"$m\"; echo; fi; done"
)

def table() -> dict[str, RemoteCommand]:
    """Every allowed command by id, from the live fact declarations."""
    global _TABLE
    if _TABLE is None:
        from ..kinds import LIVE_FACTS

        found: dict[str, RemoteCommand] = {}
        for fact in LIVE_FACTS:
            if found.setdefault(fact.command.id, fact.command) != fact.command:
                raise ValueError(f"command {fact.command.id} is declared twice, differently")
        _TABLE = found
    return _TABLE


_TABLE: dict[str, RemoteCommand] | None = None


def __getattr__(name: str) -> object:
    if name == "COMMANDS":  # the table under its old name
        return table()
    raise AttributeError(name)


def build(command_id: str, params: dict[str, object] | None = None) -> str:
    """The exact shell text for an allowed command, or CommandRefused."""
    return _text(command_id, params)


def _text(command_id: str, params: dict[str, object] | None) -> str:
    command = table().get(command_id)
    if command is None:
        raise CommandRefused(f"command {command_id!r} is not on the list")
    params = params or {}
    if set(params) != set(command.params):
        raise CommandRefused(f"{command_id}: expected parameters {command.params}, got {tuple(params)}")
    filled = {name: _VALIDATORS[name](params[name]) for name in command.params}
    return command.template.format(**filled)


_KEY = re.compile(r"^[a-z0-9-]{1,40}$")


def bundle(items: list[tuple[str, str, dict[str, object]]], timeout: float) -> str:
    """One shell text running each (key, command id, params) in turn.

    Per command: a line `@@cmd KEY`, then one base64 line holding the output (stdout and stderr,
    at most MAX_OUTPUT_BYTES) followed by a last line `@@rc N` with the exit status (124: timed out).
    """
    seconds = max(1, int(timeout + 0.999))
    parts = []
    for key, command_id, params in items:
        if not _KEY.match(key):
            raise CommandRefused(f"bad result key {key!r}")
        text = _text(command_id, params)
        parts.append(
            f"printf '@@cmd %s\\n' {key}; "
            f"{{ timeout -k 2 {seconds} sh -c {shlex.quote(text)} 2>&1 </dev/null; echo \"@@rc $?\"; }} "
            f"| head -c {MAX_OUTPUT_BYTES} | base64 -w0; echo"
        )
    return "; ".join(parts)


def needs_root(command_ids: list[str]) -> bool:
    return any(table()[c].needs_root for c in command_ids)


# --- the parameters of the federation command (issue 9): Mastodon's database, read with psql ---------
# (the command itself is declared with the mastodon_db kind in mastoaudit/kinds.py)

_DATABASE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$")
_PEER_DOMAIN = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?(:[0-9]{1,5})?$")
MAX_QUERY_DOMAINS = 20_000


def _database(value: object) -> str:
    if not isinstance(value, str) or not _DATABASE.match(value):
        raise CommandRefused(f"database name refused: {value!r}")
    return shlex.quote(value)


def _domains(value: object) -> str:
    """'-v domains=...' for psql: an array literal of validated names, or nothing at all."""
    if not isinstance(value, list | tuple) or len(value) > MAX_QUERY_DOMAINS:
        raise CommandRefused("domains must be a list of at most 20,000 names")
    for item in value:
        if not isinstance(item, str) or not _PEER_DOMAIN.match(item):
            raise CommandRefused(f"domain refused: {item!r}")
    return f"-v domains={shlex.quote('{' + ','.join(value) + '}')}" if value else ""


def _timeout_ms(value: object) -> str:
    if not isinstance(value, int) or isinstance(value, bool) or not 100 <= value <= 3_600_000:
        raise CommandRefused(f"statement timeout refused: {value!r}")
    return str(value)


_VALIDATORS.update({"database": _database, "domains": _domains, "timeout_ms": _timeout_ms})
