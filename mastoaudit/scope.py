"""A run's scope: what it looked at and with which checks, so that runs are compared only with runs
of the same scope (a trend never mixes two inventories, a baseline warns when it is of another).

The key is a digest of: the command; its targets as given on the command line (lint PATHs, the
inventory and any --limit, the scanned domain); the check selection (--select, --exclude,
--checks-dir); the release series of mastoaudit (0.1, 0.2, ... then 1, 2: a series may add checks,
so its failure counts are not comparable with another's); and the shard, for a shard's own runs.
A merge of shard reports has the scope of the unsharded run.
"""

from __future__ import annotations

import hashlib
import json
import os

from . import __version__


def tool_series(version: str = __version__) -> str:
    parts = [*version.split("."), "0"][:2]
    return ".".join(parts) if parts[0] == "0" else parts[0]


def _key(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def make_scope(command: str, targets: list[str], select: list[str] | None = None,
               exclude: list[str] | None = None, checks_dirs: list[str] | None = None,
               shard: str | None = None, version: str = __version__) -> dict:
    parts = {
        "command": command,
        "targets": sorted(dict.fromkeys(targets)),
        "selection": {"select": sorted(select or []), "exclude": sorted(exclude or []),
                      "checks_dirs": sorted(os.path.normpath(d) for d in checks_dirs or [])},
        "tool": tool_series(version),
        "shard": shard,
    }
    return with_key(parts)


def with_key(parts: dict) -> dict:
    """`parts` (a scope without its key and description) completed with them."""
    parts = {k: parts[k] for k in ("command", "targets", "selection", "tool", "shard")}
    sel = parts["selection"]
    words = [parts["command"], ", ".join(parts["targets"]) or "(no target)"]
    if sel["select"]:
        words.append("select " + " ".join(sel["select"]))
    if sel["exclude"]:
        words.append("exclude " + " ".join(sel["exclude"]))
    if sel["checks_dirs"]:
        words.append("checks from " + " ".join(sel["checks_dirs"]))
    if parts["shard"]:
        words.append(f"shard {parts['shard']}")
    words.append(f"mastoaudit {parts['tool']}")
    return {"key": _key(parts), **parts, "description": " · ".join(words)}


def unsharded(scope: dict) -> dict:
    return with_key({**scope, "shard": None})


def lint_targets(paths: list[str]) -> list[str]:
    return [os.path.normpath(p) for p in paths]


def audit_targets(inventory: str, limit: list[str] | None) -> list[str]:
    found = [f"inventory {os.path.normpath(inventory)}"]
    if limit:
        found.append("limit " + ",".join(sorted(limit)))
    return found
