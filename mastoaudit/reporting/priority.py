"""What to fix first, and grades: both computed from the run document alone, by rules a reader
can check by hand (the report prints them).

Priority of a failed finding = severity points × exposure × ease of exploit (at most 90):

- severity points: the lower end of the CVSS band of the severity (critical 10, high 7, medium 4,
  low 2, info 1);
- exposure (3, 2, 1): **internet** when a network probe saw it from outside (the check judges what
  the network shows and the finding is at a network address), or it is the configuration of what
  every visitor and peer talks to (the front end: nginx, TLS, the app, streaming, media, mail DNS,
  federation); **network** when it is a service's listening address, authentication or transport
  (the check's tags say so); else **host**: it needs a foothold on the host or its files first;
- ease of exploit (3, 2, 1), from the threats the check cites (the easiest wins): **direct** when
  anyone who reaches it can use it without credentials (an open database, a public advisory, a
  dashboard, spoofable mail); **conditional** when it needs a position on the path, a victim's
  action or an account; **after a breach** when it only limits the damage of another compromise
  (sandboxing, privileges, information that helps aim an attack).

A check that fails at many places is one action: it takes the priority of its worst place.

Grade (the Mozilla Observatory's manner): start at 100 and subtract, for each check that fails
(once, however many places, at its worst severity), critical 100, high 25, medium 10, low 5,
info 1; a check that only warns subtracts a fifth of that (rounded down, at least 1). The score maps to A+
... F in the Observatory's bands (mastoaudit/grade.py). A grade whose checks could not all run is
marked incomplete; with no check judged at all there is no grade.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..grade import letter

SEVERITY_POINTS = {"critical": 10, "high": 7, "medium": 4, "low": 2, "info": 1}
EXPOSURE = {
    "internet": (3, "reachable from the internet"),
    "network": (2, "reachable over the network"),
    "host": (1, "needs access to the host"),
}
EASE = {
    "direct": (3, "anyone who reaches it, no credentials"),
    "conditional": (2, "needs a position, an account or a victim"),
    "chain": (1, "matters after another breach"),
}
MAX_PRIORITY = max(SEVERITY_POINTS.values()) * EXPOSURE["internet"][0] * EASE["direct"][0]

# What every visitor and peer talks to: configuration of these is exposed as soon as it is deployed.
PUBLIC_COMPONENTS = frozenset({"nginx", "tls", "app", "streaming", "s3", "mail-dns", "federation"})
# Check tags that mean "a service as the network sees it": where it listens, who may log in, how it talks.
NETWORK_TAGS = frozenset({"network", "ports", "ssh", "auth", "credentials", "tls", "admin", "api"})
# Locations of what a probe saw: a URL, host:port, or a DNS name and record type.
_NETWORK_PLACE = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|[^/\s:]+:\d+$|\S+ IN [A-Z]+$)", re.IGNORECASE)

# Ease of exploit per threat of data/threats.yaml (a threat not listed counts as conditional).
THREAT_EASE = {
    # Anyone who reaches it, without credentials, with known techniques.
    "T-DB-EXPOSED": "direct", "T-DB-WEAK-CREDENTIALS": "direct", "T-CACHE-EXPOSED": "direct",
    "T-SEARCH-EXPOSED": "direct", "T-SIDEKIQ-QUEUE": "direct", "T-ADMIN-ACCESS": "direct",
    "T-MEDIA-ACCESS": "direct", "T-MAIL-SPOOFING": "direct", "T-APP-VULNERABLE-VERSION": "direct",
    "T-SECRETS-EXPOSED": "direct", "T-FED-FORGED-ACTIVITY": "direct", "T-FED-PROTOCOL-EXPLOIT": "direct",
    "T-SIGNUP-ABUSE": "direct", "T-SPAM-WAVE": "direct", "T-PROXY-DOS": "direct",
    # A position on the path, an account, a victim's click, or a peer's doing.
    "T-TRANSPORT-MITM": "conditional", "T-INTERNAL-CLEARTEXT": "conditional", "T-APP-XSS": "conditional",
    "T-MEDIA-XSS": "conditional", "T-SMTP-CREDENTIALS": "conditional", "T-STREAM-EAVESDROP": "conditional",
    "T-APP-AUTH": "conditional", "T-PROXY-MISCONFIG": "conditional", "T-SIDEKIQ-SECRETS": "conditional",
    "T-FED-DATA-LEAK": "conditional", "T-FED-MALICIOUS-INSTANCE": "conditional",
    "T-FED-COMPROMISED-PEER": "conditional", "T-FED-DOS": "conditional",
    "T-PEER-VULNERABLE-SOFTWARE": "conditional", "T-DEFEDERATION-IMPACT": "conditional",
    # Limits the damage once something else gave way.
    "T-HOST-COMPROMISE": "chain", "T-APP-UPLOAD-RCE": "chain", "T-DATA-AT-REST": "chain",
    "T-APP-INFO-LEAK": "chain", "T-MEDIA-MALWARE": "chain",
}
_EASE_ORDER = ["chain", "conditional", "direct"]

GRADE_PENALTY = {"critical": 100, "high": 25, "medium": 10, "low": 5, "info": 1}
WARN_SHARE = 5  # a warning costs a fifth of a failure


@dataclass(frozen=True)
class Priority:
    score: int
    severity: str
    exposure: str
    exposure_why: str
    ease: str
    ease_threats: tuple[str, ...]  # the threats that make it this easy

    @property
    def formula(self) -> str:
        """How the score adds up, in words and numbers."""
        return (f"{self.severity} ({SEVERITY_POINTS[self.severity]}) × {EXPOSURE[self.exposure][1]} "
                f"({EXPOSURE[self.exposure][0]}) × {EASE[self.ease][1]} ({EASE[self.ease][0]}) = {self.score}")

    def to_dict(self) -> dict:
        return {"score": self.score, "severity": self.severity, "exposure": self.exposure,
                "exposure_label": EXPOSURE[self.exposure][1], "exposure_why": self.exposure_why,
                "ease": self.ease, "ease_label": EASE[self.ease][1], "ease_threats": list(self.ease_threats),
                "formula": self.formula}


def seen_from_network(finding: dict, check: dict | None) -> bool:
    """A network probe judged it from outside: the check reads what the network shows and the
    finding is at a network address (not a file of the host)."""
    if not check or "network" not in check.get("modes", ()):
        return False
    loc = finding.get("location")
    if check.get("modes") == ["network"]:
        return True
    return bool(loc and _NETWORK_PLACE.match(loc.get("file") or ""))


def exposure(finding: dict, check: dict | None) -> tuple[str, str]:
    component = finding["component"]
    if seen_from_network(finding, check):
        return "internet", "seen from outside by the network probes"
    if component in PUBLIC_COMPONENTS:
        return "internet", f"configuration of what visitors and peers reach ({component})"
    tags = set(check.get("tags", ())) if check else set()
    if tags & NETWORK_TAGS:
        return "network", f"a {component} service as the network sees it ({', '.join(sorted(tags & NETWORK_TAGS))})"
    return "host", "takes access to the host or its files first"


def ease(finding: dict) -> tuple[str, tuple[str, ...]]:
    """The easiest level among the finding's threats, and the threats at that level."""
    levels = [(THREAT_EASE.get(t, "conditional"), t) for t in finding.get("threats") or []]
    if not levels:
        return "conditional", ()
    level = max(levels, key=lambda item: _EASE_ORDER.index(item[0]))[0]
    return level, tuple(t for lv, t in levels if lv == level)


def priority(finding: dict, check: dict | None) -> Priority:
    where, where_why = exposure(finding, check)
    how, how_threats = ease(finding)
    severity = finding["severity"]
    score = SEVERITY_POINTS[severity] * EXPOSURE[where][0] * EASE[how][0]
    return Priority(score, severity, where, where_why, how, how_threats)


def _severity_rank(name: str) -> int:
    return SEVERITY_POINTS[name]


def rank(findings: list[dict], checks: dict[str, dict]) -> list[dict]:
    """Actions: one per check failing somewhere (not waived), ranked by priority, then severity,
    then how many places it concerns, then check id. Each action has its check, how many places
    fail (`count`) and on which targets, its priority (a dict) and severity (those of its worst
    place), the place that gave it its priority (`lead`, the document's finding) and its rank.
    Reads the findings without copying them (a run of 6,000 server blocks)."""
    actions: dict[str, dict] = {}
    for f in findings:
        if f["status"] != "fail" or f.get("waiver"):
            continue
        p = priority(f, checks.get(f["check_id"]))
        action = actions.get(f["check_id"])
        if action is None:
            actions[f["check_id"]] = {
                "check_id": f["check_id"], "check": checks.get(f["check_id"]), "title": f["title"],
                "component": f["component"], "count": 1, "targets": {f["target"]: None}, "best": p, "lead": f,
                "severity": f["severity"]}
            continue
        action["count"] += 1
        action["targets"][f["target"]] = None
        if (p.score, _severity_rank(p.severity)) > (action["best"].score, _severity_rank(action["best"].severity)):
            action["best"], action["lead"] = p, f
        if _severity_rank(f["severity"]) > _severity_rank(action["severity"]):
            action["severity"] = f["severity"]
    ranked = sorted(actions.values(), key=lambda a: (-a["best"].score, -_severity_rank(a["severity"]),
                                                     -a["count"], a["check_id"]))
    for n, a in enumerate(ranked, 1):
        a["rank"] = n
        a["priority"] = a.pop("best").to_dict()
        a["targets"] = list(a["targets"])
    return ranked


# --- grades --------------------------------------------------------------------------------------

def _worst(severities: list[str]) -> str:
    return max(severities, key=lambda s: SEVERITY_POINTS[s])


def grade(findings: list[dict]) -> dict:
    """The grade of a set of findings (a component's, a threat's, the run's). Waived findings
    count as accepted (no deduction); errors make the grade incomplete."""
    failed: dict[str, list[str]] = {}
    warned: dict[str, list[str]] = {}
    judged = incomplete = 0
    for f in findings:
        status = f["status"]
        if status == "error":
            incomplete += 1
            continue
        if status == "skip":
            continue
        judged += 1
        if f.get("waiver"):
            continue
        if status == "fail":
            failed.setdefault(f["check_id"], []).append(f["severity"])
        elif status == "warn":
            warned.setdefault(f["check_id"], []).append(f["severity"])
    if not judged:
        return {"score": None, "letter": None, "incomplete": bool(incomplete), "deductions": [],
                "text": "not graded: no check applied" if not incomplete else "not graded: checks could not run"}
    deductions = []
    for check_id, severities in failed.items():
        worst = _worst(severities)
        deductions.append({"check_id": check_id, "status": "fail", "severity": worst,
                           "points": GRADE_PENALTY[worst]})
    for check_id, severities in warned.items():
        if check_id in failed:
            continue
        worst = _worst(severities)
        deductions.append({"check_id": check_id, "status": "warn", "severity": worst,
                           "points": max(1, GRADE_PENALTY[worst] // WARN_SHARE)})
    deductions.sort(key=lambda d: -d["points"])
    score = max(0, 100 - sum(d["points"] for d in deductions))
    mark = letter(score)
    text = f"{mark} ({score}/100)" + (", incomplete" if incomplete else "")
    return {"score": score, "letter": mark, "incomplete": bool(incomplete), "deductions": deductions, "text": text}


def grade_class(mark: str | None) -> str:
    """A CSS class for a letter: a, b, c, d, f (or none)."""
    return mark[0].lower() if mark else "none"
