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
from ..model import SKIP_LABELS, Severity, Status
from .compliance_view import compliance_view, diff_view
from .document import DISPLAY_LIMITS, Omitted, build_document, capped, for_display, visible
from .federation_view import federation_view

TEMPLATE_PACKAGE = "mastoaudit_templates"
# What the report shows: the statuses, plus "waived" for a failure or warning a waiver accepts
# (its own status on the page, with its own filter; the document keeps the check's verdict).
WAIVED = "waived"
STATUSES = [s.value for s in (Status.FAIL, Status.ERROR, Status.WARN)] + [WAIVED] + [
    s.value for s in (Status.SKIP, Status.PASS)]
SEVERITIES = [s.value for s in reversed(list(Severity))]
_OPEN_BY_DEFAULT = {Status.FAIL.value, Status.ERROR.value, Status.WARN.value}
_ATTENTION = _OPEN_BY_DEFAULT
# Within a component: what needs attention, then what passed, then what did not apply.
_ROW_ORDER = [s.value for s in (Status.ERROR, Status.FAIL, Status.WARN)] + [WAIVED] + [
    s.value for s in (Status.PASS, Status.SKIP)]
_THREAT_WORDS = {"fail": "failing", "error": "not fully checked", "warn": "needs review",
                 WAIVED: "accepted risk (waived)", "pass": "verified", "skip": "not applicable here",
                 "none": "no check in this run"}
_THREAT_ORDER = list(_THREAT_WORDS)
_STATUS_WORDS = {"pass": "passed", "fail": "failed", "warn": "warning", "skip": "skipped", "error": "error",
                 WAIVED: "waived"}
_STATUS_PLURALS = {"pass": "passes", "fail": "failures", "warn": "warnings", "skip": "skips", "error": "errors",
                   WAIVED: "waived findings"}


def _asset(name: str) -> str:
    text = resources.files(TEMPLATE_PACKAGE).joinpath(name).read_text(encoding="utf-8")
    closing = "</style" if name.endswith(".css") else "</script"
    if closing in text.lower():  # would end the inline block early
        raise ValueError(f"{name} must not contain {closing}")
    return text


def csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def content_security_policy(css: str, js: str | None) -> str:
    script = csp_hash(js) if js is not None else "'none'"
    return (f"default-src 'none'; style-src {csp_hash(css)}; script-src {script}; "
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


def _worst(counts: dict[str, int]) -> str:
    for status in STATUSES:
        if counts.get(status):
            return status
    return "none"


def _shown(f: dict) -> str:
    return WAIVED if f.get("waiver") else f["status"]


def view(doc: dict) -> dict:
    """What the template shows, derived from the document only.

    Every finding is counted (totals, matrix, components, threats); at most DISPLAY_LIMITS["html"]
    of one check, target and shown status are listed, then one line says how many more there are
    (all are in the JSON report): a config with 6,000 server blocks makes a page a person can
    open. Only what is listed is copied and made safe (`visible`)."""
    tally = [(f["check_id"], f["component"], f["severity"], _shown(f)) for f in doc["findings"]]
    listed = list(capped(doc["findings"], DISPLAY_LIMITS["html"],
                         key=lambda f: (f["check_id"], f["target"], _shown(f))))
    doc = visible({**doc, "findings": [for_display(f) for f in listed if not isinstance(f, Omitted)]})
    checks = {c["id"]: c for c in doc["checks"]}
    findings = []
    rows: list[dict] = []
    safe = iter(doc["findings"])
    for n, item in enumerate(listed, 1):
        if isinstance(item, Omitted):
            like = visible(item.like)
            rows.append({"omitted": item.count, "check_id": like["check_id"], "shown": _shown(like),
                         "severity": like["severity"], "component": like["component"], "target": like["target"],
                         "status_word": _STATUS_PLURALS[_shown(like)]})
            continue
        f = next(safe)
        loc = f["location"]
        shown = _shown(f)
        findings.append({
            **f,
            "waiver": f.get("waiver"),  # optional in the document
            "baseline": f.get("baseline"),
            "shown": shown,
            "anchor": f"finding-{n}",
            "where": (f"{loc['file']}:{loc['line']}" if loc and loc["line"] else loc["file"]) if loc else None,
            "check": checks.get(f["check_id"]),
            "skip_label": SKIP_LABELS.get(f.get("skip_reason")) if f["status"] == "skip" else None,
            "open": shown in _OPEN_BY_DEFAULT,
            "omitted": 0,
        })
        rows.append(findings[-1])
    for c in checks.values():
        c["links"] = [{"text": r, "href": r if _is_link(r) else None} for r in c["references"]]

    component_counts: dict[str, dict[str, int]] = {}
    per_check: dict[str, dict[str, int]] = {}
    matrix = {sev: dict.fromkeys(STATUSES, 0) for sev in SEVERITIES}
    totals = dict.fromkeys(STATUSES, 0)
    for check_id, component, severity, shown in tally:
        component_counts.setdefault(component, dict.fromkeys(STATUSES, 0))[shown] += 1
        per_check.setdefault(check_id, dict.fromkeys(STATUSES, 0))[shown] += 1
        matrix[severity][shown] += 1
        totals[shown] += 1
    groups = []
    for comp in doc["components"]:
        members = [f for f in rows if f["component"] == comp["id"]]
        if members:
            members.sort(key=lambda f: _ROW_ORDER.index(f["shown"]))  # stable: keeps severity order
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
        **compliance_view(doc, findings),
        "federation": federation_view(doc),
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
        "errors": sum(1 for f in tally if f[3] == "error"),
    }


def render(result: RunResult) -> str:
    return render_document(build_document(result))


def render_document(doc: dict) -> str:
    css, js = _asset("report.css") + _asset("federation.css"), _asset("report.js")
    template = _environment().get_template("report.html.j2")
    return template.render(
        **view(doc),
        # Our own files, not data: Markup keeps them byte-identical so the CSP hashes match.
        css=Markup(css),
        js=Markup(js),
        csp=content_security_policy(css, js),
    )


def render_diff(diff: dict) -> str:
    """The page of `mastoaudit diff`: new, changed and resolved findings (no script at all)."""
    css = _asset("report.css")
    template = _environment().get_template("diff.html.j2")
    return template.render(**diff_view(visible(diff)), css=Markup(css), csp=content_security_policy(css, None),
                           status_words=_STATUS_WORDS)
