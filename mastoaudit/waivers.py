"""Waivers: risks accepted on purpose, written down with a reason, an owner and an expiry date.

A waivers file is YAML (see README, "Waivers"):

    waivers:
      - check: nginx.hsts                # a check id, or a glob (nginx.*)
        target: web1                     # optional narrowing: target (glob), file (glob),
        file: etc/nginx/sites-enabled/*  #   component, fingerprint (exact)
        reason: HSTS is added by the CDN in front of nginx
        owner: ops-team
        expires: 2025-12-31              # a date (the waiver holds through that day), or never

Where they come from: `.mastoaudit-waivers.yaml` at the root of a lint PATH (it applies to that
PATH's findings only, and its `file` patterns are relative to that root), `.mastoaudit-waivers.yaml`
beside an audit's inventory, and any `--waivers FILE`.

What they do to a run's document: a `fail` or `warn` finding that an active waiver matches keeps
its status and gains a `waiver` object; it is shown as waived in every format and does not count
for --fail-on. `error` findings are never waived (what could not be checked is not an accepted
risk). An expired waiver waives nothing and is itself a failure (`waiver.expired`); a waiver that
matches no failing or warning finding is reported as stale (`waiver.stale`), one that never
expires is reported too (`waiver.no-expiry`). A malformed file is an input error naming its line.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import yaml

from . import yamlsafe
from .model import COMPONENTS, Finding, Location, Severity, Status
from .textsafe import shown_path

WAIVERS_FILE = ".mastoaudit-waivers.yaml"
MAX_WAIVERS_BYTES = 1024 * 1024
WAIVABLE = ("fail", "warn")
_FIELDS = ("id", "check", "target", "file", "component", "fingerprint", "reason", "owner", "expires")
_REQUIRED = ("check", "reason", "owner", "expires")
_FINGERPRINT = re.compile(r"^[0-9a-f]{24}$")
_REMOTE = re.compile(r"^[^/\\:]{2,}:(?=/)")  # host:/path, as the SSH collector names files


class WaiverError(Exception):
    """A waivers file that cannot be used: the message names the file and line (exit code 2)."""


@dataclass(frozen=True)
class Waiver:
    file: str  # the waivers file, as shown
    line: int
    check: str
    reason: str
    owner: str
    expires: date | None  # None: never
    id: str | None = None
    target: str | None = None
    path: str | None = None  # the `file` narrowing
    component: str | None = None
    fingerprint: str | None = None
    root: str | None = None  # the lint target this file was found in: applies to it alone

    @property
    def source(self) -> str:
        return f"{self.file}:{self.line}"

    def expired(self, today: date) -> bool:
        return self.expires is not None and today > self.expires

    def matches(self, f: dict) -> bool:
        if not fnmatch.fnmatchcase(f["check_id"], self.check):
            return False
        if self.root is not None and f["target"] != self.root:
            return False
        if self.target is not None and not fnmatch.fnmatchcase(f["target"], self.target):
            return False
        if self.component is not None and f["component"] != self.component:
            return False
        if self.fingerprint is not None and f["fingerprint"] != self.fingerprint:
            return False
        if self.path is not None:
            loc = f.get("location")
            if not loc or not any(fnmatch.fnmatchcase(c, self.path) for c in self._files(loc["file"])):
                return False
        return True

    def _files(self, shown: str) -> list[str]:
        """The names a finding's file can be matched by: as shown, relative to the lint root the
        waivers file sits in, and the path part of host:/path."""
        names = [shown]
        if self.root is not None and shown.startswith(self.root.rstrip("/") + "/"):
            names.append(shown[len(self.root.rstrip("/")) + 1:])
        remote = _REMOTE.match(shown)
        if remote:
            names.append(shown[remote.end():])
        return names

    def narrowing(self) -> str:
        parts = [f"{label} {value}" for label, value in (("target", self.target), ("file", self.path),
                                                          ("component", self.component),
                                                          ("fingerprint", self.fingerprint)) if value]
        return f" ({', '.join(parts)})" if parts else ""

    def to_dict(self) -> dict:
        return {
            "source": self.source, "id": self.id, "check": self.check, "target": self.target, "file": self.path,
            "component": self.component, "fingerprint": self.fingerprint, "reason": self.reason,
            "owner": self.owner, "expires": self.expires.isoformat() if self.expires else None,
            "applies_to": self.root,
        }


def compose_yaml(text: str, source: str) -> yaml.Node | None:
    """The one place waivers files are parsed: YAML composed into nodes (they keep line numbers),
    through the bounded loader every YAML reader shares (mastoaudit.yamlsafe)."""
    try:
        return yamlsafe.compose(text)
    except yamlsafe.YamlError as exc:
        where = f":{exc.line}" if exc.line else ""
        raise WaiverError(f"{source}{where}: not valid YAML ({exc.problem})") from None


def _fail(source: str, node: yaml.Node, message: str) -> WaiverError:
    return WaiverError(f"{source}:{node.start_mark.line + 1}: {message}")


def _text(source: str, node: yaml.Node, key: str) -> str:
    if not isinstance(node, yaml.ScalarNode) or node.tag.endswith((":null", ":bool")):
        raise _fail(source, node, f"{key}: expected text")
    value = node.value.strip()
    if not value:
        raise _fail(source, node, f"{key}: must not be empty")
    return value


def _expiry(source: str, node: yaml.Node) -> date | None:
    if not isinstance(node, yaml.ScalarNode):
        raise _fail(source, node, "expires: expected a date (YYYY-MM-DD) or never")
    value = node.value.strip()
    if value.lower() == "never":
        return None
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise _fail(source, node, f"expires: {value!r} is not a date (YYYY-MM-DD) or never") from None


def parse_waivers(text: str, source: str, root: str | None = None) -> list[Waiver]:
    node = compose_yaml(text, source)
    if node is None:
        return []
    if not isinstance(node, yaml.MappingNode):
        raise _fail(source, node, "expected a mapping with a `waivers:` list")
    top: dict[str, yaml.Node] = {}
    for knode, vnode in node.value:
        key = knode.value if isinstance(knode, yaml.ScalarNode) else None
        if key not in ("waivers", "version"):
            raise _fail(source, knode, f"unknown key {key!r} (expected waivers, version)")
        top[key] = vnode
    if "version" in top and top["version"].value != "1":
        raise _fail(source, top["version"], f"version {top['version'].value!r} is not supported (expected 1)")
    entries = top.get("waivers")
    if entries is None or (isinstance(entries, yaml.ScalarNode) and entries.tag.endswith(":null")):
        return []
    if not isinstance(entries, yaml.SequenceNode):
        raise _fail(source, entries, "waivers: expected a list of entries")
    return [_entry(source, item, root) for item in entries.value]


def _entry(source: str, node: yaml.Node, root: str | None) -> Waiver:
    if not isinstance(node, yaml.MappingNode):
        raise _fail(source, node, "a waiver is a mapping (check, reason, owner, expires, ...)")
    values: dict[str, yaml.Node] = {}
    for knode, vnode in node.value:
        key = knode.value if isinstance(knode, yaml.ScalarNode) else None
        if key not in _FIELDS:
            raise _fail(source, knode, f"unknown key {key!r} (expected one of: {', '.join(_FIELDS)})")
        if key in values:
            raise _fail(source, knode, f"{key}: given twice")
        values[key] = vnode
    missing = [k for k in _REQUIRED if k not in values]
    if missing:
        raise _fail(source, node, f"waiver without {', '.join(missing)} (every waiver needs check, reason, owner "
                                  "and expires: a date, or never)")
    check = _text(source, values["check"], "check")
    if any(ch.isspace() for ch in check):
        raise _fail(source, values["check"], f"check: {check!r} is not a check id or glob")
    component = _text(source, values["component"], "component") if "component" in values else None
    if component is not None and component not in COMPONENTS:
        raise _fail(source, values["component"], f"component: unknown {component!r} (one of: {', '.join(COMPONENTS)})")
    fingerprint = _text(source, values["fingerprint"], "fingerprint") if "fingerprint" in values else None
    if fingerprint is not None and not _FINGERPRINT.match(fingerprint):
        raise _fail(source, values["fingerprint"], "fingerprint: expected the 24 hex digits a report gives")
    optional = {k: _text(source, values[k], k) for k in ("id", "target", "file") if k in values}
    return Waiver(
        file=source, line=node.start_mark.line + 1, check=check,
        reason=_text(source, values["reason"], "reason"), owner=_text(source, values["owner"], "owner"),
        expires=_expiry(source, values["expires"]), id=optional.get("id"), target=optional.get("target"),
        path=optional.get("file"), component=component, fingerprint=fingerprint, root=root,
    )


def load_waivers(path: Path, root: str | None = None) -> list[Waiver]:
    shown = shown_path(path)
    try:
        if root is not None:
            # Found at the root of a tree being linted (a pull request's, maybe): read the way the
            # tree's configs are read, never through a link out of it, never a FIFO or a device.
            from .sources.local import LocalTree

            data = LocalTree(root).open_bytes(str(path), MAX_WAIVERS_BYTES + 1)[0]
        else:
            data = path.read_bytes()[:MAX_WAIVERS_BYTES + 1]
    except OSError as exc:
        raise WaiverError(f"{shown}: {exc.strerror or exc}") from None
    if len(data) > MAX_WAIVERS_BYTES:
        raise WaiverError(f"{shown}: larger than 1 MiB; not a waivers file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise WaiverError(f"{shown}: not UTF-8 text") from None
    return parse_waivers(text, shown, root)


def discover_for_lint(paths: list[str]) -> list[tuple[Path, str]]:
    """(file, lint target) for each PATH that holds a waivers file at its root."""
    found = []
    for raw in paths:
        root = Path(raw)
        if root.is_dir() and os.path.lexists(root / WAIVERS_FILE):  # read (confined) by load_waivers
            found.append((root / WAIVERS_FILE, str(root)))
    return found


def discover_for_inventory(inventory: Path) -> Path | None:
    candidate = inventory.parent / WAIVERS_FILE
    return candidate if candidate.is_file() else None


# ----------------------------------------------------------------------------- applying them


def apply(doc: dict, waivers: list[Waiver], today: date) -> None:
    """Mark the findings the active waivers match, and record every waiver with its state in
    `doc["waivers"]`. The findings about the waivers themselves are added by `add_findings`."""
    entries = [{**w.to_dict(), "state": "expired" if w.expired(today) else "active", "matched": 0,
                "days_left": (w.expires - today).days if w.expires else None} for w in waivers]
    for f in doc["findings"]:
        if f["status"] not in WAIVABLE or f["check_id"].startswith("waiver."):
            continue
        for waiver, entry in zip(waivers, entries, strict=True):
            if not waiver.matches(f):
                continue
            entry["matched"] += 1
            if entry["state"] == "active" and not f.get("waiver"):
                f["waiver"] = {"source": waiver.source, "id": waiver.id, "reason": waiver.reason,
                               "owner": waiver.owner, "expires": entry["expires"], "days_left": entry["days_left"]}
    doc["waivers"] = {"today": today.isoformat(), "files": sorted({w.file for w in waivers}), "entries": entries}


def settle(entries: list[dict]) -> None:
    """An active waiver that matched nothing is stale (run after merging shards' counts)."""
    for entry in entries:
        if entry["state"] == "stale":
            entry["state"] = "active"
        if entry["state"] == "active" and entry["matched"] == 0:
            entry["state"] = "stale"


def add_findings(doc: dict) -> None:
    """Append the findings about the waivers (expired, stale, never expiring) to the document,
    replacing any from before (a merge recomputes them)."""
    section = doc.get("waivers")
    doc["findings"] = [f for f in doc["findings"] if not f["check_id"].startswith("waiver.")]
    if not section:
        return
    settle(section["entries"])
    checks = {c["id"]: c for c in doc["checks"]}
    for entry in section["entries"]:
        finding = _finding(entry, checks)
        if finding:
            doc["findings"].append(finding)


def _component(entry: dict, checks: dict[str, dict]) -> str:
    if entry["component"]:
        return entry["component"]
    found = {c["component"] for cid, c in checks.items() if fnmatch.fnmatchcase(cid, entry["check"])}
    return found.pop() if len(found) == 1 else "host"


def _finding(entry: dict, checks: dict[str, dict]) -> dict | None:
    what = f"the waiver for {entry['check']}"
    narrowing = [f"{k} {entry[k]}" for k in ("target", "file", "component", "fingerprint") if entry[k]]
    subject = entry["check"] + (f" ({', '.join(narrowing)})" if narrowing else "")
    if entry["state"] == "expired":
        check_id, title, status, severity = "waiver.expired", "Waiver has expired", "fail", "low"
        n = entry["matched"]
        message = (f"{what} expired on {entry['expires']} (owner {entry['owner']}); the "
                   f"{n} finding{'s' if n != 1 else ''} it covered count{'s' if n == 1 else ''} again. "
                   "Renew it with a new date if the risk is still accepted, or remove it.")
        observed, expected = f"expired {entry['expires']}", "an expiry date not yet passed, or no such waiver"
    elif entry["state"] == "stale":
        check_id, title, status, severity = "waiver.stale", "Waiver matches no finding", "warn", "info"
        ran = any(fnmatch.fnmatchcase(cid, entry["check"]) for cid in checks)
        why = "" if ran else f" (no check {entry['check']} ran in this run)"
        message = (f"{what} matches no failing or warning finding in this run{why}: the risk it accepts is gone, "
                   "or its check id, target or file is wrong. Remove or correct it.")
        observed, expected = "0 findings matched", "at least one finding matched"
    elif entry["expires"] is None:
        check_id, title, status, severity = "waiver.no-expiry", "Waiver never expires", "warn", "info"
        message = (f"{what} never expires (owner {entry['owner']}): an accepted risk should come up for review. "
                   "Give it an expiry date.")
        observed, expected = "expires: never", "an expiry date"
    else:
        return None
    file, _, line = entry["source"].rpartition(":")
    return Finding(
        check_id=check_id, title=title, component=_component(entry, checks), severity=Severity(severity),
        status=Status(status), message=message, target=entry["applies_to"] or file,
        location=Location(file, int(line)), subject=subject, observed=observed, expected=expected,
    ).to_dict()
