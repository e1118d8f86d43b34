"""The federation section of a report (`extra.federation`, validated by data/federation.schema.json)
and its terminal text."""

from __future__ import annotations

from .breakdown import Breakdown, bands, version_groups
from .decisions import Decisions
from .osv import AdvisoryDB
from .queries import DatabaseFacts, ImpactCounts

SCHEMA_VERSION = "1.0"
SCHEMA_ID = "https://mastoaudit.invalid/schema/federation-1.0.json"


def section(facts: DatabaseFacts | None, impact_domains: list[str], breakdown: Breakdown | None,
            decisions: Decisions | None, db: AdvisoryDB, problems: list[str]) -> dict:
    impact = []
    if facts is not None:
        for domain in impact_domains:
            row = {"domain": domain}
            for scope, key in (("domain", "domain_alone"), ("subdomains", "subdomains")):
                counts = facts.impact.get((domain, scope))
                row[key] = None if counts is None else {k: v for k, v in counts.to_dict().items()
                                                          if k not in ("domain", "scope")}
            impact.append(row)
    out: dict = {
        "$schema": SCHEMA_ID,
        "schema_version": SCHEMA_VERSION,
        "database": facts.to_dict() if facts is not None else None,
        "advisories": {"sources": list(db.sources), "count": len(db.advisories)},
        "impact": impact,
        "peers": [v.result.to_dict() | {
            "advisories": None if v.matches is None else [m.to_dict() for m in v.matches],
            "blocked": v.blocked, "blocked_by": v.blocked_by} for v in breakdown.verdicts] if breakdown else [],
        "breakdown": None,
        "decisions": decisions.to_dict() if decisions else None,
        "problems": problems,
    }
    if breakdown is not None:
        out["breakdown"] = {
            "by_software": {s: dict(version_groups(c, s)) for s, c in breakdown.by_software.items()},
            "vulnerable": {k: sorted(v) for k, v in breakdown.vulnerable.items()},
            "unknown_version": breakdown.unknown_version,
            "unreachable": breakdown.unreachable,
            "unreachable_and_unavailable": breakdown.unreachable_and_unavailable,
            "unreachable_only": breakdown.unreachable_only,
            "unavailable_but_answering": breakdown.unavailable_but_answering,
            "suspended": breakdown.suspended,
            "errors": dict(breakdown.errors),
        }
    return out


def _counts_line(c: ImpactCounts) -> str:
    return (f"{c.local_followers} accounts here follow {c.their_followed} of its accounts; "
            f"{c.their_followers} of its accounts follow {c.local_followed} here "
            f"(dashboard: {c.dashboard_follows} and {c.dashboard_followers} follow rows)")


def terminal(facts: DatabaseFacts | None, impact_domains: list[str], breakdown: Breakdown | None,
             decisions: Decisions | None, db: AdvisoryDB, scope: str = "domain") -> str:
    lines = ["", "Federation"]
    if facts is not None:
        lines.append(f"  database: {facts.source}")
        for name, message in facts.errors.items():
            lines.append(f"  ! {name}: {message}")
    if breakdown is not None:
        lines.append("")
        lines.append("  Peers by software and version (federated):")
        for software, counter in breakdown.by_software.items():
            total = sum(counter.values())
            groups = ", ".join(f"{n} on {v}" for v, n in version_groups(counter, software))
            lines.append(f"    {software}: {total} ({groups})")
        for adv_id, domains in breakdown.vulnerable.items():
            adv = next((a for a in db.advisories if a.id == adv_id), None)
            label = adv.label if adv else adv_id
            lines.append(f"  vulnerable to {label}: {len(domains)} federated peers")
        if breakdown.unknown_version:
            lines.append(f"  version unreadable (unknown, not safe): {len(breakdown.unknown_version)}")
        if breakdown.suspended:
            lines.append(f"  already suspended: {len(breakdown.suspended)}")
        lines.append(f"  unreachable: {len(breakdown.unreachable)}: {len(breakdown.unreachable_and_unavailable)} also "
                     f"in Mastodon's unavailable_domains (already offline), {len(breakdown.unreachable_only)} that "
                     "Mastodon still delivers to")
        for d in breakdown.unreachable_only:
            lines.append(f"    {d} ({breakdown.verdict(d).result.error})")
        if breakdown.unavailable_but_answering:
            answering = ", ".join(breakdown.unavailable_but_answering)
            lines.append(f"  in unavailable_domains but answering now: {answering}")
    if facts is not None and impact_domains:
        lines.append("")
        lines.append("  Follows across (distinct accounts; the dashboard counts follow rows):")
        for domain in impact_domains:
            counts = facts.impact.get((domain, scope))
            if counts is None:
                lines.append(f"    {domain}: not counted")
                continue
            lines.append(f"    {domain}: {_counts_line(counts)}")
            other = "subdomains" if scope == "domain" else "domain"
            wider = facts.impact.get((domain, other))
            if wider is not None and wider != replace_scope(counts, other):
                lines.append(f"      with {'subdomains' if scope == 'domain' else 'the domain alone'}: "
                             f"{_counts_line(wider)}")
    if facts is not None and breakdown is not None:
        for software in breakdown.by_software:
            peers = [v.result.domain for v in breakdown.verdicts if v.federated and v.result.software == software]
            counted = [facts.impact[(d, scope)] for d in peers if (d, scope) in facts.impact]
            if peers and len(counted) == len(peers):
                spread = "; ".join(f"{len(ds)} with {label}" for label, ds in bands(counted) if ds)
                lines.append(f"  {software} peers by accounts following across (the larger way): {spread}")
    if decisions is not None:
        lines.append("")
        lines.append(f"  Domain blocks to import: {len(decisions.rows)} ({', '.join(decisions.advisories) or '-'})"
                     f"; already blocked: {len(decisions.already_blocked)}")
        for row in decisions.rows:
            if row.costly and row.impact:
                lines.append(f"    costly: {row.domain}: {_counts_line(row.impact)}")
        if decisions.refederate:
            lines.append(f"  Refederate (blocked for an advisory, now fixed): "
                         f"{', '.join(r['domain'] for r in decisions.refederate)}")
    return "\n".join(lines) + "\n"


def replace_scope(counts: ImpactCounts, scope: str) -> ImpactCounts:
    from dataclasses import replace

    return replace(counts, scope=scope)
