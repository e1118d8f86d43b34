"""JUnit XML report, for CI systems that show test results.

One <testsuite> per component; one <testcase> per check and target (classname = component,
name = check id, with " [target]" added when the run had several targets). A check yields one
finding per subject, so a testcase folds them: any error -> <error>, else any fail -> <failure>,
else all skipped -> <skipped>; warnings pass with a note in <system-out>. Input problems
(`input.<kind>`) are testcases too, so an unreadable file shows up as an error. Waived findings
do not fail a testcase: one whose failures are all waived is skipped, with the waiver's reason.
With a baseline, each finding's evidence says whether it is new, unchanged or updated.

The XML is built with ElementTree (which escapes); characters XML 1.0 cannot hold are replaced
by visible escapes first (`visible`).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ..engine import RunResult
from .document import build_document, visible


def _where(f: dict) -> str:
    loc = f["location"]
    if not loc:
        return f["target"]
    return f"{loc['file']}:{loc['line']}" if loc["line"] else loc["file"]


def _evidence(f: dict) -> str:
    lines = [f"{f['status'].upper()} [{f['severity']}] {_where(f)}: {f['message']}"]
    for key in ("subject", "observed", "expected"):
        if f[key] is not None:
            lines.append(f"  {key}: {f[key]}")
    if f.get("baseline"):
        lines.append(f"  baseline: {f['baseline']['state']}")
    if f.get("waiver"):
        lines.append(f"  {_waived(f['waiver'])}")
    return "\n".join(lines)


def _waived(waiver: dict) -> str:
    until = f"until {waiver['expires']}" if waiver["expires"] else "with no expiry date"
    return f"waived {until} by {waiver['owner']}: {waiver['reason']} ({waiver['source']})"


def _fix(check: dict | None) -> str:
    if not check:
        return ""
    rem = check["remediation"]
    text = f"\nFix: {rem['text']}"
    if rem["snippet"]:
        text += "\n" + "\n".join("    " + line for line in rem["snippet"].splitlines())
    return text


def _testcase(suite: ET.Element, name: str, component: str, group: list[dict], check: dict | None) -> str:
    """Append one testcase; return its outcome: error, failure, skipped or passed."""
    case = ET.SubElement(suite, "testcase", {"classname": component, "name": name, "time": "0"})
    by_status: dict[str, list[dict]] = {}
    for f in group:
        by_status.setdefault("waived" if f.get("waiver") else f["status"], []).append(f)
    outcome = "passed"
    for status, tag in (("error", "error"), ("fail", "failure")):
        hits = by_status.get(status)
        if hits:
            message = hits[0]["message"] if len(hits) == 1 else f"{len(hits)} {status}s: {hits[0]['message']}; ..."
            element = ET.SubElement(case, tag, {"message": message, "type": f"{status}:{hits[0]['severity']}"})
            element.text = "\n".join(_evidence(f) for f in hits) + (_fix(check) if status == "fail" else "")
            outcome = "error" if tag == "error" else "failure"
            break
    else:
        waived = by_status.get("waived")
        if waived and all(f["status"] == "skip" or f.get("waiver") for f in group):
            ET.SubElement(case, "skipped", {"message": _waived(waived[0]["waiver"])})
            outcome = "skipped"
        elif all(f["status"] == "skip" for f in group):
            ET.SubElement(case, "skipped", {"message": group[0]["message"]})
            outcome = "skipped"
    notes = [f for f in group if f["status"] == "warn" or f.get("waiver")]
    if notes:
        ET.SubElement(case, "system-out").text = (
            "\n".join(_evidence(f) for f in notes) + (_fix(check) if outcome == "passed" else ""))
    return outcome


def build_junit(doc: dict) -> ET.Element:
    doc = visible(doc)
    checks = {c["id"]: c for c in doc["checks"]}
    several = len(doc["run"]["targets"]) > 1
    # (component, check id, target) -> findings, in the document's order (worst first)
    cases: dict[tuple[str, str, str], list[dict]] = {}
    for f in doc["findings"]:
        cases.setdefault((f["component"], f["check_id"], f["target"]), []).append(f)
    order = [c["id"] for c in doc["components"]]
    root = ET.Element("testsuites", {"name": "mastoaudit", "time": f"{doc['run']['duration_s']:.3f}"})
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    for component in order:
        keys = sorted(k for k in cases if k[0] == component)
        if not keys:
            continue
        suite = ET.SubElement(root, "testsuite", {
            "name": component, "timestamp": doc["run"]["started_at"], "time": "0"})
        counts = dict.fromkeys(totals, 0)
        for _, check_id, target in keys:
            name = f"{check_id} [{target}]" if several else check_id
            outcome = _testcase(suite, name, component, cases[(component, check_id, target)], checks.get(check_id))
            counts["tests"] += 1
            if outcome in ("failure", "error", "skipped"):
                counts[{"failure": "failures", "error": "errors", "skipped": "skipped"}[outcome]] += 1
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
        # ElementTree keeps insertion order; the counts read best before the testcases.
        suite.attrib = {k: suite.attrib[k] for k in ("name", "tests", "failures", "errors", "skipped", "time",
                                                     "timestamp")}
    for key, value in totals.items():
        root.set(key, str(value))
    root.attrib = {k: root.attrib[k] for k in ("name", "tests", "failures", "errors", "skipped", "time")}
    return root


def render(result: RunResult) -> str:
    return render_document(build_document(result))


def render_document(doc: dict) -> str:
    root = build_junit(doc)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
