"""HTML report: one self-contained page, safe to open even when the audited configs are hostile.

Every value comes from `build_document` and reaches the page only through Jinja2 autoescaping:
as element text or as a quoted attribute, never inside the script, a style or an event handler.
The stylesheet and the script are our own files, inlined; a Content-Security-Policy meta tag
allows exactly those two blocks by hash and nothing else (no network, no other script).
"""

from __future__ import annotations

import base64
import hashlib
from importlib import resources

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from ..engine import RunResult
from ..model import Severity, Status
from .document import DISPLAY_LIMITS, Omitted, build_document, capped, for_display, sorted_findings, visible

TEMPLATE_PACKAGE = "mastoaudit_templates"
STATUSES = [s.value for s in (Status.FAIL, Status.ERROR, Status.WARN, Status.SKIP, Status.PASS)]
SEVERITIES = [s.value for s in reversed(list(Severity))]
_OPEN_BY_DEFAULT = {Status.FAIL.value, Status.ERROR.value, Status.WARN.value}
_ATTENTION = _OPEN_BY_DEFAULT
# Within a component: what needs attention, then what passed, then what did not apply.
_ROW_ORDER = [s.value for s in (Status.ERROR, Status.FAIL, Status.WARN, Status.PASS, Status.SKIP)]
_THREAT_WORDS = {"fail": "failing", "error": "not fully checked", "warn": "needs review", "pass": "verified",
                 "skip": "not applicable here", "none": "no check in this run"}
_THREAT_ORDER = list(_THREAT_WORDS)
_STATUS_WORDS = {"pass": "passed", "fail": "failed", "warn": "warning", "skip": "skipped", "error": "error"}
_STATUS_PLURALS = {"pass": "passes", "fail": "failures", "warn": "warnings", "skip": "skips", "error": "errors"}


def _asset(name: str) -> str:
    text = resources.files(TEMPLATE_PACKAGE).joinpath(name).read_text(encoding="utf-8")
    closing = "</style" if name.endswith(".css") else "</script"
    if closing in text.lower():  # would end the inline block early
        raise ValueError(f"{name} must not contain {closing}")
    return text


def csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def content_security_policy(css: str, js: str) -> str:
    return (f"default-src 'none'; style-src {csp_hash(css)}; script-src {csp_hash(js)}; "
            "img-src data:; base-uri 'none'; form-action 'none'")


def _environment() -> Environment:
    return Environment(
        loader=PackageLoader(TEMPLATE_PACKAGE, ""),
        autoescape=True,  # every value from a config is hostile
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _is_link(ref: str) -> bool:
    # Only web links become <a href>; anything else (javascript:, data:, a path) stays text.
    return ref.startswith(("https://", "http://")) and not any(ch.isspace() for ch in ref)


def _counts(findings: list[dict]) -> dict[str, int]:
    counts = dict.fromkeys(STATUSES, 0)
    for f in findings:
        counts[f["status"]] += 1
    return counts


def _worst(counts: dict[str, int]) -> str:
    for status in STATUSES:
        if counts.get(status):
            return status
    return "none"


def view(doc: dict, tally: list[tuple[str, str, str, str]] | None = None, listed: list | None = None) -> dict:
    """What the template shows, derived from the document only.

    Every finding is counted (totals, matrix, components, threats); at most DISPLAY_LIMITS["html"]
    of one check, target and status are listed, then one line says how many more there are (all
    are in the JSON report): a config with 6,000 server blocks makes a page a person can open.
    `render` passes what is listed (`capped` findings) and the tally of every finding (check,
    component, severity, status) so that the full list of findings is never built as dicts."""
    if listed is None:
        listed = [item if isinstance(item, Omitted) else for_display(item)
                  for item in capped(doc["findings"], DISPLAY_LIMITS["html"])]
    if tally is None:
        tally = [(f["check_id"], f["component"], f["severity"], f["status"]) for f in doc["findings"]]
    doc = visible({**doc, "findings": [f for f in listed if not isinstance(f, Omitted)]})
    checks = {c["id"]: c for c in doc["checks"]}
    safe = iter(doc["findings"])
    findings = []
    for n, item in enumerate(listed, 1):
        if isinstance(item, Omitted):
            like = visible(item.like)
            findings.append({"omitted": item.count, "check_id": like["check_id"], "status": like["status"],
                             "severity": like["severity"], "component": like["component"], "target": like["target"],
                             "status_word": _STATUS_PLURALS[like["status"]]})
            continue
        f = next(safe)
        loc = f["location"]
        findings.append({
            **f,
            "omitted": 0,
            "anchor": f"finding-{n}",
            "where": (f"{loc['file']}:{loc['line']}" if loc and loc["line"] else loc["file"]) if loc else None,
            "check": checks.get(f["check_id"]),
            "open": f["status"] in _OPEN_BY_DEFAULT,
        })
    for c in checks.values():
        c["links"] = [{"text": r, "href": r if _is_link(r) else None} for r in c["references"]]

    component_counts: dict[str, dict[str, int]] = {}
    per_check: dict[str, dict[str, int]] = {}
    matrix = {sev: dict.fromkeys(STATUSES, 0) for sev in SEVERITIES}
    totals = dict.fromkeys(STATUSES, 0)
    for check_id, component, severity, status in tally:
        component_counts.setdefault(component, dict.fromkeys(STATUSES, 0))[status] += 1
        per_check.setdefault(check_id, dict.fromkeys(STATUSES, 0))[status] += 1
        matrix[severity][status] += 1
        totals[status] += 1
    groups = []
    for comp in doc["components"]:
        members = [f for f in findings if f["component"] == comp["id"]]
        if members:
            members.sort(key=lambda f: _ROW_ORDER.index(f["status"]))  # stable: keeps severity order
            counts = component_counts[comp["id"]]
            groups.append({**comp, "findings": members, "counts": counts, "worst": _worst(counts)})
    # Components that need attention first; the others in the catalogue's order.
    groups.sort(key=lambda g: _ROW_ORDER.index(g["worst"]) if g["worst"] in _ATTENTION else len(_ROW_ORDER))

    threats = []
    for t in doc["threats"]:
        rows = [{"id": cid, "check": checks.get(cid), "counts": per_check.get(cid, dict.fromkeys(STATUSES, 0))}
                for cid in t["checks"]]
        worst = _worst({s: sum(r["counts"][s] for r in rows) for s in STATUSES})
        # "none": no check verifies it; a threat whose checks all skipped is "skip".
        state = "none" if not rows else "skip" if worst == "none" else worst
        threats.append({**t, "rows": rows, "state": state, "state_text": _THREAT_WORDS[state]})
    # Threats with failures first; within a state, catalogue order (sort is stable).
    threats.sort(key=lambda t: _THREAT_ORDER.index(t["state"]))
    threat_states = {state: sum(1 for t in threats if t["state"] == state) for state in _THREAT_ORDER}

    return {
        "doc": doc,
        "run": doc["run"],
        "findings": findings,
        "groups": groups,
        "threats": threats,
        "threat_states": threat_states,
        "matrix": matrix,
        "totals": totals,
        "result_count": len(tally),
        "statuses": STATUSES,
        "severities": SEVERITIES,
        "status_words": _STATUS_WORDS,
        "threat_words": _THREAT_WORDS,
        "errors": totals["error"],
    }


def render(result: RunResult) -> str:
    doc = build_document(result, findings=False)
    listed = [Omitted(item.like.to_dict(), item.count) if isinstance(item, Omitted) else for_display(item.to_dict())
              for item in capped(sorted_findings(result), DISPLAY_LIMITS["html"])]
    tally = [(f.check_id, f.component, f.severity.value, f.status.value) for f in result.findings]
    return _page(view(doc, tally, listed))


def render_document(doc: dict) -> str:
    return _page(view(doc))


def _page(shown: dict) -> str:
    css, js = _asset("report.css"), _asset("report.js")
    template = _environment().get_template("report.html.j2")
    return template.render(
        **shown,
        # Our own files, not data: Markup keeps them byte-identical so the CSP hashes match.
        css=Markup(css),
        js=Markup(js),
        csp=content_security_policy(css, js),
    )
