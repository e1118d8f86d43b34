"""The federation section of a report (`extra.federation`, validated by data/federation.schema.json)
and its terminal text. The terminal text and the HTML section are drawn from the section alone, so
a run, a report read back and a merge of shard reports show the same thing.

1.1 added the sweep (`sweep`: what the NodeInfo sweep did, its limits and error kinds), the peers'
`schema`, `address` and `contact_found`, and the error kinds unreachable, reset, protocol, too-deep,
link-refused and not-swept. `contact` is always null since 1.1: admin contacts go only to the
contacts file the user asks for, never into a report.
"""

from __future__ import annotations

from collections import Counter

from .breakdown import BANDS, Breakdown, version_groups
from .decisions import Decisions
from .osv import AdvisoryDB
from .queries import DatabaseFacts

SCHEMA_VERSION = "1.1"
SCHEMA_ID = "https://mastoaudit.invalid/schema/federation-1.1.json"
NO_NAME_RESOLVED = "no peer name resolved: is DNS reachable from here?"
_COUNTS = ("local_followers", "their_followed", "their_followers", "local_followed", "dashboard_follows",
           "dashboard_followers")


def no_name_resolved(sweep: dict) -> bool:
    """Every peer swept failed DNS: no resolver answered from here (or --no-dns and no map for
    them), and the sweep learned nothing of any peer."""
    return sweep["peers"] > 0 and sweep["errors"].get("dns", 0) == sweep["peers"]


def section(facts: DatabaseFacts | None, impact_domains: list[str], breakdown: Breakdown | None,
            decisions: Decisions | None, db: AdvisoryDB, problems: list[str], sweep: dict | None = None) -> dict:
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
        "breakdown": breakdown_dict(breakdown) if breakdown is not None else None,
        "decisions": decisions.to_dict() if decisions else None,
        "problems": problems,
        "sweep": sweep,
    }
    return out


def breakdown_dict(breakdown: Breakdown) -> dict:
    return {
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


# --- reading a section --------------------------------------------------------------------------


def advisory_labels(section: dict) -> dict[str, str]:
    """'GHSA-7287-grhx-542x (CVE-2025-30741)' for each advisory a peer matched."""
    labels: dict[str, str] = {}
    for peer in section.get("peers") or []:
        for adv in peer.get("advisories") or []:
            aliases = adv.get("aliases") or []
            labels.setdefault(adv["id"], f"{adv['id']} ({', '.join(aliases)})" if aliases else adv["id"])
    return labels


def impact_of(section: dict) -> dict[tuple[str, str], dict]:
    """(domain, "domain" | "subdomains") -> the six counts."""
    out = {}
    for row in section.get("impact") or []:
        for scope, key in (("domain", "domain_alone"), ("subdomains", "subdomains")):
            if row.get(key) is not None:
                out[(row["domain"], scope)] = row[key]
    return out


def bands_of(counts: list[dict]) -> list[tuple[str, int]]:
    """How many domains fall in each follow-count band (distinct accounts, the larger direction)."""
    out: Counter = Counter()
    for c in counts:
        most = max(c["local_followers"], c["their_followers"])
        for limit, label in BANDS:
            if limit is None or most <= limit:
                out[label] += 1
                break
    return [(label, out[label]) for _, label in BANDS]


def _counts_line(c: dict) -> str:
    return (f"{c['local_followers']} accounts here follow {c['their_followed']} of its accounts; "
            f"{c['their_followers']} of its accounts follow {c['local_followed']} here "
            f"(dashboard: {c['dashboard_follows']} and {c['dashboard_followers']} follow rows)")


def _affected_split(adv_id: str, domains: list[str], peers: dict[str, dict]) -> str:
    """Seed 000's way of saying it: ' (46 on 0.12.4, 17 older); 33 pixelfed peers on a fixed version'."""
    from .versions import parse

    affected = Counter(peers[d].get("version") or "?" for d in domains if d in peers)
    if not affected:
        return ""
    software = {peers[d].get("software") for d in domains if d in peers}
    newest = max(affected, key=lambda v: (parse(v) is not None, parse(v) or parse("0")))
    older = sum(affected.values()) - affected[newest]
    split = f" ({affected[newest]} on {newest}" + (f", {older} older)" if older else ")")
    fixed = [p for d, p in peers.items() if p.get("software") in software and d not in domains
             and p.get("blocked") != "suspend" and p.get("advisories") is not None
             and adv_id not in {a["id"] for a in p["advisories"]}]
    if fixed:
        names = "/".join(sorted(s for s in software if s))
        split += f"; {len(fixed)} {names} peer{'s' * (len(fixed) != 1)} on a fixed version"
    return split


def _sweep_lines(sweep: dict) -> list[str]:
    limits = sweep["limits"]
    rate = sweep["peers"] / sweep["duration_s"] if sweep["duration_s"] else 0.0
    part = f" (shard {sweep['shard']})" if sweep.get("shard") else ""
    lines = [f"  NodeInfo sweep{part}: {sweep['peers']} peers in {sweep['duration_s']:.1f} s ({rate:.0f} peers/s), "
             f"{limits['in_flight']} at once, {limits['per_address']} per address, "
             f"{limits['peer_time']:g} s per peer"]
    if no_name_resolved(sweep):
        lines.append(f"    ! {NO_NAME_RESOLVED}")
    if sweep["errors"]:
        lines.append("    not read: " + ", ".join(f"{n} {kind}" for kind, n in
                                                 sorted(sweep["errors"].items(), key=lambda kv: (-kv[1], kv[0]))))
    if sweep["not_swept"]:
        lines.append(f"    ! {sweep['not_swept']} peers not swept: the run's time limit "
                     f"({limits['run_time']:g} s) ended first (raise --max-time, or split with --shard)")
    return lines


def terminal(section: dict, impact_domains: list[str], scope: str = "domain") -> str:
    lines = ["", "Federation"]
    database = section.get("database")
    if database is not None:
        lines.append(f"  database: {database['source']}")
        for name, message in (database.get("errors") or {}).items():
            lines.append(f"  ! {name}: {message}")
    if section.get("sweep"):
        lines += _sweep_lines(section["sweep"])
    breakdown = section.get("breakdown")
    peers = {p["domain"]: p for p in section.get("peers") or []}
    impact = impact_of(section)
    if breakdown is not None:
        labels = advisory_labels(section)
        lines.append("")
        lines.append("  Peers by software and version (federated):")
        for software, versions in breakdown["by_software"].items():
            groups = ", ".join(f"{n} on {v}" for v, n in versions.items())
            lines.append(f"    {software}: {sum(versions.values())} ({groups})")
        # Advisories that affect the very same peers (an old Mastodon matches a dozen) share a line.
        grouped: dict[tuple[str, ...], list[str]] = {}
        for adv_id, domains in breakdown["vulnerable"].items():
            grouped.setdefault(tuple(sorted(domains)), []).append(adv_id)
        for domains, ids in grouped.items():
            names = ", ".join(labels.get(i, i) for i in ids[:4]) + (f" and {len(ids) - 4} more" if len(ids) > 4 else "")
            lines.append(f"  vulnerable to {names}: {len(domains)} federated peer{'s' if len(domains) != 1 else ''}"
                         f"{_affected_split(ids[0], list(domains), peers)}")
        if breakdown["unknown_version"]:
            lines.append(f"  version unreadable (unknown, not safe): {len(breakdown['unknown_version'])}")
        if breakdown["suspended"]:
            lines.append(f"  already suspended: {len(breakdown['suspended'])}")
        lines.append(f"  unreachable: {len(breakdown['unreachable'])}: {len(breakdown['unreachable_and_unavailable'])} "
                     f"also in Mastodon's unavailable_domains (already offline), {len(breakdown['unreachable_only'])} "
                     "that Mastodon still delivers to")
        for d in breakdown["unreachable_only"][:50]:
            lines.append(f"    {d} ({peers.get(d, {}).get('error')})")
        if len(breakdown["unreachable_only"]) > 50:
            lines.append(f"    ... and {len(breakdown['unreachable_only']) - 50} more (all in the JSON report)")
        if breakdown["unavailable_but_answering"]:
            answering = ", ".join(breakdown["unavailable_but_answering"][:50])
            lines.append(f"  in unavailable_domains but answering now: {answering}")
    if database is not None and impact_domains:
        lines.append("")
        lines.append("  Follows across (distinct accounts; the dashboard counts follow rows):")
        other = "subdomains" if scope == "domain" else "domain"
        for domain in impact_domains:
            counts = impact.get((domain, scope))
            if counts is None:
                lines.append(f"    {domain}: not counted")
                continue
            lines.append(f"    {domain}: {_counts_line(counts)}")
            wider = impact.get((domain, other))
            if wider is not None and wider != counts:
                lines.append(f"      with {'subdomains' if scope == 'domain' else 'the domain alone'}: "
                             f"{_counts_line(wider)}")
    if database is not None and breakdown is not None:
        for software in breakdown["by_software"]:
            members = [d for d, p in peers.items() if p.get("software") == software and p.get("blocked") != "suspend"]
            counted = [impact[(d, scope)] for d in members if (d, scope) in impact]
            if members and len(counted) == len(members):
                spread = "; ".join(f"{n} with {label}" for label, n in bands_of(counted) if n)
                lines.append(f"  {software} peers by accounts following across (the larger way): {spread}")
    decisions = section.get("decisions")
    if decisions is not None:
        lines.append("")
        lines.append(f"  Domain blocks to import: {len(decisions['block'])} "
                     f"({', '.join(decisions['block_for']) or '-'}); "
                     f"already blocked: {len(decisions['already_blocked'])}")
        for row in decisions["block"]:
            if row["costly"] and row["impact"]:
                lines.append(f"    costly: {row['domain']}: {_counts_line(row['impact'])}")
        if decisions["refederate"]:
            lines.append(f"  Refederate (blocked for an advisory, now fixed): "
                         f"{', '.join(r['domain'] for r in decisions['refederate'])}")
    for problem in section.get("problems") or []:
        lines.append(f"  ! {problem}")
    return "\n".join(lines) + "\n"


# --- joining shards -------------------------------------------------------------------------------


def merge_sections(sections: list[dict]) -> dict:
    """The federation sections of shard reports (`federation peers --shard I/N`) joined into the
    section the unsharded sweep would have written: peers, impact counts and decisions joined (each
    peer belongs to one shard), the breakdown recounted from the joined peers, the sweep's figures
    added up (its duration: the longest shard's, as shards run side by side)."""
    from .breakdown import summarise, verdicts_from_section

    first = sections[0]
    peers = sorted({p["domain"]: p for s in sections for p in s.get("peers") or []}.values(), key=lambda p: p["domain"])
    impact = sorted({row["domain"]: row for s in sections for row in s.get("impact") or []}.values(),
                    key=lambda row: row["domain"])
    database = next((s["database"] for s in sections if s.get("database")), None)
    if database is not None:
        errors = {k: v for s in sections if s.get("database") for k, v in (s["database"].get("errors") or {}).items()}
        database = {**database, "errors": errors}
    decided = [s["decisions"] for s in sections if s.get("decisions")]
    decisions = None
    if decided:
        decisions = {
            "block": sorted((r for d in decided for r in d["block"]), key=lambda r: r["domain"]),
            "already_blocked": sorted((r for d in decided for r in d["already_blocked"]), key=lambda r: r["domain"]),
            "refederate": sorted({r["domain"]: r for d in decided for r in d["refederate"]}.values(),
                                 key=lambda r: r["domain"]),
            "block_for": sorted({a for d in decided for a in d["block_for"]}),
        }
    sweeps = [s["sweep"] for s in sections if s.get("sweep")]
    sweep = None
    if sweeps:
        errors: Counter = Counter()
        for one in sweeps:
            errors.update(one["errors"])
        sweep = {**sweeps[0], "peers": sum(s["peers"] for s in sweeps),
                 "duration_s": max(s["duration_s"] for s in sweeps), "cpu_s": round(sum(s["cpu_s"] for s in sweeps), 3),
                 "requests": sum(s["requests"] for s in sweeps), "errors": dict(sorted(errors.items())),
                 "not_swept": sum(s["not_swept"] for s in sweeps),
                 "slowest_peer_s": max(s["slowest_peer_s"] for s in sweeps),
                 "contacts_looked_up": sum(s["contacts_looked_up"] for s in sweeps), "shard": None,
                 "merged": len(sections)}
    breakdown = summarise(verdicts_from_section(peers)) if any(s.get("breakdown") is not None for s in sections) \
        else None
    return {
        "$schema": SCHEMA_ID, "schema_version": SCHEMA_VERSION, "database": database,
        "advisories": first["advisories"], "impact": impact, "peers": peers,
        "breakdown": breakdown_dict(breakdown) if breakdown is not None else None,
        "decisions": decisions, "problems": [p for s in sections for p in s.get("problems") or []], "sweep": sweep,
    }
