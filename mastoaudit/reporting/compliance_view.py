"""What the HTML pages show of compliance over time: waivers, the baseline, the trend of the kept
runs and what changed since the previous one, a split run's shards, and the `diff` page.

Kept apart from html.py (and drawn by templates/compliance.html.j2 and diff.html.j2) so that a
redesign of the report can move these blocks as they are.
"""

from __future__ import annotations

from .trend import SERIES, chart

_WAIVER_STATES = {"active": "active", "expired": "expired: no longer applied", "stale": "stale: matches nothing"}


def _place(f: dict) -> str | None:
    loc = f.get("location")
    if not loc:
        return None
    return f"{loc['file']}:{loc['line']}" if loc.get("line") else loc["file"]


def compliance_view(doc: dict, findings: list[dict]) -> dict:
    """`findings`: the page's findings (with anchors); each gains `marks`, short labels of how it
    compares with the baseline and with the previous run."""
    by_fingerprint = {f["fingerprint"]: f for f in findings}
    for f in findings:
        f["marks"] = []
        baseline = f.get("baseline")
        if baseline and baseline["state"] == "new":
            f["marks"].append(("new", "new since the baseline"))
        elif baseline and baseline["state"] == "updated":
            before = baseline["previous"]
            f["marks"].append(("updated", f"was {before['status']} {before['severity']} in the baseline"))

    run = doc["run"]
    history = doc.get("history")
    trend = since = None
    if history:
        trend = chart(history["runs"])
        previous = history.get("since_previous")
        if previous:
            for key, label in (("new", "new since the previous run"), ("changed", "changed since the previous run")):
                for fp in previous[key]:
                    if fp in by_fingerprint:
                        by_fingerprint[fp]["marks"].append((f"run-{key}", label))
            since = {
                "started_at": previous["started_at"],
                "new": [by_fingerprint[fp] for fp in previous["new"] if fp in by_fingerprint],
                "changed": [by_fingerprint[fp] for fp in previous["changed"] if fp in by_fingerprint],
                "resolved": [{**f, "where": _place(f)} for f in previous["resolved"]],
            }

    waivers = doc.get("waivers")
    entries = []
    for entry in waivers["entries"] if waivers else ():
        state = entry["state"]
        narrowing = [f"{k} {entry[k]}" for k in ("target", "file", "component", "fingerprint") if entry[k]]
        if entry["applies_to"]:
            narrowing.insert(0, f"only {entry['applies_to']}")
        entries.append({**entry, "state_text": _WAIVER_STATES[state], "narrowing": ", ".join(narrowing)})

    baseline = run.get("baseline")
    resolved = [{**f, "where": _place(f)} for f in baseline["absent"]] if baseline else []
    return {
        "trend": trend,
        "trend_series": SERIES,
        "since": since,
        "history": history,
        "waiver_entries": entries,
        "waivers_today": waivers["today"] if waivers else None,
        "baseline": baseline,
        "baseline_resolved": resolved,
        "shard": run.get("shard"),
        "merged": run.get("merged"),
        "scope": run.get("scope"),
    }


def diff_view(diff: dict) -> dict:
    checks = {c["id"]: c for c in diff.get("checks", [])}

    def row(f: dict, before: dict | None = None, fields: list[str] | None = None) -> dict:
        moved = []
        for key in fields or []:
            if key == "waived":
                was = "waived" if before.get("waiver") else "not waived"
                now = "waived" if f.get("waiver") else "not waived"
            else:
                was, now = before.get(key), f.get(key)
            moved.append({"field": key, "before": "-" if was is None else str(was),
                          "after": "-" if now is None else str(now)})
        return {**f, "waiver": f.get("waiver"), "where": _place(f), "check": checks.get(f["check_id"]), "moved": moved}

    return {
        "diff": diff,
        "new": [row(f) for f in diff["new"]],
        "changed": [row(c["after"], c["before"], c["fields"]) for c in diff["changed"]],
        "resolved": [row(f) for f in diff["resolved"]],
        "persisting": [row(f) for f in diff["persisting"]],
    }
