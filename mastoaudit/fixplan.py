"""`fix --plan`: what to change, file by file, from a run's failed findings. Changes nothing.

The plan is text for a terminal: every value in it (paths, messages, remediation text from plugin
checks) goes through `safe_text`, and a report read back with --report is treated as hostile (a
field missing or of the wrong type is skipped, never a traceback). A run that could not check
everything (errors, `complete: false`) says so: a plan from it is not the whole story.
"""

from __future__ import annotations

from collections import defaultdict

from .textsafe import safe_text


def _text(value: object) -> str:
    return safe_text(value if isinstance(value, str) else "" if value is None else str(value))


def _line(f: dict) -> int:
    loc = f.get("location")
    line = loc.get("line") if isinstance(loc, dict) else None
    return line if isinstance(line, int) and not isinstance(line, bool) else 0


def _findings(document: dict) -> list[dict]:
    found = document.get("findings")
    return [f for f in found if isinstance(f, dict)] if isinstance(found, list) else []


def checks_by_id(document: dict) -> dict[str, dict]:
    """The report's check metadata by id (a report read back may hold anything: malformed entries are left out)."""
    listed = document.get("checks")
    return {c["id"]: c for c in listed if isinstance(c, dict) and isinstance(c.get("id"), str)} \
        if isinstance(listed, list) else {}


def unchecked(document: dict) -> int:
    """How many results could not be checked (status error); at least 1 when the run says it was
    incomplete without listing why."""
    errors = sum(1 for f in _findings(document) if f.get("status") == "error")
    run = document.get("run")
    complete = run.get("complete", True) if isinstance(run, dict) else True
    return errors or (0 if complete is not False else 1)


def plan(document: dict) -> str:
    """A plan from a report document (JSON report or build_document output)."""
    checks = checks_by_id(document)
    by_place: dict[str, list[dict]] = defaultdict(list)
    for f in _findings(document):
        if f.get("status") not in ("fail", "warn"):
            continue
        loc = f.get("location") if isinstance(f.get("location"), dict) else {}
        by_place[f"{_text(f.get('target'))} · {_text(loc.get('file')) or '(no file)'}"].append(f)
    missing = unchecked(document)
    incomplete = (f"Incomplete run: {missing} result{'s' if missing != 1 else ''} could not be checked (errors in the "
                  "report); what was not checked is not in this plan and is not proven safe.\n") if missing else ""
    if not by_place:
        if incomplete:
            return "Nothing to fix among the results that were checked.\n" + incomplete
        return "Nothing to fix: no failed or warned findings.\n"
    out = ["Fix plan (nothing has been changed; review and apply by hand or with your config management):"]
    for place in sorted(by_place):
        out.append(f"\n== {place}")
        seen: set[str] = set()
        for f in sorted(by_place[place], key=lambda f: (_line(f), _text(f.get("check_id")))):
            line = f" line {_line(f)}" if _line(f) else ""
            check_id = _text(f.get("check_id"))
            out.append(f"- [{_text(f.get('severity'))}] {check_id}{line}: {_text(f.get('message'))}")
            meta = checks.get(f.get("check_id")) if isinstance(f.get("check_id"), str) else None
            remediation = meta.get("remediation") if isinstance(meta, dict) else None
            if not isinstance(remediation, dict) or check_id in seen:
                continue
            seen.add(check_id)
            out.append(f"    {_text(remediation.get('text'))}")
            snippet = remediation.get("snippet")
            if isinstance(snippet, str) and snippet:
                out.extend("      " + safe_text(s) for s in snippet.splitlines())
    if incomplete:
        out.append("\n" + incomplete.rstrip("\n"))
    return "\n".join(out) + "\n"
