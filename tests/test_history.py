"""History and trends: `--history DIR` keeps each run per scope with a retention count, the HTML
report draws the trend (checked here in the page's markup and in headless Chromium, where the
screenshot is kept for a person to look at), and scheduled-run files ship for systemd, cron,
GitHub Actions and GitLab CI."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from mastoaudit.cli import main

from .conftest import DEMO, ROOT

CONTRIB = ROOT / "contrib" / "scheduled"
SSHD = ["--select", "host.sshd-*"]


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _runs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*/*.json") if p.name != "index.json")


@pytest.fixture
def tree(tmp_path) -> Path:
    target = tmp_path / "infra"
    shutil.copytree(DEMO / "weak" / "etc" / "ssh", target / "etc" / "ssh")
    return target


def test_runs_are_kept_per_scope_with_retention(capsys, tmp_path, tree):
    history = tmp_path / "history"
    for _ in range(4):
        run_cli(capsys, "lint", str(tree), *SSHD, "--history", str(history), "--history-keep", "3",
                "-f", "json", "-o", str(tmp_path / "r.json"), "--fail-on", "never")
    [scope_dir] = list(history.iterdir())
    assert len(_runs(history)) == 3  # the oldest went
    index = json.loads((scope_dir / "index.json").read_text())
    assert [r["file"] for r in index["runs"]] == [p.name for p in _runs(history)]
    assert index["scope"]["targets"] == [str(tree)] and index["scope"]["selection"]["select"] == ["host.sshd-*"]
    # Another selection is another scope: another trend.
    run_cli(capsys, "lint", str(tree), "--select", "host.sshd-root-login", "--history", str(history),
            "-f", "json", "-o", str(tmp_path / "r.json"), "--fail-on", "never")
    assert len(list(history.iterdir())) == 2
    doc = json.loads((tmp_path / "r.json").read_text())
    assert len(doc["history"]["runs"]) == 1 and doc["history"]["since_previous"] is None


def test_what_changed_since_the_previous_run(capsys, tmp_path, tree):
    history, out = tmp_path / "history", tmp_path / "r.json"
    run_cli(capsys, "lint", str(tree), *SSHD, "--history", str(history), "-f", "json", "-o", str(out))
    sshd = tree / "etc" / "ssh" / "sshd_config"
    sshd.write_text(sshd.read_text().replace("PermitRootLogin yes", "PermitRootLogin no")
                    .replace("PasswordAuthentication yes", "PasswordAuthentication maybe"))
    run_cli(capsys, "lint", str(tree), *SSHD, "--history", str(history), "-f", "json", "-o", str(out))
    doc = json.loads(out.read_text())
    since = doc["history"]["since_previous"]
    assert [f["check_id"] for f in since["resolved"]] == ["host.sshd-root-login"]
    [changed] = since["changed"]
    assert next(f for f in doc["findings"] if f["fingerprint"] == changed)["check_id"] == "host.sshd-password-auth"
    assert [r["failed_by_severity"]["high"] for r in doc["history"]["runs"]] == [2, 0]
    assert doc["history"]["runs"][-1]["current"] and "history" not in json.loads(_runs(history)[-1].read_text())


def test_a_lost_index_is_rebuilt(capsys, tmp_path, tree):
    history = tmp_path / "history"
    for _ in range(2):
        run_cli(capsys, "lint", str(tree), *SSHD, "--history", str(history), "-f", "json",
                "-o", str(tmp_path / "r.json"))
    [scope_dir] = list(history.iterdir())
    (scope_dir / "index.json").write_text("{ damaged")
    run_cli(capsys, "lint", str(tree), *SSHD, "--history", str(history), "-f", "json", "-o", str(tmp_path / "r.json"))
    assert len(json.loads((tmp_path / "r.json").read_text())["history"]["runs"]) == 3
    assert len(json.loads((scope_dir / "index.json").read_text())["runs"]) == 3


def test_history_must_be_a_folder(capsys, tmp_path, tree):
    not_dir = tmp_path / "file"
    not_dir.write_text("")
    code, _, err = run_cli(capsys, "lint", str(tree), "--history", str(not_dir))
    assert code == 2 and "not a directory" in err
    code, _, err = run_cli(capsys, "lint", str(tree), "--history", str(tmp_path / "h"), "--history-keep", "0")
    assert code == 2 and "--history-keep" in err


# ---------------------------------------------------------------------------------- the trend


def make_history(capsys, tmp_path: Path, tree: Path, states: list[str]) -> Path:
    """One run per state of sshd_config; returns the HTML report of the last run."""
    history, out = tmp_path / "history", tmp_path / "report"
    sshd = tree / "etc" / "ssh" / "sshd_config"
    for text in states:
        sshd.write_text(text)
        run_cli(capsys, "lint", str(tree), *SSHD, "--history", str(history), "-f", "html", "-f", "json",
                "-o", str(out), "--fail-on", "never")
    return out / "mastoaudit-lint.html"


STATES = [
    "PermitRootLogin yes\nPasswordAuthentication yes\nPermitEmptyPasswords yes\n",
    "PermitRootLogin yes\nPasswordAuthentication yes\nPermitEmptyPasswords no\n",
    "PermitRootLogin yes\nPasswordAuthentication no\nPermitEmptyPasswords yes\n",
    "PermitRootLogin no\nPasswordAuthentication no\nPermitEmptyPasswords yes\n",
    "PermitRootLogin no\nPasswordAuthentication no\nPermitEmptyPasswords no\n",
    "PermitRootLogin yes\nPasswordAuthentication no\nPermitEmptyPasswords no\n",
]


def test_the_trend_chart_in_the_page(capsys, tmp_path, tree):
    page = make_history(capsys, tmp_path, tree, STATES).read_text()
    start = page.index('<svg class="trend-chart"')
    chart = page[start:page.index("</svg>", start)]
    # high (root login, password auth) and critical (empty passwords) failed at some point: two
    # series of six points each, with their own marker shapes; medium/low/info never did.
    assert re.findall(r'data-series="(\w+)"', chart) == ["critical", "high"]
    assert chart.count('class="trend-point trend-square"') == 6
    assert chart.count('class="trend-point trend-triangle"') == 6
    assert 'data-runs="6"' in chart and "<title>" in chart and "<desc" in chart
    highs = re.findall(r'trend-triangle" data-run="(\d)" data-value="(\d)"', chart)
    assert [int(v) for _, v in highs] == [2, 2, 1, 0, 0, 1]
    assert "No medium, low, info failures" in page
    assert 'id="since-previous"' in page and "1 new" in page


@pytest.mark.browser
def test_the_trend_in_chromium(capsys, tmp_path, tree):
    from .reporting.test_html_browser import ARGS, CHROMIUM, WATCH_CSP

    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (Debian package chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    report = make_history(capsys, tmp_path, tree, STATES)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=30_000)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        problems: list[str] = []
        page.on("console", lambda msg: problems.append(f"{msg.type}: {msg.text}")
                if msg.type in ("error", "warning") else None)
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        page.add_init_script(WATCH_CSP)
        page.goto(report.as_uri(), wait_until="load")
        assert page.locator(".trend-chart").is_visible()
        for series in ("critical", "high"):
            assert page.locator(f'g.trend-series[data-series="{series}"] .trend-point').count() == len(STATES)
        box = page.locator(".trend-chart").bounding_box()
        assert box and box["width"] > 500 and box["height"] > 150
        # The waived filter works on the page like any other status (no waived findings here).
        assert page.locator('#filters input[name=status][value=waived]').count() == 1
        shot = ROOT / "reports" / "screenshots"
        shot.mkdir(parents=True, exist_ok=True)
        page.locator("#trend").screenshot(path=str(shot / "trend.png"))
        page.emulate_media(media="print", color_scheme="light")
        page.locator("#trend").screenshot(path=str(shot / "trend-print.png"))
        assert page.evaluate("window.__cspViolations") == []
        assert not problems, problems
        browser.close()


# ------------------------------------------------------------------------------ scheduled runs


SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
def test_the_systemd_units_verify_and_are_sandboxed(tmp_path):
    copies = []
    for name in ("mastoaudit.service", "mastoaudit.timer"):
        shutil.copy(CONTRIB / name, tmp_path / name)
        copies.append(str(tmp_path / name))
    done = subprocess.run([SYSTEMD_ANALYZE, "verify", "--man=no", "--generators=no", *copies],
                          capture_output=True, text=True, timeout=60)
    complaints = [line for line in (done.stdout + done.stderr).splitlines()
                  if not re.search(r"Command /usr/local/bin/mastoaudit is not executable", line)]
    assert complaints == []
    security = subprocess.run([SYSTEMD_ANALYZE, "security", "--offline=yes", "--no-pager", copies[0]],
                              capture_output=True, text=True, timeout=60)
    level = float(re.search(r"Overall exposure level for \S+: (\d+\.\d+)", security.stdout)[1])
    assert level < 2.0, security.stdout[-400:]
    unit = (CONTRIB / "mastoaudit.service").read_text()
    assert "--fail-on" in unit and "--history" in unit and "Type=oneshot" in unit


@pytest.mark.parametrize(("rc", "says"), [(0, None), (1, "exited 1"), (3, "exited 3")])
def test_the_cron_entry_is_quiet_unless_the_run_fails(tmp_path, rc, says):
    lines = [line for line in (CONTRIB / "mastoaudit.cron").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    env = dict(line.split("=", 1) for line in lines if re.match(r"^[A-Z]+=", line))
    [job] = [line for line in lines if not re.match(r"^[A-Z]+=", line)]
    fields = job.split(None, 6)
    assert fields[:5] == ["17", "4", "*", "*", "*"] and fields[5] == "mastoaudit" and "%" not in fields[6]
    command = fields[6].replace("/var/lib/mastoaudit", str(tmp_path))
    assert env["PATH"].startswith("/usr/local/bin")
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "mastoaudit").write_text(f"#!/bin/sh\necho \"ran: $*\"\nexit {rc}\n")
    os.chmod(stub / "mastoaudit", 0o755)
    done = subprocess.run([env["SHELL"], "-c", command], capture_output=True, text=True, timeout=30,
                          env={"PATH": f"{stub}:{env['PATH']}"})
    if says is None:
        assert done.stdout == "" and done.returncode == 0
    else:
        assert says in done.stdout and "ran: audit --inventory /etc/mastoaudit/inventory.yaml" in done.stdout
    assert shlex.split(command)[0] == "cd"


@pytest.mark.parametrize(("name", "schema"), [("github-actions.yml", "vendor.github-workflows"),
                                              ("gitlab-ci.yml", "vendor.gitlab-ci")])
def test_the_ci_schedules_validate_against_their_schemas(name, schema):
    checker = shutil.which("check-jsonschema")
    if checker is None:
        pytest.skip("check-jsonschema (the test extra) is not installed")
    done = subprocess.run([checker, "--builtin-schema", schema, str(CONTRIB / name)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    doc = yaml.safe_load((CONTRIB / name).read_text())
    text = (CONTRIB / name).read_text()
    assert "--fail-on" in text and "--history" in text
    if name.startswith("github"):
        assert doc[True]["schedule"][0]["cron"] == "17 4 * * *"  # YAML 1.1 reads `on` as true
        keep = next(s for s in doc["jobs"]["mastoaudit"]["steps"] if s.get("name") == "Keep the reports")
        assert keep["if"] == "always()"
    else:
        job = doc["mastoaudit-scheduled"]
        assert job["artifacts"]["when"] == "always" and job["rules"][0]["if"].endswith('"schedule"')


def test_the_readme_examples_parse():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", readme, re.S)
    assert any("completionMode: Indexed" in b for b in blocks)
    assert any("matrix" in b and "--shard" in b for b in blocks)
    for block in blocks:
        list(yaml.safe_load_all(block))
