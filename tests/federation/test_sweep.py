"""`mastoaudit federation peers`: the NodeInfo sweep against peers served by a real nginx
(lab/peers.py), in the shapes real servers publish, with hostile peers among them.

nginx listens on a loopback address of its own (127.88.x.y:443) and logs every request it
receives; the redirect to 127.0.0.1 points at a recording listener; names reach addresses through
an explicit resolver map (`--resolve-file`, `--no-dns`) and only nginx's own address is allowed.
The sweep runs in this process, so the test guard (conftest) would also stop any connection that
left loopback: the tests show from both ends that nothing went where it must not. nginx on port
443 needs root (CI runs as root); the tests that need it skip otherwise.
"""

from __future__ import annotations

import asyncio
import csv
import json
import socket
from pathlib import Path

import jsonschema
import pytest

from lab.peers import HOSTILE, PeerServer, ServedPeer, can_run, free_loopback
from mastoaudit.addresses import AddressPolicy
from mastoaudit.cli import main
from mastoaudit.federation.peers import Peer, PeerError
from mastoaudit.federation.sweep import PeerResolver, Sweep, SweepLimits, read_hosts_file, read_resolve_entries
from mastoaudit.shard import shard_of
from tests import netlab

from ..conftest import ROOT
from ..reporting.test_html_browser import _open, browser  # noqa: F401 - the browser fixture

NGINX = can_run()
needs_nginx = pytest.mark.skipif(NGINX is not None, reason=NGINX or "")

GOOD = {  # domain: (shape, version, software read)
    "mastodon.peers.test": ("mastodon", "4.5.11", "mastodon"),
    "glitch.peers.test": ("mastodon", "4.5.11+glitch", "mastodon"),
    "nightly.peers.test": ("mastodon", "4.6.0-nightly.2026-06-01", "mastodon"),
    "old-mastodon.peers.test": ("mastodon", "4.1.2", "mastodon"),
    "pixelfed-old.peers.test": ("pixelfed", "0.12.4", "pixelfed"),
    "pixelfed.peers.test": ("pixelfed", "0.12.5", "pixelfed"),
    "misskey.peers.test": ("misskey", "2026.5.0", "misskey"),
    "gts.peers.test": ("gotosocial", "0.19.1+git-abc1234", "gotosocial"),
    "lemmy.peers.test": ("lemmy", "0.19.17", "lemmy"),
    "lemmy-old.peers.test": ("lemmy-old", "v0.16.7", "lemmy"),
    "akkoma.peers.test": ("akkoma", "3.13.2", "akkoma"),
    "pleroma.peers.test": ("pleroma", "2.6.2", "pleroma"),
}
SCHEMAS = {"misskey": "2.1", "lemmy": "2.1", "akkoma": "2.1", "pleroma": "2.1"}  # the highest offered
PATHS = {"mastodon": "/nodeinfo/2.0", "pixelfed": "/api/nodeinfo/2.0.json", "misskey": "/nodeinfo/2.1",
         "gotosocial": "/nodeinfo/2.0", "lemmy": "/nodeinfo/2.1.json", "lemmy-old": "/nodeinfo/2.0.json",
         "akkoma": "/nodeinfo/2.1.json", "pleroma": "/nodeinfo/2.1.json"}
MANY = [f"m{i:03d}.peers.test" for i in range(120)]  # many names, one address: the per-address limit at work
PRIVATE_NAME = "private.hostile.test"
SLOW_MORE = ["slow2.hostile.test", "slow3.hostile.test"]
MARKUP = "<script>window.__pwned=1</script>"  # a version string a hostile peer announces


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    if NGINX is not None:
        pytest.skip(NGINX)
    d = tmp_path_factory.mktemp("peers")
    recorder = netlab.Recorder(d / "canary.jsonl")
    canary = netlab.Listener("127.0.0.1", 0, recorder)
    address = free_loopback()
    served = [ServedPeer(name, shape, version, f"admin@{name}") for name, (shape, version, _) in GOOD.items()]
    served += [ServedPeer(name, "mastodon", "4.5.11") for name in [*MANY, "upper.peers.test"]]
    served += [ServedPeer(f"{kind}.hostile.test", kind) for kind in HOSTILE]
    served += [ServedPeer(name, "slow") for name in SLOW_MORE]
    served += [ServedPeer("markup.hostile.test", "mastodon", MARKUP)]
    server = PeerServer(served, address, d / "nginx", targets={
        "loopback": f"http://127.0.0.1:{canary.port}/.well-known/nodeinfo",
        "private": f"https://{PRIVATE_NAME}/.well-known/nodeinfo"},
        instance_peers=[*GOOD, "UPPER.Peers.Test.", "10.0.0.1", "not a domain", "mastodon.peers.test"])
    server.start()
    hosts = d / "peers.hosts"
    hosts.write_text(server.hosts_file({PRIVATE_NAME: "10.255.0.1"}))
    try:
        yield {"server": server, "address": address, "hosts": hosts, "canary": recorder, "dir": d,
               "names": {p.domain for p in served}}
    finally:
        server.stop()
        canary.close()


def _cli(world, tmp_path: Path, *args: str) -> tuple[int, dict]:
    out = tmp_path / "report.json"
    code = main(["federation", "peers", "--resolve-file", str(world["hosts"]), "--no-dns",
                 "--ca-bundle", str(world["server"].ca), "--allow-private", f"{world['address']}/32",
                 "-f", "json", "-o", str(out), *args])
    return code, json.loads(out.read_text()) if out.exists() else {}


def _peers(report: dict) -> dict[str, dict]:
    return {p["domain"]: p for p in report["extra"]["federation"]["peers"]}


def _nothing_went_where_it_must_not(world, peers: dict[str, dict]) -> None:
    assert world["canary"].events == []  # the redirect to 127.0.0.1 was never followed
    seen = world["server"].requests()
    assert seen, "nginx logged nothing: the check below would prove nothing"
    assert {r["addr"] for r in seen} == {world["address"]}
    assert {r["host"] for r in seen} <= world["names"]  # no request under a name it was redirected to
    assert not any(r["host"] == PRIVATE_NAME for r in seen)
    assert not any("test guard" in (p["detail"] or "") for p in peers.values())  # conftest's guard never fired


# --- the shapes real servers publish -------------------------------------------------------------


@needs_nginx
def test_every_real_shape_is_read(world):
    resolver = PeerResolver(read_hosts_file(world["hosts"].read_text(), "hosts"), server=None)
    sweep = Sweep(AddressPolicy.allowing([f"{world['address']}/32"]), resolver, SweepLimits(peer_time=5),
                  ca_bundle=str(world["server"].ca))
    results = asyncio.run(sweep.run([Peer(name) for name in GOOD]))
    for result in results:
        shape, version, software = GOOD[result.domain]
        assert (result.software, result.version, result.error) == (software, version, None), result
        assert result.schema == SCHEMAS.get(shape, "2.0"), result.domain
        assert result.nodeinfo_url == f"https://{result.domain}{PATHS[shape]}"
        assert result.address == world["address"]
    # one fetch of the index and one of the document per peer: no retries
    assert sweep.report.requests == 2 * len(GOOD)


@needs_nginx
def test_hostile_peers_end_as_their_own_errors_and_reach_nothing(world, tmp_path):
    listed = tmp_path / "peers.txt"
    listed.write_text("\n".join([*GOOD, *MANY, *(f"{k}.hostile.test" for k in HOSTILE), "nowhere.peers.test",
                                 "# a comment", "https://a.url.example/", "127.0.0.1", "Mastodon.Peers.Test.",
                                 "bücher.peers.test", ""]) + "\n")
    code, report = _cli(world, tmp_path, "--from-file", str(listed), "--peer-timeout", "3", "--fail-on", "high")
    assert code == 1  # pixelfed 0.12.4, lemmy v0.16.7 and mastodon 4.1.2 are still federated: high
    jsonschema.validate(report, json.loads((ROOT / "mastoaudit/data/report.schema.json").read_text()))
    section = report["extra"]["federation"]
    jsonschema.validate(section, json.loads((ROOT / "mastoaudit/data/federation.schema.json").read_text()))
    peers = _peers(report)
    for kind, expected in HOSTILE.items():
        assert peers[f"{kind}.hostile.test"]["error"] == expected, peers[f"{kind}.hostile.test"]
    assert "cloud metadata" in peers["redirect-metadata.hostile.test"]["detail"]
    assert "10.255.0.1 (private)" in peers["redirect-private.hostile.test"]["detail"]
    assert "127.0.0.1 (loopback)" in peers["redirect-loopback.hostile.test"]["detail"]
    assert "cloud metadata" in peers["link-metadata.hostile.test"]["detail"]
    assert peers["nowhere.peers.test"]["error"] == "dns"
    assert peers["xn--bcher-kva.peers.test"]["error"] == "dns"  # an IDN, swept by its punycode name
    # every healthy peer was read although hostile ones shared its address
    assert all(peers[name]["software"] == GOOD[name][2] for name in GOOD)
    assert all(peers[name]["version"] == "4.5.11" for name in MANY)
    # junk lines are reported, not swept; case and trailing dots are normalised
    junk = [f for f in report["findings"] if f["check_id"] == "input.peer_list"]
    assert len(junk) == 2 and {f["status"] for f in junk} == {"warn"}
    assert "mastodon.peers.test" in peers and "Mastodon.Peers.Test." not in peers
    # what is vulnerable, by advisory
    vulnerable = section["breakdown"]["vulnerable"]
    assert vulnerable["GHSA-7287-grhx-542x"] == ["pixelfed-old.peers.test"]
    assert vulnerable["CVE-2026-29178"] == ["lemmy-old.peers.test"]
    assert "old-mastodon.peers.test" in vulnerable["CVE-2023-36460"]
    assert not any("glitch" in d or "nightly" in d for ds in vulnerable.values() for d in ds)
    sweep = section["sweep"]
    assert sweep["not_swept"] == 0 and sum(sweep["errors"].values()) == len(HOSTILE) + 2
    _nothing_went_where_it_must_not(world, peers)


@needs_nginx
def test_a_peer_queueing_for_its_address_is_not_timed_out(world):
    """The per-peer limit starts once the peer holds its address slot: with one slot per address,
    healthy peers behind a slow one wait, and are read, not reported as timed out."""
    resolver = PeerResolver(read_hosts_file(world["hosts"].read_text(), "hosts"), server=None)
    limits = SweepLimits(peer_time=1.0, per_address=1, in_flight=50)
    sweep = Sweep(AddressPolicy.allowing([f"{world['address']}/32"]), resolver, limits,
                  ca_bundle=str(world["server"].ca))
    order = ["slow.hostile.test", *MANY[:20]]
    results = {r.domain: r for r in asyncio.run(sweep.run([Peer(n) for n in order]))}
    assert results["slow.hostile.test"].error is PeerError.TIMEOUT
    assert all(results[n].error is None and results[n].software == "mastodon" for n in MANY[:20])


@needs_nginx
def test_the_run_time_limit_leaves_peers_not_swept_and_the_run_incomplete(world, tmp_path):
    listed = tmp_path / "slow.txt"
    listed.write_text("\n".join(["slow.hostile.test", *SLOW_MORE]) + "\n")
    code, report = _cli(world, tmp_path, "--from-file", str(listed), "--peer-timeout", "1.5", "--max-time", "2",
                        "--per-address", "1")
    assert code == 3
    peers = _peers(report)
    kinds = sorted(p["error"] for p in peers.values())
    assert kinds == ["not-swept", "not-swept", "timeout"], peers
    assert report["run"]["complete"] is False
    errors = [f for f in report["findings"] if f["status"] == "error"]
    assert any("2 of 3 peers were not swept" in f["message"] for f in errors)
    breakdown = report["extra"]["federation"]["breakdown"]
    assert breakdown["unreachable"] == ["slow.hostile.test"]  # not swept is unknown, not unreachable


@needs_nginx
def test_admin_contacts_go_to_the_contacts_file_only(world, tmp_path):
    listed = tmp_path / "peers.txt"
    listed.write_text("\n".join(GOOD) + "\n")
    contacts = tmp_path / "private" / "contacts.csv"
    out = tmp_path / "reports"
    code = main(["federation", "peers", "--from-file", str(listed), "--resolve-file", str(world["hosts"]), "--no-dns",
                 "--ca-bundle", str(world["server"].ca), "--allow-private", f"{world['address']}/32",
                 "--contacts", str(contacts), "--blocklist", str(tmp_path / "blocks.csv"),
                 "-f", "json", "-f", "html", "-f", "sarif", "-f", "junit", "-f", "terminal", "-o", str(out)])
    assert code == 1
    rows = {r["domain"]: r for r in csv.DictReader(contacts.open())}
    assert set(rows) == {"pixelfed-old.peers.test", "lemmy-old.peers.test", "old-mastodon.peers.test"}
    assert rows["pixelfed-old.peers.test"]["email"] == "admin@pixelfed-old.peers.test"
    assert rows["pixelfed-old.peers.test"]["source"] == "api/v1/instance"  # Pixelfed's v2 answers 404
    assert rows["old-mastodon.peers.test"]["source"] == "api/v2/instance"
    assert rows["lemmy-old.peers.test"]["email"] == ""  # Lemmy publishes none
    assert oct(contacts.stat().st_mode & 0o777) == "0o600"
    for report in out.iterdir():
        assert "admin@" not in report.read_text(), report.name
    sarif = json.loads((out / "mastoaudit-federation.sarif").read_text())
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in sarif["runs"][0]["results"]
            if r["ruleId"] == "federation.vulnerable-peers"}
    assert "https://pixelfed-old.peers.test/" in uris  # a peer, not a file of the repository
    peers = _peers(json.loads((out / "mastoaudit-federation.json").read_text()))
    assert peers["pixelfed-old.peers.test"]["contact_found"] is True
    assert peers["pixelfed-old.peers.test"]["contact"] is None
    assert peers["mastodon.peers.test"]["contact_found"] is None  # not blocked: not looked up


@needs_nginx
def test_the_instance_peer_list(world, tmp_path):
    code, report = _cli(world, tmp_path, "--from-instance", "mastodon.peers.test", "--fail-on", "never")
    assert code == 0
    peers = _peers(report)
    assert set(peers) == {*GOOD, "upper.peers.test"}  # normalised, merged, junk reported
    assert peers["upper.peers.test"]["software"] == "mastodon"
    junk = [f["message"] for f in report["findings"] if f["check_id"] == "input.peer_list"]
    assert len(junk) == 2 and any("an IP address" in m for m in junk)


@needs_nginx
def test_shards_join_into_the_whole_sweep(world, tmp_path):
    listed = tmp_path / "peers.txt"
    listed.write_text("\n".join([*GOOD, *MANY[:30], "html.hostile.test", "nowhere.peers.test", "10.0.0.1", "junk"])
                      + "\n")
    whole_code, whole = _cli(world, tmp_path / "whole", "--from-file", str(listed))
    parts = []
    for i in (1, 2, 3):
        code, part = _cli(world, tmp_path / f"s{i}", "--from-file", str(listed), "--shard", f"{i}/3")
        assert set(_peers(part)) == {d for d in _peers(whole) if shard_of(d, 3) == i}
        parts.append(tmp_path / f"s{i}" / "report.json")
    merged_out = tmp_path / "merged.json"
    code = main(["merge", *map(str, parts), "-f", "json", "-o", str(merged_out)])
    assert code == whole_code
    merged = json.loads(merged_out.read_text())
    ours, theirs = merged["extra"]["federation"], whole["extra"]["federation"]
    jsonschema.validate(ours, json.loads((ROOT / "mastoaudit/data/federation.schema.json").read_text()))

    def strip(peers):
        return sorted((p["domain"], p["software"], p["version"], p["error"]) for p in peers)

    assert strip(ours["peers"]) == strip(theirs["peers"])
    assert ours["breakdown"] == theirs["breakdown"]
    assert ours["sweep"]["peers"] == theirs["sweep"]["peers"] and ours["sweep"]["merged"] == 3
    assert sorted(f["fingerprint"] for f in merged["findings"] if f["status"] == "fail") == \
        sorted(f["fingerprint"] for f in whole["findings"] if f["status"] == "fail")
    assert _verdicts(merged) == _verdicts(whole)  # finding for finding, not only the failures
    assert merged["summary"]["by_status"] == whole["summary"]["by_status"]


def _verdicts(report: dict) -> list[tuple]:
    return sorted((f["check_id"], f["status"], f["target"], f["fingerprint"], str(f.get("location")))
                  for f in report["findings"])


# --- without nginx --------------------------------------------------------------------------------


def test_resolver_maps_and_their_errors():
    assert read_resolve_entries(["a.example=192.0.2.1", "*.b.example=2001:db8::1"]) == {
        "a.example": ["192.0.2.1"], "*.b.example": ["2001:db8::1"]}
    with pytest.raises(ValueError):
        read_resolve_entries(["a.example=not-an-ip"])
    assert read_hosts_file("# c\n192.0.2.1 a.example A2.example.\n\n", "f") == {
        "a.example": ["192.0.2.1"], "a2.example": ["192.0.2.1"]}
    with pytest.raises(ValueError, match="f:1"):
        read_hosts_file("a.example 192.0.2.1\n", "f")
    resolver = PeerResolver({"a.example": ["192.0.2.1"], "*.b.example": ["192.0.2.2"], "*.x.b.example": ["192.0.2.3"]},
                            server=None)
    assert asyncio.run(resolver("A.example.")) == ["192.0.2.1"]
    assert asyncio.run(resolver("deep.x.b.example")) == ["192.0.2.3"]  # the longest suffix wins
    assert asyncio.run(resolver("c.b.example")) == ["192.0.2.2"]
    assert asyncio.run(resolver("unmapped.example")) == []  # a closed world: no DNS at all


def _sweep_whole_and_in_three_shards(tmp_path: Path, listed: Path, capsys) -> None:
    """whole.json, s1..s3.json (--shard i/3) and merged.json in tmp_path. The names resolve to an
    address the sweep refuses: every peer read to an error, no network."""
    common = ["federation", "peers", "--from-file", str(listed), "--no-dns", "--resolve", "*.example=127.0.0.1",
              "-q", "-f", "json", "--fail-on", "never"]
    assert main([*common, "-o", str(tmp_path / "whole.json")]) == 0
    for i in (1, 2, 3):
        assert main([*common, "-o", str(tmp_path / f"s{i}.json"), "--shard", f"{i}/3"]) == 0
    assert main(["merge", *(str(tmp_path / f"s{i}.json") for i in (1, 2, 3)), "-f", "json",
                 "-o", str(tmp_path / "merged.json")]) == 0
    capsys.readouterr()


def test_shards_of_a_sweep_merge_finding_for_finding(tmp_path, capsys):
    """The shards share one target (the peer list): before, each shard's copy of every junk line and
    its "no peer runs a version with a known advisory" pass all landed in the merged report."""
    listed = tmp_path / "peers.txt"
    listed.write_text("".join(f"p{i}.example\n" for i in range(12)) + "10.0.0.1\nfoo\nhttps://x.example/\n")
    _sweep_whole_and_in_three_shards(tmp_path, listed, capsys)
    whole, merged = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("whole", "merged"))
    assert _verdicts(merged) == _verdicts(whole)
    assert merged["summary"]["by_status"] == whole["summary"]["by_status"]
    assert sum(f["check_id"] == "input.peer_list" for f in merged["findings"]) == 3


def test_a_shard_that_holds_no_peers_says_so(tmp_path, capsys):
    """Before, a shard with no peers of its own skipped the advisory check as "not applicable: no
    federation_peers found for this target", as if the sweep had not run; and that skip stayed in
    the merged report beside the other shards' verdict."""
    listed = tmp_path / "peers.txt"
    listed.write_text("p0.example\n")
    owner = shard_of("p0.example", 3)
    _sweep_whole_and_in_three_shards(tmp_path, listed, capsys)
    for i in {1, 2, 3} - {owner}:
        part = json.loads((tmp_path / f"s{i}.json").read_text())
        advisory = [f for f in part["findings"] if f["check_id"] == "federation.vulnerable-peers"]
        assert [(f["status"], f["message"]) for f in advisory] == [
            ("skip", f"this shard ({i} of 3) holds none of the 1 peer")]
    whole, merged = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("whole", "merged"))
    assert _verdicts(merged) == _verdicts(whole)
    assert not any("holds none" in f["message"] for f in merged["findings"])


def test_a_sweep_where_no_name_resolves_is_incomplete_and_says_why(tmp_path, capsys):
    """A resolver that answers nothing (no DNS reachable from here): every peer fails DNS. Before,
    the run ended "clean" (exit 0, the advisory check passed over peers it never read)."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # takes the queries, answers none
    silent.bind(("127.0.0.1", 0))
    try:
        listed = tmp_path / "peers.txt"
        listed.write_text("".join(f"p{i}.example\n" for i in range(4)))
        out = tmp_path / "out"
        code = main(["federation", "peers", "--from-file", str(listed), "--resolver",
                     f"127.0.0.1:{silent.getsockname()[1]}", "--dns-timeout", "0.5",
                     "-f", "json", "-f", "html", "-f", "terminal", "-o", str(out)])
    finally:
        silent.close()
    printed = capsys.readouterr()
    assert code == 3
    assert "warning: no peer name resolved: is DNS reachable from here?" in printed.err
    assert "! no peer name resolved: is DNS reachable from here?" in printed.out
    report = json.loads((out / "mastoaudit-federation.json").read_text())
    assert report["run"]["complete"] is False
    assert [(f["message"], f["component"]) for f in report["findings"] if f["status"] == "error"] == [
        ("no peer name resolved: is DNS reachable from here?", "federation")]
    assert report["findings"] and all(f["component"] == "federation" for f in report["findings"])
    # nothing was read of any peer: the advisory check says so instead of passing
    [advisory] = [f for f in report["findings"] if f["check_id"] == "federation.vulnerable-peers"]
    assert advisory["status"] == "skip" and "could be read" in advisory["message"]
    assert {p["error"] for p in report["extra"]["federation"]["peers"]} == {"dns"}
    assert "no peer name resolved: is DNS reachable from here?</strong>" in \
        (out / "mastoaudit-federation.html").read_text()


def test_one_name_that_resolves_is_enough(tmp_path, capsys):
    """Only a sweep where every peer failed DNS is suspect: one unknown name among others is that
    peer's own error, and --no-dns says what it means."""
    listed = tmp_path / "peers.txt"
    listed.write_text("gone.example\nthere.example\n")
    common = ["federation", "peers", "--from-file", str(listed), "--no-dns", "-q", "-f", "json", "--fail-on", "never"]
    assert main([*common, "--resolve", "there.example=127.0.0.1", "-o", str(tmp_path / "one.json")]) == 0
    assert main([*common, "-o", str(tmp_path / "none.json")]) == 3
    capsys.readouterr()
    none = json.loads((tmp_path / "none.json").read_text())
    assert [f["message"] for f in none["findings"] if f["status"] == "error"] == [
        "no peer name resolved: is DNS reachable from here? (--no-dns: only the names in --resolve/--resolve-file "
        "resolve)"]


def test_a_pass_about_the_whole_sweep_gives_way_to_a_shard_that_found_otherwise():
    from mastoaudit.merge import _sweep_findings

    def shard(members, findings):
        return ("s", {"run": {"shard": {"members": [{"name": m} for m in members]}}, "findings": findings})

    def finding(status, subject, fingerprint):
        return {"check_id": "federation.vulnerable-peers", "status": status, "target": "peers", "subject": subject,
                "fingerprint": fingerprint, "message": status}

    clean = finding("pass", "peers", "whole")
    assert _sweep_findings([shard(["a.example"], [clean]), shard(["b.example"], [clean])]) == [clean]
    bad = finding("fail", "b.example", "b")
    assert _sweep_findings([shard(["a.example"], [clean]), shard(["b.example"], [bad])]) == [bad]
    each = finding("pass", "a.example", "a")  # a pass about one peer stays
    assert _sweep_findings([shard(["a.example"], [each]), shard(["b.example"], [bad])]) == [each, bad]


def test_list_only_and_the_shard_split(tmp_path, capsys):
    listed = tmp_path / "peers.txt"
    names = [f"p{i}.example" for i in range(40)]
    listed.write_text("\n".join(names) + "\n")
    assert main(["federation", "peers", "--from-file", str(listed), "--list-only", "--shard", "2/4"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [n for n in names if shard_of(n, 4) == 2] and printed


def test_usage_errors(tmp_path, capsys):
    assert main(["federation", "peers"]) == 2
    assert "which peers?" in capsys.readouterr().err
    listed = tmp_path / "p.txt"
    listed.write_text("a.example\n")
    for bad in (["--allow-private", "nonsense"], ["--resolve", "x"], ["--peer-timeout", "0"],
                ["--in-flight", "0"], ["--resolver", "not an ip"], ["--from-file", str(tmp_path / "missing")]):
        assert main(["federation", "peers", "--from-file", str(listed), *bad]) == 2, bad


@needs_nginx
@pytest.mark.browser
def test_the_federation_section_in_a_browser(world, browser, tmp_path):  # noqa: F811
    """The HTML report's federation section: drawn (chart, tables, CSV), a hostile version string
    shown as text and never run, no CSP violation, no request anywhere."""
    listed = tmp_path / "peers.txt"
    listed.write_text("\n".join([*GOOD, "markup.hostile.test", "html.hostile.test", "nowhere.peers.test"]) + "\n")
    out = tmp_path / "reports"
    main(["federation", "peers", "--from-file", str(listed), "--resolve-file", str(world["hosts"]), "--no-dns",
          "--ca-bundle", str(world["server"].ca), "--allow-private", f"{world['address']}/32",
          "--blocklist", str(tmp_path / "blocks.csv"), "-f", "html", "-f", "json", "-o", str(out)])
    peers = _peers(json.loads((out / "mastoaudit-federation.json").read_text()))
    assert peers["markup.hostile.test"]["version"] == MARKUP  # recorded as announced, judged unknown
    assert peers["markup.hostile.test"]["advisories"] is None
    context, page, problems = _open(browser, out / "mastoaudit-federation.html")
    try:
        section = page.locator("#federation")
        assert section.is_visible()
        assert page.locator("#federation svg rect.fed-affected").count() >= 3  # pixelfed, lemmy, mastodon
        text = section.inner_text()
        assert MARKUP in text  # as text
        assert "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate" in text
        assert "pixelfed-old.peers.test" in text and "nowhere.peers.test" in text
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert page.evaluate("window.__cspViolations") == []
        assert problems == []
    finally:
        context.close()


def test_federation_section_html(tmp_path):
    """Without a browser: the section renders from a report's JSON alone, capped, escaped."""
    from mastoaudit.reporting.federation_view import MAX_ROWS
    from mastoaudit.reporting.html import render_document

    peers = [{"domain": f"p{i}.example", "software": "pixelfed", "version": "0.12.4", "error": None, "detail": None,
              "unavailable": False, "nodeinfo_url": None, "contact": None, "contact_found": None, "schema": "2.0",
              "address": "192.0.2.1", "blocked": None, "blocked_by": None,
              "advisories": [{"id": "GHSA-7287-grhx-542x", "aliases": ["CVE-2025-30741"], "summary": "s",
                              "severity": "high", "fixed_in": "0.12.5"}]} for i in range(MAX_ROWS + 5)]
    peers.append({**peers[0], "domain": "evil.example", "version": MARKUP, "advisories": None})
    from mastoaudit.federation.breakdown import summarise, verdicts_from_section
    from mastoaudit.federation.report import breakdown_dict

    section = {"database": None, "peers": peers, "impact": [], "problems": [], "sweep": None,
               "breakdown": breakdown_dict(summarise(verdicts_from_section(peers))),
               "decisions": {"block": [], "already_blocked": [], "refederate": [], "block_for": []},
               "advisories": {"sources": ["builtin"], "count": 1}}
    doc = {"$schema": "x", "schema_version": "1.1", "tool": {"name": "mastoaudit", "version": "0"},
           "run": {"command": "federation peers", "started_at": "2026-01-01T00:00:00+00:00", "duration_s": 1.0,
                   "complete": True, "targets": []},
           "summary": {"checks_run": 0, "by_status": {}, "by_severity": {}, "exit_code": 0},
           "checks": [], "findings": [], "threats": [], "components": [], "extra": {"federation": section}}
    page = render_document(doc)
    assert 'id="federation"' in page and "<svg" in page
    assert MARKUP not in page and "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in page
    assert f"… and 5 more vulnerable peers (all {MAX_ROWS + 5} are in the JSON report)" in page


def test_the_progress_bar_shows_on_a_terminal_only():
    import io

    from mastoaudit.federation.cli import SweepProgress

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    shown, hidden = Tty(), io.StringIO()
    for stream in (shown, hidden):
        bar = SweepProgress.for_stream(stream)
        bar.start(4)
        for _ in range(4):
            bar.advance()
        bar.close()
    assert "sweeping peers [" in shown.getvalue() and "4/4" in shown.getvalue()
    assert hidden.getvalue() == ""  # a CI log or a redirected stderr gets nothing
    quiet = Tty()
    SweepProgress.for_stream(quiet, quiet=True).start(3)
    assert quiet.getvalue() == ""
