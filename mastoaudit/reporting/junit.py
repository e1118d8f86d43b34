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
from .document import DISPLAY_LIMITS, build_document, for_display, visible


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


class _Case:
    """One testcase's findings: how many of each (shown) status, and the first few of each to show;
    a failure or warning a waiver accepts counts as "waived"."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.shown: dict[str, list[dict]] = {}

    def add(self, f: dict) -> None:
        status = "waived" if f.get("waiver") else f["status"]
        self.counts[status] = self.counts.get(status, 0) + 1
        kept = self.shown.setdefault(status, [])
        if len(kept) < DISPLAY_LIMITS["junit"]:
            kept.append(for_display(f))

    def evidence(self, *statuses: str) -> str:
        """Each shown finding's evidence, then how many more there are (all in the JSON report)."""
        lines, more = [], 0
        for status in statuses:
            lines += [_evidence(f) for f in self.shown.get(status, ())]
            more += self.counts.get(status, 0) - len(self.shown.get(status, ()))
        return "\n".join(lines) + (f"\n... and {more} more (all in the JSON report)" if more else "")


def _testcase(suite: ET.Element, name: str, component: str, group: _Case, check: dict | None) -> str:
    """Append one testcase; return its outcome: error, failure, skipped or passed."""
    case = ET.SubElement(suite, "testcase", {"classname": component, "name": name, "time": "0"})
    counts, shown = group.counts, group.shown
    outcome = "passed"
    for status, tag in (("error", "error"), ("fail", "failure")):
        if counts.get(status):
            first, n = shown[status][0], counts[status]
            message = first["message"] if n == 1 else f"{n} {status}s: {first['message']}; ..."
            element = ET.SubElement(case, tag, {"message": message, "type": f"{status}:{first['severity']}"})
            element.text = group.evidence(status) + (_fix(check) if status == "fail" else "")
            outcome = "error" if tag == "error" else "failure"
            break
    else:
        if "waived" in counts and set(counts) <= {"skip", "waived"}:
            ET.SubElement(case, "skipped", {"message": _waived(shown["waived"][0]["waiver"])})
            outcome = "skipped"
        elif set(counts) == {"skip"}:
            ET.SubElement(case, "skipped", {"message": shown["skip"][0]["message"]})
            outcome = "skipped"
    if counts.get("warn") or counts.get("waived"):
        ET.SubElement(case, "system-out").text = (
            group.evidence("warn", "waived") + (_fix(check) if outcome == "passed" else ""))
    return outcome


def build_junit(doc: dict) -> ET.Element:
    """Each finding is made safe on its own and kept only while it is among the first few of its
    testcase: a run of 6,000 server blocks does not copy the whole document."""
    findings = doc["findings"]
    doc = visible({key: value for key, value in doc.items() if key != "findings"})
    checks = {c["id"]: c for c in doc["checks"]}
    several = len(doc["run"]["targets"]) > 1
    # (component, check id, target) -> findings, in the document's order (worst first)
    cases: dict[tuple[str, str, str], _Case] = {}
    for f in findings:
        f = visible(f)
        cases.setdefault((f["component"], f["check_id"], f["target"]), _Case()).add(f)
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
