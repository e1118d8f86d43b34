"""The HTML report of the live lab's audits (weak and hardened) in headless Chromium: the report a
new user gets from `mastoaudit audit`, checked for the same promises as the lint runs
(tests/browser.py): top findings first, every finding reachable in its group, filters, print,
phone, no console error, no CSP violation. Screenshots land in reports/screenshots/.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ..reporting.browser import (
    PHONE,
    assert_filters,
    assert_grouping,
    assert_phone_layout,
    assert_print_layout,
    assert_sections_in_order,
    assert_top_findings_first,
    assert_verdict,
    chromium,
    opened,
    screenshot,
)

pytestmark = [pytest.mark.lab, pytest.mark.browser]

REPO = Path(__file__).resolve().parents[2]


def _audit(profile: str, out: Path) -> tuple[Path, dict]:
    done = subprocess.run(
        [sys.executable, "-m", "mastoaudit", "audit", "-i", str(REPO / f"lab/run/inventory-{profile}.yaml"),
         "-q", "-f", "json", "-f", "html", "-o", str(out)],
        capture_output=True, text=True, cwd=REPO, timeout=180,
    )
    assert done.returncode in (0, 1), done.stderr + done.stdout
    return out / "mastoaudit-audit.html", json.loads((out / "mastoaudit-audit.json").read_text())


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def hardened_report(the_lab, tmp_path_factory):
    the_lab.use("hardened")
    return _audit("hardened", tmp_path_factory.mktemp("report-hardened"))


@pytest.fixture(scope="module")
def weak_report(the_lab, tmp_path_factory):
    the_lab.use("weak")
    return _audit("weak", tmp_path_factory.mktemp("report-weak"))


def test_hardened_lab_report(browser, hardened_report, tmp_path):
    report, doc = hardened_report
    bad = [(f["status"], f["check_id"], f["target"], f["message"]) for f in doc["findings"]
           if f["status"] in ("fail", "warn", "error")]
    assert not bad, bad  # the hardened lab passes everything (say what did not, if it ever does not)
    with opened(browser, report) as tab:
        page = tab.page
        assert_sections_in_order(page)
        assert_verdict(page, doc)
        assert_top_findings_first(page, doc)  # nothing to do: it says so
        assert page.inner_text(".verdict .grade").startswith("A+")
        assert_grouping(page, doc)
        assert_filters(page, doc)
        screenshot(page, "report-audit-hardened")
        assert_print_layout(page, doc, tmp_path / "hardened.pdf")
        tab.assert_clean()


def test_weak_lab_report(browser, weak_report, tmp_path):
    report, doc = weak_report
    with opened(browser, report) as tab:
        page = tab.page
        assert_sections_in_order(page)
        assert_verdict(page, doc)
        actions = assert_top_findings_first(page, doc)
        # The weak lab's worst: critical failures an outsider can use without credentials.
        assert actions[0]["severity"] == "critical" and actions[0]["exposure"] == "internet"
        assert actions[0]["ease"] == "direct"
        # One entry per check, target and status: far fewer entries than findings.
        assert page.locator("#details details.entry").count() < len(doc["findings"]) * 3 // 4
        assert_grouping(page, doc)
        assert_filters(page, doc)
        assert page.inner_text(".verdict .grade").startswith("F")
        screenshot(page, "report-audit-weak")
        assert_print_layout(page, doc, tmp_path / "weak.pdf")
        tab.assert_clean()
    with opened(browser, report, viewport=PHONE, phone=True) as tab:
        assert_phone_layout(tab.page)
        screenshot(tab.page, "report-audit-weak-phone")
        tab.assert_clean()
