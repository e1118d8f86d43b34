"""Host-side edits of files that hold secrets (.env.production, redis.conf): the deploy never reads
them whole, so their edits run on the host, as awk over a copy. Values that are secrets reach awk
through its environment (ENVIRON), never its command line; a generated secret is made on the host
and never leaves it.
"""

from __future__ import annotations

import re
import shlex

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_PLAIN = re.compile(r"^[A-Za-z0-9 _.,:/@*+=-]*$")

# 32 random bytes as 64 hex characters, from the kernel (coreutils only).
GENERATE_SECRET = "head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'"


def _check_key(key: str) -> str:
    if not _KEY.match(key):
        raise ValueError(f"not a key name: {key!r}")
    return key


def _plain(value: str) -> str:
    if not _PLAIN.match(value):
        raise ValueError(f"value refused (plain characters only): {value!r}")
    return value


def env_edit(src: str, dst: str, *, set_plain: dict[str, str] | None = None,
             set_from_var: dict[str, str] | None = None, remove: list[str] | None = None) -> str:
    """Shell: write `src` to `dst` with KEY=value lines set (replacing the first, dropping repeats,
    appending when absent) or removed. set_from_var: KEY -> the name of a shell variable holding
    the value (a secret)."""
    set_plain = {_check_key(k): _plain(v) for k, v in (set_plain or {}).items()}
    set_from_var = {_check_key(k): _check_key(v) for k, v in (set_from_var or {}).items()}
    remove = [_check_key(k) for k in remove or []]
    exports, assigns = [], []
    for i, (key, value) in enumerate(set_plain.items()):
        assigns.append(f'set["{key}"] = ENVIRON["MASTOAUDIT_P{i}"]')
        exports.append(f"MASTOAUDIT_P{i}={shlex.quote(value)}")
    for key, var in set_from_var.items():
        assigns.append(f'set["{key}"] = ENVIRON["MASTOAUDIT_S_{key}"]')
        exports.append(f'MASTOAUDIT_S_{key}="${var}"')
    for key in remove:
        assigns.append(f'del["{key}"] = 1')
    program = (
        "BEGIN { " + "; ".join(assigns) + " } "
        "{ line = $0; k = line; sub(/^[ \\t]*(export[ \\t]+)?/, \"\", k); "
        "if (k ~ /^[A-Za-z_][A-Za-z0-9_-]*=/) { k = substr(k, 1, index(k, \"=\") - 1) } else { k = \"\" } "
        "if (k != \"\" && (k in del)) next; "
        "if (k != \"\" && (k in set)) { if (!(k in done)) { print k \"=\" set[k]; done[k] = 1 } next } "
        "print } "
        "END { for (k in set) if (!(k in done)) print k \"=\" set[k] }"
    )
    return f"{' '.join(exports)} awk {shlex.quote(program)} {shlex.quote(src)} > {shlex.quote(dst)}"


def env_read(path: str, key: str, var: str) -> str:
    """Shell: the value of KEY in a dotenv file into shell variable `var` (quotes stripped)."""
    _check_key(key)
    _check_key(var)
    return (f"{var}=$(sed -n -E 's/^[[:space:]]*(export[[:space:]]+)?{key}=//p' {shlex.quote(path)} 2>/dev/null"
            f" | tail -n 1 | sed -E 's/^\"(.*)\"$/\\1/; s/^'\\''(.*)'\\''$/\\1/')")


def redis_edit(src: str, dst: str, *, set_plain: dict[str, str] | None = None,
               password_var: str | None = None, rename: list[str] | None = None) -> str:
    """Shell: redis.conf from `src` to `dst` with directives set (each occurrence replaced in place,
    appended when absent), `requirepass` from a shell variable, and `rename-command X ""` added for
    commands not yet renamed."""
    set_plain = {_check_key(k).lower(): _plain(v) for k, v in (set_plain or {}).items()}
    rename = [_check_key(c).upper() for c in rename or []]
    assigns, exports = [], []
    for i, (key, value) in enumerate(set_plain.items()):
        assigns.append(f'set["{key}"] = ENVIRON["MASTOAUDIT_P{i}"]')
        exports.append(f"MASTOAUDIT_P{i}={shlex.quote(value)}")
    if password_var:
        assigns.append('set["requirepass"] = ENVIRON["MASTOAUDIT_S_PW"]')
        exports.append(f'MASTOAUDIT_S_PW="${_check_key(password_var)}"')
    for cmd in rename:
        assigns.append(f'ren["{cmd}"] = 1')
    program = (
        "BEGIN { " + "; ".join(assigns) + " } "
        "{ n = split($0, w, /[ \\t]+/); i = (w[1] == \"\") ? 2 : 1; d = tolower(w[i]); "
        "if (d in set) { if (!(d in done)) { print d \" \" set[d]; done[d] = 1 } next } "
        "if (d == \"rename-command\") { c = toupper(w[i + 1]); renamed[c] = 1 } "
        "print } "
        "END { for (d in set) if (!(d in done)) print d \" \" set[d]; "
        "for (c in ren) if (!(c in renamed)) print \"rename-command \" c \" \\\"\\\"\" }"
    )
    return f"{' '.join(exports)} awk {shlex.quote(program)} {shlex.quote(src)} > {shlex.quote(dst)}"
