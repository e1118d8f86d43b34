"""What changed between two JSON reports: for periodic compliance runs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .model import Severity

OPEN = ("fail", "warn", "error")
SUPPORTED_MAJOR = "1"


class ReportError(Exception):
    """A report file is missing, not JSON, or not a mastoaudit report of a supported version."""


def load_report(path: Path) -> dict:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ReportError(f"{path}: {exc.strerror or exc}") from None
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        raise ReportError(f"{path}{f':{line}' if line else ''}: not JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("findings"), list):
        raise ReportError(f"{path}: not a mastoaudit JSON report (no findings list)")
    version = str(doc.get("schema_version", ""))
    if version.split(".")[0] != SUPPORTED_MAJOR:
        raise ReportError(f"{path}: report schema version {version!r} is not supported (expected 1.x)")
    return doc


@dataclass
class Diff:
    new: list[dict] = field(default_factory=list)        # open now, not open before
    resolved: list[dict] = field(default_factory=list)   # open before, passing or gone now
    persisting: list[dict] = field(default_factory=list)
    changed: list[tuple[dict, dict]] = field(default_factory=list)  # open in both, status or severity moved

    def to_dict(self) -> dict:
        return {
            "new": self.new,
            "resolved": self.resolved,
            "persisting": self.persisting,
            "changed": [{"before": b, "after": a} for b, a in self.changed],
            "counts": {"new": len(self.new), "resolved": len(self.resolved),
                       "persisting": len(self.persisting), "changed": len(self.changed)},
        }

    def worst_new(self) -> Severity | None:
        ranks = [Severity(f["severity"]) for f in self.new if f["status"] == "fail"]
        return max(ranks, key=lambda s: s.rank) if ranks else None


def _open(doc: dict) -> dict[str, dict]:
    return {f["fingerprint"]: f for f in doc["findings"] if f.get("status") in OPEN and "fingerprint" in f}


def compare(before: dict, after: dict) -> Diff:
    old, new = _open(before), _open(after)
    diff = Diff()
    for fp, finding in new.items():
        if fp not in old:
            diff.new.append(finding)
        elif (old[fp]["status"], old[fp]["severity"]) != (finding["status"], finding["severity"]):
            diff.changed.append((old[fp], finding))
        else:
            diff.persisting.append(finding)
    diff.resolved = [f for fp, f in old.items() if fp not in new]
    return diff


def render_terminal(diff: Diff, before: Path, after: Path) -> str:
    def line(f: dict) -> str:
        loc = f.get("location") or {}
        where = f" {loc.get('file')}{':' + str(loc['line']) if loc.get('line') else ''}" if loc else ""
        return f"  {f['status'].upper():5} {f['severity']:8} {f['check_id']} [{f['target']}]{where}: {f['message']}"

    out = [f"mastoaudit diff {before} -> {after}",
           f"  new: {len(diff.new)}  resolved: {len(diff.resolved)}  changed: {len(diff.changed)}  "
           f"persisting: {len(diff.persisting)}"]
    for title, items in (("New", diff.new), ("Resolved", diff.resolved)):
        if items:
            out.append(f"\n{title}:")
            out.extend(line(f) for f in items)
    if diff.changed:
        out.append("\nChanged:")
        for b, a in diff.changed:
            moved = f"{b['status']}/{b['severity']} -> {a['status']}/{a['severity']}"
            out.append(f"  {a['check_id']} [{a['target']}]: {moved}")
    return "\n".join(out) + "\n"
