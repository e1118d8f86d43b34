"""The network half of an audit beside its SSH collection (mastoaudit/sources/overlap.py): it starts
on the .env.production that counts (the first audited app host's that could be read), not before
and not later than it must; the port scan starts at once because nothing in the env changes what
it reads; and what both halves found ends in the web host's facts, as when they ran one after the
other. The probes and the collector are stand-ins here (what they do is tested elsewhere); the
timing is observed through events, never measured.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest

from mastoaudit.facts import FactSet, HostInfo
from mastoaudit.facts.ports import PortResult
from mastoaudit.facts.tls import HTTPS, TlsEndpoint
from mastoaudit.inventory import Host, Inventory, SshSettings
from mastoaudit.net.runner import Probe
from mastoaudit.net.target import ScanTarget
from mastoaudit.parsers import SourceFile
from mastoaudit.parsers.env import parse_mastodon_env
from mastoaudit.sources import overlap
from mastoaudit.targets import with_env

from ..conftest import DEMO

PORTS_READS = ("name", "addresses", "scan_addresses", "ports", "timeout")  # mastoaudit/probes/ports.py
PORT = PortResult("127.0.0.1", 6379, "open")
ENDPOINT = TlsEndpoint("mastodon.example", 443, "127.0.0.1", HTTPS, "mastodon.example", "mastodon.example:443")


def _env(path: Path):
    return parse_mastodon_env(SourceFile(str(path), path.read_bytes()))


def test_env_free_probes_read_nothing_the_env_changes():
    base = ScanTarget(name="web1", local_domain="mastodon.example", web_domain="mastodon.example",
                      addresses=("203.0.113.10",), scan_addresses=("203.0.113.10", "10.0.0.5"))
    for tree in ("weak", "hardened", "official"):
        env = _env(next((DEMO / tree).rglob(".env.production")))
        changed = {f.name for f in dataclasses.fields(ScanTarget)
                   if getattr(with_env(base, env), f.name) != getattr(base, f.name)}
        assert changed, tree  # the env does change the target ...
        assert not changed & set(PORTS_READS), (tree, changed)  # ... but nothing the port scan reads
    assert {"ports"} == overlap.ENV_FREE


class Recorder:
    """Stand-ins for the probes: each run records its target; the late run waits to be released."""

    def __init__(self, monkeypatch) -> None:
        self.early_target = None
        self.late_target = None
        self.late_started = threading.Event()
        self.release = threading.Event()
        self.prefetched = []
        probes = [Probe(name, lambda t, c: (), 5.0, "") for name in ("http-headers", "ports", "tls")]
        monkeypatch.setattr(overlap, "all_probes", lambda: probes)
        monkeypatch.setattr("mastoaudit.probes.tls.prefetch", self.prefetched.append)
        monkeypatch.setattr("mastoaudit.net.runner.run_probes", self.run_early)
        monkeypatch.setattr("mastoaudit.sources.network.collect_network", self.run_late)
        monkeypatch.setattr(overlap, "env_from_result", lambda inventory, host, result: result.get("env"))

    def run_early(self, target, facts, probes, on_done=None):
        assert [p.name for p in probes] == ["ports"]
        self.early_target = target
        facts.add("port", PORT)
        on_done("ports")
        return {"ports": 0.5}

    def run_late(self, target, facts, probes, on_done=None):
        assert sorted(p.name for p in probes) == ["http-headers", "tls"]
        self.late_target = target
        self.late_started.set()
        assert self.release.wait(10)
        facts.add("host_info", HostInfo("from the probes", "127.0.0.1", ("web",), "", ""))
        facts.add("tls_endpoint", ENDPOINT)
        facts.add("probe_timings", {"tls": 1.0, "http-headers": 0.2})
        facts.problem("network", "one probe failed")
        return facts


def _host(name: str, roles=("web", "app")) -> Host:
    return Host(name=name, address="127.0.0.1", roles=roles, ssh=SshSettings())


def _half(hosts: list[Host]) -> overlap.NetworkHalf:
    inventory = Inventory(source="inv.yaml", local_domain="mastodon.example", web_domain="mastodon.example",
                          hosts=hosts)
    base = ScanTarget(name=hosts[0].name, local_domain="mastodon.example", web_domain="mastodon.example",
                      addresses=("127.0.0.1",))
    return overlap.NetworkHalf(inventory, hosts, hosts[0],
                               lambda env: dataclasses.replace(base, media_host=env), clock=0.0)


def _home(name: str) -> FactSet:
    facts = FactSet(target=name)
    facts.add("host_info", HostInfo(name, "127.0.0.1", ("web",), "", ""))
    return facts


def test_starts_on_the_env_of_the_first_app_host_and_joins_the_facts(monkeypatch):
    probes = Recorder(monkeypatch)
    web, app, db = _host("web1"), _host("app1", ("app",)), _host("db1", ("db",))
    half = _half([web, app, db])
    assert [t.media_host for t in probes.prefetched] == [None]  # the web domain's TLS, before anything is read
    half.loading.join()
    assert probes.early_target is not None and probes.early_target.media_host is None  # the port scan, at once
    # A later host's env does not count while an earlier one's is still unknown ...
    half.on_result("app1", "env-file", {"env": "media.app1.example"})
    assert not probes.late_started.wait(0.2)
    half.on_result("db1", "env-file", {"env": "ignored: not an app host"})
    # ... the first app host's does, and the probes start while SSH still runs.
    half.on_result("web1", "env-file", {"env": "media.web1.example"})
    assert probes.late_started.wait(10)
    assert probes.late_target.media_host == "media.web1.example"
    probes.release.set()
    homes = [_home("web1"), _home("app1"), _home("db1")]
    timings = half.finish(homes)
    web_facts = homes[0]
    assert [h.name for h in web_facts.all("host_info")] == ["web1"]  # the host's own, not the probes'
    assert web_facts.all("tls_endpoint") == [ENDPOINT] and web_facts.all("port") == [PORT]
    assert [p.message for p in web_facts.problems] == ["one probe failed"]
    assert timings["probes"] == {"tls": 1.0, "ports": 0.5, "http-headers": 0.2}  # slowest first
    assert not homes[1].has("tls_endpoint") and not homes[2].has("port")


def test_an_unreadable_env_passes_to_the_next_app_host(monkeypatch):
    probes = Recorder(monkeypatch)
    half = _half([_host("web1"), _host("app1", ("app",))])
    half.on_result("web1", "env-file", {"error": "sudo refused"})
    half.on_result("app1", "env-file", {"env": "media.app1.example"})
    assert probes.late_started.wait(10)
    assert probes.late_target.media_host == "media.app1.example"
    probes.release.set()
    half.finish([_home("web1"), _home("app1")])


def test_a_host_that_fails_gives_no_env_and_the_next_counts(monkeypatch):
    probes = Recorder(monkeypatch)
    half = _half([_host("web1"), _host("app1", ("app",))])
    half.on_result("app1", "env-file", {"env": "media.app1.example"})
    half.on_host("web1", "failed: host key refused")
    assert probes.late_started.wait(10) and probes.late_target.media_host == "media.app1.example"
    probes.release.set()
    half.finish([_home("web1"), _home("app1")])


def test_without_an_early_env_the_probes_start_at_the_end_with_the_collection(monkeypatch):
    probes = Recorder(monkeypatch)
    half = _half([_host("web1")])
    assert not probes.late_started.is_set()
    probes.release.set()
    home = _home("web1")
    env = _env(DEMO / "weak" / "home" / "mastodon" / "live" / ".env.production")
    home.add("mastodon_env", env)
    half.finish([home])
    assert probes.late_target.media_host is env  # the stand-in target keeps what make_target got
    assert home.all("tls_endpoint") == [ENDPOINT]


def test_no_home_host_in_this_run_means_no_probe(monkeypatch):
    probes = Recorder(monkeypatch)
    web, app = _host("web1"), _host("app1", ("app",))
    inventory = Inventory(source="inv.yaml", local_domain="x.example", web_domain="x.example", hosts=[web, app])
    half = overlap.NetworkHalf(inventory, [app], None, lambda env: None, clock=0.0)  # another shard has web1
    half.on_result("app1", "env-file", {"env": "media"})
    assert half.finish([_home("app1")]) is None
    assert probes.early_target is None and probes.late_target is None and not probes.prefetched


@pytest.fixture(autouse=True)
def _no_workers(monkeypatch):
    monkeypatch.setenv("MASTOAUDIT_WORKERS", "0")
