"""What to fix first and the grades (mastoaudit/reporting/priority.py): the rules the report prints,
checked on findings written by hand and on the demo's lint runs; and the HTML view of a run too
big to list (sec's cap) still counting and ranking every finding."""

from __future__ import annotations

import pytest

from mastoaudit.reporting import priority as prio
from mastoaudit.reporting.document import build_document
from mastoaudit.reporting.html import view
from mastoaudit.threats import ThreatCatalogue

from ..conftest import ROOT, lint


def finding(check_id="x.y", status="fail", severity="high", component="redis", threats=("T-CACHE-EXPOSED",),
            location=None, waiver=None) -> dict:
    return {"check_id": check_id, "status": status, "severity": severity, "component": component,
            "threats": list(threats), "location": location, "waiver": waiver}


def check(modes=("static", "live"), tags=()) -> dict:
    return {"modes": list(modes), "tags": list(tags)}


def test_every_threat_of_the_table_is_in_the_catalogue():
    assert set(prio.THREAT_EASE) <= set(ThreatCatalogue.load().threats)


@pytest.mark.parametrize(("f", "c", "expected"), [
    # A probe saw it from outside: a URL, host:port, a DNS record.
    (finding(component="redis", location={"file": "127.0.0.20:6379", "line": None}), check(["network"]), "internet"),
    (finding(component="app", location={"file": "https://m.example/api/v2/instance", "line": None}),
     check(["static", "live", "network"]), "internet"),
    (finding(component="mail-dns", location={"file": "_dmarc.example IN TXT", "line": None}), check(["network"]),
     "internet"),
    # The same mixed-mode check judging a file of the host is not "seen from outside" ...
    (finding(component="redis", location={"file": "web1:/home/mastodon/live/lib/mastodon/version.rb", "line": 3}),
     check(["static", "live", "network"], ["live"]), "host"),
    # ... but the configuration of what visitors reach is exposed wherever it is read.
    (finding(component="nginx", location={"file": "etc/nginx/sites-enabled/mastodon", "line": 9}), check(), "internet"),
    # A service's listening address, login or transport: the network.
    (finding(component="postgresql"), check(tags=["auth"]), "network"),
    (finding(component="host"), check(tags=["ssh", "cis"]), "network"),
    # Anything else needs the host first.
    (finding(component="host"), check(tags=["systemd", "sandbox"]), "host"),
    (finding(component="mastodon-env"), check(tags=["secrets"]), "host"),
])
def test_exposure(f, c, expected):
    assert prio.exposure(f, c)[0] == expected


def test_ease_takes_the_easiest_threat():
    assert prio.ease(finding(threats=["T-HOST-COMPROMISE", "T-ADMIN-ACCESS"])) == ("direct", ("T-ADMIN-ACCESS",))
    assert prio.ease(finding(threats=["T-HOST-COMPROMISE"]))[0] == "chain"
    assert prio.ease(finding(threats=["T-TRANSPORT-MITM", "T-APP-INFO-LEAK"]))[0] == "conditional"
    assert prio.ease(finding(threats=["T-NOT-IN-THE-TABLE"]))[0] == "conditional"


def test_priority_is_the_product_the_page_prints():
    p = prio.priority(finding(severity="critical", component="redis", location={"file": "10.0.0.5:6379"}),
                      check(["network"]))
    assert p.score == 90 == prio.MAX_PRIORITY
    assert p.formula == ("critical (10) × reachable from the internet (3) × anyone who reaches it, "
                         "no credentials (3) = 90")
    low = prio.priority(finding(severity="low", component="host", threats=["T-HOST-COMPROMISE"]),
                        check(tags=["systemd"]))
    assert low.score == 2 * 1 * 1


def test_grade_counts_each_failing_check_once_at_its_worst():
    many = [finding("a.b", severity="medium") for _ in range(40)] + [finding("a.b", severity="high")]
    g = prio.grade([*many, finding("c.d", status="pass")])
    assert g["score"] == 75 and g["letter"] == "B"  # one check failing: -25 for its worst (high)
    assert [d["check_id"] for d in g["deductions"]] == ["a.b"]


def test_grade_rules():
    assert prio.grade([finding(status="pass")])["letter"] == "A+"
    assert prio.grade([finding(severity="critical")])["letter"] == "F"  # a critical failure alone fails it
    assert prio.grade([finding(severity="medium")])["score"] == 90
    assert prio.grade([finding(status="warn", severity="high")])["score"] == 95  # a fifth
    assert prio.grade([finding(status="warn", severity="info")])["score"] == 99  # at least 1
    # Waived: accepted, no deduction; errors: incomplete; nothing judged: no grade.
    assert prio.grade([finding(waiver={"reason": "r"})])["letter"] == "A+"
    incomplete = prio.grade([finding(status="pass"), finding("e.f", status="error")])
    assert incomplete["incomplete"] and incomplete["text"].endswith("incomplete")
    assert prio.grade([finding(status="skip")])["letter"] is None


def test_actions_rank_failing_checks_once_by_priority(registry):
    doc = build_document(lint(registry, ROOT / "demo" / "weak"))
    shown = view(doc)
    ranked = shown["actions"] + shown["more_actions"]
    failing = {f["check_id"] for f in doc["findings"] if f["status"] == "fail"}
    assert sorted(a["check_id"] for a in ranked) == sorted(failing)
    scores = [a["priority"]["score"] for a in ranked]
    assert scores == sorted(scores, reverse=True)
    # Every place of an action counts; its priority is that of its worst place.
    checks = {c["id"]: c for c in doc["checks"]}
    for a in ranked:
        places = [f for f in doc["findings"] if f["check_id"] == a["check_id"] and f["status"] == "fail"]
        assert a["count"] == len(places)
        assert a["priority"]["score"] == max(prio.priority(p, checks[p["check_id"]]).score for p in places)


def test_hardened_demo_grades_a_plus(registry):
    shown = view(build_document(lint(registry, ROOT / "demo" / "hardened")))
    assert shown["overall"]["letter"] == "A+" and not shown["actions"]
    assert all(g["grade"]["letter"] in ("A+", None) for g in shown["groups"])


def test_a_huge_run_is_listed_in_part_and_counted_whole(registry):
    doc = build_document(lint(registry, ROOT / "demo" / "weak"))
    [template] = [f for f in doc["findings"] if f["check_id"] == "nginx.autoindex" and f["status"] == "fail"]
    many = [{**template, "subject": f"server s{n}", "fingerprint": f"{n:024x}"} for n in range(120)]
    doc["findings"] = [f for f in doc["findings"] if f is not template] + many
    shown = view(doc)
    [entry] = [e for e in shown["entries"] if e["check_id"] == "nginx.autoindex" and e["shown"] == "fail"]
    assert (len(entry["places"]), entry["omitted"], entry["count"]) == (50, 70, 120)
    [action] = [a for a in shown["actions"] + shown["more_actions"] if a["check_id"] == "nginx.autoindex"]
    assert action["count"] == 120
    assert shown["result_count"] == len(doc["findings"]) and shown["totals"]["fail"] >= 120
    from mastoaudit.reporting.html import render_document

    page = render_document(doc)
    assert "and 70 more <code>nginx.autoindex</code> failures" in page
    assert f"{len(doc['findings'])} results" in page


def test_what_was_read_is_named_in_words_for_every_declared_kind():
    """The header never shows a collector's internal name: every declared kind has words."""
    from mastoaudit import kinds
    from mastoaudit.reporting.html import sources

    for kind in kinds.all_kinds():
        shown = sources([kind.name])
        # never the internal name itself (nginx or s3 are also the product's name; pg_hba.conf the file's)
        assert all(label != kind.name or "_" not in label for s in shown for label in s["labels"]), kind.name
        assert all(s["title"] != "other sources" for s in shown), kind.name


def test_a_sweep_without_the_database_does_not_claim_to_have_read_it():
    from mastoaudit.reporting.html import sources

    titles = {s["title"] for s in sources(["federation_peers", "peer_list", "advisories"])}
    assert titles == {"the fediverse peers"}
    assert "Mastodon's database" in {s["title"] for s in sources(["mastodon_db", "federation_peers"])}
