"""The run as one plain document: what the JSON report holds and the other formats draw from."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ..engine import RunResult
from ..model import COMPONENTS, Status
from ..textsafe import safe_document, safe_text
from ..verdict import skipped_by_reason

SCHEMA_VERSION = "1.2"
SCHEMA_ID = "https://mastoaudit.invalid/schema/report-1.2.json"

_STATUS_ORDER = {Status.ERROR: 0, Status.FAIL: 1, Status.WARN: 2, Status.SKIP: 3, Status.PASS: 4}


def sorted_findings(result: RunResult):
    return sorted(
        result.findings,
        key=lambda f: (_STATUS_ORDER[f.status], -f.severity.rank, f.component, f.check_id, f.target,
                       f.location.file if f.location else "", f.location.line or 0 if f.location else 0),
    )


def build_document(result: RunResult, findings: bool = True) -> dict:
    """The run as plain data. `findings=False` leaves the findings out (an empty list), for a
    writer that encodes them one at a time."""
    catalogue = result.registry.catalogue
    skips = [{"status": f.status.value, "skip_reason": f.skip_reason.value if f.skip_reason else None,
              "message": f.message} for f in result.findings if f.status is Status.SKIP]
    return {
        "$schema": SCHEMA_ID,
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "mastoaudit", "version": result.tool_version},
        "run": {
            "command": result.command,
            "started_at": result.started_at,
            "duration_s": result.duration_s,
            "complete": result.complete,
            "targets": [
                {"name": t.name, "fact_kinds": t.kinds, "problems": t.problems} for t in result.targets
            ],
        },
        "summary": {
            "by_status": result.counts_by_status(),
            "failed_by_severity": result.failed_by_severity(),
            "checks_run": len(result.checks),
            "waived": 0,  # compliance.py applies the waivers to the document
            "skipped_by_reason": skipped_by_reason(skips),
        },
        "checks": [meta.to_dict() for meta in result.checks],
        "findings": [f.to_dict() for f in sorted_findings(result)] if findings else [],
        "threats": catalogue.coverage(result.checks, result.findings),
        # Every component with its description, in a fixed order, for the views grouped by component.
        "components": [{"id": c, "description": catalogue.components.get(c, "")} for c in COMPONENTS],
        "extra": result.extra,
    }


def visible_text(text: str) -> str:
    """`text` with unsafe characters replaced by a visible escape (see mastoaudit.textsafe)."""
    return safe_text(text, multiline=True)


def visible(value):
    """A document (or any part of it) with every string made safe to show (mastoaudit.textsafe)."""
    return safe_document(value)


# --- what people read of a huge run ------------------------------------------------------------------
# A config with thousands of server blocks yields thousands of findings of one check. Every finding is
# counted and kept in the JSON report; the formats people read list at most this many of each check,
# target and status, then one line that says how many more there are.
DISPLAY_LIMITS = {"terminal": 10, "html": 50, "junit": 50, "sarif": 1000}
# One finding's text can grow with the input too (a subject naming every server block): the
# formats people read show this much of a field, then say how much more the JSON report has.
MAX_SHOWN_CHARS = 2000
_SHOWN_FIELDS = ("message", "subject", "observed", "expected")


def clip(text: str | None, limit: int = MAX_SHOWN_CHARS) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters in the JSON report)"


def for_display(finding: dict) -> dict:
    """A finding dict with its long text fields clipped (`clip`), for the formats people read."""
    if all(not isinstance(finding.get(k), str) or len(finding[k]) <= MAX_SHOWN_CHARS for k in _SHOWN_FIELDS):
        return finding
    return {**finding, **{k: clip(finding[k]) for k in _SHOWN_FIELDS if isinstance(finding.get(k), str)}}


@dataclass(frozen=True)
class Omitted:
    """Stands after the last listed finding of a group that had more: `count` more like `like`."""

    like: Any  # the group's last listed finding (a Finding or a document dict): its check, target, status
    count: int


def finding_group(f: Any) -> tuple[str, str, str]:
    """The group a finding is listed (and capped) in: its check, target and status."""
    if isinstance(f, dict):
        return f["check_id"], f["target"], f["status"]
    return f.check_id, f.target, f.status.value


def capped(items: Iterable[Any], limit: int,
           key: Callable[[Any], Hashable] = finding_group) -> Iterator[Any]:
    """`items` in their order, at most `limit` of each group (`key`); after the last one listed of
    a group that had more, an `Omitted` for the rest. Memory: one counter per group."""
    items = list(items)
    totals = Counter(key(i) for i in items)
    seen: Counter = Counter()
    for item in items:
        group = key(item)
        seen[group] += 1
        if seen[group] <= limit:
            yield item
            if seen[group] == limit and totals[group] > limit:
                yield Omitted(item, totals[group] - limit)
