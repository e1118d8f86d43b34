"""Advisories in the OSV format (https://ossf.github.io/osv-schema/): the one advisory database.

The bundled records (mastoaudit/data/advisories.osv.json) cover Mastodon per release line,
Pixelfed's GHSA-7287-grhx-542x, Misskey and Lemmy; users add their own OSV files or replace the
bundled set. A record affects a peer when one of its `affected` entries names the peer's software
(NodeInfo `software.name`) and one of its ranges holds the peer's version.

Which software an `affected` entry names: `database_specific.nodeinfo_software` (a list) when the
record says so, else the ecosystem/package pairs below (how the projects appear in OSV and GitHub's
advisory database), else the package name's last path segment ("mastodon/mastodon" -> mastodon).

Ranges are read the OSV way: events in order, `introduced` opens, `fixed` (exclusive) or
`last_affected` (inclusive) closes, `limit` bounds; "0" is the beginning. A release line fixed in
its own patch release is one range per line (as GitHub writes Mastodon's advisories). Versions
are compared with `versions.parse` for every range type (ECOSYSTEM, SEMVER); GIT ranges name
commits, which a NodeInfo version cannot be held against, so they never match.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

from .versions import Version, parse

MAX_ADVISORY_FILE_BYTES = 32 * 1024 * 1024
MAX_ADVISORY_FILES = 10_000
SEVERITIES = ("info", "low", "medium", "high", "critical")

PACKAGES: dict[tuple[str, str], str] = {
    ("packagist", "pixelfed/pixelfed"): "pixelfed",
    ("bitnami", "mastodon"): "mastodon",
    ("rubygems", "mastodon"): "mastodon",
    ("crates.io", "lemmy_server"): "lemmy",
    ("crates.io", "lemmy_api"): "lemmy",
    ("npm", "misskey"): "misskey",
    ("npm", "misskey-js"): "misskey",
    ("go", "github.com/superseriousbusiness/gotosocial"): "gotosocial",
    ("go", "codeberg.org/superseriousbusiness/gotosocial"): "gotosocial",
    ("hex", "pleroma"): "pleroma",
    ("hex", "akkoma"): "akkoma",
}


class AdvisoryError(Exception):
    """An advisory file that is missing, unreadable or not OSV: the message names the file."""


@dataclass(frozen=True)
class Range:
    introduced: Version | None  # None: from the beginning ("0")
    fixed: Version | None = None
    last_affected: Version | None = None
    limit: Version | None = None
    fixed_text: str | None = None

    def contains(self, version: Version) -> bool:
        if self.introduced is not None and version < self.introduced:
            return False
        if self.fixed is not None and not version < self.fixed:
            return False
        if self.last_affected is not None and version > self.last_affected:
            return False
        return not (self.limit is not None and not version < self.limit)


@dataclass(frozen=True)
class Affected:
    software: tuple[str, ...]
    ranges: tuple[Range, ...]
    versions: frozenset[str] = frozenset()  # an explicit `versions` list, matched as written


@dataclass(frozen=True)
class Advisory:
    id: str
    aliases: tuple[str, ...]
    summary: str
    severity: str  # info .. critical
    affected: tuple[Affected, ...]
    references: tuple[str, ...] = ()
    origin: str = "builtin"

    @property
    def names(self) -> tuple[str, ...]:
        return (self.id, *self.aliases)

    @property
    def label(self) -> str:
        """'GHSA-7287-grhx-542x (CVE-2025-30741)'."""
        return f"{self.id} ({', '.join(self.aliases)})" if self.aliases else self.id

    def software(self) -> set[str]:
        return {s for a in self.affected for s in a.software}


@dataclass(frozen=True)
class Match:
    """One advisory affecting one version: the release that fixes it for that version's range."""

    advisory: Advisory
    fixed_in: str | None

    def to_dict(self) -> dict:
        return {"id": self.advisory.id, "aliases": list(self.advisory.aliases), "summary": self.advisory.summary,
                "severity": self.advisory.severity, "fixed_in": self.fixed_in}


@dataclass
class AdvisoryDB:
    advisories: list[Advisory] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def add(self, advisories: Iterable[Advisory]) -> None:
        """Add records; one with the id (or an alias) of a record already held replaces it."""
        for new in advisories:
            names = set(new.names)
            self.advisories = [a for a in self.advisories if not names & set(a.names)]
            self.advisories.append(new)

    def for_software(self, software: str) -> list[Advisory]:
        name = software.strip().lower()
        return [a for a in self.advisories if name in a.software()]

    def knows(self, software: str) -> bool:
        return bool(self.for_software(software))

    def matches(self, software: str, version_text: str) -> list[Match] | None:
        """Advisories affecting `version_text` of `software`; None when the version cannot be read
        (unknown is its own answer, never "not affected")."""
        version = parse(version_text, software)
        if version is None:
            return None
        found = []
        name = software.strip().lower()
        for adv in self.advisories:
            for aff in adv.affected:
                if name not in aff.software:
                    continue
                hit = next((r for r in aff.ranges if r.contains(version)), None)
                if hit is not None or version_text.strip() in aff.versions:
                    found.append(Match(adv, hit.fixed_text if hit else None))
                    break
        return found


# --- reading OSV ----------------------------------------------------------------------------------


def _severity(record: dict) -> str:
    """GitHub's OSV records carry `database_specific.severity` (LOW, MODERATE, HIGH, CRITICAL);
    without it, a CVSS vector's score is not computed here: the record counts as medium."""
    text = str((record.get("database_specific") or {}).get("severity", "")).strip().lower()
    text = {"moderate": "medium", "none": "info"}.get(text, text)
    return text if text in SEVERITIES else "medium"


def _software(entry: dict) -> tuple[str, ...]:
    hint = (entry.get("database_specific") or {}).get("nodeinfo_software") or (
        entry.get("ecosystem_specific") or {}).get("nodeinfo_software")
    if isinstance(hint, str):
        hint = [hint]
    if isinstance(hint, list) and all(isinstance(h, str) for h in hint) and hint:
        return tuple(h.strip().lower() for h in hint)
    package = entry.get("package") or {}
    ecosystem = str(package.get("ecosystem", "")).split(":", 1)[0].strip().lower()
    name = str(package.get("name", "")).strip()
    known = PACKAGES.get((ecosystem, name.lower()))
    if known:
        return (known,)
    tail = name.rstrip("/").rsplit("/", 1)[-1].lower()
    return (tail,) if tail else ()


def _version(text: object, where: str) -> Version | None:
    if text in ("0", 0):
        return None
    version = parse(str(text))
    if version is None:
        raise AdvisoryError(f"{where}: cannot read the version {str(text)[:60]!r}")
    return version


def _ranges(entry: dict, where: str) -> tuple[Range, ...]:
    ranges = []
    for i, raw in enumerate(entry.get("ranges") or []):
        if not isinstance(raw, dict) or not isinstance(raw.get("events"), list):
            raise AdvisoryError(f"{where}: ranges[{i}] has no events list")
        if str(raw.get("type", "")).upper() == "GIT":
            continue
        start: Version | None = None
        opened = False
        limit = None
        for event in raw["events"]:
            if not isinstance(event, dict) or len(event) != 1:
                raise AdvisoryError(f"{where}: ranges[{i}]: an event must have exactly one key")
            (kind, value), = event.items()
            if kind == "limit":
                limit = None if value == "*" else _version(value, where)
        for event in raw["events"]:
            (kind, value), = event.items()
            if kind == "introduced":
                start, opened = _version(value, where), True
            elif kind in ("fixed", "last_affected") and opened:
                end = _version(value, where)
                ranges.append(Range(start, fixed=end if kind == "fixed" else None,
                                    last_affected=end if kind == "last_affected" else None, limit=limit,
                                    fixed_text=str(value) if kind == "fixed" else None))
                opened = False
            elif kind not in ("introduced", "fixed", "last_affected", "limit"):
                raise AdvisoryError(f"{where}: ranges[{i}]: unknown event {kind!r}")
        if opened:
            ranges.append(Range(start, limit=limit))
    return tuple(ranges)


def advisory_from_osv(record: object, origin: str) -> Advisory:
    if not isinstance(record, dict):
        raise AdvisoryError(f"{origin}: an OSV record must be a JSON object")
    rid = record.get("id")
    if not isinstance(rid, str) or not rid.strip():
        raise AdvisoryError(f"{origin}: an OSV record without an id")
    where = f"{origin}: {rid}"
    affected_raw = record.get("affected")
    if not isinstance(affected_raw, list):
        raise AdvisoryError(f"{where}: no affected list")
    affected = []
    for entry in affected_raw:
        if not isinstance(entry, dict):
            raise AdvisoryError(f"{where}: an affected entry must be an object")
        versions = entry.get("versions") or []
        affected.append(Affected(_software(entry), _ranges(entry, where),
                                 frozenset(str(v) for v in versions if isinstance(v, str | int))))
    aliases = tuple(a for a in record.get("aliases") or [] if isinstance(a, str))
    summary = record.get("summary") or record.get("details") or ""
    references = tuple(r["url"] for r in record.get("references") or []
                       if isinstance(r, dict) and isinstance(r.get("url"), str))
    return Advisory(rid.strip(), aliases, str(summary).strip().split("\n")[0][:300], _severity(record),
                    tuple(affected), references, origin)


def records_in(document: object, origin: str) -> list[Advisory]:
    """One record, a list of records, or {"vulns": [...]} as osv.dev's query API answers."""
    if isinstance(document, dict) and isinstance(document.get("vulns"), list):
        document = document["vulns"]
    if isinstance(document, list):
        return [advisory_from_osv(r, origin) for r in document]
    return [advisory_from_osv(document, origin)]


def load_file(path: Path) -> list[Advisory]:
    try:
        size = path.stat().st_size
        if size > MAX_ADVISORY_FILE_BYTES:
            raise AdvisoryError(f"{path}: larger than {MAX_ADVISORY_FILE_BYTES // (1024 * 1024)} MiB")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AdvisoryError(f"{path}: no such advisory file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AdvisoryError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from None
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise AdvisoryError(f"{path}: not JSON ({exc})") from None
    return records_in(document, str(path))


def load_path(path: Path) -> list[Advisory]:
    """A file, or every *.json file under a folder (sorted, so the order is stable)."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.json") if p.is_file())
        if not files:
            raise AdvisoryError(f"{path}: no .json advisory files in this folder")
        if len(files) > MAX_ADVISORY_FILES:
            raise AdvisoryError(f"{path}: more than {MAX_ADVISORY_FILES} files")
        found: list[Advisory] = []
        for f in files:
            found += load_file(f)
        return found
    return load_file(path)


@cache
def builtin() -> tuple[Advisory, ...]:
    text = resources.files("mastoaudit.data").joinpath("advisories.osv.json").read_text(encoding="utf-8")
    return tuple(records_in(json.loads(text), "builtin"))


def database(extra: Iterable[Path] = (), include_builtin: bool = True) -> AdvisoryDB:
    """The bundled records (unless left out) with the user's files on top: a user record with the
    id or an alias of a bundled one replaces it."""
    db = AdvisoryDB()
    if include_builtin:
        db.add(builtin())
        db.sources.append("builtin")
    for path in extra:
        db.add(load_path(Path(path)))
        db.sources.append(str(path))
    return db


@cache
def default_database() -> AdvisoryDB:
    return database()
