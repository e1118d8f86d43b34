"""SARIF 2.1.0 report, for code-scanning dashboards (GitHub code scanning, IDE viewers).

Mapping, drawn from the run document:
- one rule per check that ran (`tool.driver.rules`), with the threats as a taxonomy;
- one result per `fail` or `warn` finding (passes and skips are not results);
- `error` findings, and input problems (ids `input.<kind>`, which are not rules), become
  `invocations[0].toolExecutionNotifications`; any error makes `executionSuccessful` false.

Levels: a failure at critical or high severity is `error`, at medium or low `warning`; every
`warn` finding is `warning`; anything at info severity is `note`.

`security-severity` (the CVSS-like score GitHub ranks alerts by, a string): critical 9.5,
high 8.0, medium 5.5, low 3.0. Info rules carry none, so GitHub files them by
`problem.severity` ("recommendation") instead of as a security alert of score 0.

Compliance over time:
- a waived finding is still a result, with a `suppressions` entry (kind `external`, status
  `accepted`, the waiver's reason, owner and expiry as justification): code scanning shows it as
  dismissed instead of open;
- with a baseline (`--baseline`, or `diff`), each result carries `baselineState` (new, unchanged,
  updated), and the baseline's results that are gone come back as results with `baselineState`
  `absent`, `kind` `pass` and `level` `none` (they are no longer problems);
- findings about the waivers themselves (expired, stale, never expiring) are configuration
  problems, not results: `invocations[0].toolConfigurationNotifications`.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import PureWindowsPath
from urllib.parse import quote

from ..engine import RunResult
from .document import DISPLAY_LIMITS, build_document, for_display, visible

SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
SRCROOT = "%SRCROOT%"
TARGETROOT = "TARGETROOT"  # base of a path read from a remote host (host:/path)
FINGERPRINT_KEY = "mastoaudit/v1"
THREAT_TAXONOMY = "mastoaudit-threats"
FALLBACK_URI = "https://mastoaudit.invalid/"

SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0"}
PROBLEM_SEVERITY = {"critical": "error", "high": "error", "medium": "warning", "low": "warning",
                    "info": "recommendation"}
_REMOTE = re.compile(r"^(?P<host>[^/\\:]{2,}|\[[0-9A-Fa-f:.]+\]):(?P<path>/.*)$")
_WINDOWS_ABS = re.compile(r"^[A-Za-z]:[\\/]")
_PEER = re.compile(r"^peer (?P<domain>[A-Za-z0-9.-]+(?::\d{1,5})?)$")  # checks/federation.py's peer locations
_URI = re.compile(r"^(?:https?|postgresql|postgres)://[^\s]+$")
_ESCAPED = re.compile(r"\\(?:x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8})")


def level(severity: str, status: str) -> str:
    if severity == "info":
        return "note"
    if status == "fail" and severity in ("critical", "high"):
        return "error"
    return "warning"


def information_uri() -> str:
    """The project's home page from the installed metadata, when it names one."""
    try:
        urls = metadata.metadata("mastoaudit").get_all("Project-URL") or []
    except metadata.PackageNotFoundError:
        urls = []
    for entry in urls:
        label, _, url = entry.partition(",")
        if label.strip().lower() in ("homepage", "home", "source", "repository") and url.strip():
            return url.strip()
    return FALLBACK_URI


def _rule_name(check_id: str) -> str:
    # SARIF wants an identifier-like name: host.sshd-root-login -> HostSshdRootLogin
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", check_id) if part)


def _help(check: dict) -> dict:
    rem = check["remediation"]
    text, markdown = [rem["text"]], [rem["text"]]
    if rem["snippet"]:
        text.append(rem["snippet"])
        fence = "~~~~" if "```" in rem["snippet"] else "```"
        markdown.append(f"{fence}\n{rem['snippet']}\n{fence}")
    if check["references"]:
        text.append("References: " + " ".join(check["references"]))
        markdown.append("References:\n\n" + "\n".join(f"- <{r}>" if r.startswith(("https://", "http://"))
                                                       else f"- {r}" for r in check["references"]))
    return {"text": "\n\n".join(text), "markdown": "\n\n".join(markdown)}


def _rule(check: dict, taxa: dict[str, int]) -> dict:
    props: dict = {
        "tags": list(dict.fromkeys(["security", check["component"], *check["tags"]])),
        "problem.severity": PROBLEM_SEVERITY[check["severity"]],
        "precision": "high",
        "mastoaudit/severity": check["severity"],
        "mastoaudit/component": check["component"],
        "mastoaudit/threats": check["threats"],
    }
    if check["severity"] in SECURITY_SEVERITY:
        props["security-severity"] = SECURITY_SEVERITY[check["severity"]]
    rule: dict = {
        "id": check["id"],
        "name": _rule_name(check["id"]),
        "shortDescription": {"text": check["title"]},
        "fullDescription": {"text": check["rationale"] or check["title"]},
        "help": _help(check),
        "defaultConfiguration": {"level": level(check["severity"], "fail")},
        "properties": props,
    }
    web = [r for r in check["references"] if r.startswith(("https://", "http://"))]
    if web:
        rule["helpUri"] = web[0]
    relationships = [{"target": {"id": t, "index": taxa[t], "toolComponent": {"name": THREAT_TAXONOMY, "index": 0}},
                      "kinds": ["relevant"]} for t in check["threats"] if t in taxa]
    if relationships:
        rule["relationships"] = relationships
    return rule


def artifact_location(file: str) -> dict:
    """A finding's file as a SARIF artifactLocation: relative paths against %SRCROOT%; what is not
    a file keeps an absolute URI (a peer of the federation sweep: https://DOMAIN/; a database:
    its postgresql:// URI, which never holds a password)."""
    peer = _PEER.match(file)
    if peer:
        return {"uri": f"https://{quote(peer['domain'], safe=':[]')}/"}
    if _URI.match(file):
        return {"uri": quote(file, safe=":/@[]#?=&")}
    remote = _REMOTE.match(file)
    if remote and not _WINDOWS_ABS.match(file):
        return {"uri": quote(remote["path"].lstrip("/"), safe="/"), "uriBaseId": TARGETROOT}
    if _WINDOWS_ABS.match(file):
        return {"uri": PureWindowsPath(file).as_uri()}
    # Backslashes are a Windows path's separators, unless the name holds textsafe's escapes of
    # bytes that were not UTF-8 (\xff): those stay part of the name (percent-encoded).
    path = file if _ESCAPED.search(file) else file.replace("\\", "/")
    if path.startswith("/"):
        return {"uri": "file://" + quote(path, safe="/")}
    while path.startswith("./"):
        path = path[2:]
    return {"uri": quote(path, safe="/"), "uriBaseId": SRCROOT}


def _locations(finding: dict) -> list[dict]:
    logical = [{"name": finding["target"], "kind": "resource"}]
    loc = finding["location"]
    if not loc:
        return [{"logicalLocations": logical}]
    physical: dict = {"artifactLocation": artifact_location(loc["file"])}
    if loc["line"]:
        physical["region"] = {"startLine": loc["line"]}
    return [{"physicalLocation": physical, "logicalLocations": logical}]


def _message(finding: dict) -> str:
    text = finding["message"] or finding["title"]
    evidence = [f"{label}: {finding[key]}" for label, key in (("subject", "subject"), ("observed", "observed"),
                                                                 ("expected", "expected")) if finding[key] is not None]
    return f"{text} ({'; '.join(evidence)})" if evidence else text


def _result(finding: dict, index: int) -> dict:
    result = _plain_result(finding, index)
    baseline = finding.get("baseline")
    if baseline:
        result["baselineState"] = baseline["state"]
    waiver = finding.get("waiver")
    if waiver:
        until = f"expires {waiver['expires']}" if waiver["expires"] else "no expiry date"
        result["suppressions"] = [{
            "kind": "external",
            "status": "accepted",
            "justification": f"{waiver['reason']} (owner {waiver['owner']}, {until}; {waiver['source']})",
            "properties": {"mastoaudit/waiver": waiver},
        }]
    return result


def _absent(finding: dict, index: int) -> dict:
    """A result of the baseline that is gone: reported as absent, no longer a problem."""
    return {**_plain_result(finding, index), "kind": "pass", "level": "none", "baselineState": "absent"}


def _config_notification(finding: dict) -> dict:
    return {
        "level": "error" if finding["status"] == "fail" else "warning",
        "message": {"text": f"{finding['check_id']}: {_message(finding)}"},
        "descriptor": {"id": finding["check_id"]},
        "locations": _locations(finding),
    }


def _plain_result(finding: dict, index: int) -> dict:
    return {
        "ruleId": finding["check_id"],
        "ruleIndex": index,
        "level": level(finding["severity"], finding["status"]),
        "message": {"text": _message(finding)},
        "locations": _locations(finding),
        "partialFingerprints": {FINGERPRINT_KEY: finding["fingerprint"]},
        "properties": {
            "mastoaudit/status": finding["status"],
            "mastoaudit/severity": finding["severity"],
            "mastoaudit/target": finding["target"],
            "mastoaudit/subject": finding["subject"],
            "mastoaudit/observed": finding["observed"],
            "mastoaudit/expected": finding["expected"],
        },
    }


def _notification(finding: dict, rules: dict[str, int]) -> dict:
    note: dict = {
        "level": "error" if finding["status"] == "error" else "warning",
        "message": {"text": f"{finding['check_id']} [{finding['target']}]: {_message(finding)}"},
        "descriptor": {"id": "input-problem" if finding["check_id"] not in rules else "check-error"},
        "locations": _locations(finding),
    }
    if finding["check_id"] in rules:
        note["associatedRule"] = {"id": finding["check_id"], "index": rules[finding["check_id"]]}
    return note


def _utc(text: str, plus_seconds: float = 0.0) -> str | None:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # the engine records UTC
    when = when.astimezone(UTC) + timedelta(seconds=plus_seconds)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_sarif(doc: dict) -> dict:
    """The log of a document. Each finding is made safe (`visible`) on its own, and kept only while
    its rule has room: code scanning keeps a bounded number of results per rule, and a run of
    6,000 server blocks does not copy the whole document; what is left out is counted."""
    findings = doc["findings"]
    doc = visible({key: value for key, value in doc.items() if key != "findings"})
    threats = doc["threats"]
    taxa = {t["id"]: i for i, t in enumerate(threats)}
    rules = {c["id"]: i for i, c in enumerate(doc["checks"])}
    results, notifications, configuration = [], [], []
    per_rule: dict[str, int] = {}
    omitted: dict[str, int] = {}
    for f in findings:
        if f["check_id"].startswith("waiver."):
            configuration.append(_config_notification(visible(for_display(f))))
        elif f["status"] not in ("error", "warn", "fail"):
            continue
        elif f["status"] == "error" or f["check_id"] not in rules:
            notifications.append(_notification(visible(for_display(f)), rules))
        else:
            per_rule[f["check_id"]] = per_rule.get(f["check_id"], 0) + 1
            if per_rule[f["check_id"]] > DISPLAY_LIMITS["sarif"]:
                omitted[f["check_id"]] = omitted.get(f["check_id"], 0) + 1
                continue
            results.append(_result(visible(for_display(f)), rules[f["check_id"]]))
    run = doc["run"]
    baseline = run.get("baseline")
    for f in baseline["absent"] if baseline else ():
        if f["check_id"] in rules and f["status"] in ("fail", "warn"):
            results.append(_absent(f, rules[f["check_id"]]))
    invocation: dict = {"executionSuccessful": bool(run["complete"]), "toolExecutionNotifications": notifications}
    if configuration:
        invocation["toolConfigurationNotifications"] = configuration
    start = _utc(run["started_at"])
    if start:
        invocation["startTimeUtc"] = start
        invocation["endTimeUtc"] = _utc(run["started_at"], run["duration_s"])
    version = doc["tool"]["version"]
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": doc["tool"]["name"],
                "version": version,
                "semanticVersion": version,
                "informationUri": information_uri(),
                "rules": [_rule(c, taxa) for c in doc["checks"]],
            }},
            "taxonomies": [{
                "name": THREAT_TAXONOMY,
                "shortDescription": {"text": "mastoaudit threat catalogue"},
                "taxa": [{"id": t["id"], "name": t["title"], "shortDescription": {"text": t["title"]},
                          "fullDescription": {"text": t["description"] or t["title"]}} for t in threats],
            }],
            "invocations": [invocation],
            "results": results,
            "properties": {
                "mastoaudit/command": run["command"],
                "mastoaudit/complete": run["complete"],
                "mastoaudit/targets": [t["name"] for t in run["targets"]],
                "mastoaudit/summary": doc["summary"],
                "mastoaudit/omitted-results": omitted,
            },
        }],
    }


def render(result: RunResult) -> str:
    return render_document(build_document(result))


def render_document(doc: dict) -> str:
    # Control and bidi characters from configs become visible escapes, as in every human-facing format.
    return json.dumps(build_sarif(doc), indent=2) + "\n"
