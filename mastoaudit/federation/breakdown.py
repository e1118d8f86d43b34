"""Seed 000's breakdown as data: peers by software and version, vulnerable per advisory,
unreachable beside Mastodon's own `unavailable_domains`, and the follows across each peer."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from .osv import Advisory, AdvisoryDB, Match
from .peers import PeerResult
from .queries import DatabaseFacts
from .versions import parse

# Follow-count bands (distinct accounts, the larger direction) as seed 000 reports them.
BANDS = ((5, "5 or fewer"), (10, "6 to 10"), (None, "more than 10"))


@dataclass
class PeerVerdict:
    result: PeerResult
    matches: list[Match] | None  # None: the version could not be read (unknown, never "safe")
    blocked: str | None = None  # the severity of the block covering the domain (parent blocks count)
    blocked_by: str | None = None  # the block's domain (the peer's own or a parent)

    @property
    def federated(self) -> bool:
        return self.blocked != "suspend"

    @property
    def vulnerable(self) -> bool:
        return bool(self.matches)


@dataclass
class Breakdown:
    verdicts: list[PeerVerdict] = field(default_factory=list)
    by_software: dict[str, Counter] = field(default_factory=dict)  # federated peers: software -> version -> n
    vulnerable: dict[str, list[str]] = field(default_factory=dict)  # advisory id -> federated domains
    unknown_version: list[str] = field(default_factory=list)  # software known to the advisories, version unreadable
    unreachable: list[str] = field(default_factory=list)
    unreachable_and_unavailable: list[str] = field(default_factory=list)
    unreachable_only: list[str] = field(default_factory=list)  # Mastodon still tries to deliver to these
    unavailable_but_answering: list[str] = field(default_factory=list)
    suspended: list[str] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    # A shard's part of a split sweep (`--shard k/n`): (k, n, peers in the whole list); None unsharded.
    shard: tuple[int, int, int] | None = None

    def verdict(self, domain: str) -> PeerVerdict | None:
        return next((v for v in self.verdicts if v.result.domain == domain), None)


def build(results: Iterable[PeerResult], db: AdvisoryDB, facts: DatabaseFacts | None = None) -> Breakdown:
    """Match each peer's version against the advisories and the database's blocks, then count."""
    unavailable = facts.unavailable() if facts and facts.peers is not None else set()
    verdicts = []
    for result in sorted(results, key=lambda r: r.domain):
        if result.domain in unavailable:
            result.unavailable = True
        block = facts.block_for(result.domain) if facts else None
        matches: list[Match] | None = []
        if result.software and db.knows(result.software):
            matches = db.matches(result.software, result.version or "")
        verdicts.append(PeerVerdict(result, matches, block.severity if block else None,
                                    block.domain if block else None))
    return summarise(verdicts)


def summarise(verdicts: Iterable[PeerVerdict]) -> Breakdown:
    """The counts of seed 000's breakdown from peers already judged (a run's, or shards' joined)."""
    out = Breakdown()
    by_software: dict[str, Counter] = defaultdict(Counter)
    for verdict in sorted(verdicts, key=lambda v: v.result.domain):
        result, matches = verdict.result, verdict.matches
        out.verdicts.append(verdict)
        if not verdict.federated:
            out.suspended.append(result.domain)
            continue
        if result.error is not None:
            out.errors[result.error.value] += 1
            if not result.reachable and result.swept:  # not swept: unknown, neither way
                out.unreachable.append(result.domain)
        if result.software:
            by_software[result.software][result.version or "(no version)"] += 1
            if matches is None:
                out.unknown_version.append(result.domain)
        for match in matches or ():
            out.vulnerable.setdefault(match.advisory.id, []).append(result.domain)
        if result.unavailable and result.reachable and result.error is None:
            out.unavailable_but_answering.append(result.domain)
    out.by_software = dict(sorted(by_software.items(), key=lambda kv: (-sum(kv[1].values()), kv[0])))
    unavailable = {v.result.domain for v in out.verdicts if v.result.unavailable}
    out.unreachable_and_unavailable = [d for d in out.unreachable if d in unavailable]
    out.unreachable_only = [d for d in out.unreachable if d not in unavailable]
    return out


def verdicts_from_section(peers: Iterable[dict]) -> list[PeerVerdict]:
    """The judged peers of a report's federation section (as `report.section` wrote them)."""
    out = []
    for peer in peers:
        matches = None if peer.get("advisories") is None else [
            Match(Advisory(a["id"], tuple(a.get("aliases") or ()), a.get("summary") or "", a.get("severity", "medium"),
                           ()), a.get("fixed_in")) for a in peer["advisories"]]
        out.append(PeerVerdict(PeerResult.from_dict(peer), matches, peer.get("blocked"), peer.get("blocked_by")))
    return out


def version_groups(counter: Counter, software: str) -> list[tuple[str, int]]:
    """Versions newest first (unreadable ones last)."""
    def key(item: tuple[str, int]):
        parsed = parse(item[0], software)
        return (parsed is None, [] if parsed is None else [-x for x in (*parsed.release, 0, 0, 0)[:6]],
                0 if parsed is None else -parsed.phase, item[0])
    return sorted(counter.items(), key=key)
