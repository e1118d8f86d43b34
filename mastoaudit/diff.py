"""What changed between two JSON reports (`mastoaudit diff OLD NEW`): for periodic compliance runs.

The comparison is the baseline's (baseline.py): open findings matched by fingerprint, each new,
unchanged (`persisting`) or updated (`changed`), and the old ones that are gone (`resolved`). The
diff document says so in every format: terminal, JSON, HTML (templates/diff.html.j2), SARIF (the
new report with `baselineState` on each result, resolved ones as `absent`) and JUnit.
"""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
from pathlib import Path

from .baseline import annotate
from .model import Severity
from .verdict import counts_for_fail_on, finding_order, severity_rank

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
    except RecursionError:  # nested deeper than the decoder recurses: not a report
        raise ReportError(f"{path}: not a mastoaudit JSON report (nested too deeply)") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("findings"), list):
        raise ReportError(f"{path}: not a mastoaudit JSON report (no findings list)")
    version = str(doc.get("schema_version", ""))
    if version.split(".")[0] != SUPPORTED_MAJOR:
        raise ReportError(f"{path}: report schema version {version!r} is not supported (expected 1.x)")
    if not all(isinstance(f, dict) and {"fingerprint", "status", "severity", "check_id", "target"} <= f.keys()
               for f in doc["findings"]):
        raise ReportError(f"{path}: a finding lacks its fingerprint, status, severity, check_id or target")
    return doc


def _side(file: str, doc: dict) -> dict:
    run = doc.get("run") or {}
    return {"file": file, "started_at": run.get("started_at", ""), "command": run.get("command", ""),
            "scope": run.get("scope"), "tool_version": (doc.get("tool") or {}).get("version", ""),
            "complete": not incomplete(doc)}


def compare_reports(before: dict, after: dict, before_file: str, after_file: str) -> tuple[dict, dict]:
    """(the new report annotated with the old as its baseline, the diff document)."""
    annotated = copy.deepcopy(after)
    annotate(annotated, before, before_file)
    old = {f["fingerprint"]: f for f in before["findings"]}
    states = {"new": [], "unchanged": [], "updated": []}
    for f in annotated["findings"]:
        if f.get("baseline"):
            states[f["baseline"]["state"]].append(f)
    baseline = annotated["run"]["baseline"]
    diff = {
        "kind": "mastoaudit-diff",
        "schema_version": "1.1",
        "before": _side(before_file, before),
        "after": _side(after_file, after),
        "same_scope": baseline["same_scope"],
        "new": states["new"],
        "resolved": baseline["absent"],
        "persisting": states["unchanged"],
        "changed": [{"before": old[f["fingerprint"]], "after": f, "fields": f["baseline"]["changed"]}
                    for f in states["updated"]],
        "counts": {"new": len(states["new"]), "resolved": len(baseline["absent"]),
                   "persisting": len(states["unchanged"]), "changed": len(states["updated"])},
        "checks": annotated.get("checks", []),
    }
    return annotated, diff


def incomplete(report: dict) -> bool:
    """The report is of a run that could not check everything (the run says so, or errors show it)."""
    run = report.get("run") if isinstance(report.get("run"), dict) else {}
    return run.get("complete", True) is False or any(f.get("status") == "error" for f in report["findings"])


def exit_code(annotated: dict, fail_on: Severity | None) -> int:
    """3 when the new report is of an incomplete run (what it no longer shows may only be unchecked,
    not resolved), else 1 when a new failure (or one that got worse) is at or above `fail_on`, else 0."""
    if incomplete(annotated):
        return 3
    if fail_on is None:
        return 0
    return int(any(counts_for_fail_on(f) and severity_rank(f["severity"]) >= fail_on.rank
                   for f in annotated["findings"]))


# ------------------------------------------------------------------------------------ formats


def _line(f: dict) -> str:
    loc = f.get("location") or {}
    where = f" {loc.get('file')}{':' + str(loc['line']) if loc.get('line') else ''}" if loc else ""
    waived = " (waived)" if f.get("waiver") else ""
    return f"  {f['status'].upper():5} {f['severity']:8} {f['check_id']} [{f['target']}]{where}{waived}: {f['message']}"


def render_terminal(diff: dict) -> str:
    from .reporting.terminal import _clean

    c = diff["counts"]
    out = [f"mastoaudit diff {diff['before']['file']} -> {diff['after']['file']}",
           f"  new: {c['new']}  resolved: {c['resolved']}  changed: {c['changed']}  persisting: {c['persisting']}"]
    if not diff["same_scope"]:
        out.append("  warning: the two reports are of different scopes (targets, checks or release series)")
    if not diff["after"]["complete"]:
        out.append("  warning: the new run is incomplete (some results could not be checked): a finding it no "
                   "longer shows may be unchecked rather than resolved")
    for title, items in (("New", diff["new"]), ("Resolved", diff["resolved"])):
        if items:
            out.append(f"\n{title}:")
            out.extend(_clean(_line(f)) for f in items)
    if diff["changed"]:
        out.append("\nChanged:")
        for item in diff["changed"]:
            b, a = item["before"], item["after"]
            moved = [f"{k} {_value(b, k)} -> {_value(a, k)}" for k in item["fields"]]
            out.append(_clean(f"  {a['check_id']} [{a['target']}]: {'; '.join(moved)}"))
    return "\n".join(out) + "\n"


def _value(f: dict, key: str) -> str:
    if key == "waived":
        return "waived" if f.get("waiver") else "not waived"
    value = f.get(key)
    return "-" if value is None else str(value)


def render_json(diff: dict) -> str:
    return json.dumps({k: v for k, v in diff.items() if k != "checks"}, indent=2) + "\n"


def render_junit(diff: dict) -> str:
    """One testsuite per section: new and worsened failures fail, the rest pass (resolved ones
    say so), waived ones are skipped with the waiver's reason."""
    from .reporting.document import visible

    diff = visible(diff)
    root = ET.Element("testsuites", {"name": "mastoaudit diff"})
    sections = [("new", [(None, f) for f in diff["new"]]),
                ("changed", [(c["before"], c["after"]) for c in diff["changed"]]),
                ("resolved", [(f, None) for f in diff["resolved"]])]
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    for name, pairs in sections:
        suite = ET.SubElement(root, "testsuite", {"name": name})
        counts = dict.fromkeys(totals, 0)
        for before, after in sorted(pairs, key=lambda p: finding_order(p[1] or p[0])):
            f = after or before
            case = ET.SubElement(suite, "testcase", {"classname": f"{name}.{f['component']}",
                                                     "name": f"{f['check_id']} [{f['target']}]"})
            counts["tests"] += 1
            text = _line(f).strip()
            if after is not None and after.get("waiver"):
                ET.SubElement(case, "skipped", {"message": f"waived: {after['waiver']['reason']}"})
                counts["skipped"] += 1
            elif after is not None and counts_for_fail_on(after):
                kind = "new failure" if before is None else "got worse"
                ET.SubElement(case, "failure", {"message": f"{kind}: {after['message']}",
                                                "type": f"fail:{after['severity']}"}).text = text
                counts["failures"] += 1
            else:
                ET.SubElement(case, "system-out").text = ("resolved: " if after is None else "") + text
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def render(fmt: str, diff: dict, annotated: dict, colour: bool = False) -> str:
    if fmt == "terminal":
        return render_terminal(diff)
    if fmt == "json":
        return render_json(diff)
    if fmt == "junit":
        return render_junit(diff)
    if fmt == "sarif":
        from .reporting.sarif import render_document

        return render_document(annotated)
    if fmt == "html":
        from .reporting.html import render_diff

        return render_diff(diff)
    raise ValueError(f"unknown format {fmt!r}")
