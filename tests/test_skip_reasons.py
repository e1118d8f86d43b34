"""Nothing skipped in silence: every skip carries why (model.SkipReason), in the findings, the input
notes and the document's summary, and the terminal and HTML reports say it grouped."""

from __future__ import annotations

import json

import pytest

from mastoaudit import kinds
from mastoaudit.checkdef import skipped
from mastoaudit.engine import run, run_check
from mastoaudit.facts import FactSet
from mastoaudit.model import Location, SkipReason, Status
from mastoaudit.redact import Redactor
from mastoaudit.reporting import html, json_report, terminal
from mastoaudit.selection import Selection
from mastoaudit.sources.local import collect_tree
from mastoaudit.verdict import skipped_by_reason, summarize


@pytest.mark.parametrize(("message", "reason"), [
    ("SECRET_KEY_BASE is templated or expanded at load time", SkipReason.TEMPLATED),
    ("the tag is set by a variable (${V}): cannot tell the version", SkipReason.TEMPLATED),
    ("no server block in x.conf", SkipReason.NO_SERVER_BLOCK),
    ("the public timeline did not answer: refused", SkipReason.NO_ANSWER),
    ("full-text search is not enabled (ES_ENABLED)", SkipReason.NOT_APPLICABLE),
])
def test_a_skip_says_why_even_when_its_check_does_not_name_it(message, reason):
    assert skipped(message).reason is reason
    assert skipped(message, because=SkipReason.NOT_COLLECTED).reason is SkipReason.NOT_COLLECTED


def _check(registry, check_id):
    return next(c for c in registry if c.meta.id == check_id)


def test_not_applicable_is_told_from_not_collected(registry):
    """A redis.conf that is not there: not applicable. One that is there but could not be read: the
    fact was not collected, and the skip says where to look."""
    check = _check(registry, "redis.bind")
    absent = FactSet("t")
    [f] = run_check(check, absent, Redactor(set(), set()))
    assert f.skip_reason is SkipReason.NOT_APPLICABLE and "no redis_conf found" in f.message
    unread = FactSet("t")
    unread.problem("redis_conf", "cannot parse redis.conf: a directive without an argument", Location("redis.conf", 3))
    [f] = run_check(check, unread, Redactor(set(), set()))
    assert f.skip_reason is SkipReason.NOT_COLLECTED and "input.redis_conf" in f.message


def test_nginx_without_a_server_block_says_so(registry, tmp_path):
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d/headers.conf").write_text("server_tokens off;\nhttp2 on;\n")
    (tmp_path / "nginx").mkdir()
    (tmp_path / "nginx/gzip.conf").write_text("gzip on;\n")
    facts = collect_tree(tmp_path)
    assert facts.has(kinds.NGINX)
    [f] = run_check(_check(registry, "nginx.tls-protocols"), facts, Redactor(set(), set()))
    assert f.skip_reason is SkipReason.NO_SERVER_BLOCK and "no server block in" in f.message


def test_the_summary_counts_skips_by_reason_and_the_reports_show_them(registry, tmp_path):
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates/env.production.j2").write_text(
        "LOCAL_DOMAIN={{ domain }}\nSECRET_KEY_BASE={{ vault_secret }}\nDB_PASS=__DB_PWD__\n")
    result = run("lint", registry, Selection(), [collect_tree(tmp_path)])
    doc = json.loads(json_report.render(result))
    groups = {g["reason"]: g for g in doc["summary"]["skipped_by_reason"]}
    assert groups["templated"]["count"] >= 2 and groups["templated"]["label"] == SkipReason.TEMPLATED.label
    assert sum(g["count"] for g in groups.values()) == doc["summary"]["by_status"]["skip"]
    assert all(f["skip_reason"] for f in doc["findings"] if f["status"] == "skip")
    assert all(f["skip_reason"] is None for f in doc["findings"] if f["status"] != "skip")
    # the order: largest group first
    counts = [g["count"] for g in doc["summary"]["skipped_by_reason"]]
    assert counts == sorted(counts, reverse=True)
    text = terminal.render(result)
    assert f"skipped: {counts[0]} " in text and "templated (a tool fills it in later)" in text
    page = html.render(result)
    assert "Why results were skipped" in page
    # the component's folded skips are grouped under their reason's label
    assert '<p class="reason-text"><strong>templated (a tool fills it in later)</strong>' in page


def test_a_report_without_reasons_is_counted_by_its_words():
    """A 1.1 report read back (merge, diff): its skips are grouped by what they say."""
    findings = [{"status": "skip", "message": "DB_PASS is templated"}, {"status": "skip", "message": "no answer"},
                {"status": "pass", "message": "fine"}]
    assert [(g["reason"], g["count"]) for g in skipped_by_reason(findings)] == [("templated", 1), ("no-answer", 1)]
    assert summarize(findings, 3)["skipped_by_reason"][0]["label"] == SkipReason.TEMPLATED.label


def test_input_notes_carry_their_reason(registry, tmp_path):
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates/nginx.conf.j2").write_text("server {\n  listen 443 ssl;\n  {{ extra }}\n}\n")
    result = run("lint", registry, Selection(), [collect_tree(tmp_path)])
    [note] = [f for f in result.findings if f.check_id == "input.nginx"]
    assert note.status is Status.SKIP and note.skip_reason is SkipReason.TEMPLATED
    assert note.title == "Input not judged" and result.complete
