"""Terminal summary: counts by severity and status, then what needs attention.

Everything shown that came from the audited input (paths, targets, messages, values) goes through
`safe_text`: a hostile file name cannot move the cursor, recolour or rewrite what the admin reads.
A check that fails thousands of times is listed `DISPLAY_LIMITS["terminal"]` times per target, then
counted; every finding is in the JSON report.
"""

from __future__ import annotations

from ..engine import RunResult
from ..model import Severity, Status
from ..textsafe import safe_text
from .document import DISPLAY_LIMITS, Omitted, capped, clip, sorted_findings

_COLOURS = {
    Status.FAIL: "\033[31m", Status.ERROR: "\033[35m", Status.WARN: "\033[33m",
    Status.PASS: "\033[32m", Status.SKIP: "\033[2m",
}
_RESET = "\033[0m"
_WORDS = {Status.FAIL: "failures", Status.ERROR: "errors", Status.WARN: "warnings", Status.PASS: "passes",
          Status.SKIP: "skips"}


def render(result: RunResult, colour: bool = False, show_passed: bool = False) -> str:
    def paint(status: Status, text: str) -> str:
        return f"{_COLOURS[status]}{text}{_RESET}" if colour else text

    out: list[str] = []
    targets = ", ".join(safe_text(t.name) for t in result.targets) or "(none)"
    out.append(f"mastoaudit {result.tool_version} · {safe_text(result.command)} · {targets}")
    out.append(f"{len(result.checks)} checks, {len(result.findings)} results in {result.duration_s:.2f}s")
    by_status = result.counts_by_status()
    out.append("  " + "  ".join(paint(Status(s), f"{s}: {n}") for s, n in by_status.items()))
    failed = result.failed_by_severity()
    out.append("  failed by severity: " + "  ".join(
        f"{sev.value}: {failed[sev.value]}" for sev in reversed(list(Severity))))
    shown = [f for f in sorted_findings(result)
             if f.status in (Status.FAIL, Status.ERROR, Status.WARN) or (show_passed and f.status is Status.PASS)]
    if shown:
        out.append("")
    several = len(result.targets) > 1
    for f in capped(shown, DISPLAY_LIMITS["terminal"]):
        if isinstance(f, Omitted):
            like = f.like
            target = f" [{safe_text(like.target)}]" if several else ""
            out.append(f"      … and {f.count} more {safe_text(like.check_id)} {_WORDS[like.status]}{target} "
                       "(all in the JSON report)")
            continue
        where = f" {safe_text(str(f.location))}" if f.location else ""
        target = f" [{safe_text(f.target)}]" if several else ""
        label = paint(f.status, f"{f.status.value.upper():5}")
        out.append(f"{label} {f.severity.value:8} {safe_text(f.check_id)}{target}{where}")
        out.append(f"      {safe_text(clip(f.message))}")
        if f.observed is not None or f.expected is not None:
            observed, expected = safe_text(clip(f.observed) or "-"), safe_text(clip(f.expected) or "-")
            out.append(f"      observed: {observed}  expected: {expected}")
    if not result.complete:
        out.append("")
        out.append(paint(Status.ERROR, "Incomplete: some checks could not run (see ERROR lines above)."))
    return "\n".join(out) + "\n"
