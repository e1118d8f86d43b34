"""What a run's document adds up to: its summary counts and its exit code.

Both read only the document (the JSON report's shape), so a run, a merge of shard reports and a
report read back from disk are judged by the same rule:

- an `error` finding makes the run incomplete: exit 3, whatever else it holds;
- a `fail` finding counts for `--fail-on` unless it is waived, or a baseline says it is not new
  (unchanged, or updated without getting worse);
- `warn`, `skip` and `pass` never change the exit code.
"""

from __future__ import annotations

from .model import Severity, SkipReason, Status

EXIT_CLEAN, EXIT_FAILED, EXIT_USAGE, EXIT_INCOMPLETE = 0, 1, 2, 3

# The order of findings in a document (reporting.document.sorted_findings, for dicts): what needs
# attention first, worst first, then by component, check, target and place.
_STATUS_ORDER = {"error": 0, "fail": 1, "warn": 2, "skip": 3, "pass": 4}


def severity_rank(name: str) -> int:
    return Severity(name).rank


def worse(before: dict, after: dict) -> bool:
    """Whether `after` is a worse verdict than `before` about the same subject: it fails where it
    did not, fails at a higher severity, or lost the waiver that covered it."""
    if after["status"] != "fail":
        return False
    if before["status"] != "fail":
        return True
    if severity_rank(after["severity"]) > severity_rank(before["severity"]):
        return True
    return bool(before.get("waived")) and not after.get("waiver")


def counts_for_fail_on(finding: dict) -> bool:
    if finding["status"] != Status.FAIL.value or finding.get("waiver"):
        return False
    baseline = finding.get("baseline")
    if not baseline:
        return True
    if baseline["state"] == "new":
        return True
    return baseline["state"] == "updated" and worse(baseline["previous"], finding)


def exit_code(doc: dict, fail_on: Severity | None) -> int:
    if not doc["run"]["complete"]:
        return EXIT_INCOMPLETE
    if fail_on is not None and any(
        counts_for_fail_on(f) and severity_rank(f["severity"]) >= fail_on.rank for f in doc["findings"]
    ):
        return EXIT_FAILED
    return EXIT_CLEAN


def summarize(findings: list[dict], checks_run: int) -> dict:
    """The document's `summary`: results by status (every verdict, waived or not), failures by
    severity (those not waived: what the trend draws), and how many findings are waived."""
    by_status = {s.value: 0 for s in Status}
    failed = {s.value: 0 for s in Severity}
    waived = 0
    for f in findings:
        by_status[f["status"]] += 1
        if f.get("waiver"):
            waived += 1
        elif f["status"] == Status.FAIL.value:
            failed[f["severity"]] += 1
    return {"by_status": by_status, "failed_by_severity": failed, "checks_run": checks_run, "waived": waived,
            "skipped_by_reason": skipped_by_reason(findings)}


def skipped_by_reason(findings: list[dict]) -> list[dict]:
    """The skips grouped by why (SkipReason), the largest group first: each reason with its label and
    count. A report of an older version, whose skips carry no reason, counts them by their words."""
    counts: dict[SkipReason, int] = {}
    for f in findings:
        if f["status"] == Status.SKIP.value:
            reason = _reason(f)
            counts[reason] = counts.get(reason, 0) + 1
    order = list(SkipReason)
    return [{"reason": r.value, "label": r.label, "count": n}
            for r, n in sorted(counts.items(), key=lambda item: (-item[1], order.index(item[0])))]


def _reason(finding: dict) -> SkipReason:
    try:
        return SkipReason(finding.get("skip_reason"))
    except ValueError:
        return SkipReason.infer(str(finding.get("message", "")))


def is_open(finding: dict) -> bool:
    """Needs attention: failed, warned, or could not be checked."""
    return finding["status"] in ("fail", "warn", "error")


def finding_order(f: dict) -> tuple:
    loc = f.get("location") or {}
    return (_STATUS_ORDER[f["status"]], -severity_rank(f["severity"]), f["component"], f["check_id"], f["target"],
            loc.get("file") or "", loc.get("line") or 0)
