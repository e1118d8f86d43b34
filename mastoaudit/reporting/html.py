"""HTML report: one self-contained page, safe to open even when the audited configs are hostile.

What a reader sees, in order: the verdict (an overall grade and what failed), what to do first
(the failures of highest priority, each with its fix and why it is on top: reporting/priority.py),
grades per component and per threat in the manner of the Mozilla Observatory, two charts (failures
by component and severity, threat coverage), then the details: per component, one entry per check,
target and status listing every place it concerns, the fix before the rationale; passes and skips
(grouped by reason) folded away. The compliance blocks (trend, baseline, waivers) keep their own
template (compliance.html.j2).

Every value comes from the run document and reaches the page only through Jinja2 autoescaping:
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
from . import charts
from .compliance_view import compliance_view, diff_view
from .document import build_document, visible
from .priority import (
    EASE,
    EXPOSURE,
    GRADE_PENALTY,
    MAX_PRIORITY,
    SEVERITY_POINTS,
    WARN_SHARE,
    grade,
    grade_class,
    priority,
    rank,
)

TEMPLATE_PACKAGE = "mastoaudit_templates"
# What the report shows: the statuses, plus "waived" for a failure or warning a waiver accepts
# (its own status on the page, with its own filter; the document keeps the check's verdict).
WAIVED = "waived"
STATUSES = [s.value for s in (Status.FAIL, Status.ERROR, Status.WARN)] + [WAIVED] + [
    s.value for s in (Status.SKIP, Status.PASS)]
SEVERITIES = [s.value for s in reversed(list(Severity))]
_ATTENTION = {Status.FAIL.value, Status.ERROR.value, Status.WARN.value}
# Within a component: what needs attention, then what was accepted; passes and skips are folded.
_ROW_ORDER = [s.value for s in (Status.ERROR, Status.FAIL, Status.WARN)] + [WAIVED] + [
    s.value for s in (Status.PASS, Status.SKIP)]
_THREAT_WORDS = {"fail": "failing", "error": "not fully checked", "warn": "needs review",
                 WAIVED: "accepted risk (waived)", "pass": "verified", "skip": "not applicable here",
                 "none": "no check in this run"}
_THREAT_ORDER = list(_THREAT_WORDS)
_STATUS_WORDS = {"pass": "passed", "fail": "failed", "warn": "warning", "skip": "skipped", "error": "error",
                 WAIVED: "waived"}
TOP_ACTIONS = 5

# What a run read, in words (the header never shows the collectors' internal names).
_SOURCES = {
    "nginx": ("files", "nginx"), "mastodon_env": ("files", ".env.production"),
    "pg_hba": ("files", "pg_hba.conf"), "postgresql_conf": ("files", "postgresql.conf"),
    "redis_conf": ("files", "redis.conf"), "elasticsearch_yml": ("files", "elasticsearch.yml"),
    "compose": ("files", "Compose files"), "systemd_unit": ("files", "systemd units"),
    "sshd_config": ("files", "sshd settings"),
    "listening": ("host", "listening services"), "processes": ("host", "processes"),
    "packages": ("host", "packages"), "apt_config": ("host", "automatic updates"),
    "file_stat": ("host", "file modes"), "firewall": ("host", "packet filter"),
    "postgres_live": ("host", "PostgreSQL settings and roles"), "redis_live": ("host", "Redis settings"),
    "mastodon_version": ("host", "Mastodon release"),
    "tls_endpoint": ("network", "TLS"), "tls_scan": ("network", "TLS"), "http_site": ("network", "HTTP headers"),
    "http_grade": ("network", "HTTP headers"), "mastodon_exposure": ("network", "exposed paths"),
    "nodeinfo": ("network", "NodeInfo"), "port": ("network", "ports"), "port_scan": ("network", "ports"),
    "s3": ("network", "media bucket"), "smtp_endpoint": ("network", "SMTP relay"),
    "mail_spf": ("network", "mail DNS"), "mail_dkim": ("network", "mail DNS"), "mail_dmarc": ("network", "mail DNS"),
    "mail_mta_sts": ("network", "mail DNS"), "mail_tls_rpt": ("network", "mail DNS"), "dns_caa": ("network", "DNS"),
    "dns_dnssec": ("network", "DNS"),
    "mastodon_db": ("database", "Mastodon's database"), "database": ("database", "Mastodon's database"),
    "federation_peers": ("database", "peers"), "peer_list": ("database", "peers"),
    "advisories": ("database", "advisories"),
}
_SOURCE_TITLES = {"files": "configuration files", "host": "the live host", "network": "the network",
                  "database": "Mastodon's database", "other": "other sources"}
_INTERNAL = {"host_info", "scan_target", "probe_timings"}  # bookkeeping, not something read


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


def _counts(findings: list[dict]) -> dict[str, int]:
    counts = dict.fromkeys(STATUSES, 0)
    for f in findings:
        counts[f["shown"]] += 1
    return counts


def _worst(counts: dict[str, int]) -> str:
    for status in STATUSES:
        if counts.get(status):
            return status
    return "none"


def _severity_rank(name: str) -> int:
    return Severity(name).rank


def sources(kinds: list[str]) -> list[dict]:
    """What a target's run read, in words, by where it came from."""
    found: dict[str, list[str]] = {}
    for kind in kinds:
        if kind in _INTERNAL:
            continue
        where, label = _SOURCES.get(kind, ("other", kind.replace("_", " ")))
        found.setdefault(where, [])
        if label not in found[where]:
            found[where].append(label)
    return [{"title": _SOURCE_TITLES[w], "labels": found[w]} for w in _SOURCE_TITLES if w in found]


def _entries(findings: list[dict]) -> list[dict]:
    """One entry per check, target and shown status: a check that fails at forty places is one
    entry listing forty places (the document's order kept: worst first)."""
    entries: dict[tuple[str, str, str], dict] = {}
    for f in findings:
        key = (f["check_id"], f["target"], f["shown"])
        entry = entries.get(key)
        if entry is None:
            entry = entries[key] = {
                "anchor": f"entry-{len(entries) + 1}", "check_id": f["check_id"], "check": f["check"],
                "title": f["title"], "component": f["component"], "target": f["target"], "shown": f["shown"],
                "status": f["status"], "severity": f["severity"], "places": [], "priority": None,
            }
        entry["places"].append(f)
        if _severity_rank(f["severity"]) > _severity_rank(entry["severity"]):
            entry["severity"] = f["severity"]
        if f["priority"] and (entry["priority"] is None or f["priority"]["score"] > entry["priority"]["score"]):
            entry["priority"] = f["priority"]
    for entry in entries.values():
        places = entry["places"]
        entry["count"] = len(places)
        entry["open"] = entry["shown"] in _ATTENTION
        entry["first"] = places[0]
        marks: dict[str, int] = {}
        for p in places:
            for kind, _text in p["marks"]:
                marks[kind] = marks.get(kind, 0) + 1
        entry["marks"] = marks
        entry["message"] = places[0]["message"] if len(places) == 1 else None
    return list(entries.values())


def _by_reason(entries: list[dict]) -> list[dict]:
    """Skipped entries grouped by what their first place says (the reason), largest group first."""
    reasons: dict[str, list[dict]] = {}
    for e in entries:
        reasons.setdefault(e["first"]["message"], []).append(e)
    groups = [{"reason": r, "entries": es, "count": sum(e["count"] for e in es)} for r, es in reasons.items()]
    groups.sort(key=lambda g: -g["count"])
    return groups


def _actions(findings: list[dict], checks: dict[str, dict], entries: list[dict]) -> list[dict]:
    """Open failures as actions (priority.rank), each with the detail entries it stands for."""
    actions = rank([f for f in findings if f["priority"]], checks)
    by_check: dict[str, list[dict]] = {}
    for e in entries:
        if e["shown"] == Status.FAIL.value:
            by_check.setdefault(e["check_id"], []).append(e)
    for a in actions:
        a["entries"] = by_check[a["check_id"]]
    return actions


def _grade_view(findings: list[dict]) -> dict:
    g = grade(findings)
    return {**g, "css": grade_class(g["letter"])}


def view(doc: dict) -> dict:
    """What the template shows, derived from the document only."""
    doc = visible(doc)
    checks = {c["id"]: c for c in doc["checks"]}
    for c in checks.values():
        c["links"] = [{"text": r, "href": r if _is_link(r) else None} for r in c["references"]]
    findings = []
    for n, f in enumerate(doc["findings"], 1):
        loc = f["location"]
        shown = WAIVED if f.get("waiver") else f["status"]
        check = checks.get(f["check_id"])
        findings.append({
            **f,
            "waiver": f.get("waiver"),  # optional in the document
            "baseline": f.get("baseline"),
            "shown": shown,
            "anchor": f"finding-{n}",
            "where": (f"{loc['file']}:{loc['line']}" if loc and loc["line"] else loc["file"]) if loc else None,
            "check": check,
            "priority": priority(f, check).to_dict() if shown == Status.FAIL.value else None,
        })
    compliance = compliance_view(doc, findings)  # adds each finding's marks (baseline, previous run)
    entries = _entries(findings)
    several = len(doc["run"]["targets"]) > 1

    by_component: dict[str, list[dict]] = {}
    for f in findings:
        by_component.setdefault(f["component"], []).append(f)
    groups = []
    for comp in doc["components"]:
        members = [e for e in entries if e["component"] == comp["id"]]
        if not members:
            continue
        counts = _counts(by_component[comp["id"]])
        attention = [e for e in members if e["shown"] not in (Status.PASS.value, Status.SKIP.value)]
        attention.sort(key=lambda e: (_ROW_ORDER.index(e["shown"]), -(e["priority"] or {}).get("score", 0),
                                      -_severity_rank(e["severity"])))
        passed = [e for e in members if e["shown"] == Status.PASS.value]
        skipped = [e for e in members if e["shown"] == Status.SKIP.value]
        groups.append({**comp, "entries": attention, "passed": passed, "skip_reasons": _by_reason(skipped),
                       "passed_count": sum(e["count"] for e in passed),
                       "skipped_count": sum(e["count"] for e in skipped),
                       "counts": counts, "worst": _worst(counts), "grade": _grade_view(by_component[comp["id"]])})
    # Worst grade first (then the catalogue's order); components with nothing judged last.
    groups.sort(key=lambda g: (g["grade"]["score"] is None, g["grade"]["score"] if g["grade"]["score"] is not None
                               else 0))

    per_check: dict[str, dict[str, int]] = {}
    for f in findings:
        per_check.setdefault(f["check_id"], dict.fromkeys(STATUSES, 0))[f["shown"]] += 1
    threats = []
    by_threat: dict[str, list[dict]] = {}
    for f in findings:
        for tid in f["threats"]:
            by_threat.setdefault(tid, []).append(f)
    for t in doc["threats"]:
        rows = [{"id": cid, "check": checks.get(cid), "counts": per_check.get(cid, dict.fromkeys(STATUSES, 0))}
                for cid in t["checks"]]
        worst = _worst({s: sum(r["counts"][s] for r in rows) for s in STATUSES})
        # "none": no check verifies it; a threat whose checks all skipped is "skip".
        state = "none" if not rows else "skip" if worst == "none" else worst
        outcome = dict.fromkeys(charts.OUTCOMES, 0)  # how each verifying check ended: its worst result
        for r in rows:
            ended = _worst(r["counts"])
            if ended != "none":
                outcome[ended] += 1
        threats.append({**t, "rows": rows, "state": state, "state_text": _THREAT_WORDS[state],
                        "grade": _grade_view(by_threat.get(t["id"], [])) if rows else
                        {"score": None, "letter": None, "css": "none", "incomplete": False, "deductions": [],
                         "text": "not graded: no check verifies it"},
                        "outcome": outcome})
    # Threats with failures first; within a state, worst grade first, then catalogue order.
    threats.sort(key=lambda t: (_THREAT_ORDER.index(t["state"]),
                                t["grade"]["score"] if t["grade"]["score"] is not None else 101))
    threat_states = {state: sum(1 for t in threats if t["state"] == state) for state in _THREAT_ORDER}

    matrix = {sev: dict.fromkeys(STATUSES, 0) for sev in SEVERITIES}
    for f in findings:
        matrix[f["severity"]][f["shown"]] += 1
    actions = _actions(findings, checks, entries)
    open_failures = {g["id"]: dict.fromkeys(SEVERITIES, 0) for g in groups}
    for f in findings:
        if f["shown"] == Status.FAIL.value:
            open_failures[f["component"]][f["severity"]] += 1
    severity_chart = charts.severity_by_component([
        {"id": g["id"], "grade": g["grade"]["letter"], "counts": open_failures[g["id"]]} for g in groups])
    threat_chart = charts.threat_coverage([
        {"id": t["id"], "title": t["title"], "grade": t["grade"]["letter"], "counts": t["outcome"]} for t in threats])
    overall = _grade_view(findings)
    totals = _counts(findings)
    return {
        **compliance,
        "doc": doc,
        "run": doc["run"],
        "several": several,
        "targets": [{**t, "sources": sources(t["fact_kinds"])} for t in doc["run"]["targets"]],
        "findings": findings,
        "entries": entries,
        "groups": groups,
        "actions": actions[:TOP_ACTIONS],
        "more_actions": actions[TOP_ACTIONS:],
        "action_count": len(actions),
        # Failing checks past the top ones with the same priority as the last shown: the order among
        # them is only the tie-break (severity, then places), which the page should say.
        "tied": sum(1 for a in actions[TOP_ACTIONS:]
                    if a["priority"]["score"] == actions[TOP_ACTIONS - 1]["priority"]["score"]),
        "overall": overall,
        "threats": threats,
        "threat_titles": {t["id"]: t["title"] for t in threats},
        "threat_states": threat_states,
        "severity_chart": severity_chart,
        "threat_chart": threat_chart,
        "matrix": matrix,
        "totals": totals,
        "open_total": totals["fail"] + totals["error"] + totals["warn"],
        "statuses": STATUSES,
        "severities": SEVERITIES,
        "status_words": _STATUS_WORDS,
        "threat_words": _THREAT_WORDS,
        "outcome_words": charts.OUTCOME_WORDS,
        "errors": sum(1 for f in findings if f["status"] == "error"),
        "rules": {"severity": SEVERITY_POINTS, "exposure": EXPOSURE, "ease": EASE, "max": MAX_PRIORITY,
                  "penalty": GRADE_PENALTY, "warn_share": WARN_SHARE},
    }


def render(result: RunResult) -> str:
    return render_document(build_document(result))


def render_document(doc: dict) -> str:
    css, js = _asset("report.css"), _asset("report.js")
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
