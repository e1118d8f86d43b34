"""Baselines: a run compared with an earlier report of the same scope, finding by finding.

Findings are matched by their fingerprint (check, target, file, subject: not the line, so an edit
above a finding does not make it new). Only open findings (fail, warn, error) take part; the
findings about waivers themselves do not. Each open finding of the run gets a `baseline` object:

- `new`: not open in the baseline;
- `unchanged`: open in both with the same status, severity, evidence (observed, expected) and
  waiver;
- `updated`: open in both, but one of those moved (`previous` holds the old values);

and the baseline's open findings that are gone are listed as `absent` (resolved) in
`run.baseline`. With a baseline, only new failures, and updated ones that got worse (fail where
they warned, a higher severity, a waiver lost), count for --fail-on.

A shard compares only the part of the baseline that belongs to it (targets are assigned to shards
by name), so shard reports merged carry the same states as one unsharded run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .verdict import is_open

COMPARED = ("status", "severity", "observed", "expected", "waived")


def _comparable(f: dict) -> bool:
    return is_open(f) and not f["check_id"].startswith("waiver.")


def _values(f: dict) -> dict:
    return {"status": f["status"], "severity": f["severity"], "observed": f.get("observed"),
            "expected": f.get("expected"), "waived": bool(f.get("waiver"))}


@dataclass
class Comparison:
    states: dict[str, dict] = field(default_factory=dict)  # fingerprint -> baseline object
    absent: list[dict] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        counts = {"new": 0, "unchanged": 0, "updated": 0}
        for state in self.states.values():
            counts[state["state"]] += 1
        return {**counts, "absent": len(self.absent)}


def compare(before: dict, after: dict, owns: Callable[[str], bool] | None = None) -> Comparison:
    """`owns(target)`: which of the baseline's targets this run is responsible for (a shard's)."""
    old = {f["fingerprint"]: f for f in before["findings"]
           if _comparable(f) and "fingerprint" in f and (owns is None or owns(f["target"]))}
    result = Comparison()
    seen = set()
    for f in after["findings"]:
        if not _comparable(f):
            continue
        fp = f["fingerprint"]
        seen.add(fp)
        previous = old.get(fp)
        if previous is None:
            result.states[fp] = {"state": "new"}
            continue
        was, now = _values(previous), _values(f)
        moved = [k for k in COMPARED if was[k] != now[k]]
        result.states[fp] = ({"state": "updated", "previous": was, "changed": moved} if moved
                             else {"state": "unchanged"})
    result.absent = [f for fp, f in old.items() if fp not in seen]
    return result


def annotate(doc: dict, before: dict, file: str, owns: Callable[[str], bool] | None = None) -> Comparison:
    """Give `doc`'s open findings their baseline state and record the baseline in `run.baseline`."""
    found = compare(before, doc, owns)
    for f in doc["findings"]:
        state = found.states.get(f["fingerprint"]) if _comparable(f) else None
        if state is not None:
            f["baseline"] = state
        else:
            f.pop("baseline", None)
    run = before.get("run") or {}
    their_scope = (run.get("scope") or {}).get("key")
    our_scope = (doc["run"].get("scope") or {}).get("key")
    doc["run"]["baseline"] = {
        "file": file,
        "started_at": run.get("started_at", ""),
        "scope": their_scope,
        # A shard compares with the unsharded report of its scope (or a merge of shards).
        "same_scope": their_scope is not None and their_scope in (our_scope, _unsharded_key(doc)),
        "counts": found.counts(),
        "absent": found.absent,
    }
    return found


def _unsharded_key(doc: dict) -> str | None:
    from .scope import unsharded

    scope = doc["run"].get("scope")
    return unsharded(scope)["key"] if scope else None
