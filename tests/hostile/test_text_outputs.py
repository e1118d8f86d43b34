"""What the admin reads cannot be rewritten by the input (issue 7, items 11, 13, 14).

File names that are not UTF-8, and file names and values with ESC, CSI, BEL, CR and bidi
overrides: every format is written, escaped, and the exit code is what the findings say; the
terminal report, the fix plan, diff, `checks` and stderr print no raw control character. One
sanitizer does it (mastoaudit.textsafe): the copies there were are gone.
"""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mastoaudit.textsafe import safe_text, shown_path

from .conftest import FORMATS, HOSTILE, RAW_CONTROL, ROOT, no_traceback, run_bounded

EVIL = "\x1b[2J\x1b[31mFAKE PASS\x07\r\u202eevil\u2066"


def _hostile_tree(root: Path) -> Path:
    sites = os.fsencode(root / "etc" / "nginx" / "sites-enabled")
    os.makedirs(sites)
    for name in (b"\xff\xfe-not-utf8", os.fsencode("ctl" + EVIL)):
        with open(os.path.join(sites, name), "wb") as fh:
            fh.write(b"server { listen 80; server_name a.example; autoindex on; }\n")
    env = root / "live" / ".env.production"
    env.parent.mkdir(parents=True)
    env.write_text(f"LOCAL_DOMAIN=a.example\nALLOWED_PRIVATE_ADDRESSES={EVIL}\nTRUSTED_PROXY_IP={EVIL}\n")
    broken = root / os.fsdecode(b"etc/redis\xff")
    broken.mkdir(parents=True)
    (broken / "redis.conf").write_text("requirepass\n")  # an input error: the run is incomplete (exit 3)
    return root


@pytest.fixture(scope="module")
def evil_tree(tmp_path_factory):
    return _hostile_tree(tmp_path_factory.mktemp("evil"))


def test_item_11_odd_file_names_in_every_format_and_the_exit_code_unaffected(evil_tree, tmp_path):
    out = tmp_path / "reports"
    args = [a for f in (*FORMATS, "terminal") for a in ("-f", f)]
    proc = run_bounded("lint", str(evil_tree), "-o", f"{out}/", *args, timeout=120)
    no_traceback(proc)
    assert proc.returncode == 3  # the redis input error, nothing else
    written = sorted(p.name for p in out.iterdir())
    assert written == ["mastoaudit-lint.html", "mastoaudit-lint.json", "mastoaudit-lint.sarif", "mastoaudit-lint.xml"]
    assert "\\xff\\xfe-not-utf8" in proc.stdout and not RAW_CONTROL.search(proc.stdout)  # the terminal report
    for report in out.iterdir():
        text = report.read_text(encoding="utf-8")  # valid UTF-8, whatever the names were
        shown = "\\xff\\xfe-not-utf8"
        forms = {".json": json.dumps(shown)[1:-1], ".sarif": "%5Cxff%5Cxfe-not-utf8"}  # JSON; a SARIF uri
        assert forms.get(report.suffix, shown) in text, report.name
        assert "\x1b" not in text and "\u202e" not in text and "\r" not in text, report.name
    doc = json.loads((out / "mastoaudit-lint.json").read_text())
    assert any(f["check_id"] == "nginx.autoindex" and "\\xff\\xfe" in f["location"]["file"] for f in doc["findings"])


def test_item_13_terminal_fix_plan_and_stderr_print_no_control_characters(evil_tree):
    for argv in (["lint", str(evil_tree), "-f", "terminal", "--show-passed"], ["fix", "--plan", str(evil_tree)],
                 ["lint", str(evil_tree) + EVIL]):
        proc = run_bounded(*argv, timeout=120)
        no_traceback(proc)
        assert not RAW_CONTROL.search(proc.stdout), argv
        assert not RAW_CONTROL.search(proc.stderr), argv
        assert "\\x1b" in proc.stdout + proc.stderr  # shown, escaped


def test_item_13_diff_and_checks_output_are_escaped(tmp_path):
    report = json.loads((ROOT / "tests" / "fixtures" / "reports" / "report.json").read_text()) \
        if (ROOT / "tests" / "fixtures" / "reports" / "report.json").exists() else None
    if report is None:
        proc = run_bounded("lint", str(ROOT / "demo" / "weak"), "-f", "json", "-o", "-", timeout=120)
        report = json.loads(proc.stdout)
    before, after = tmp_path / "before.json", tmp_path / "after.json"
    before.write_text(json.dumps(report))
    evil = dict(report["findings"][0], check_id="x" + EVIL, status="fail", fingerprint="e" * 24, message=EVIL)
    after.write_text(json.dumps({**report, "findings": [*report["findings"], evil]}))
    proc = run_bounded("diff", str(before), str(after), timeout=60)
    no_traceback(proc)
    assert not RAW_CONTROL.search(proc.stdout) and "\\x1b[2J" in proc.stdout
    plugin = tmp_path / "plugins"
    plugin.mkdir()
    (plugin / "evil.py").write_text(
        "from mastoaudit.checkdef import Remediation, check\n"
        f"@check(id='evil.title', title={('Evil ' + EVIL)!r}, component='host', severity='low',\n"
        "       threats=['T-HOST-COMPROMISE'], needs=['nginx'], rationale='r', remediation=Remediation('r'))\n"
        "def evil(facts):\n    return iter(())\n")
    for sub in (["list"], ["show", "evil.title"]):
        proc = run_bounded("checks", *sub, "--checks-dir", str(plugin), timeout=60)
        no_traceback(proc)
        assert not RAW_CONTROL.search(proc.stdout), sub


def test_item_14_fix_plan_on_an_incomplete_run_says_so_and_exits_3(evil_tree, tmp_path):
    proc = run_bounded("fix", "--plan", str(evil_tree), timeout=120)
    no_traceback(proc)
    assert proc.returncode == 3 and "Incomplete run" in proc.stdout
    only_errors = tmp_path / "tree"
    (only_errors / "etc" / "redis").mkdir(parents=True)
    (only_errors / "etc" / "redis" / "redis.conf").write_text("requirepass\n")
    proc = run_bounded("fix", "--plan", str(only_errors), timeout=120)
    assert proc.returncode == 3 and "could not be checked" in proc.stdout


def test_fix_plan_reads_a_hostile_report_without_a_traceback(tmp_path):
    report = tmp_path / "r.json"
    base = {"fingerprint": "f" * 24, "severity": "low", "target": EVIL}
    report.write_text(json.dumps({"schema_version": "1.0", "run": {"complete": False}, "checks": [None, {"id": 3}],
                                  "findings": [{**base, "status": "fail", "check_id": "a", "location": "x"},
                                               {**base, "status": "warn", "message": EVIL, "check_id": ["x"],
                                                "location": {"file": EVIL, "line": "NaN"}}]}))
    proc = run_bounded("fix", "--plan", "--report", str(report), timeout=60)
    no_traceback(proc)
    assert proc.returncode == 3 and not RAW_CONTROL.search(proc.stdout) and "\\x1b[2J" in proc.stdout
    for broken in ([None, 3, {"status": "fail"}], "[" * 100_000):
        report.write_text(broken if isinstance(broken, str) else json.dumps({"schema_version": "1.0",
                                                                            "findings": broken}))
        proc = run_bounded("fix", "--plan", "--report", str(report), timeout=60)
        no_traceback(proc)
        assert proc.returncode == 2 and "r.json" in proc.stderr


@HOSTILE
@given(st.text(max_size=60))
def test_safe_text_leaves_nothing_raw_and_keeps_the_rest(text):
    shown = safe_text(text)
    assert not RAW_CONTROL.search(shown) and "\n" not in shown
    assert safe_text(shown) == shown  # escaping is done once
    shown.encode("utf-8")  # no lone surrogate left: every encoder takes it
    if not RAW_CONTROL.search(text) and text.isprintable():
        assert shown == text


@HOSTILE
@given(st.binary(min_size=1, max_size=40))
def test_any_file_name_is_shown_as_encodable_text(name):
    shown = shown_path(name)
    shown.encode("utf-8")
    assert not RAW_CONTROL.search(shown)


def test_one_sanitizer():
    """No module escapes text its own way (repr(...)[1:-1], str.isprintable): they call textsafe."""
    copies = []
    for path in (ROOT / "mastoaudit").rglob("*.py"):
        if path.name == "textsafe.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr == "isprintable":
                copies.append(f"{path.name}:{node.lineno}")
            if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Call) \
                    and isinstance(node.value.func, ast.Name) and node.value.func.id == "repr" \
                    and isinstance(node.slice, ast.Slice) and ast.unparse(node.slice) == "1:-1":
                copies.append(f"{path.name}:{node.lineno}")
    assert not copies, copies
