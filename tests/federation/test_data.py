"""Federation without a database: version strings, OSV advisories (one database with
app.mastodon-version), peer names, the domain-block CSV read back by Mastodon's import rules."""

from __future__ import annotations

import csv
import io
import itertools
import json

import pytest

from mastoaudit import advisories
from mastoaudit.federation import osv, versions
from mastoaudit.federation.breakdown import build
from mastoaudit.federation.decisions import HEADER, decide
from mastoaudit.federation.peers import BadPeerName, PeerError, PeerResult, normalise_domain, read_peer_lines
from mastoaudit.federation.queries import Block, DatabaseFacts


@pytest.mark.parametrize(("software", "text", "release", "phase"), [
    ("mastodon", "4.3.2", (4, 3, 2), versions.FINAL),
    ("mastodon", "4.3.2+glitch", (4, 3, 2), versions.FINAL),
    ("mastodon", "4.5.0-nightly.2025-07-11", (4, 5, 0), versions.PRE),
    ("mastodon", "4.3.0-rc.1", (4, 3, 0), versions.PRE),
    ("pixelfed", "0.12.5+glitch.1.10.1", (0, 12, 5), versions.FINAL),
    ("lemmy", "v0.16.7", (0, 16, 7), versions.FINAL),
    ("lemmy", "0.19.4-nightly-2024-05-01", (0, 19, 4), versions.PRE),
    ("gotosocial", "0.17.3+git-abc1234", (0, 17, 3), versions.FINAL),
    ("misskey", "2025.4.0", (2025, 4, 0), versions.FINAL),
    ("misskey", "2024.11.0-beta.3", (2024, 11, 0), versions.PRE),
    ("pleroma", "2.5.0-52-g8f5a2b2c-develop", (2, 5, 0), versions.POST),
    ("akkoma", "3.13.2-0-gc1d5d4e", (3, 13, 2), versions.FINAL),
])
def test_versions_are_read_per_software(software, text, release, phase):
    parsed = versions.parse(text, software)
    assert parsed is not None and parsed.release == release and parsed.phase == phase


@pytest.mark.parametrize("text", ["", "unknown", "latest", "4.3.2 (abc)", "4.3.2rc1", "x" * 300, None, 4, "4.3\n2"])
def test_unreadable_versions_are_unknown(text):
    assert versions.parse(text) is None


def test_version_order():
    order = ["0.12.4", "0.12.5-rc.1", "0.12.5-rc.2", "0.12.5", "0.12.5+glitch.1.10.1", "0.12.5-3-gabcdef0", "0.12.6"]
    parsed = [versions.parse(t) for t in order]
    assert all(a <= b for a, b in itertools.pairwise(parsed))
    assert versions.parse("0.12.5") == versions.parse("0.12.5+glitch.1.10.1")
    assert versions.parse("4.5.0-nightly.2025-07-11") < versions.parse("4.5.0")
    assert versions.parse("13.14.2") < versions.parse("2023.9.0")  # Misskey's move to calendar versions


PIXELFED = osv.default_database()


@pytest.mark.parametrize(("version", "affected"), [
    ("0.12.4", True), ("0.12.3", True), ("0.11.9", True), ("0.12.5-rc.1", True),
    ("0.12.5", False), ("0.12.5+glitch.1.10.1", False), ("0.12.6", False), ("1.0.0", False),
])
def test_pixelfed_advisory(version, affected):
    found = PIXELFED.matches("pixelfed", version)
    assert bool(found) is affected
    if affected:
        assert found[0].advisory.id == "GHSA-7287-grhx-542x" and "CVE-2025-30741" in found[0].advisory.aliases
        assert found[0].fixed_in == "0.12.5"


def test_unknown_version_is_not_safe():
    assert PIXELFED.matches("pixelfed", "dev-main") is None
    assert advisories.affecting("mastodon", "garbage") is None


@pytest.mark.parametrize(("version", "expected"), [
    # Per release line: each line's own patch release fixes it; lines older than every fix stay affected.
    ("4.1.1", {"CVE-2023-28853": "4.1.2", "CVE-2023-36460": "4.1.3"}),
    ("4.2.9", {"CVE-2024-37903": "4.2.10"}),
    ("3.4.1", {"CVE-2023-28853": "3.5.8", "CVE-2024-37903": "4.1.18"}),
    ("4.5.0-nightly.2025-07-11", {"CVE-2025-62605": "4.5.0", "CVE-2026-22246": "4.5.4"}),
    ("4.4.99", {}),
    ("4.5.11+glitch", {}),
])
def test_mastodon_advisories_per_release_line(version, expected):
    found = {a.id: a.fixed_in for a in advisories.affecting("mastodon", version)}
    for adv_id, fixed in expected.items():
        assert found.get(adv_id) == fixed, (version, adv_id, found)
    if not expected:
        assert found == {}
    # The 4.4 line never had CVE-2026-22246 (introduced in 4.5): supported lines are not flagged for it.
    assert "CVE-2026-22246" not in {a.id for a in advisories.affecting("mastodon", "4.4.3")}


def test_user_osv_files_add_and_replace(tmp_path):
    own = {"id": "GHSA-test-0000-0000", "aliases": ["CVE-2025-30741"], "summary": "stricter reading",
           "affected": [{"package": {"ecosystem": "Packagist", "name": "pixelfed/pixelfed"},
                         "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "0.12.6"}]}]}],
           "database_specific": {"severity": "CRITICAL"}}
    go_name = "github.com/superseriousbusiness/gotosocial"
    gts = {"id": "OWN-1", "affected": [{"package": {"ecosystem": "Go", "name": go_name},
                                        "ranges": [{"type": "SEMVER", "events": [{"introduced": "0.15.0"},
                                                                                 {"last_affected": "0.17.3"}]}]}]}
    (tmp_path / "a.json").write_text(json.dumps(own))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.json").write_text(json.dumps({"vulns": [gts]}))
    db = osv.database([tmp_path])
    pixelfed = db.matches("pixelfed", "0.12.5")
    assert [m.advisory.id for m in pixelfed] == ["GHSA-test-0000-0000"]  # replaced the bundled record by alias
    assert pixelfed[0].advisory.severity == "critical"
    assert db.matches("gotosocial", "0.17.3+git-abc1234")[0].advisory.id == "OWN-1"
    assert db.matches("gotosocial", "0.17.4") == []
    only_own = osv.database([tmp_path / "a.json"], include_builtin=False)
    assert only_own.matches("mastodon", "3.0.0") == []


@pytest.mark.parametrize(("content", "message"), [
    (None, "no such advisory file"),
    ("{not json", "not JSON"),
    ('{"id": "X"}', "no affected list"),
    ('{"id": "X", "affected": [{"ranges": [{"type": "ECOSYSTEM", "events": [{"fixed": "1", "introduced": "0"}]}]}]}',
     "exactly one key"),
    ('{"id": "X", "affected": [{"ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "banana"}]}]}]}',
     "cannot read the version"),
])
def test_bad_advisory_files_are_clear_errors(tmp_path, content, message):
    path = tmp_path / "adv.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(osv.AdvisoryError, match=message) as info:
        osv.database([path])
    assert str(path) in str(info.value)


def test_bundled_records_are_osv_and_cite_sources():
    records = json.loads((osv.resources.files("mastoaudit.data") / "advisories.osv.json").read_text())
    assert {"mastodon", "pixelfed", "misskey", "lemmy"} <= set(advisories.known_software())
    for record in records:
        assert {"schema_version", "id", "modified", "affected", "references"} <= set(record)
        assert any(r["type"] == "ADVISORY" for r in record["references"])


@pytest.mark.parametrize(("line", "expected"), [
    ("Pixelfed.Social.", "pixelfed.social"),
    ("  mastodon.example:8443 ", "mastodon.example:8443"),
    ("bücher.example", "xn--bcher-kva.example"),
    ("MÜNCHEN.example", "xn--mnchen-3ya.example"),
])
def test_peer_names_are_normalised(line, expected):
    assert normalise_domain(line) == expected


@pytest.mark.parametrize("line", ["192.0.2.1", "[2001:db8::1]:443", "https://x.example/", "localhost", "a b.example",
                                  "x.example:99999", "-bad.example", "x..example", "under_score.example.", "1.2.3.4.5"])
def test_junk_peer_names_are_reported(line):
    with pytest.raises(BadPeerName):
        normalise_domain(line)


def test_peer_file_lines():
    listed = read_peer_lines(["# peers", "Pixelfed.social.", "pixelfed.social", "", "10.0.0.1", "bücher.example  # x",
                              "https://evil.example/x", "ok.example:8443"])
    assert [p.domain for p in listed.peers] == ["pixelfed.social", "xn--bcher-kva.example", "ok.example:8443"]
    assert listed.duplicates == 1 and listed.normalised == 2
    assert [line for line, _, _ in listed.problems] == [5, 7]


# --- the CSV, read back the way Mastodon's import reads it ---------------------------------------

_FALSE = {"false", "0", "f", "F", "FALSE", "off", "OFF"}


def mastodon_import(text: str, blocked: set[str] = frozenset()) -> list[dict]:
    """Admin::Import#csv_rows and ExportDomainBlocksController#import (4.1+): headers from the first
    row unless it does not start with '#domain' (then a bare domain list), blank lines skipped,
    #domain/#public_comment stripped, #severity stripped and symbolised, booleans cast by
    ActiveModel::Type::Boolean ('' is nil, the false words are false, anything else true), a missing
    #severity column imports as suspend, at most 20,000 rows + 1, domains covered by an existing
    block (itself or a parent: DomainBlock.rule_for) skipped."""
    rows = [r for r in csv.reader(io.StringIO(text)) if r]
    if rows and rows[0] and rows[0][0] == "#domain":
        header, body = rows[0], rows[1:]
    else:
        header, body = ["#domain"], rows
    out = []
    for raw in body[:20_001]:
        row = dict(zip(header, raw, strict=False))

        def boolean(name, row=row):
            if name not in row:
                return False
            value = row[name]
            return None if value == "" else value.strip() not in _FALSE

        domain = row["#domain"].strip()
        labels = domain.split(".")
        if any(".".join(labels[i:]) in blocked for i in range(len(labels))):
            continue
        out.append({"domain": domain, "severity": row["#severity"].strip() if "#severity" in row else "suspend",
                    "reject_media": boolean("#reject_media"), "reject_reports": boolean("#reject_reports"),
                    "public_comment": row.get("#public_comment", "").strip(), "obfuscate": boolean("#obfuscate")})
    return out


def _results():
    return [PeerResult("old.example", "pixelfed", "0.12.4"), PeerResult("new.example", "pixelfed", "0.12.5"),
            PeerResult("pics.parent.example", "pixelfed", "0.12.1"), PeerResult("nosw.example", error=PeerError.DNS),
            PeerResult("comma,quote.example", "pixelfed", "0.11.0"),
            PeerResult("fixed-now.example", "pixelfed", "0.12.5"), PeerResult("glitchy.example", "pixelfed", "0.12.3")]


def test_blocklist_csv_survives_mastodon_import():
    facts = DatabaseFacts("test", blocks=[Block("parent.example", "suspend", False, False, ""),
                                          Block("fixed-now.example", "suspend", False, False,
                                                "Pixelfed CVE-2025-30741 until upgraded"),
                                          Block("glitchy.example", "noop", False, False, "")])
    breakdown = build(_results(), osv.default_database(), facts)
    decisions = decide(breakdown, osv.default_database(), facts, ["CVE-2025-30741"], severity="silence")
    text = decisions.csv_text()
    assert text.splitlines()[0] == ",".join(HEADER)
    imported = mastodon_import(text, blocked={"parent.example", "fixed-now.example"})
    assert [r["domain"] for r in imported] == ["comma,quote.example", "glitchy.example", "old.example"]
    assert {r["severity"] for r in imported} == {"silence"}  # the severity survives the import
    assert all(r["reject_media"] is False and r["obfuscate"] is False for r in imported)
    assert "GHSA-7287-grhx-542x (CVE-2025-30741)" in imported[0]["public_comment"]
    # what the import would skip is not written at all, and says why
    assert [b["domain"] for b in decisions.already_blocked] == ["pics.parent.example"]
    assert decisions.already_blocked[0]["by"] == "parent.example"
    # blocked for the advisory, now on 0.12.5: refederate
    assert [r["domain"] for r in decisions.refederate] == ["fixed-now.example"]


def test_a_peers_version_text_is_not_published_in_the_public_comment():
    """Mastodon shows a block's public comment on the about page: the version is the peer's own text
    (build metadata after '+' was taken whole), so a peer could have this instance publish a message
    of its choosing."""
    from mastoaudit.federation.decisions import shown_version

    hostile = PeerResult("loud.example", "pixelfed", "0.12.4+ visit https://scam.example/free-money now")
    fair = PeerResult("glitch.example", "pixelfed", "0.12.4+glitch.1.10.1")
    breakdown = build([hostile, fair], osv.default_database(), None)
    decisions = decide(breakdown, osv.default_database(), None, None)
    comments = {r["domain"]: r["public_comment"] for r in mastodon_import(decisions.csv_text())}
    assert set(comments) == {"loud.example", "glitch.example"}  # still blocked: 0.12.4 is affected
    assert "scam" not in comments["loud.example"] and comments["loud.example"].startswith("pixelfed 0.12.4 is")
    assert comments["glitch.example"].startswith("pixelfed 0.12.4+glitch.1.10.1 is")
    assert shown_version("4.5.0-nightly.2025-07-11") == "4.5.0-nightly.2025-07-11"
    assert shown_version("no version") == "(an unreadable version)"


def test_a_csv_without_severity_would_suspend():
    """Why the severity is always written: Mastodon reads a missing column as suspend."""
    assert mastodon_import("#domain\nx.example\n")[0]["severity"] == "suspend"
    assert mastodon_import("x.example\n")[0]["severity"] == "suspend"


def test_refederation_from_a_previous_run():
    results = [PeerResult("was-old.example", "pixelfed", "0.12.5"),
               PeerResult("still-old.example", "pixelfed", "0.12.4")]
    previous = [{"domain": "was-old.example", "advisories": ["GHSA-7287-grhx-542x"]},
                {"domain": "still-old.example", "advisories": ["GHSA-7287-grhx-542x"]}]
    db = osv.default_database()
    decisions = decide(build(results, db, None), db, None, None, previous=previous)
    assert [r["domain"] for r in decisions.refederate] == ["was-old.example"]
    assert decisions.refederate[0]["source"] == "previous run"


# --- a DSN that does not parse ----------------------------------------------------------------------

DSN_PASSWORD = "s3cret-Pw!"


@pytest.mark.parametrize("dsn", [
    f"host=127.0.0.1 password={DSN_PASSWORD} junk",  # libpq: missing "=" after "junk"
    f"host=127.0.0.1 password={DSN_PASSWORD} PW",  # a password with a space, unquoted: its tail is quoted back
    f"postgresql://mastodon:{DSN_PASSWORD}%zz@127.0.0.1/db",  # invalid percent-encoded token: the password
    f"postgres://mastodon:{DSN_PASSWORD} x@127.0.0.1/db",
    f"postgresql://mastodon:{DSN_PASSWORD}@127.0.0.1/db?bogus=1",
])
@pytest.mark.parametrize("command", [["impact", "x.example"], ["peers", "--from-file", "/dev/null"]])
def test_a_malformed_dsn_is_an_input_error_that_never_quotes_it(tmp_path, capsys, dsn, command):
    """Before: describing a DSN that does not parse recursed until RecursionError (a traceback, exit 1),
    and libpq's own message, which quotes the token it could not read, was meant to be shown."""
    from mastoaudit.cli import main
    from mastoaudit.federation.database import DatabaseUnreachable, describe_dsn_loose, read_database

    assert main(["federation", *command, "--db", dsn, "-o", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert "--db: not a PostgreSQL connection string" in err
    assert DSN_PASSWORD not in out + err and "PW" not in err and "junk" not in err
    with pytest.raises(DatabaseUnreachable) as info:
        read_database(dsn, ["x.example"])
    assert DSN_PASSWORD not in str(info.value)
    assert describe_dsn_loose(dsn) == "the given DSN"
