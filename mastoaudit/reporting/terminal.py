"""Terminal summary: counts by severity and status, then what needs attention."""

from __future__ import annotations

from ..engine import RunResult
from ..model import Severity, Status
from .document import sorted_findings

_COLOURS = {
    Status.FAIL: "\033[31m", Status.ERROR: "\033[35m", Status.WARN: "\033[33m",
    Status.PASS: "\033[32m", Status.SKIP: "\033[2m",
}
_RESET = "\033[0m"


def _clean(text: str) -> str:
    # Config values can carry escape sequences; a terminal must not interpret them.
    return "".join(ch if ch.isprintable() or ch == " " else repr(ch)[1:-1] for ch in text)


def render(result: RunResult, colour: bool = False, show_passed: bool = False) -> str:
    def paint(status: Status, text: str) -> str:
        return f"{_COLOURS[status]}{text}{_RESET}" if colour else text

    out: list[str] = []
    targets = ", ".join(t.name for t in result.targets) or "(none)"
    out.append(f"mastoaudit {result.tool_version} · {result.command} · {targets}")
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
    for f in shown:
        where = f" {f.location}" if f.location else ""
        target = f" [{f.target}]" if len(result.targets) > 1 else ""
        label = paint(f.status, f"{f.status.value.upper():5}")
        out.append(f"{label} {f.severity.value:8} {f.check_id}{target}{where}")
        out.append(f"      {_clean(f.message)}")
        if f.observed is not None or f.expected is not None:
            out.append(f"      observed: {_clean(f.observed or '-')}  expected: {_clean(f.expected or '-')}")
    if not result.complete:
        out.append("")
        out.append(paint(Status.ERROR, "Incomplete: some checks could not run (see ERROR lines above)."))
    return "\n".join(out) + "\n"
