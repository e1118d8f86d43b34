"""A real `mastoaudit federation peers` sweep inside network namespaces this test creates, peers
found through a real DNS server (Knot, as the lab's), the way the sweep meets the fediverse: no
resolver map and no --allow-private at all. Listeners on private, CGNAT, link-local (the cloud
metadata address) and loopback addresses record every connection they receive: the hostile peers
point the sweep at each of them, and none may be reached.

The world (two namespaces joined by a veth pair, as tests/net/test_namespace.py builds it):

    sweeper ns "S": lo (127.0.0.1: recording listeners on 80 and 443), 10.201.0.2 -> default via N
    network ns "N": 10.201.0.1, and on the same link
        11.0.0.20   nginx serving every peer name (lab/peers.py), a public address as in the wild
        11.0.0.53   Knot, authoritative for peers.test: the peers, and names for every forbidden address
        10.7.0.5, 100.64.0.5, 169.254.169.254   recording listeners on 80 and 443

Root only (CI runs as root); skips otherwise.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time

import pytest

from lab.peers import HOSTILE, PeerServer, ServedPeer
from tests.net.test_namespace import PROBLEM, make_namespaces, remove_namespaces, serve_in, start_knot, wait_for_knot

from ..conftest import ROOT

pytestmark = pytest.mark.skipif(PROBLEM is not None, reason=PROBLEM or "")

SITE, DNS = "11.0.0.20", "11.0.0.53"
FORBIDDEN_N = ("10.7.0.5", "100.64.0.5", "169.254.169.254")
FORBIDDEN_S = ("127.0.0.1",)
GOOD = {"mastodon.peers.test": ("mastodon", "4.5.11"), "pixelfed.peers.test": ("pixelfed", "0.12.4"),
        "misskey.peers.test": ("misskey", "2026.5.0"), "lemmy-old.peers.test": ("lemmy-old", "v0.16.7"),
        "akkoma.peers.test": ("akkoma", "3.13.2")}
# Peers whose own names resolve where the sweep must not go: never contacted.
OWN_NAME = {"own-private.peers.test": "10.7.0.5", "own-metadata.peers.test": "169.254.169.254",
            "own-cgnat.peers.test": "100.64.0.5", "own-loopback.peers.test": "127.0.0.1"}

ZONE_HEAD = """$ORIGIN peers.test.
$TTL 60
@        SOA   ns1 hostmaster 1 60 60 60 60
@        NS    ns1
ns1      A     {dns}
private  A     10.7.0.5
cgnat    A     100.64.0.5
meta     A     169.254.169.254
lo       A     127.0.0.1
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tag = secrets.token_hex(3)
    s_ns, n_ns = f"ma-ss-{tag}", f"ma-sn-{tag}"
    d = tmp_path_factory.mktemp("sweepns")
    procs: list[subprocess.Popen] = []
    server = None
    try:
        make_namespaces("ma-s", tag, 201, (SITE, DNS, *FORBIDDEN_N))
        served = [ServedPeer(name, shape, version, f"admin@{name}") for name, (shape, version) in GOOD.items()]
        served += [ServedPeer(f"{kind}.peers.test", kind) for kind in HOSTILE]
        server = PeerServer(served, SITE, d / "nginx", netns=n_ns, targets={
            "loopback": "http://127.0.0.1/.well-known/nodeinfo",
            "metadata": "http://169.254.169.254/latest/meta-data/",
            "private": "https://private.peers.test/.well-known/nodeinfo"})
        zone = ZONE_HEAD.format(dns=DNS) + "".join(f"{p.domain.removesuffix('.peers.test')} A {SITE}\n"
                                                    for p in served)
        zone += "".join(f"{name.removesuffix('.peers.test')} A {addr}\n" for name, addr in OWN_NAME.items())
        procs.append(start_knot(n_ns, d / "knot", DNS, "peers.test", zone))
        n_log, s_log = d / "network-side.jsonl", d / "sweeper-side.jsonl"
        (d / "n.json").write_text(json.dumps({"log": str(n_log), "listeners": [[a, p] for a in FORBIDDEN_N
                                                                               for p in (80, 443)]}))
        (d / "s.json").write_text(json.dumps({"log": str(s_log), "listeners": [[a, p] for a in FORBIDDEN_S
                                                                               for p in (80, 443)]}))
        for ns, config in ((n_ns, d / "n.json"), (s_ns, d / "s.json")):
            procs.append(serve_in(ns, config, f"the listeners in {ns}"))
        server.start()
        wait_for_knot(s_ns, DNS, "meta.peers.test", "169.254.169.254")
        yield {"s": s_ns, "n": n_ns, "dir": d, "logs": (n_log, s_log), "server": server,
               "names": {p.domain for p in served}}
    finally:
        if server is not None:
            server.stop()
        for proc in procs:
            proc.kill()
            proc.wait(timeout=10)
        remove_namespaces(s_ns, n_ns)


def _connections(world) -> list[dict]:
    found = []
    for log in world["logs"]:
        if log.exists():
            found += [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return found


def test_the_listeners_record_connections(world):
    """The canary: a connection made on purpose from the sweeper's namespace is recorded (so an
    empty record after the sweep means something)."""
    before = len(_connections(world))
    for address in ("169.254.169.254", "127.0.0.1", "10.7.0.5"):
        subprocess.run(["ip", "netns", "exec", world["s"], sys.executable, "-c",
                        f"import socket; socket.create_connection(('{address}', 443), timeout=5).close()"],
                       check=True, capture_output=True, timeout=30)
    deadline = time.monotonic() + 10
    while len(_connections(world)) < before + 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert {e["address"] for e in _connections(world)[before:]} == {"169.254.169.254", "127.0.0.1", "10.7.0.5"}


def test_hostile_peers_cannot_turn_the_sweep(world):
    listed = world["dir"] / "peers.txt"
    listed.write_text("\n".join(sorted([*world["names"], *OWN_NAME, "nxdomain.peers.test"])) + "\n")
    out = world["dir"] / "report.json"
    before = len(_connections(world))
    done = subprocess.run(
        ["ip", "netns", "exec", world["s"], sys.executable, "-m", "mastoaudit", "federation", "peers",
         "--from-file", str(listed), "--resolver", DNS, "--ca-bundle", str(world["server"].ca),
         "--peer-timeout", "2", "-f", "json", "-o", str(out), "--fail-on", "never"],
        cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    leaked = _connections(world)[before:]
    assert not leaked, leaked
    report = json.loads(out.read_text())
    peers = {p["domain"]: p for p in report["extra"]["federation"]["peers"]}
    for name, (_shape, version) in GOOD.items():
        assert (peers[name]["version"], peers[name]["error"]) == (version, None), peers[name]
    for kind, expected in HOSTILE.items():
        assert peers[f"{kind}.peers.test"]["error"] == expected, peers[f"{kind}.peers.test"]
    for name, address in OWN_NAME.items():
        assert peers[name]["error"] == "private-address", peers[name]
        assert address in peers[name]["detail"]
    assert "cloud metadata" in peers["own-metadata.peers.test"]["detail"]
    assert peers["nxdomain.peers.test"]["error"] == "dns"
    # Not vacuous: nginx was asked by every peer it serves, under their own names only.
    seen = world["server"].requests()
    assert {r["host"] for r in seen} == world["names"] - {"bad-tls.peers.test"}
    assert {r["addr"] for r in seen} == {SITE}
