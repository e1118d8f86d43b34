"""The HTML report in a real browser: Debian's Chromium driven by Playwright, offline, file://.

Two lint runs: tests/fixtures/reports/hostile, whose configs hold markup, script and terminal
escapes (shown as text, none of it run), and demo/weak with a waiver (every feature of the page:
top findings first, grouping, the filters including the waived one, print, phone). The live lab's
weak and hardened audits are opened the same way in tests/lab/test_report_browser.py.
Skips when Chromium or Playwright is missing; never downloads a browser.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mastoaudit.reporting import html as html_report
from mastoaudit.reporting.document import build_document

from ..conftest import FIXTURES, lint
from .browser import (
    ARGS,
    CHROMIUM,
    PHONE,
    ROOT,
    WATCH_CSP,
    Opened,
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

__all__ = ["ARGS", "CHROMIUM", "WATCH_CSP"]  # test_history.py opens its page with the same settings
pytestmark = pytest.mark.browser

HOSTILE_SCRIPT = "<script>window.__pwned=1</script>"
WAIVERS = """waivers:
  - check: nginx.server-tokens
    reason: the version banner is removed by the CDN in front
    owner: ops-team
    expires: never
"""


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


def _open(browser, report_file: Path, javascript: bool = True):
    """(context, page, problems) of a report open in Chromium (tests/federation/test_sweep.py too)."""
    tab = Opened(browser, report_file, javascript=javascript)
    return tab.context, tab.page, tab.problems


@pytest.fixture(scope="module")
def hostile(registry, tmp_path_factory) -> tuple[Path, dict]:
    doc = build_document(lint(registry, FIXTURES / "reports" / "hostile"))
    path = tmp_path_factory.mktemp("html") / "report.html"
    path.write_text(html_report.render_document(doc), encoding="utf-8")
    return path, doc


@pytest.fixture(scope="module")
def weak_lint(tmp_path_factory) -> tuple[Path, dict]:
    """`mastoaudit lint demo/weak` with one check waived: the report as a user gets it."""
    out = tmp_path_factory.mktemp("lint-weak")
    waivers = out / "waivers.yaml"
    waivers.write_text(WAIVERS)
    done = subprocess.run([sys.executable, "-m", "mastoaudit", "lint", "demo/weak", "--waivers", str(waivers),
                           "-f", "html", "-f", "json", "-o", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1, done.stderr
    doc = json.loads((out / "mastoaudit-lint.json").read_text())
    assert any(f.get("waiver") for f in doc["findings"])
    return out / "mastoaudit-lint.html", doc


def test_hostile_values_are_shown_as_text_and_nothing_runs(browser, hostile):
    report, _doc = hostile
    with opened(browser, report) as tab:
        page = tab.page
        # Open every entry, folded ones too, so that every value is on screen.
        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        body = page.inner_text("body")
        assert HOSTILE_SCRIPT in body
        assert f"server {HOSTILE_SCRIPT}:80" in body  # the nginx server_name, as text
        assert '"><img src=x onerror="window.__pwned=2">' in body
        assert "\\x1b[31m" in body and "\x1b" not in body
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert page.locator("main img, main script").count() == 0
        tab.assert_clean()


@pytest.mark.parametrize("run", ["hostile", "weak_lint"])
def test_the_report_keeps_its_promises(browser, request, run):
    report, doc = request.getfixturevalue(run)
    with opened(browser, report) as tab:
        assert_sections_in_order(tab.page)
        assert_verdict(tab.page, doc)
        assert_top_findings_first(tab.page, doc)
        assert_grouping(tab.page, doc)
        assert_filters(tab.page, doc)
        tab.assert_clean()


def test_waived_findings_keep_their_place_and_filter(browser, weak_lint):
    report, _doc = weak_lint
    with opened(browser, report) as tab:
        page = tab.page
        waived = page.locator('#details .entry[data-status=waived][data-check="nginx.server-tokens"]')
        assert waived.count() == 1
        # A waived check is not something to do first, and the waiver says why it is accepted.
        assert page.locator('#first [data-check="nginx.server-tokens"]').count() == 0
        waived.first.evaluate("e => e.open = true")
        assert "removed by the CDN" in waived.first.inner_text()
        screenshot(page, "report-lint-weak")
        tab.assert_clean()


def test_print_layout(browser, weak_lint, tmp_path):
    report, doc = weak_lint
    with opened(browser, report) as tab:
        assert_print_layout(tab.page, doc, tmp_path / "report.pdf")
        tab.assert_clean()


def test_phone_layout(browser, weak_lint):
    report, _ = weak_lint
    with opened(browser, report, viewport=PHONE, phone=True) as tab:
        assert_phone_layout(tab.page)
        screenshot(tab.page, "report-lint-weak-phone")
        tab.assert_clean()


def test_without_javascript_everything_is_there(browser, weak_lint):
    report, doc = weak_lint
    with opened(browser, report, javascript=False) as tab:
        page = tab.page
        assert not page.locator("#filters").is_visible()  # they would do nothing
        assert all(el.is_visible() for el in page.locator("#details .entry.attention > summary").all())
        assert page.locator("#details tr.place").count() == len(doc["findings"])
        tab.assert_clean()
