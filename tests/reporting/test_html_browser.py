"""The HTML report in a real browser: Debian's Chromium driven by Playwright, offline, file://.

The report comes from linting tests/fixtures/reports/hostile, whose configs hold markup and
script. The page must show those values as text, run none of them, raise no console error and no
Content-Security-Policy violation, and its filters must work (and everything show without JS).
Skips when Chromium or Playwright is missing; never downloads a browser.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mastoaudit.reporting import html as html_report

from ..conftest import FIXTURES, lint

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
HOSTILE_SCRIPT = "<script>window.__pwned=1</script>"
# Runs before the page's own script (injected by the driver, outside the page's CSP): records
# every CSP violation the page causes.
WATCH_CSP = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI);
});
"""


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (Debian package chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=30_000)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def report_file(registry, tmp_path_factory) -> Path:
    result = lint(registry, FIXTURES / "reports" / "hostile")
    path = tmp_path_factory.mktemp("html") / "report.html"
    path.write_text(html_report.render(result), encoding="utf-8")
    return path


def _open(browser, report_file: Path, javascript: bool = True):
    context = browser.new_context(java_script_enabled=javascript, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}")
            if msg.type in ("error", "warning") else None)
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("request", lambda req: problems.append(f"request: {req.url}")
            if not req.url.startswith(("file:", "data:")) else None)
    page.add_init_script(WATCH_CSP)
    page.goto(report_file.as_uri(), wait_until="load")
    return context, page, problems


def _visible(page, selector: str) -> list[bool]:
    return [el.is_visible() for el in page.locator(selector).all()]


def test_report_is_safe_and_filters_work(browser, report_file):
    context, page, problems = _open(browser, report_file)
    try:
        # Findings are shown, the hostile values as text, and none of them ran.
        assert page.locator("details.finding[data-status=fail]").first.is_visible()
        body = page.inner_text("body")
        assert HOSTILE_SCRIPT in body
        assert f"server {HOSTILE_SCRIPT}:80" in body  # the nginx server_name, as text
        assert '"><img src=x onerror="window.__pwned=2">' in body
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert page.locator("main img, main script").count() == 0
        assert page.evaluate("window.__cspViolations") == []

        # The filters: unchecking "pass" hides the pass rows and nothing else.
        assert all(_visible(page, "details.finding[data-status=pass]"))
        total = page.locator("details.finding").count()
        passes = page.locator("details.finding[data-status=pass]").count()
        assert passes > 0
        assert page.inner_text("#filter-count") == f"{total} of {total} results shown"
        page.locator("#filters input[name=status][value=pass]").click()
        assert not any(_visible(page, "details.finding[data-status=pass]"))
        assert all(_visible(page, "details.finding[data-status=fail]"))
        assert page.inner_text("#filter-count") == f"{total - passes} of {total} results shown"
        # ... and a severity filter on top of it; checking again brings the rows back.
        page.locator("#filters input[name=severity][value=high]").click()
        assert not any(_visible(page, "details.finding[data-severity=high]"))
        page.locator("#filters input[name=severity][value=high]").click()
        page.locator("#filters input[name=status][value=pass]").click()
        assert all(_visible(page, "details.finding"))

        # Printing: no filters, every finding expanded (passes start collapsed on screen).
        assert not any(_visible(page, "details.finding[data-status=pass] .finding-body"))
        page.emulate_media(media="print")
        assert not page.locator("#filters").is_visible()
        assert all(_visible(page, "details.finding .finding-body"))
        assert page.evaluate("window.__cspViolations") == []
        assert not problems, problems
    finally:
        context.close()


def test_report_without_javascript_shows_everything(browser, report_file):
    context, page, problems = _open(browser, report_file, javascript=False)
    try:
        assert not page.locator("#filters").is_visible()  # they would do nothing
        assert all(_visible(page, "details.finding"))
        assert HOSTILE_SCRIPT in page.inner_text("body")
        assert not problems, problems
    finally:
        context.close()
