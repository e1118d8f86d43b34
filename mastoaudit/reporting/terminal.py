"""Terminal report: the verdict, what to do first, counts by component, then what needs attention.

Drawn from the run document, like every other format, so a merged or re-read report prints the
same way as a fresh run. The order is the HTML report's: the failing checks ranked by priority
(reporting/priority.py), each with its fix, then a table of components with their grades, then
every error, failure (in the same ranking) and warning with its evidence.

Colour only when standard output is a terminal and NO_COLOR is not set (no-color.org); the words
and columns carry every meaning without it. `quiet` (--quiet, for CI) prints the verdict and one
line per failing check. Every value that came from the audited input goes through `_clean`, the
one place text is made safe to show: a hostile file name cannot move the cursor or recolour what
the admin reads.
"""

from __future__ import annotations

import os
from typing import TextIO

from ..engine import RunResult
from ..model import COMPONENTS, Severity
from ..textsafe import safe_text
from .document import DISPLAY_LIMITS, Omitted, build_document, capped, clip
from .priority import grade, rank

TOP = 5

_BOLD, _DIM, _RESET = "\033[1m", "\033[2m", "\033[0m"
_COLOURS = {
    "fail": "\033[31m", "error": "\033[35m", "warn": "\033[33m", "pass": "\033[32m", "skip": "\033[2m",
    "waived": "\033[36m",
    "critical": "\033[1;31m", "high": "\033[31m", "medium": "\033[33m", "low": "\033[34m", "info": "\033[2m",
    "A": "\033[1;32m", "B": "\033[32m", "C": "\033[33m", "D": "\033[1;33m", "F": "\033[1;31m",
}
_PLURALS = {"fail": "failures", "error": "errors", "warn": "warnings", "pass": "passes", "skip": "skips",
            "waived": "waived"}


def _clean(text: str) -> str:
    """The terminal report's one call of the sanitizer (mastoaudit.textsafe), on one line of text
    that came from the input: escape sequences, a carriage return that rewrites the line, bidi
    overrides become visible escapes; a huge value is clipped (the JSON report has it whole)."""
    return safe_text(clip(text) or "")


def colour_wanted(stream: TextIO) -> bool:
    """Colour on a terminal, unless NO_COLOR is set (to anything) or the terminal is dumb."""
    if os.environ.get("NO_COLOR", "") != "" or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _where(f: dict) -> str:
    loc = f.get("location")
    if not loc:
        return ""
    return f" {loc['file']}:{loc['line']}" if loc.get("line") else f" {loc['file']}"


def waiver_text(waiver: dict) -> str:
    until = f"until {waiver['expires']}" if waiver.get("expires") else "with no expiry date"
    return f"waived {until} by {waiver['owner']}: {waiver['reason']} ({waiver['source']})"


def render(result: RunResult, colour: bool = False, show_passed: bool = False, quiet: bool = False) -> str:
    return render_document(build_document(result), colour=colour, show_passed=show_passed, quiet=quiet)


class _Painter:
    def __init__(self, colour: bool) -> None:
        self.colour = colour

    def __call__(self, key: str, text: str) -> str:
        return f"{_COLOURS[key]}{text}{_RESET}" if self.colour and key in _COLOURS else text

    def bold(self, text: str) -> str:
        return f"{_BOLD}{text}{_RESET}" if self.colour else text

    def dim(self, text: str) -> str:
        return f"{_DIM}{text}{_RESET}" if self.colour else text


def render_document(doc: dict, colour: bool = False, show_passed: bool = False, quiet: bool = False) -> str:
    paint = _Painter(colour)
    run, summary, findings = doc["run"], doc["summary"], doc["findings"]
    checks = {c["id"]: c for c in doc["checks"]}
    several = len(run["targets"]) > 1
    out: list[str] = []
    targets = ", ".join(t["name"] for t in run["targets"]) or "(none)"
    out.append(paint.bold(_clean(f"mastoaudit {doc['tool']['version']} · {run['command']} · {targets}")))
    out.append(f"{summary['checks_run']} checks, {len(findings)} results in {run['duration_s']:.2f}s")
    out.append("  " + "  ".join(paint(s, f"{s}: {n}") for s, n in summary["by_status"].items()))
    reasons = summary.get("skipped_by_reason") or []
    if reasons:
        out.append("  skipped: " + ", ".join(f"{r['count']} {r['label']}" for r in reasons))
    failed = summary["failed_by_severity"]
    waived = summary.get("waived", 0)
    out.append("  failed by severity: " + "  ".join(
        paint(sev.value, f"{sev.value}: {failed[sev.value]}") if failed[sev.value] else f"{sev.value}: 0"
        for sev in reversed(list(Severity))) + (f"  (and {waived} waived)" if waived else ""))
    out.extend(_context_lines(doc))
    overall = grade(findings)
    if overall["letter"]:
        out.append("  grade " + paint(overall["letter"][0], overall["letter"]) + f" ({overall['score']}/100"
                   + (", incomplete" if overall["incomplete"] else "") + ")")

    actions = rank(findings, checks)
    if quiet:
        for f in findings:
            if f["status"] == "error":
                out.append(f"{paint('error', 'ERROR')} " + _clean(f"{f['check_id']}{_where(f)}: {f['message']}"))
        for a in actions:
            places = f" ({a['count']} places)" if a["count"] > 1 else ""
            sev = paint(a["severity"], f"{a['severity']:8}")
            out.append(f"{paint('fail', 'FAIL')}  {sev} " + _clean(f"{a['check_id']}{places}"))
        if not run["complete"]:
            out.append(paint("error", "Incomplete: some checks could not run."))
        return "\n".join(out) + "\n"

    if actions:
        out += ["", paint.bold("What to do first")]
        for a in actions[:TOP]:
            out += _action_lines(a, paint, several)
        rest = len(actions) - TOP
        if rest > 0:
            out.append(paint.dim(f"  ... and {rest} more failing check{'s' if rest != 1 else ''}, listed below by "
                                 "priority (the HTML report explains each ranking)."))
    out += ["", paint.bold("By component"), *_component_table(doc, paint)]

    listed = _attention(findings, actions, show_passed)
    if listed:
        out.append("")
        out.append(paint.bold("Findings") + " (errors, then failures by priority, then warnings"
                   + (", then passes" if show_passed else "") + ")")
    # At most DISPLAY_LIMITS["terminal"] of one check, target and status, then how many more.
    for f in capped(listed, DISPLAY_LIMITS["terminal"]):
        if isinstance(f, Omitted):
            target = f" [{f.like['target']}]" if several else ""
            out.append(_clean(f"      … and {f.count} more {f.like['check_id']} {_PLURALS[f.like['status']]}{target} "
                              "(all in the JSON report)"))
            continue
        target = f" [{f['target']}]" if several else ""
        label = paint(f["status"], f"{f['status'].upper():5}")
        sev = paint(f["severity"], f"{f['severity']:8}")
        # The colours are ours; everything after them came from the input and is cleaned.
        out.append(f"{label} {sev} " + _clean(f"{f['check_id']}{target}{_where(f)}{_baseline_mark(f)}"))
        out.append(f"      {_clean(f['message'])}")
        if f["observed"] is not None or f["expected"] is not None:
            out.append(f"      observed: {_clean(f['observed'] or '-')}  expected: {_clean(f['expected'] or '-')}")
    waived_findings = [f for f in findings if f.get("waiver")]
    if waived_findings:
        out.append("")
        out.append(paint("waived", f"Waived ({len(waived_findings)}): accepted risks, not counted for --fail-on"))
        for f in capped(waived_findings, DISPLAY_LIMITS["terminal"]):
            if isinstance(f, Omitted):
                out.append(_clean(f"      … and {f.count} more waived {f.like['check_id']} (all in the JSON report)"))
                continue
            target = f" [{f['target']}]" if several else ""
            out.append(f"{paint('waived', 'WAIVED')} "
                       + _clean(f"{f['status']} {f['severity']} {f['check_id']}{target}{_where(f)}"))
            out.append(f"      {_clean(waiver_text(f['waiver']))}")
    if not run["complete"]:
        out.append("")
        out.append(paint("error", "Incomplete: some checks could not run (see ERROR lines above)."))
    return "\n".join(out) + "\n"


def _action_lines(a: dict, paint: _Painter, several: bool) -> list[str]:
    p, lead = a["priority"], a["lead"]
    more = a["count"] - 1
    where = (f"{lead['target']}: " if several else "") + (_where(lead).strip() or lead["target"])
    if more:
        where += f", and {more} more place{'s' if more != 1 else ''}"
    lines = [
        f"  {a['rank']}. {paint(a['severity'], a['severity'].upper())}  priority {p['score']}  " + _clean(a["title"]),
        _clean(f"     found: {lead['message']}"),
        _clean(f"     where: {where}"),
    ]
    check = a["check"]
    if check:
        lines.append(_clean(f"     fix:   {check['remediation']['text']}"))
    lines.append(paint.dim(_clean(f"     why first: {p['exposure_label']}, {p['ease_label']}")))
    return lines


def _component_table(doc: dict, paint: _Painter) -> list[str]:
    by_component: dict[str, list[dict]] = {}
    for f in doc["findings"]:
        by_component.setdefault(f["component"], []).append(f)
    order = [c["id"] for c in doc.get("components", [])] or list(COMPONENTS)
    rows = []
    for comp in order:
        members = by_component.get(comp)
        if not members:
            continue
        g = grade(members)
        counts = {s: 0 for s in ("fail", "warn", "error", "pass", "skip", "waived")}
        for f in members:
            counts["waived" if f.get("waiver") else f["status"]] += 1
        rows.append((g["score"] if g["score"] is not None else 101, comp, g, counts))
    rows.sort(key=lambda r: r[0])  # worst grade first
    lines = [f"  {'component':15} {'grade':6} {'failed':>6} {'warn':>5} {'error':>5} {'passed':>6} {'skipped':>7}"]
    for _, comp, g, c in rows:
        letter = g["letter"] or "-"
        graded = paint(letter[0], f"{letter:6}") if g["letter"] else f"{letter:6}"
        failed = paint("fail", f"{c['fail']:>6}") if c["fail"] else f"{c['fail']:>6}"
        warned = paint("warn", f"{c['warn']:>5}") if c["warn"] else f"{c['warn']:>5}"
        errors = paint("error", f"{c['error']:>5}") if c["error"] else f"{c['error']:>5}"
        lines.append(f"  {comp:15} {graded} {failed} {warned} {errors} {c['pass']:>6} {c['skip']:>7}"
                     + (f"  ({c['waived']} waived)" if c["waived"] else ""))
    return lines


def _attention(findings: list[dict], actions: list[dict], show_passed: bool) -> list[dict]:
    """What the listing shows: errors, failures in the order of `actions` (a check's places
    together), warnings (and passes) in the document's order (worst first)."""
    open_ = [f for f in findings if not f.get("waiver")]
    order = {a["check_id"]: a["rank"] for a in actions}
    failures = sorted((f for f in open_ if f["status"] == "fail"), key=lambda f: order[f["check_id"]])
    listed = [f for f in open_ if f["status"] == "error"] + failures
    listed += [f for f in open_ if f["status"] == "warn"]
    if show_passed:
        listed += [f for f in open_ if f["status"] == "pass"]
    return listed


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
