"""The one outbound client (net/client.py, its blocking facade net/http.py, the TCP gate
net/sockets.py) against real local servers that behave as hostile peers do: the address judged is
the address connected to, redirects are judged hop by hop, every request ends by its deadline
(trickled bodies and headers included), bodies, decompression, headers and concurrency are bounded.

Forbidden addresses here are other loopback addresses (127.0.0.2...) with a listener that records
every connection: the policy allows only 127.0.0.1, so a connection to the listener would be a leak.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import threading
import time
import tracemalloc

import pytest

from mastoaudit.addresses import AddressPolicy
from mastoaudit.facts import FactSet
from mastoaudit.net.client import Client, FetchError, Kind, Limits
from mastoaudit.net.http import HttpClient, HttpError
from mastoaudit.net.runner import Probe, run_probes
from mastoaudit.net.sockets import NotPermitted, TcpGate
from mastoaudit.net.target import ScanTarget
from tests import netlab
from tests.netlab import HttpServer, Listener, Recorder

ALLOWED = AddressPolicy.allowing(["127.0.0.1"])
FORBIDDEN = "127.0.0.2"  # loopback too, but not allowed: a stand-in for 10.x, 169.254.169.254...


def run(coro):
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def world():
    """One server on 127.0.0.1 with every behaviour, and a recording listener on the forbidden
    address at the same port (so a leak would land there)."""
    recorder = Recorder()
    routes = {
        "/ok": netlab.respond(200, b"fine", [("Set-Cookie", "session=secret; Secure")]),
        "/json": netlab.json_doc({"software": {"name": "mastodon"}}),
        "/not-json": netlab.respond(200, b"<html>", [("Content-Type", "text/html")]),
        "/missing": netlab.respond(404, b"no"),
        "/trickle": netlab.trickle(0.2),
        "/slowloris": netlab.trickle(0.2, head=False),
        "/huge": netlab.huge(),
        "/bomb": netlab.gzip_bomb(),
        "/loop": netlab.redirect("/loop"),
        "/many-headers": netlab.respond(200, b"", [(f"X-{i}", "v") for i in range(150)]),
        "/huge-header": netlab.respond(200, b"", [("X-Big", "A" * 200_000)]),
        "/slow": GAUGE,
        "/echo": lambda conn, req: netlab.respond(200, json.dumps(req["headers"]).encode())(conn, req),
    }
    server = HttpServer("127.0.0.1", 0, routes, recorder=recorder)
    port = server.port
    routes["/to-forbidden"] = netlab.redirect(f"http://{FORBIDDEN}:{port}/ok")
    routes["/to-metadata"] = netlab.redirect("http://169.254.169.254/latest/meta-data/")
    routes["/to-private-name"] = netlab.redirect(f"http://private.test:{port}/ok")
    routes["/to-allowed-name"] = netlab.redirect(f"http://site.test:{port}/ok")
    routes["/to-ftp"] = netlab.redirect("ftp://site.test/")
    leak = Recorder()
    listener = Listener(FORBIDDEN, port, leak)
    yield port, server, leak
    listener.close()
    server.close()


class Gauge:
    """A slow answer that counts how many requests it serves at once."""

    def __init__(self) -> None:
        self.now = self.most = 0
        self.lock = threading.Lock()

    def __call__(self, conn, request) -> None:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            time.sleep(0.2)
        finally:
            with self.lock:
                self.now -= 1
        netlab.respond(200, b"slow")(conn, request)


GAUGE = Gauge()
LOOKUPS: list[str] = []


async def fake_dns(name: str) -> list[str]:
    LOOKUPS.append(name)
    return {"site.test": ["127.0.0.1"], "private.test": [FORBIDDEN], "mixed.test": [FORBIDDEN, "127.0.0.1"],
            "meta.test": ["169.254.169.254"]}.get(name, [])


def client(**limits) -> Client:
    return Client(ALLOWED, resolve=fake_dns, limits=Limits(**{"connect": 2, "read": 2, "total": 4, **limits}))


def test_the_address_judged_is_the_address_connected_to(world):
    port, _, leak = world

    async def go():
        LOOKUPS.clear()
        r = await client().request(f"http://mixed.test:{port}/ok")
        return r

    r = run(go())
    assert r.status == 200 and r.address == "127.0.0.1"
    assert LOOKUPS == ["mixed.test"]  # resolved once: nothing between judging and connecting
    assert not leak.events


@pytest.mark.parametrize("url, where", [
    ("http://private.test:{port}/ok", "127.0.0.2 (loopback)"),
    ("http://127.0.0.2:{port}/ok", "127.0.0.2 (loopback)"),
    ("http://meta.test/", "169.254.169.254 (link-local, cloud metadata)"),
    ("http://[::ffff:127.0.0.2]:{port}/ok", "loopback"),
])
def test_a_forbidden_first_hop_is_never_contacted(world, url, where):
    port, _, leak = world
    with pytest.raises(FetchError) as caught:
        run(client().request(url.format(port=port)))
    assert caught.value.kind == Kind.PRIVATE and where in str(caught.value)
    assert "refused" not in str(caught.value).lower()  # probes read "refused" as "nothing listens"
    assert not leak.events


@pytest.mark.parametrize("path, where", [("/to-forbidden", "127.0.0.2"), ("/to-metadata", "169.254.169.254"),
                                         ("/to-private-name", "private.test resolves to 127.0.0.2")])
def test_redirects_are_judged_hop_by_hop(world, path, where):
    port, _, leak = world
    r = run(client().request(f"http://site.test:{port}{path}", follow=True))
    assert r.status == 302 and r.blocked_redirect and where in r.blocked_redirect, r.blocked_redirect
    assert not leak.events
    result = run(client().fetch_json(f"http://site.test:{port}{path}", verify="off"))
    assert result.kind == Kind.REDIRECT_REFUSED


def test_redirects_followed_loops_and_schemes(world):
    port, _, _ = world
    r = run(client().request(f"http://site.test:{port}/to-allowed-name", follow=True))
    assert r.status == 200 and r.body == b"fine" and r.redirects == [f"http://site.test:{port}/to-allowed-name"]
    with pytest.raises(FetchError) as caught:
        run(client().request(f"http://site.test:{port}/loop", follow=True))
    assert caught.value.kind == Kind.REDIRECTS
    r = run(client().request(f"http://site.test:{port}/to-ftp", follow=True))
    assert "not http or https" in (r.blocked_redirect or "")


@pytest.mark.parametrize("path", ["/trickle", "/slowloris"])
def test_a_trickling_server_ends_at_the_total_deadline(world, path):
    """One byte every 0.2 s never trips the 2 s per-read limit: only the total deadline ends it."""
    port, _, _ = world
    with pytest.raises(FetchError) as caught:
        run(client(total=1.5).request(f"http://site.test:{port}{path}"))
    assert caught.value.kind == Kind.TIMEOUT and "no complete answer within 2 s" in str(caught.value)


def test_bodies_are_capped(world):
    port, _, _ = world
    r = run(client().request(f"http://site.test:{port}/huge", max_body=1000))
    assert r.truncated and len(r.body) == 1000
    result = run(client().fetch_json(f"http://site.test:{port}/huge", max_bytes=4096, verify="off"))
    assert result.kind == Kind.TOO_LARGE


def test_a_gzip_bomb_is_inflated_only_up_to_the_cap(world):
    port, _, _ = world
    netlab.bomb()  # made before measuring
    tracemalloc.start()
    try:
        result = run(client(total=10).fetch_json(f"http://site.test:{port}/bomb", max_bytes=64 * 1024, verify="off"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.kind == Kind.TOO_LARGE
    assert peak < 16 * 1024 * 1024, peak  # 200 MB inflated would need 200 MB


@pytest.mark.parametrize("path, text", [("/many-headers", "more than 100 headers"), ("/huge-header", "HTTP")])
def test_headers_are_bounded(world, path, text):
    port, _, _ = world
    with pytest.raises(FetchError) as caught:
        run(client().request(f"http://site.test:{port}{path}"))
    assert caught.value.kind == Kind.PROTOCOL and text in str(caught.value)


def test_json_kinds_and_many_documents(world):
    port, _, leak = world
    paths = {"/json": None, "/not-json": Kind.NOT_JSON, "/missing": Kind.STATUS, "/huge": Kind.TOO_LARGE}
    urls = [f"http://site.test:{port}{p}" for p in paths] * 10 + [f"http://private.test:{port}/json"] * 5 + \
        [f"http://nowhere.test:{port}/json"] * 5

    async def go():
        c = client()
        return [r async for r in c.map_json(urls, max_bytes=4096, in_flight=8, verify="off")]

    results = run(go())
    assert len(results) == len(urls)
    kinds = {}
    for r in results:
        kinds.setdefault(r.url.split("/")[2].split(":")[0] + r.url[r.url.rindex("/"):], set()).add(r.kind)
    assert kinds["site.test/json"] == {None} and kinds["site.test/not-json"] == {Kind.NOT_JSON}
    assert kinds["site.test/missing"] == {Kind.STATUS} and kinds["site.test/huge"] == {Kind.TOO_LARGE}
    assert kinds["private.test/json"] == {Kind.PRIVATE} and kinds["nowhere.test/json"] == {Kind.DNS}
    assert next(r for r in results if r.ok).doc == {"software": {"name": "mastodon"}}
    assert not leak.events


def test_keep_alive_reuse_and_one_fresh_connection_for_a_stale_one():
    recorder = Recorder()
    server = HttpServer("127.0.0.1", 0, {"/ok": netlab.respond(200, b"a")}, recorder=recorder, close_after=1)
    try:
        async def go():
            c = client()
            first = await c.request(f"http://site.test:{server.port}/ok")
            await asyncio.sleep(0.2)  # the server has closed its side by now, without saying so before
            second = await c.request(f"http://site.test:{server.port}/ok")
            return first, second

        first, second = run(go())
        assert first.status == second.status == 200
        connects = [e for e in recorder.events if e["kind"] == "connect"]
        assert len(connects) == 2 and len(server.requests) == 2  # one retry, no storm
    finally:
        server.close()

    kept = HttpServer("127.0.0.1", 0, {"/ok": netlab.respond(200, b"a")})
    try:
        async def again():
            c = client()
            return [await c.request(f"http://site.test:{kept.port}/ok") for _ in range(3)]

        assert [r.status for r in run(again())] == [200, 200, 200]
        assert len([e for e in kept.recorder.events if e["kind"] == "connect"]) == 1
    finally:
        kept.close()


def test_concurrency_per_address_is_bounded(world):
    port, _, _ = world

    async def go():
        c = client(per_address=2, keepalive=0)
        return await asyncio.gather(*(c.request(f"http://site.test:{port}/slow") for _ in range(8)))

    assert [r.status for r in run(go())] == [200] * 8
    assert GAUGE.most == 2


def test_user_agent_and_no_cookies(world):
    port, _, _ = world

    async def go():
        c = client()
        await c.request(f"http://site.test:{port}/ok")  # sets a cookie
        return await c.request(f"http://site.test:{port}/echo")

    sent = {k.lower(): v for k, v in json.loads(run(go()).body)}
    assert "mastoaudit" in sent["user-agent"] and "cookie" not in sent
    assert sent["accept-encoding"] == "identity"


@pytest.fixture(scope="module")
def https_site(tmp_path_factory):
    ca, cert, key = netlab.make_ca_and_cert(tmp_path_factory.mktemp("pki"), ["site.test"])
    server = HttpServer("127.0.0.1", 0, {"/ok": netlab.respond(200, b"tls")}, cert=(cert, key))
    yield server.port, ca
    server.close()


def test_certificates_are_recorded_or_required(https_site):
    port, ca = https_site
    url = f"https://site.test:{port}/ok"
    trusting = Client(ALLOWED, resolve=fake_dns, ca_bundle=str(ca))
    assert run(trusting.request(url)).cert_verified is True
    r = run(client().request(url))
    assert r.status == 200 and r.cert_verified is False
    with pytest.raises(FetchError) as caught:
        run(client().request(url, verify="require"))
    assert caught.value.kind == Kind.TLS


# --- the blocking facade the probes use ---------------------------------------------------------------


def facade(port: int | None = None, **kw) -> HttpClient:
    return HttpClient(ScanTarget("site.test", "site.test", "site.test", addresses=("127.0.0.1",), timeout=2, **kw))


def test_the_facade_keeps_the_probes_api(world):
    port, _, leak = world
    http = facade()
    r = http.get(f"http://site.test:{port}/ok")
    assert (r.status, r.body, r.address, r.cert_verified) == (200, b"fine", "127.0.0.1", None)
    assert r.header("set-cookie").startswith("session=")
    with pytest.raises(HttpError) as caught:
        http.get(f"http://127.0.0.2:{port}/ok")
    assert caught.value.kind == Kind.PRIVATE and not leak.events
    with pytest.raises(HttpError, match="refused") as refused:
        http.get("http://127.0.0.1:1/")
    assert refused.value.kind == Kind.REFUSED


def test_a_probe_view_ends_by_the_probe_deadline(world):
    port, _, _ = world
    view = facade().bounded(time.monotonic() + 0.5)
    with pytest.raises(HttpError) as caught:
        view.get(f"http://site.test:{port}/trickle")
    assert caught.value.kind == Kind.TIMEOUT
    with pytest.raises(HttpError, match="time is up"):
        view.get(f"http://site.test:{port}/ok")


def test_a_probe_stuck_on_a_trickle_leaves_no_thread_behind(world):
    """Issue 7 item 7: the runner gives up on the probe at its deadline, and the probe's own threads
    (here a pool of four requests) end then too, so nothing keeps the process alive."""
    port, _, _ = world
    from concurrent.futures import ThreadPoolExecutor

    def stuck(target, ctx):
        with ThreadPoolExecutor(4, thread_name_prefix="stuck-probe") as pool:
            list(pool.map(lambda _: _attempt(ctx, port), range(4)))
        return []

    facts = FactSet("t")
    target = ScanTarget("site.test", "site.test", "site.test", addresses=("127.0.0.1",), timeout=5)
    run_probes(target, facts, [Probe("stuck", stuck, 1.0, "")])
    assert any("did not finish" in p.message for p in facts.problems)
    for thread in threading.enumerate():
        if thread.name.startswith(("stuck-probe", "probe-stuck")):
            thread.join(10)
            assert not thread.is_alive(), thread.name


def _attempt(ctx, port):
    with contextlib.suppress(HttpError):
        ctx.http.get(f"http://site.test:{port}/trickle")


# --- raw TCP through the gate ---------------------------------------------------------------------------


@pytest.fixture
def trickler():
    """A raw TCP server that sends one byte every 0.1 s to whoever connects, for ever."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=drip, args=(conn,), daemon=True).start()

    def drip(conn):
        with conn:
            while not stop.is_set():
                try:
                    conn.sendall(b"\x16")
                except OSError:
                    return
                time.sleep(0.1)

    threading.Thread(target=serve, daemon=True).start()
    yield srv.getsockname()[1]
    stop.set()
    srv.close()


def test_the_gate_refuses_before_connecting(world):
    port, _, leak = world
    gate = TcpGate(ALLOWED)
    with pytest.raises(NotPermitted, match=r"127.0.0.2 \(loopback\) is not a public address"):
        gate.connect(FORBIDDEN, port, 1)
    with pytest.raises(NotPermitted):
        gate.connect("localhost", port, 1)  # names are resolved and judged by the caller first
    assert not leak.events
    TcpGate(AddressPolicy.allowing([], [FORBIDDEN])).connect(FORBIDDEN, port, 1).close()  # named: allowed
    deadline = time.monotonic() + 5
    while not leak.events and time.monotonic() < deadline:
        time.sleep(0.01)
    assert leak.events  # the listener does record
    leak.events.clear()  # this one was allowed on purpose: the other tests count leaks from zero


def test_a_trickled_read_ends_at_the_socket_deadline(trickler):
    sock = TcpGate(ALLOWED).connect("127.0.0.1", trickler, 5, budget=0.5)
    reads = 0
    try:
        while reads < 300:  # 30 s of trickle, were the deadline not enforced
            if not sock.recv(1):
                break
            reads += 1
    except OSError:
        pass
    finally:
        sock.close()
    assert reads < 300


def test_a_trickled_tls_handshake_ends_at_the_socket_deadline(trickler):
    gate = TcpGate(ALLOWED, deadline=time.monotonic() + 0.5)
    sock = gate.connect("127.0.0.1", trickler, 5)
    with pytest.raises((OSError, ssl.SSLError)):
        gate.tls(sock, ssl._create_unverified_context())


# --- issue 7, items 5 and 6, without root (the namespace test runs the real scan) ------------------------


class _Dns:
    """A resolver whose names all resolve to the forbidden loopback address."""

    async def addresses_async(self, name: str) -> list[str]:
        return [FORBIDDEN]

    def addresses(self, name: str) -> list[str]:
        return [FORBIDDEN]


def test_item_5_the_nodeinfo_href_is_judged(world):
    from mastoaudit.probes import mastodon_api as ma

    port, server, leak = world
    for href in (f"http://{FORBIDDEN}:{port}/json", f"http://internal.evil.test:{port}/json"):
        server.routes["/.well-known/nodeinfo"] = netlab.json_doc(
            {"links": [{"rel": "http://nodeinfo.diaspora.software/ns/schema/2.1", "href": href}]})
        http = HttpClient(ScanTarget("site.test", "site.test", "site.test", addresses=("127.0.0.1",), timeout=2),
                          _Dns())
        info = ma.fetch_nodeinfo(http, "site.test", base_url=f"http://site.test:{port}")
        assert not info.ok and "127.0.0.2 (loopback) is not a public address and was not allowed" in info.problem
    assert not leak.events


def test_item_6_hosts_named_by_a_csp_are_judged(world):
    from mastoaudit.net import csp
    from mastoaudit.probes import http_headers as hh

    port, _, leak = world
    policy = csp.parse_header_values([f"img-src 'self' https://media.evil.test https://{FORBIDDEN}"])
    hosts = hh.media_hosts_from_csp(policy, "site.test")
    assert hosts == ["media.evil.test", FORBIDDEN]
    http = HttpClient(ScanTarget("site.test", "site.test", "site.test", addresses=("127.0.0.1",), timeout=2), _Dns())
    seen = hh.run_all(http, [{"label": "http-media", "url": f"http://{h}:{port}/"} for h in hosts])
    for observation, _ in seen:
        assert observation.status is None and "is not a public address and was not allowed" in observation.error
        assert not observation.refused  # not "nothing listens": it was never asked
    assert not leak.events


def test_no_module_opens_a_connection_around_the_client():
    """Only the outbound client, the TCP gate, DNS and the SSH collector open connections."""
    import ast
    from pathlib import Path

    allowed = {"net/client.py", "net/sockets.py", "net/dns.py", "sources/ssh.py", "sources/ssh_worker.py"}
    primitives = {"create_connection", "open_connection", "urlopen", "HTTPConnection",
                  "HTTPSConnection", "SMTP", "SMTP_SSL", "wrap_socket", "socket"}
    package = Path(__file__).resolve().parents[2] / "mastoaudit"
    found = []
    for path in package.rglob("*.py"):
        where = path.relative_to(package).as_posix()
        if where in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                wraps = name == "socket" and any(k.arg == "fileno" for k in node.keywords)  # an open descriptor
                if name in primitives and not wraps:
                    found.append(f"{where}:{node.lineno} {name}")
    assert not found, found


def test_the_run_deadline_caps_every_probe(world):
    """Two probes that may take 30 s each, in a run that may take 1 s: their requests end with the run."""
    port, _, _ = world
    kinds = []

    def stuck(target, ctx):
        try:
            ctx.http.get(f"http://site.test:{port}/trickle")
        except HttpError as exc:
            kinds.append(exc.kind)
        return []

    facts = FactSet("t")
    target = ScanTarget("site.test", "site.test", "site.test", addresses=("127.0.0.1",), timeout=20)
    run_probes(target, facts, [Probe("a", stuck, 30, ""), Probe("b", stuck, 30, "")], run_timeout=1)
    for thread in threading.enumerate():
        if thread.name in ("probe-a", "probe-b"):
            thread.join(10)
    assert kinds == [Kind.TIMEOUT, Kind.TIMEOUT]  # not the 60 s a request may otherwise take here


def test_what_a_scan_may_reach():
    from mastoaudit.net.target import S3Settings

    target = ScanTarget("x", "x.example", "x.example", addresses=("10.0.0.5",), hosts={"media.x.example": "10.0.0.6"},
                        media_host="https://files.x.example/bucket", smtp_hosts=("relay.internal:587",),
                        s3=S3Settings("http://127.0.0.1:9000", "b"), allow_private=("192.168.7.0/24",))
    policy = target.address_policy()
    assert policy.permits("10.0.0.5") and policy.permits("10.0.0.6") and policy.permits("192.168.7.9")
    assert policy.permits("127.0.0.1")  # the S3 endpoint, named by its address
    assert policy.permits("10.9.9.9", "files.x.example") and policy.permits("10.9.9.9", "relay.internal")
    assert not policy.permits("10.9.9.9", "cdn.elsewhere.example") and not policy.permits("169.254.169.254")
    assert policy.permits("93.184.216.34")


def test_allow_private_is_validated(capsys):
    from mastoaudit.cli import main

    assert main(["scan", "x.test", "--address", "127.0.0.1", "--allow-private", "not-a-network"]) == 2
    assert "--allow-private" in capsys.readouterr().err
