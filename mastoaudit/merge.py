"""`mastoaudit merge`: shard reports joined into the report of one run.

The shards of a split run (`--shard i/n`) each audit their own hosts; merged, they make the report
the unsharded run would have made, finding for finding: the findings, targets, checks, threat
coverage and summary are recomputed from the shards' documents, the waivers' match counts are
added up before deciding which waivers are stale, and the baseline states (each shard compared the
part of the baseline it owns) carry over. What cannot be merged is refused (exit 2): reports that
are not shard reports, shards of different runs (scope, inventory, count), the same shard twice.
A shard that is missing becomes an error finding, so the merged run is incomplete (exit 3), as is
a merge holding an incomplete shard.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta

from . import waivers as waiver_rules
from .model import Finding, Severity, Status
from .scope import unsharded
from .verdict import finding_order, summarize


class MergeError(Exception):
    """The reports cannot be merged into one run (exit code 2)."""


def _shard(name: str, doc: dict) -> dict:
    shard = doc["run"].get("shard")
    if not shard:
        raise MergeError(f"{name}: not a shard report (made without --shard)")
    if not doc["run"].get("scope"):
        raise MergeError(f"{name}: the report has no scope (made by an older mastoaudit)")
    return shard


def _missing_finding(index: int, count: int, hosts: int | None, unit: str) -> dict:
    what = f": {hosts} {unit}{'s' if hosts != 1 else ''} not audited" if hosts is not None else ""
    return Finding(
        check_id="input.shard", title="Input could not be audited", component="host", severity=Severity.INFO,
        status=Status.ERROR, message=f"the report of shard {index} of {count} is missing{what}",
        target=f"shard {index}/{count}",
    ).to_dict()


def _time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None


def merge_documents(reports: list[tuple[str, dict]]) -> dict:
    """`reports`: (file name, document) of each shard, in any order."""
    if not reports:
        raise MergeError("no reports to merge")
    shards = {}
    first_name, first = reports[0]
    first_shard = _shard(first_name, first)
    scope = unsharded(first["run"]["scope"])
    for name, doc in reports:
        shard = _shard(name, doc)
        if doc["run"]["command"] != first["run"]["command"]:
            raise MergeError(f"{name}: a {doc['run']['command']} report; {first_name} is a {first['run']['command']}")
        if unsharded(doc["run"]["scope"])["key"] != scope["key"]:
            raise MergeError(f"{name}: shard of another run ({doc['run']['scope']['description']}); "
                             f"{first_name} is of {first['run']['scope']['description']}")
        # A sweep's peers come from a live database: shards that read it minutes apart may see a
        # few more domains. Each domain still belongs to exactly one shard (the rule depends on the
        # name alone), so their reports join; hosts and paths must match exactly.
        population_differs = shard["population"] != first_shard["population"] and shard["unit"] != "peer"
        if shard["count"] != first_shard["count"] or population_differs:
            raise MergeError(f"{name}: shard {shard['index']}/{shard['count']} of another split "
                             f"({shard['total']} {shard['unit']}s) than {first_name} "
                             f"({first_shard['index']}/{first_shard['count']} of {first_shard['total']})")
        if shard["index"] in shards:
            raise MergeError(f"{name}: shard {shard['index']}/{shard['count']} given twice "
                             f"(also {shards[shard['index']][0]})")
        shards[shard["index"]] = (name, doc)
    count = first_shard["count"]
    present = [shards[i] for i in sorted(shards)]
    missing = [i for i in range(1, count + 1) if i not in shards]
    audited = sum(len(doc["run"]["shard"]["members"]) for _, doc in present)
    unknown_hosts = first_shard["total"] - audited

    if first_shard["unit"] == "peer":
        findings = _sweep_findings(present)
    else:
        findings = [f for _, doc in present for f in doc["findings"] if not f["check_id"].startswith("waiver.")]
    for i in missing:
        findings.append(_missing_finding(i, count, unknown_hosts if len(missing) == 1 else None, first_shard["unit"]))

    checks = {c["id"]: c for _, doc in present for c in doc["checks"]}
    position = {m["name"]: m["position"] for _, doc in present for m in doc["run"]["shard"]["members"]}
    by_name: dict[str, dict] = {}  # a sweep's shards share one target (the database): listed once
    for _, doc in present:
        for t in doc["run"]["targets"]:
            seen = by_name.get(t["name"])
            by_name[t["name"]] = t if seen is None else {
                **seen, "fact_kinds": sorted({*seen["fact_kinds"], *t["fact_kinds"]}),
                "problems": seen["problems"] + t["problems"]}
    targets = sorted(by_name.values(), key=lambda t: position.get(t["name"], len(position)))
    starts = [(_time(doc["run"]["started_at"]), doc["run"]["duration_s"]) for _, doc in present]
    known = [(s, d) for s, d in starts if s is not None]
    began = min(s for s, _ in known) if known else None
    ended = max(s + timedelta(seconds=d) for s, d in known) if known else None

    doc = {
        "$schema": first["$schema"],
        "schema_version": first["schema_version"],
        "tool": first["tool"],
        "run": {
            "command": first["run"]["command"],
            "started_at": began.isoformat(timespec="seconds") if began else first["run"]["started_at"],
            "duration_s": round((ended - began).total_seconds(), 3) if began and ended else 0.0,
            "complete": True,
            "targets": targets,
            "scope": scope,
            "merged": {
                "count": count,
                "missing": missing,
                "unit": first_shard["unit"],
                "total": first_shard["total"],
                "shards": [{"index": d["run"]["shard"]["index"], "file": n, "started_at": d["run"]["started_at"],
                            "duration_s": d["run"]["duration_s"], "complete": d["run"]["complete"],
                            "members": len(d["run"]["shard"]["members"]), "tool_version": d["tool"]["version"]}
                           for n, d in present],
            },
        },
        "summary": {},
        "checks": [checks[cid] for cid in sorted(checks)],
        "findings": findings,
        "threats": _threats(present, findings),
        "components": first["components"],
        "extra": _merge_extra(present),
    }
    _merge_baseline(doc, present)
    _merge_waivers(doc, present)
    doc["findings"].sort(key=finding_order)
    doc["run"]["complete"] = not any(f["status"] == "error" for f in doc["findings"])
    doc["summary"] = summarize(doc["findings"], len(doc["checks"]))
    return doc


def _sweep_findings(present: list[tuple[str, dict]]) -> list[dict]:
    """The findings of a sweep's shards as the unsharded sweep has them. Unlike hosts, the shards
    of a sweep share one target (the peer list, the database) and each judged a part of it:
    - a finding every shard made alike (a junk line of the peer list each shard read) is one;
    - a pass about the whole target rather than one of the shard's peers ("no peer runs a version
      with a known advisory") is true of the merged run only when no shard found otherwise: it is
      dropped when the same check failed, warned or errored on that target, and kept once;
    - a skip of a shard that holds no peers ("this shard (2 of 3) holds none of the 5 peers") says
      nothing of the merged run once another shard judged that check on that target: dropped then;
    - a skip about the whole target of a shard that read none of its peers ("the software of none of
      the 3 federated peers could be read") is kept once, and only when no shard judged otherwise.
    Per-peer findings come from the one shard that owns the peer and are kept as they are."""
    merged: Counter = Counter()
    kept: dict[str, dict] = {}
    whole: set[str] = set()  # the keys of passes about the whole target
    empty: set[str] = set()  # the keys of skips of shards that hold no peers
    unread: set[str] = set()  # the keys of skips about the whole target (no peer of the shard read)
    for _, doc in present:
        members = {m["name"] for m in doc["run"]["shard"]["members"]}
        mine: Counter = Counter()
        for f in doc["findings"]:
            if f["check_id"].startswith("waiver."):
                continue
            about_whole = f["status"] == "pass" and f.get("subject") not in members
            none_read = bool(members) and f["status"] == "skip" and f.get("subject") not in members
            key = (f"pass:{f['fingerprint']}" if about_whole else f"skip:{f['fingerprint']}" if none_read
                   else json.dumps(f, sort_keys=True))
            mine[key] += 1
            kept.setdefault(key, f)
            if about_whole:
                whole.add(key)
            elif none_read:
                unread.add(key)
            elif not members and f["status"] == "skip":
                empty.add(key)
        merged |= mine  # the most any one shard holds: alike findings once, a shard's own repeats kept
    contradicted = {(f["check_id"], f["target"]) for key, f in kept.items()
                    if key not in whole and key not in empty and key not in unread and f["status"] != "pass"}
    judged = {(f["check_id"], f["target"]) for key, f in kept.items() if key not in empty}
    read = {(f["check_id"], f["target"]) for key, f in kept.items() if key not in empty and key not in unread}

    def keep(key: str) -> bool:
        where = (kept[key]["check_id"], kept[key]["target"])
        return ((key not in whole or where not in contradicted) and (key not in empty or where not in judged)
                and (key not in unread or where not in read))

    once = whole | unread
    return [kept[key] for key, n in merged.items() for _ in range(1 if key in once else n) if keep(key)]


def _merge_extra(present: list[tuple[str, dict]]) -> dict:
    """Each shard's `extra`; a sweep's federation sections are joined, not overwritten."""
    extra = {k: v for _, d in present for k, v in (d.get("extra") or {}).items()}
    sections = [d["extra"]["federation"] for _, d in present
                if isinstance((d.get("extra") or {}).get("federation"), dict)]
    if len(sections) > 1:
        from .federation.report import merge_sections

        extra["federation"] = merge_sections(sections)
    return extra


def _threats(present: list[tuple[str, dict]], findings: list[dict]) -> list[dict]:
    rows = [dict(t, checks=set(t["checks"]), results={}) for t in present[0][1]["threats"]]
    by_id = {t["id"]: t for t in rows}
    for _, doc in present[1:]:
        for t in doc["threats"]:
            if t["id"] in by_id:
                by_id[t["id"]]["checks"].update(t["checks"])
    for f in findings:
        for tid in f["threats"]:
            if tid in by_id:
                counts = by_id[tid]["results"]
                counts[f["status"]] = counts.get(f["status"], 0) + 1
    return [{**t, "checks": sorted(t["checks"])} for t in rows]


def _merge_baseline(doc: dict, present: list[tuple[str, dict]]) -> None:
    baselines = [d["run"]["baseline"] for _, d in present if d["run"].get("baseline")]
    if not baselines:
        return
    counts = {k: sum(b["counts"][k] for b in baselines) for k in ("new", "unchanged", "updated", "absent")}
    absent = sorted((f for b in baselines for f in b["absent"]), key=finding_order)
    doc["run"]["baseline"] = {**baselines[0], "counts": counts, "absent": absent,
                              "same_scope": all(b["same_scope"] for b in baselines)}


def _merge_waivers(doc: dict, present: list[tuple[str, dict]]) -> None:
    sections = [d["waivers"] for _, d in present if d.get("waivers")]
    if not sections:
        return
    entries: dict[str, dict] = {}
    for section in sections:
        for entry in section["entries"]:
            mine = entries.setdefault(entry["source"], {**entry, "matched": 0, "state": "active"})
            mine["matched"] += entry["matched"]
            if entry["state"] == "expired":  # shards that ran either side of midnight: expired wins
                mine["state"] = "expired"
    doc["waivers"] = {"today": max(s["today"] for s in sections),
                      "files": sorted({f for s in sections for f in s["files"]}),
                      "entries": list(entries.values())}
    waiver_rules.add_findings(doc)
