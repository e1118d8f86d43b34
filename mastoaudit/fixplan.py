"""`fix --plan`: what to change, file by file, from a run's failed findings. Changes nothing."""

from __future__ import annotations

from collections import defaultdict


def plan(document: dict) -> str:
    """A plan from a report document (JSON report or build_document output)."""
    checks = {c["id"]: c for c in document.get("checks", [])}
    by_place: dict[str, list[dict]] = defaultdict(list)
    for f in document["findings"]:
        if f["status"] not in ("fail", "warn"):
            continue
        loc = f.get("location") or {}
        by_place[f"{f['target']} · {loc.get('file') or '(no file)'}"].append(f)
    if not by_place:
        return "Nothing to fix: no failed or warned findings.\n"
    out = ["Fix plan (nothing has been changed; review and apply by hand or with your config management):"]
    for place in sorted(by_place):
        out.append(f"\n== {place}")
        seen: set[str] = set()
        for f in sorted(by_place[place], key=lambda f: ((f.get("location") or {}).get("line") or 0, f["check_id"])):
            loc = f.get("location") or {}
            line = f" line {loc['line']}" if loc.get("line") else ""
            out.append(f"- [{f['severity']}] {f['check_id']}{line}: {f['message']}")
            meta = checks.get(f["check_id"])
            if meta is None or f["check_id"] in seen:
                continue
            seen.add(f["check_id"])
            out.append(f"    {meta['remediation']['text']}")
            snippet = meta["remediation"].get("snippet")
            if snippet:
                out.extend("      " + s for s in snippet.splitlines())
    return "\n".join(out) + "\n"
