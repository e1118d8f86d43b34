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
from ..model import SKIP_LABELS, Severity, Status
from . import charts
from .compliance_view import compliance_view, diff_view
from .document import DISPLAY_LIMITS, Omitted, build_document, capped, for_display, visible
from .federation_view import federation_view
from .priority import (
    EASE,
    EXPOSURE,
    GRADE_PENALTY,
    MAX_PRIORITY,
    SEVERITY_POINTS,
    WARN_SHARE,
    grade,
    grade_class,
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
_STATUS_PLURALS = {"pass": "passes", "fail": "failures", "warn": "warnings", "skip": "skips", "error": "errors",
                   WAIVED: "waived findings"}
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
    "postgres_password_hashes": ("host", "PostgreSQL password methods"),
    "mastodon_version": ("host", "Mastodon release"),
    "tls_endpoint": ("network", "TLS"), "tls_scan": ("network", "TLS"), "http_site": ("network", "HTTP headers"),
    "http_grade": ("network", "HTTP headers"), "mastodon_exposure": ("network", "exposed paths"),
    "nodeinfo": ("network", "NodeInfo"), "port": ("network", "ports"), "port_scan": ("network", "ports"),
    "s3": ("network", "media bucket"), "smtp_endpoint": ("network", "SMTP relay"),
    "mail_spf": ("network", "mail DNS"), "mail_dkim": ("network", "mail DNS"), "mail_dmarc": ("network", "mail DNS"),
    "mail_mta_sts": ("network", "mail DNS"), "mail_tls_rpt": ("network", "mail DNS"), "dns_caa": ("network", "DNS"),
    "dns_dnssec": ("network", "DNS"),
    "mastodon_db": ("database", "Mastodon's database"), "database": ("database", "Mastodon's database"),
    # A sweep reads peers from a file or another instance as well as from the database: its own heading.
    "federation_peers": ("peers", "their software and versions"), "peer_list": ("peers", "the peer list"),
    "advisories": ("peers", "the advisories they are matched against"),
}
_SOURCE_TITLES = {"files": "configuration files", "host": "the live host", "network": "the network",
                  "database": "Mastodon's database", "peers": "the fediverse peers", "other": "other sources"}
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


def _worst(counts: dict[str, int]) -> str:
    for status in STATUSES:
        if counts.get(status):
            return status
    return "none"


def _shown(f: dict) -> str:
    return WAIVED if f.get("waiver") else f["status"]


def _severity_rank(name: str) -> int:
    return Severity(name).rank


def sources(kind_names: list[str]) -> list[dict]:
    """What a target's run read, in words, by where it came from (the kinds' declarations say
    which source produces them; a short label where one reads better than the description)."""
    from .. import kinds

    where_of = {kinds.STATIC: "files", kinds.LIVE: "host", kinds.NETWORK: "network", kinds.FEDERATION: "database"}
    found: dict[str, list[str]] = {}
    for name in kind_names:
        if name in _INTERNAL:
            continue
        try:
            declared = kinds.resolve(name)
        except kinds.UnknownKind:
            declared = None
        if name in _SOURCES:
            where, label = _SOURCES[name]
        elif declared is not None:
            where = next((where_of[s] for s in (kinds.STATIC, kinds.LIVE, kinds.NETWORK, kinds.FEDERATION)
                          if s in declared.sources), "other")
            label = declared.description
        else:
            where, label = "other", name.replace("_", " ")
        found.setdefault(where, [])
        if label not in found[where]:
            found[where].append(label)
    return [{"title": _SOURCE_TITLES[w], "labels": found[w]} for w in _SOURCE_TITLES if w in found]


def _entries(listed: list, findings: list[dict], severities: dict[tuple[str, str, str], str]) -> list[dict]:
    """One entry per check, target and shown status: a check that fails at forty places is one
    entry listing forty places, in the document's order (worst first). `listed` is what
    document.capped kept of each group, with an Omitted after a group it cut; `findings` the
    listed findings made safe, in the same order; `severities` each group's worst severity over
    all its findings, listed or not."""
    entries: dict[tuple[str, str, str], dict] = {}
    safe = iter(findings)
    last: dict | None = None
    for item in listed:
        if isinstance(item, Omitted):
            assert last is not None
            last["omitted"] = item.count
            continue
        f = next(safe)
        key = (f["check_id"], f["target"], f["shown"])
        entry = entries.get(key)
        if entry is None:
            entry = entries[key] = {
                "anchor": f"entry-{len(entries) + 1}", "check_id": f["check_id"], "check": f["check"],
                "title": f["title"], "component": f["component"], "target": f["target"], "shown": f["shown"],
                "status": f["status"], "severity": severities[key], "places": [], "omitted": 0,
                "status_word": _STATUS_PLURALS[f["shown"]],
            }
        entry["places"].append(f)
        last = entry
    for entry in entries.values():
        places = entry["places"]
        entry["count"] = len(places) + entry["omitted"]
        entry["first"] = places[0]
        marks: dict[str, int] = {}
        for p in places:
            for kind, _text in p["marks"]:
                marks[kind] = marks.get(kind, 0) + 1
        entry["marks"] = marks
    return list(entries.values())


def _by_reason(entries: list[dict]) -> list[dict]:
    """Skipped entries grouped by their reason (SkipReason's label; a skip from an older document
    without one by what its first place says), largest group first. Each entry still shows its
    own words."""
    reasons: dict[str, list[dict]] = {}
    for e in entries:
        first = e["first"]
        reasons.setdefault(SKIP_LABELS.get(first.get("skip_reason")) or first["message"], []).append(e)
    groups = [{"reason": r, "entries": es, "count": sum(e["count"] for e in es)} for r, es in reasons.items()]
    groups.sort(key=lambda g: -g["count"])
    return groups


def _grade_view(findings: list[dict]) -> dict:
    g = grade(findings)
    return {**g, "css": grade_class(g["letter"])}


def view(doc: dict) -> dict:
    """What the template shows, derived from the document only.

    Every finding counts (totals, grades, charts, the ranking of what to do first); at most
    DISPLAY_LIMITS["html"] of one check, target and shown status are listed in its entry, which
    then says how many more there are (all are in the JSON report): a config with 6,000 server
    blocks makes a page a person can open. Only what is listed is copied and made safe."""
    raw = doc["findings"]
    listed = list(capped(raw, DISPLAY_LIMITS["html"], key=lambda f: (f["check_id"], f["target"], _shown(f))))
    raw_checks = {c["id"]: c for c in doc["checks"]}
    actions = rank(raw, raw_checks)  # over every failure, listed or not
    doc = visible({**doc, "findings": [for_display(f) for f in listed if not isinstance(f, Omitted)]})
    checks = {c["id"]: c for c in doc["checks"]}
    for c in checks.values():
        c["links"] = [{"text": r, "href": r if _is_link(r) else None} for r in c["references"]]
    findings = []
    for n, f in enumerate(doc["findings"], 1):
        loc = f["location"]
        findings.append({
            **f,
            "waiver": f.get("waiver"),  # optional in the document
            "baseline": f.get("baseline"),
            "shown": _shown(f),
            "anchor": f"finding-{n}",
            "where": (f"{loc['file']}:{loc['line']}" if loc and loc["line"] else loc["file"]) if loc else None,
            "check": checks.get(f["check_id"]),
        })
    compliance = compliance_view(doc, findings)  # adds each finding's marks (baseline, previous run)

    # Counts over every finding (the document's, not copied).
    severities: dict[tuple[str, str, str], str] = {}
    by_component: dict[str, list[dict]] = {}
    by_threat: dict[str, list[dict]] = {}
    per_check: dict[str, dict[str, int]] = {}
    matrix = {sev: dict.fromkeys(STATUSES, 0) for sev in SEVERITIES}
    totals = dict.fromkeys(STATUSES, 0)
    for f in raw:
        shown = _shown(f)
        key = (f["check_id"], f["target"], shown)
        if key not in severities or _severity_rank(f["severity"]) > _severity_rank(severities[key]):
            severities[key] = f["severity"]
        by_component.setdefault(f["component"], []).append(f)
        for tid in f["threats"]:
            by_threat.setdefault(tid, []).append(f)
        per_check.setdefault(f["check_id"], dict.fromkeys(STATUSES, 0))[shown] += 1
        matrix[f["severity"]][shown] += 1
        totals[shown] += 1
    entries = _entries(listed, findings, {tuple(visible(list(k))): v for k, v in severities.items()})
    several = len(doc["run"]["targets"]) > 1

    # What to do first: the ranked failing checks, shown safe, each with the entries it stands for.
    priorities = {a["check_id"]: a["priority"] for a in actions}
    failing_entries: dict[str, list[dict]] = {}
    for e in entries:
        e["priority"] = priorities.get(e["check_id"]) if e["shown"] == Status.FAIL.value else None
        if e["priority"]:
            failing_entries.setdefault(e["check_id"], []).append(e)
    actions = [{**visible({k: v for k, v in a.items() if k not in ("check", "lead")}),
                "check": checks.get(a["check_id"]), "lead": _place(visible(for_display(a["lead"]))),
                "entries": failing_entries[visible(a["check_id"])]} for a in actions]

    groups = []
    for comp in doc["components"]:
        members = [e for e in entries if e["component"] == comp["id"]]
        if not members:
            continue
        counts = dict.fromkeys(STATUSES, 0)
        for f in by_component[comp["id"]]:
            counts[_shown(f)] += 1
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

    threats = []
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

    open_failures = {g["id"]: dict.fromkeys(SEVERITIES, 0) for g in groups}
    for f in raw:
        if _shown(f) == Status.FAIL.value:
            open_failures[f["component"]][f["severity"]] += 1
    severity_chart = charts.severity_by_component([
        {"id": g["id"], "grade": g["grade"]["letter"], "counts": open_failures[g["id"]]} for g in groups])
    threat_chart = charts.threat_coverage([
        {"id": t["id"], "title": t["title"], "grade": t["grade"]["letter"], "counts": t["outcome"]} for t in threats])
    return {
        **compliance,
        "federation": federation_view(doc),
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
        "overall": _grade_view(raw),
        "threats": threats,
        "threat_titles": {t["id"]: t["title"] for t in threats},
        "threat_states": threat_states,
        "severity_chart": severity_chart,
        "threat_chart": threat_chart,
        "matrix": matrix,
        "totals": totals,
        "result_count": len(raw),
        "open_total": totals["fail"] + totals["error"] + totals["warn"],
        "statuses": STATUSES,
        "severities": SEVERITIES,
        "status_words": _STATUS_WORDS,
        "threat_words": _THREAT_WORDS,
        "outcome_words": charts.OUTCOME_WORDS,
        "errors": totals["error"],
        "rules": {"severity": SEVERITY_POINTS, "exposure": EXPOSURE, "ease": EASE, "max": MAX_PRIORITY,
                  "penalty": GRADE_PENALTY, "warn_share": WARN_SHARE},
    }


def _place(f: dict) -> dict:
    loc = f.get("location")
    return {**f, "where": (f"{loc['file']}:{loc['line']}" if loc.get("line") else loc["file"]) if loc else None}


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
