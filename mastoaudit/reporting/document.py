"""The run as one plain document: what the JSON report holds and the other formats draw from."""

from __future__ import annotations

from ..engine import RunResult
from ..model import Status

SCHEMA_VERSION = "1.0"
SCHEMA_ID = "https://mastoaudit.invalid/schema/report-1.0.json"

_STATUS_ORDER = {Status.ERROR: 0, Status.FAIL: 1, Status.WARN: 2, Status.SKIP: 3, Status.PASS: 4}


def sorted_findings(result: RunResult):
    return sorted(
        result.findings,
        key=lambda f: (_STATUS_ORDER[f.status], -f.severity.rank, f.component, f.check_id, f.target,
                       f.location.file if f.location else "", f.location.line or 0 if f.location else 0),
    )


def build_document(result: RunResult) -> dict:
    catalogue = result.registry.catalogue
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
        },
        "checks": [meta.to_dict() for meta in result.checks],
        "findings": [f.to_dict() for f in sorted_findings(result)],
        "threats": catalogue.coverage(result.checks, result.findings),
        "extra": result.extra,
    }
