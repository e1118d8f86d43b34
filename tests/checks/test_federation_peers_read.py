"""federation.vulnerable-peers passes only over peers whose software was read: a sweep in which
every peer ended in an error says so (a skip, no answer) instead of "none runs a version with a known
advisory" (which graded the federation A+ over peers no one had read)."""

from __future__ import annotations

from mastoaudit import kinds
from mastoaudit.engine import run_check
from mastoaudit.facts import FactSet
from mastoaudit.federation.breakdown import PeerVerdict, summarise
from mastoaudit.federation.peers import PeerError, PeerResult
from mastoaudit.merge import _sweep_findings
from mastoaudit.model import SkipReason, Status
from mastoaudit.redact import Redactor


def _findings(registry, *results: PeerResult):
    facts = FactSet("peers")
    facts.add(kinds.FEDERATION_PEERS, summarise([PeerVerdict(r, []) for r in results]))
    check = next(c for c in registry if c.meta.id == "federation.vulnerable-peers")
    return run_check(check, facts, Redactor(set(), set()))


def test_no_peer_read_is_a_skip_not_a_pass(registry):
    [f] = _findings(registry, PeerResult("a.example", error=PeerError.DNS),
                    PeerResult("b.example", error=PeerError.TIMEOUT))
    assert f.status is Status.SKIP and f.skip_reason is SkipReason.NO_ANSWER
    assert "none of the 2 federated peers could be read" in f.message


def test_a_pass_counts_only_the_peers_read(registry):
    [f] = _findings(registry, PeerResult("a.example", software="mastodon", version="4.3.2"),
                    PeerResult("b.example", error=PeerError.REFUSED))
    assert f.status is Status.PASS
    assert "none of the 1 peer whose software was read" in f.message and "1 could not be read" in f.message


def test_shards_merge_the_unread_skip_once_and_drop_it_where_another_shard_judged():
    def shard(members, findings):
        return ("s", {"run": {"shard": {"members": [{"name": m} for m in members]}}, "findings": findings})

    def finding(status, fingerprint):
        return {"check_id": "federation.vulnerable-peers", "status": status, "target": "peers", "subject": "peers",
                "fingerprint": fingerprint, "message": status}

    unread = finding("skip", "u")
    assert _sweep_findings([shard(["a.example"], [unread]), shard(["b.example"], [unread])]) == [unread]
    clean = finding("pass", "p")
    assert _sweep_findings([shard(["a.example"], [unread]), shard(["b.example"], [clean])]) == [clean]
