"""The run as one plain document: what the JSON report holds and the other formats draw from."""

from __future__ import annotations

from ..engine import RunResult
from ..model import COMPONENTS, Status

SCHEMA_VERSION = "1.1"
SCHEMA_ID = "https://mastoaudit.invalid/schema/report-1.1.json"

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
            "waived": 0,  # compliance.py applies the waivers to the document
        },
        "checks": [meta.to_dict() for meta in result.checks],
        "findings": [f.to_dict() for f in sorted_findings(result)],
        "threats": catalogue.coverage(result.checks, result.findings),
        # Every component with its description, in a fixed order, for the views grouped by component.
        "components": [{"id": c, "description": catalogue.components.get(c, "")} for c in COMPONENTS],
        "extra": result.extra,
    }


# Characters a report must not carry raw: C0/C1 controls (but tab, newline, carriage return), the
# code points XML 1.0 forbids, lone surrogates, and the bidirectional overrides that can make
# evidence read differently from what it is. Config values are hostile; reporters show these as
# visible escapes (\x1b, \u202e) instead.
_UNSAFE = {c for c in range(0x20) if c not in (0x09, 0x0A, 0x0D)} | set(range(0x7F, 0xA0)) | {
    0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069, 0xFFFE, 0xFFFF}


def visible_text(text: str) -> str:
    """`text` with unsafe characters replaced by a visible escape; the rest left as it is."""
    if all(ord(ch) not in _UNSAFE and not 0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        return text
    out = []
    for ch in text:
        code = ord(ch)
        if code in _UNSAFE or 0xD800 <= code <= 0xDFFF:
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def visible(value):
    """A document (or any part of it) with `visible_text` applied to every string in it."""
    if isinstance(value, str):
        return visible_text(value)
    if isinstance(value, dict):
        return {visible(k): visible(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [visible(v) for v in value]
    return value
