"""The HTML report in a real browser (Debian's Chromium driven by Playwright, offline, file://):
what every report must do there, whatever run it comes from. Used by test_html_browser.py (lint
runs) and tests/lab/test_report_browser.py (the weak and hardened lab audits).

Each `assert_*` takes an open page and the run's JSON document (what the page was drawn from) and
checks one promise of the report against the document, not against the page's own numbers.
Never downloads a browser: without Chromium or Playwright the callers skip.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest

from mastoaudit.reporting.document import DISPLAY_LIMITS, Omitted, capped

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
SCREENSHOTS = ROOT / "reports" / "screenshots"
# Runs before the page's own script (injected by the driver, outside the page's CSP): records
# every CSP violation the page causes.
WATCH_CSP = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI);
});
"""
STATUS_SHOWN = ("fail", "error", "warn", "waived", "skip", "pass")


@contextmanager
def chromium():
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (Debian package chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=30_000)
        try:
            yield browser
        finally:
            browser.close()


class Opened:
    """A report open in a fresh browser context, with what went wrong on the page so far."""

    def __init__(self, browser, report: Path, javascript: bool = True, viewport: dict | None = None,
                 phone: bool = False) -> None:
        self.context = browser.new_context(java_script_enabled=javascript, viewport=viewport or DESKTOP,
                                           is_mobile=phone, has_touch=phone)
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("console", lambda msg: self.problems.append(f"console {msg.type}: {msg.text}")
                     if msg.type in ("error", "warning") else None)
        self.page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        self.page.on("request", lambda req: self.problems.append(f"request: {req.url}")
                     if not req.url.startswith(("file:", "data:")) else None)
        self.page.add_init_script(WATCH_CSP)
        self.page.goto(report.as_uri(), wait_until="load")

    def assert_clean(self) -> None:
        """No console error or warning, no page error, no request beyond the file, no CSP violation."""
        assert self.page.evaluate("window.__cspViolations || []") == []
        assert not self.problems, self.problems

    def close(self) -> None:
        self.context.close()


@contextmanager
def opened(browser, report: Path, **kwargs):
    page = Opened(browser, report, **kwargs)
    try:
        yield page
    finally:
        page.close()


def shown(f: dict) -> str:
    return "waived" if f.get("waiver") else f["status"]


def open_checks(doc: dict) -> dict[str, list[dict]]:
    """Failing, not waived findings by check: what the report must rank."""
    by_check: dict[str, list[dict]] = {}
    for f in doc["findings"]:
        if shown(f) == "fail":
            by_check.setdefault(f["check_id"], []).append(f)
    return by_check


def assert_sections_in_order(page) -> None:
    """The verdict, then what to do first, then the grades, then the details, the threats last."""
    order = page.evaluate("""() => ['.verdict', '#first', '#grades', '#details', '#by-threat', '#about']
        .map(s => { const e = document.querySelector(s); return e ? e.getBoundingClientRect().top + scrollY : -1; })""")
    assert -1 not in order and order == sorted(order), order
    # No collector's internal names in the header (fact kinds such as tls_endpoint, apt_config).
    header = page.inner_text("header")
    assert not [w for w in ("apt_config", "tls_endpoint", "http_site", "probe_timings", "mastodon_env", "pg_hba")
                if w in header], header


def assert_verdict(page, doc: dict) -> None:
    """The verdict counts every finding of the document (not only those listed)."""
    verdict = " ".join(page.inner_text(".verdict").split())
    failures = sum(1 for f in doc["findings"] if shown(f) == "fail")
    assert f"{len(doc['findings'])} result" in verdict
    assert (f"{failures} failure" in verdict) if failures else ("No failures" in verdict), verdict


def assert_top_findings_first(page, doc: dict) -> list[dict]:
    """Every failing check is ranked exactly once; the top actions come first, in non-increasing
    priority, each with its fix, and the first one is on the first screen. Returns the actions."""
    actions = page.evaluate("""() => Array.from(document.querySelectorAll('#first .action')).map(a => ({
        check: a.dataset.check, priority: +a.dataset.priority, severity: a.dataset.severity,
        exposure: a.dataset.exposure, ease: a.dataset.ease, top: a.getBoundingClientRect().top + scrollY,
        fix: !!a.querySelector('.fix'), link: a.querySelector('h3 a').getAttribute('href')}))""")
    rest = page.evaluate("""() => Array.from(document.querySelectorAll('#first table.ranked tbody tr')).map(r => ({
        check: r.dataset.check, priority: +r.dataset.priority}))""")
    failing = open_checks(doc)
    ranked = [a["check"] for a in actions] + [r["check"] for r in rest]
    assert sorted(ranked) == sorted(failing), "every failing check ranked once"
    priorities = [a["priority"] for a in actions] + [r["priority"] for r in rest]
    assert priorities == sorted(priorities, reverse=True)
    if failing:
        assert actions and len(actions) == min(5, len(failing))
        assert all(a["fix"] for a in actions)
        assert actions[0]["top"] < DESKTOP["height"], "the first action is on the first screen"
        # An action's severity is its check's worst failing severity in the document.
        rank = ["info", "low", "medium", "high", "critical"]
        for a in actions:
            worst = max((f["severity"] for f in failing[a["check"]]), key=rank.index)
            assert a["severity"] == worst, a
            assert page.locator(a["link"]).count() == 1, a  # the link leads to its details entry
    else:
        assert not actions and "Nothing failed" in page.inner_text("#first")
    return actions


def assert_grouping(page, doc: dict) -> None:
    """One entry per check, target and shown status; every finding of the document is one place
    row in the entry of its check and status, and shows when its anchor is followed (folded
    passes and skips open by themselves)."""
    rows = page.evaluate("""() => Array.from(document.querySelectorAll('#details tr.place')).map(r => {
        const e = r.closest('details.entry');
        return {id: r.id, fp: r.dataset.fingerprint, check: e.dataset.check, status: e.dataset.status,
                target: e.dataset.target};})""")
    expected = Counter((f["fingerprint"], f["check_id"], shown(f), f["target"])
                       for f in capped(doc["findings"], DISPLAY_LIMITS["html"],
                                       key=lambda f: (f["check_id"], f["target"], shown(f)))
                       if not isinstance(f, Omitted))
    assert Counter((r["fp"], r["check"], r["status"], r["target"]) for r in rows) == expected
    entries = page.evaluate("""() => Array.from(document.querySelectorAll('#details details.entry')).map(e => ({
        key: [e.dataset.check, e.dataset.target, e.dataset.status].join(' '), count: +e.dataset.count,
        omitted: +e.dataset.omitted, rows: e.querySelectorAll('tr.place').length}))""")
    assert len({e["key"] for e in entries}) == len(entries), "one entry per check, target and status"
    # Every place is listed, up to the cap of the formats people read (then counted).
    assert all(e["count"] == e["rows"] + e["omitted"] and e["rows"] <= DISPLAY_LIMITS["html"] for e in entries)
    assert sum(e["count"] for e in entries) == len(doc["findings"])
    # Passes and skips start folded: their entries are not on screen until asked for.
    assert not any(el.is_visible() for el in page.locator("#details .folded .entry").all())
    hidden = page.evaluate("""async (ids) => { const out = [];
        const all = Array.from(document.querySelectorAll('details')), was = all.map(d => d.open);
        for (const id of ids) { location.hash = '#' + id; await new Promise(r => setTimeout(r, 0));
          if (!document.getElementById(id).checkVisibility()) out.push(id); }
        location.hash = ''; all.forEach((d, i) => { d.open = was[i]; }); return out; }""", [r["id"] for r in rows])
    assert hidden == [], f"findings not shown when followed: {hidden[:5]}"


def assert_filters(page, doc: dict) -> None:
    """The severity and status filters hide exactly the entries they name, and say how many
    results remain; checking a box again brings them back."""
    total = len(doc["findings"])
    counter = page.locator("#filter-count")
    assert counter.inner_text() == f"{total} of {total} results shown"
    by_status = Counter(shown(f) for f in doc["findings"])
    for status in ("pass", "waived", "skip", "fail"):
        if not by_status[status]:
            continue
        box = page.locator(f"#filters input[name=status][value={status}]")
        box.click()
        assert counter.inner_text() == f"{total - by_status[status]} of {total} results shown", status
        assert page.evaluate(f"""() => Array.from(document.querySelectorAll('#details .entry[data-status={status}]'))
            .every(e => !e.checkVisibility())""")
        box.click()
    # Severity: an entry carries its worst severity; unchecking it hides exactly those entries.
    entries_high = page.locator("#details .entry[data-severity=high]").count()
    if entries_high:
        box = page.locator("#filters input[name=severity][value=high]")
        box.click()
        assert page.evaluate("""() => Array.from(document.querySelectorAll('#details .entry[data-severity=high]'))
            .every(e => !e.checkVisibility())""")
        box.click()
    assert counter.inner_text() == f"{total} of {total} results shown"


def assert_print_layout(page, doc: dict, pdf_path: Path) -> None:
    """Printed: no navigation or filters; every entry needing attention open with its fix; passes
    and skips as one line each; the PDF holds the top actions and their fixes as text."""
    page.emulate_media(media="print")
    try:
        assert not page.locator("#filters").is_visible() and not page.locator("nav.toc").is_visible()
        attention = page.locator("#details details.entry.attention .entry-body")
        assert all(el.is_visible() for el in attention.all())
        assert not any(el.is_visible() for el in page.locator("#details .folded .entry").all())
        page.pdf(path=str(pdf_path), format="A4", print_background=True)
    finally:
        page.emulate_media(media="screen")
    assert pdf_path.read_bytes().startswith(b"%PDF")
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", "-layout", str(pdf_path), "-"], capture_output=True, text=True,
                              check=True).stdout
        flat = " ".join(text.split())
        assert "What to do first" in flat and "results shown" not in flat
        for title in page.locator("#first .action h3").all_inner_texts():
            assert " ".join(title.split())[:40] in flat, title
        if open_checks(doc):
            assert "How to fix" in flat


def assert_phone_layout(page) -> None:
    """On a phone the page does not scroll sideways, with every entry open too (long values wrap;
    wide tables scroll inside their own box), and the verdict fits the screen."""
    box = page.locator(".verdict").bounding_box()
    assert box and box["width"] <= PHONE["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
    try:
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    finally:
        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = false)")


def screenshot(page, name: str, full: bool = False) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full)
    return path
