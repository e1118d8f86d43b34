"""Decisions as files Mastodon accepts: the domain-block CSV and the refederation list.

The CSV is written for Mastodon's admin import (Admin::ExportDomainBlocksController#import with
Admin::Import, 4.1 and later): the header `#domain,#severity,#reject_media,#reject_reports,
#public_comment,#obfuscate` (a file whose first header is not `#domain` is read as a bare domain
list), every value written, the severity always (a missing severity imports as suspend), booleans
as `true`/`false` (ActiveModel's boolean cast), at most 20,000 rows (the import reads no more).
A domain Mastodon already blocks itself or through a parent domain (DomainBlock.rule_for) is
skipped by the import; it is left out here too and listed, so the file holds exactly what it will
change.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

from .breakdown import Breakdown, PeerVerdict
from .osv import AdvisoryDB
from .peers import PeerResult
from .queries import DatabaseFacts, ImpactCounts
from .versions import parse

HEADER = ["#domain", "#severity", "#reject_media", "#reject_reports", "#public_comment", "#obfuscate"]
MAX_ROWS = 20_000
DEFAULT_COSTLY_FOLLOWS = 10  # distinct accounts, the larger direction: above this a suspension is flagged


@dataclass
class BlockRow:
    domain: str
    severity: str
    public_comment: str
    advisories: list[str]
    version: str | None
    software: str | None
    impact: ImpactCounts | None = None
    costly: bool = False

    def to_dict(self) -> dict:
        return {"domain": self.domain, "severity": self.severity, "public_comment": self.public_comment,
                "advisories": self.advisories, "software": self.software, "version": self.version,
                "impact": self.impact.to_dict() if self.impact else None, "costly": self.costly}


@dataclass
class Decisions:
    rows: list[BlockRow] = field(default_factory=list)
    already_blocked: list[dict] = field(default_factory=list)  # {"domain", "by", "severity"}
    refederate: list[dict] = field(default_factory=list)  # {"domain", "blocked_for", "version", "source"}
    advisories: list[str] = field(default_factory=list)  # what the blocks were decided for

    def csv_text(self) -> str:
        return blocklist_csv(self.rows)

    def to_dict(self) -> dict:
        return {"block": [r.to_dict() for r in self.rows], "already_blocked": self.already_blocked,
                "refederate": self.refederate, "block_for": self.advisories}


_BUILD = re.compile(r"^[0-9A-Za-z.\-]{1,40}$")


def shown_version(text: str | None) -> str:
    """The version as this instance may publish it. A block's public comment is shown to everyone
    on the instance's about page, and the version is the peer's own text: only what was read as a
    version is repeated (release, pre-release label, short build metadata), never the rest."""
    version = parse(text)
    if version is None:
        return "(an unreadable version)"
    label = f"-{version.pre}" if version.prerelease else f"-{version.post}" if version.post else ""
    build = f"+{version.build}" if version.build and _BUILD.match(version.build) else ""
    return f"{version.base}{label[:40]}{build}"


def _comment(verdict: PeerVerdict, ids: list[str], db: AdvisoryDB) -> str:
    labels = []
    for adv in db.advisories:
        if adv.id in ids:
            labels.append(adv.label)
    software = verdict.result.software or "software"
    return (f"{software} {shown_version(verdict.result.version)} is affected by {', '.join(labels)}; "
            f"we will federate again once the server is upgraded")[:1000]


def decide(breakdown: Breakdown, db: AdvisoryDB, facts: DatabaseFacts | None, block_for: list[str] | None,
           severity: str = "suspend", costly_follows: int = DEFAULT_COSTLY_FOLLOWS,
           previous: list[dict] | None = None, impact_scope: str = "domain") -> Decisions:
    """Block rows for the federated peers affected by the chosen advisories (all matched when
    `block_for` is None), with their impact counts; refederation candidates from the database's
    blocks and a previous run's decisions."""
    wanted = None if block_for is None else {b.strip().lower() for b in block_for}
    out = Decisions()
    chosen: set[str] = set()
    for verdict in breakdown.verdicts:
        ids = [m.advisory.id for m in verdict.matches or ()
               if wanted is None or wanted & {n.lower() for n in m.advisory.names}]
        if not ids:
            continue
        chosen.update(ids)
        domain = verdict.result.domain
        if verdict.blocked is not None and verdict.blocked != "noop":
            out.already_blocked.append({"domain": domain, "by": verdict.blocked_by, "severity": verdict.blocked})
            continue
        impact = facts.impact.get((domain, impact_scope)) if facts else None
        out.rows.append(BlockRow(domain, severity, _comment(verdict, ids, db), ids, verdict.result.version,
                                 verdict.result.software, impact,
                                 costly=impact is not None and impact.most > costly_follows))
    out.advisories = sorted(chosen)
    out.rows = out.rows[:MAX_ROWS]
    out.refederate = refederation(breakdown, db, facts, previous)
    return out


def _advisory_ids_in(text: str, db: AdvisoryDB) -> list[str]:
    lowered = text.lower()
    return [a.id for a in db.advisories if any(n.lower() in lowered for n in a.names)]


def refederation(breakdown: Breakdown, db: AdvisoryDB, facts: DatabaseFacts | None,
                 previous: list[dict] | None) -> list[dict]:
    """Peers blocked for an advisory (a block whose public comment names it, or a previous run's
    block rows) whose current version is no longer affected by it."""
    blocked_for: dict[str, tuple[set[str], str]] = {}
    for block in (facts.blocks or []) if facts else []:
        ids = _advisory_ids_in(block.public_comment, db)
        if ids:
            blocked_for[block.domain] = (set(ids), "database")
    for row in previous or []:
        domain = row.get("domain")
        ids = row.get("advisories") or []
        if isinstance(domain, str) and ids:
            have = blocked_for.get(domain, (set(), "previous run"))
            blocked_for[domain] = (have[0] | set(ids), have[1])
    out = []
    for domain, (ids, source) in sorted(blocked_for.items()):
        verdict = breakdown.verdict(domain)
        if verdict is None or verdict.matches is None or not verdict.result.version:
            continue
        still = {m.advisory.id for m in verdict.matches} & ids
        if not still:
            out.append({"domain": domain, "blocked_for": sorted(ids), "software": verdict.result.software,
                        "version": verdict.result.version, "source": source,
                        "still_blocked": verdict.blocked})
    return out


def blocklist_csv(rows: list[BlockRow]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HEADER)
    for row in rows:
        writer.writerow([row.domain, row.severity, "false", "false", row.public_comment, "false"])
    return buffer.getvalue()


def previous_blocks(document: dict) -> list[dict]:
    """The block rows of a previous run's JSON (a report, or its federation section)."""
    section = document.get("extra", {}).get("federation", document) if isinstance(document, dict) else {}
    decisions = section.get("decisions") if isinstance(section, dict) else None
    rows = decisions.get("block") if isinstance(decisions, dict) else None
    return [r for r in rows or [] if isinstance(r, dict)]


def previous_peers(document: dict) -> list[PeerResult]:
    section = document.get("extra", {}).get("federation", document) if isinstance(document, dict) else {}
    peers = section.get("peers") if isinstance(section, dict) else None
    return [PeerResult.from_dict(p) for p in peers or [] if isinstance(p, dict) and isinstance(p.get("domain"), str)]
