"""The federation section of the HTML report (templates/federation.html.j2), from the report's
`extra.federation` alone: the sweep's figures, the peers by software and version with a bar chart,
what is vulnerable to which advisory, the vulnerable peers with their follow counts, the CSV's rows,
the refederation candidates and the unreachable peers beside Mastodon's unavailable_domains.

A sweep holds tens of thousands of peers: every list is capped here (the JSON report has them
all) and says how many more there are. The chart is geometry only; the template draws it as inline
SVG styled by classes from federation.css, each bar labelled with its numbers.
"""

from __future__ import annotations

from collections import Counter

from ..federation.decisions import HEADER
from ..federation.report import NO_NAME_RESOLVED, advisory_labels, impact_of, no_name_resolved

MAX_ROWS = 200  # vulnerable peers, CSV rows, refederation candidates, unreachable peers shown
MAX_VERSIONS = 12  # versions listed per software
MAX_SOFTWARE = 12  # software drawn in the chart (the rest summed up)
BAR = {"left": 150, "width": 460, "row": 30, "top": 8, "label": 120}


def _cap(items: list, limit: int = MAX_ROWS) -> dict:
    return {"items": items[:limit], "more": max(0, len(items) - limit), "total": len(items)}


def _chart(rows: list[dict]) -> dict:
    """Horizontal bars, one per software: affected, fixed and unknown-version segments."""
    largest = max((r["total"] for r in rows), default=1) or 1
    bars = []
    for i, row in enumerate(rows):
        y = BAR["top"] + i * BAR["row"]
        x = BAR["left"]
        segments = []
        for kind in ("affected", "fixed", "unknown"):
            n = row[kind]
            if not n:
                continue
            width = max(2.0, BAR["width"] * n / largest)
            segments.append({"kind": kind, "x": round(x, 1), "width": round(width, 1), "n": n})
            x += width
        bars.append({"name": row["software"], "y": y, "segments": segments, "end": round(x + 6, 1),
                     "label": row["label"]})
    return {"bars": bars, "height": BAR["top"] * 2 + BAR["row"] * len(rows), "left": BAR["left"],
            "width": BAR["left"] + BAR["width"] + BAR["label"] + 120, "bar_height": BAR["row"] - 10}


def federation_view(doc: dict) -> dict | None:
    section = (doc.get("extra") or {}).get("federation")
    if not isinstance(section, dict):
        return None
    peers = section.get("peers") or []
    labels = advisory_labels(section)
    impact = impact_of(section)
    breakdown = section.get("breakdown")
    decisions = section.get("decisions") or {}
    software_rows = []
    if breakdown is not None:
        state: dict[tuple[str, str], Counter] = {}
        for p in peers:
            if p.get("blocked") == "suspend" or not p.get("software"):
                continue
            kind = "unknown" if p.get("advisories") is None else "affected" if p["advisories"] else "fixed"
            state.setdefault((p["software"], p.get("version") or "(no version)"), Counter())[kind] += 1
        for software, versions in breakdown["by_software"].items():
            listed = []
            totals: Counter = Counter()
            for version, n in versions.items():
                kinds = state.get((software, version), Counter())
                verdict = "affected" if kinds["affected"] else "unknown" if kinds["unknown"] else "fixed"
                totals[verdict] += n
                listed.append({"version": version, "n": n, "state": verdict})
            total = sum(versions.values())
            words = [f"{totals[k]} {w}" for k, w in (("affected", "affected"), ("fixed", "not affected"),
                                                      ("unknown", "version unknown")) if totals[k]]
            software_rows.append({"software": software, "total": total, "versions": listed[:MAX_VERSIONS],
                                  "more_versions": max(0, len(listed) - MAX_VERSIONS), "affected": totals["affected"],
                                  "fixed": totals["fixed"], "unknown": totals["unknown"],
                                  "label": f"{total}: " + ", ".join(words)})
    shown = software_rows[:MAX_SOFTWARE]
    if len(software_rows) > MAX_SOFTWARE:
        rest = software_rows[MAX_SOFTWARE:]
        total = sum(r["total"] for r in rest)
        shown.append({"software": f"{len(rest)} others", "total": total, "affected": sum(r["affected"] for r in rest),
                      "fixed": sum(r["fixed"] for r in rest), "unknown": sum(r["unknown"] for r in rest),
                      "label": f"{total}", "versions": [], "more_versions": 0})
    blocks = {r["domain"]: r for r in decisions.get("block") or []}
    already = {r["domain"]: r for r in decisions.get("already_blocked") or []}
    vulnerable = []
    for p in peers:
        if not p.get("advisories") or p.get("blocked") == "suspend":
            continue
        counts = impact.get((p["domain"], "domain"))
        row = blocks.get(p["domain"])
        vulnerable.append({
            "domain": p["domain"], "software": p.get("software"), "version": p.get("version"),
            "advisories": [labels.get(a["id"], a["id"]) for a in p["advisories"]],
            "severity": max((a["severity"] for a in p["advisories"]),
                            key=("info", "low", "medium", "high", "critical").index),
            "counts": counts, "costly": bool(row and row.get("costly")),
            "decision": "block" if row else f"already {already[p['domain']]['severity']}" if p["domain"] in already
            else "not chosen"})
    vulnerable.sort(key=lambda r: (-(max(r["counts"]["local_followers"], r["counts"]["their_followers"])
                                     if r["counts"] else -1), r["domain"]))
    advisories = []
    if breakdown is not None:
        for adv_id, domains in breakdown["vulnerable"].items():
            advisories.append({"label": labels.get(adv_id, adv_id), "count": len(domains)})
    sweep = section.get("sweep")
    if sweep:
        sweep = {**sweep, "rate": sweep["peers"] / sweep["duration_s"] if sweep["duration_s"] else 0.0,
                 "errors": sorted(sweep["errors"].items(), key=lambda kv: (-kv[1], kv[0])),
                 "no_name_resolved": NO_NAME_RESOLVED if no_name_resolved(sweep) else None}
    named = [{"domain": row["domain"], "alone": row.get("domain_alone"), "with": row.get("subdomains")}
             for row in section.get("impact") or []]
    unreachable = None
    if breakdown is not None:
        by_domain = {p["domain"]: p for p in peers}
        unreachable = {
            "total": len(breakdown["unreachable"]),
            "offline": len(breakdown["unreachable_and_unavailable"]),
            "still_delivered": _cap([{"domain": d, "error": by_domain.get(d, {}).get("error"),
                                      "detail": by_domain.get(d, {}).get("detail")}
                                     for d in breakdown["unreachable_only"]]),
            "answering": _cap(breakdown["unavailable_but_answering"]),
        }
    return {
        "database": section.get("database"),
        "sweep": sweep,
        "peers": len(peers),
        "software": shown,
        "chart": _chart(shown) if shown else None,
        "advisories": advisories,
        "vulnerable": _cap(vulnerable),
        "csv": {"header": HEADER, **_cap([[r["domain"], r["severity"], "false", "false", r["public_comment"], "false"]
                                          for r in decisions.get("block") or []])} if decisions else None,
        "block_for": decisions.get("block_for") or [],
        "refederate": _cap(decisions.get("refederate") or []),
        "already_blocked": len(decisions.get("already_blocked") or []),
        "unreachable": unreachable,
        "named": named,
        "problems": section.get("problems") or [],
    }
