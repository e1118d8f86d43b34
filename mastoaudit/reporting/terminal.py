"""Terminal summary: counts by severity and status, then what needs attention.

Drawn from the run document, like every other format, so a merged or re-read report prints the
same way as a fresh run. Everything shown that came from the input (paths, targets, messages,
values) goes through `safe_text`: a hostile file name cannot move the cursor, recolour or rewrite
what the admin reads. A check that fails thousands of times is listed DISPLAY_LIMITS["terminal"]
times per target, then counted; every finding is in the JSON report.
"""

from __future__ import annotations

from ..engine import RunResult
from ..model import Severity, Status
from ..textsafe import safe_text
from .document import DISPLAY_LIMITS, Omitted, build_document, capped, clip

_COLOURS = {
    "fail": "\033[31m", "error": "\033[35m", "warn": "\033[33m", "pass": "\033[32m", "skip": "\033[2m",
    "waived": "\033[36m",
}
_RESET = "\033[0m"
_PLURALS = {"fail": "failures", "error": "errors", "warn": "warnings", "pass": "passes", "skip": "skips"}


def _clean(text: str) -> str:
    # Config values can carry escape sequences; a terminal must not interpret them (one line each).
    return safe_text(clip(text) or "")


def _where(f: dict) -> str:
    loc = f.get("location")
    if not loc:
        return ""
    return f" {loc['file']}:{loc['line']}" if loc.get("line") else f" {loc['file']}"


def waiver_text(waiver: dict) -> str:
    until = f"until {waiver['expires']}" if waiver.get("expires") else "with no expiry date"
    return f"waived {until} by {waiver['owner']}: {waiver['reason']} ({waiver['source']})"


def render(result: RunResult, colour: bool = False, show_passed: bool = False) -> str:
    return render_document(build_document(result), colour=colour, show_passed=show_passed)


def render_document(doc: dict, colour: bool = False, show_passed: bool = False) -> str:
    def paint(status: str, text: str) -> str:
        return f"{_COLOURS[status]}{text}{_RESET}" if colour else text

    run, summary = doc["run"], doc["summary"]
    out: list[str] = []
    targets = ", ".join(t["name"] for t in run["targets"]) or "(none)"
    out.append(_clean(f"mastoaudit {doc['tool']['version']} · {run['command']} · {targets}"))
    out.append(f"{summary['checks_run']} checks, {len(doc['findings'])} results in {run['duration_s']:.2f}s")
    out.append("  " + "  ".join(paint(s, f"{s}: {n}") for s, n in summary["by_status"].items()))
    reasons = summary.get("skipped_by_reason") or []
    if reasons:
        out.append("  skipped: " + ", ".join(f"{r['count']} {r['label']}" for r in reasons))
    failed = summary["failed_by_severity"]
    waived = summary.get("waived", 0)
    out.append("  failed by severity: " + "  ".join(
        f"{sev.value}: {failed[sev.value]}" for sev in reversed(list(Severity)))
        + (f"  (and {waived} waived)" if waived else ""))
    out.extend(_context_lines(doc))
    several = len(run["targets"]) > 1
    shown = [f for f in doc["findings"] if not f.get("waiver") and (
        f["status"] in (Status.FAIL, Status.ERROR, Status.WARN) or (show_passed and f["status"] == Status.PASS))]
    if shown:
        out.append("")
    for f in capped(shown, DISPLAY_LIMITS["terminal"]):
        if isinstance(f, Omitted):
            target = f" [{f.like['target']}]" if several else ""
            out.append(_clean(f"      … and {f.count} more {f.like['check_id']} {_PLURALS[f.like['status']]}{target} "
                              "(all in the JSON report)"))
            continue
        target = f" [{f['target']}]" if several else ""
        label = paint(f["status"], f"{f['status'].upper():5}")
        mark = _baseline_mark(f)
        # The colour is ours; everything after it came from the input and is escaped.
        heading = f"{f['severity']:8} {f['check_id']}{target}{_where(f)}{mark}"
        out.append(f"{label} {_clean(heading)}")
        out.append(f"      {_clean(f['message'])}")
        if f["observed"] is not None or f["expected"] is not None:
            out.append(f"      observed: {_clean(f['observed'] or '-')}  expected: {_clean(f['expected'] or '-')}")
    waived_findings = [f for f in doc["findings"] if f.get("waiver")]
    if waived_findings:
        out.append("")
        out.append(paint("waived", f"Waived ({len(waived_findings)}): accepted risks, not counted for --fail-on"))
        for f in capped(waived_findings, DISPLAY_LIMITS["terminal"]):
            if isinstance(f, Omitted):
                out.append(_clean(f"      … and {f.count} more waived {f.like['check_id']} (all in the JSON report)"))
                continue
            target = f" [{f['target']}]" if several else ""
            heading = f"{f['status']} {f['severity']} {f['check_id']}{target}{_where(f)}"
            out.append(f"{paint('waived', 'WAIVED')} {_clean(heading)}")
            out.append(f"      {_clean(waiver_text(f['waiver']))}")
    if not run["complete"]:
        out.append("")
        out.append(paint("error", "Incomplete: some checks could not run (see ERROR lines above)."))
    return "\n".join(out) + "\n"


def _baseline_mark(f: dict) -> str:
    baseline = f.get("baseline")
    if not baseline or baseline["state"] == "unchanged":
        return ""
    if baseline["state"] == "new":
        return "  [new]"
    before = baseline["previous"]
    return f"  [was {before['status']} {before['severity']}]"


def _context_lines(doc: dict) -> list[str]:
    """One line each for the shard, the baseline, the history and the waivers of this run."""
    run, lines = doc["run"], []
    shard = run.get("shard")
    if shard:
        lines.append(f"  shard {shard['index']}/{shard['count']}: {len(shard['members'])} of {shard['total']} "
                     f"{shard['unit']}s")
    merged = run.get("merged")
    if merged:
        got = len(merged["shards"])
        missing = f", MISSING {', '.join(map(str, merged['missing']))}" if merged["missing"] else ""
        lines.append(f"  merged from {got} of {merged['count']} shard reports{missing}")
    baseline = run.get("baseline")
    if baseline:
        c = baseline["counts"]
        lines.append(_clean(f"  against baseline {baseline['file']} ({baseline['started_at']}): {c['new']} new, "
                            f"{c['updated']} updated, {c['unchanged']} unchanged, {c['absent']} resolved"))
        if not baseline["same_scope"]:
            lines.append("  warning: the baseline is a run of another scope; most findings will look new")
    history = doc.get("history")
    if history:
        since = history.get("since_previous")
        kept = f"  history: run {len(history['runs'])} of at most {history['keep']} kept"
        if since:
            kept += (f"; since the previous run ({since['started_at']}): {len(since['new'])} new, "
                     f"{len(since['resolved'])} resolved, {len(since['changed'])} changed")
        lines.append(_clean(kept))
    waivers = doc.get("waivers")
    if waivers:
        states: dict[str, int] = {}
        for entry in waivers["entries"]:
            states[entry["state"]] = states.get(entry["state"], 0) + 1
        lines.append("  waivers: " + ", ".join(f"{n} {state}" for state, n in sorted(states.items())))
    return lines
