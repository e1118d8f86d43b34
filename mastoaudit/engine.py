"""Run the selected checks over each target's facts and gather findings."""

from __future__ import annotations

import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from . import __version__
from .checkdef import Check, CheckMeta
from .facts import FactSet
from .kinds import component_of_problem
from .model import Finding, Severity, SkipReason, Status
from .redact import Redactor
from .registry import Registry
from .selection import Selection

EXIT_CLEAN, EXIT_FAILED, EXIT_USAGE, EXIT_INCOMPLETE = 0, 1, 2, 3


@dataclass
class TargetSummary:
    name: str
    kinds: list[str]
    problems: int


@dataclass
class RunResult:
    command: str
    started_at: str
    duration_s: float
    checks: list[CheckMeta]
    findings: list[Finding]
    targets: list[TargetSummary]
    registry: Registry
    tool_version: str = __version__
    extra: dict = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not any(f.status is Status.ERROR for f in self.findings)

    def counts_by_status(self) -> dict[str, int]:
        counts = {s.value: 0 for s in Status}
        for f in self.findings:
            counts[f.status.value] += 1
        return counts

    def failed_by_severity(self) -> dict[str, int]:
        counts = {s.value: 0 for s in Severity}
        for f in self.findings:
            if f.status is Status.FAIL:
                counts[f.severity.value] += 1
        return counts

    def exit_code(self, fail_on: Severity | None) -> int:
        """3 when anything could not be checked (it overrides 1: an incomplete run proves nothing),
        1 when a failure is at or above `fail_on`, else 0. `fail_on=None` never fails on findings."""
        if not self.complete:
            return EXIT_INCOMPLETE
        if fail_on is not None and any(
            f.status is Status.FAIL and f.severity.rank >= fail_on.rank for f in self.findings
        ):
            return EXIT_FAILED
        return EXIT_CLEAN


def _finding(meta: CheckMeta, target: str, outcome, redactor: Redactor) -> Finding:
    return Finding(
        check_id=meta.id,
        title=meta.title,
        component=meta.component,
        severity=outcome.severity or meta.severity,
        status=outcome.status,
        message=redactor.scrub(outcome.message) or "",
        target=target,
        threats=list(meta.threats),
        location=outcome.location,
        subject=redactor.scrub(outcome.subject),
        observed=redactor.scrub(outcome.observed),
        expected=redactor.scrub(outcome.expected),
        skip_reason=(outcome.reason or SkipReason.infer(outcome.message)) if outcome.status is Status.SKIP else None,
    )


def run_check(check: Check, facts: FactSet, redactor: Redactor) -> list[Finding]:
    meta = check.meta
    missing = [kind for kind in meta.needs if not facts.has(kind)]
    if missing:
        what = ", ".join(missing)
        unread = [k for k in missing if any(p.kind == k and p.status is Status.ERROR for p in facts.problems)]
        if unread:
            return [Finding(meta.id, meta.title, meta.component, meta.severity, Status.SKIP,
                            f"not judged: the {', '.join(unread)} input could not be read (see input.{unread[0]})",
                            facts.target, list(meta.threats), skip_reason=SkipReason.NOT_COLLECTED)]
        return [Finding(meta.id, meta.title, meta.component, meta.severity, Status.SKIP,
                        f"not applicable: no {what} found for this target", facts.target, list(meta.threats),
                        skip_reason=SkipReason.NOT_APPLICABLE)]
    try:
        outcomes = list(check.run(facts))
    except Exception as exc:  # a broken check is an error finding, never a crash of the run
        where = traceback.extract_tb(exc.__traceback__)[-1]
        origin = f"{where.filename.rsplit('/', 1)[-1]}:{where.lineno}"
        message = f"check failed to run: {type(exc).__name__}: {exc} ({origin})"
        return [Finding(meta.id, meta.title, meta.component, meta.severity, Status.ERROR,
                        redactor.scrub(message) or "", facts.target, list(meta.threats))]
    if not outcomes:
        reason, message = _why_nothing(meta, facts)
        return [Finding(meta.id, meta.title, meta.component, meta.severity, Status.SKIP, message, facts.target,
                        list(meta.threats), skip_reason=reason)]
    return [_finding(meta, facts.target, o, redactor) for o in outcomes]


def _why_nothing(meta: CheckMeta, facts: FactSet) -> tuple[SkipReason, str]:
    """Why a check found nothing to judge: what the facts it needs say of themselves (an nginx file
    with no server block), else that they hold nothing it applies to."""
    for kind in meta.needs:
        found = [f.why_nothing() for f in facts.all(kind) if hasattr(f, "why_nothing")]
        if found and all(found):
            reasons = list(dict.fromkeys(found))
            return reasons[0][0], "; ".join(message for _, message in reasons[:3])
    return SkipReason.NOT_APPLICABLE, "nothing to check: the facts it reads hold nothing it applies to"


_PROBLEM_TITLES = {Status.ERROR: "Input could not be audited", Status.SKIP: "Input not judged"}


def problem_findings(facts: FactSet, redactor: Redactor) -> list[Finding]:
    found = []
    for p in facts.problems:
        found.append(Finding(
            check_id=f"input.{p.kind}",
            title=_PROBLEM_TITLES.get(p.status, "Input audited only in part"),
            component=component_of_problem(p.kind),
            severity=Severity.INFO,
            status=p.status,
            message=redactor.scrub(p.message) or "",
            target=facts.target,
            location=p.location,
            skip_reason=(p.reason or SkipReason.infer(p.message)) if p.status is Status.SKIP else None,
        ))
    return found


# Which checks each command runs (CheckMeta.modes): a scan has no config files to judge, a lint no
# live host; the others are not run at all rather than reported as skipped.
COMMAND_MODES = {"lint": {"static"}, "audit": {"static", "live", "network"}, "scan": {"network"},
                 "federation": {"federation"}}


def run(command: str, registry: Registry, selection: Selection, targets: Iterable[FactSet],
        began: tuple[datetime, float] | None = None) -> RunResult:
    """`began`: when the command started (wall clock, perf_counter), so the reported duration
    includes collecting the facts, not only judging them."""
    started, clock = began or (datetime.now(UTC), time.perf_counter())
    modes = COMMAND_MODES.get(command.split(" ", 1)[0], {"static", "live", "network"})
    selected = [c for c in registry if selection.wants(c.meta) and modes & set(c.meta.modes)]
    findings: list[Finding] = []
    summaries: list[TargetSummary] = []
    for facts in targets:
        redactor = Redactor(facts.secrets, facts.public_names())
        findings.extend(problem_findings(facts, redactor))
        for check in selected if facts.reachable else ():
            findings.extend(run_check(check, facts, redactor))
        summaries.append(TargetSummary(facts.target, sorted(facts.kinds()), len(facts.problems)))
    return RunResult(
        command=command,
        started_at=started.isoformat(timespec="seconds"),
        duration_s=round(time.perf_counter() - clock, 3),
        checks=[c.meta for c in selected],
        findings=findings,
        targets=summaries,
        registry=registry,
    )
