"""The network core: the HTTP client's bounds and redirect policy against a real nginx, DNS look-ups
against a real Knot, and the probe runner's handling of failing and hanging probes."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import pytest

from mastoaudit import kinds
from mastoaudit.addresses import is_public
from mastoaudit.facts import FactSet
from mastoaudit.net.dns import Resolver
from mastoaudit.net.http import HttpClient, HttpError
from mastoaudit.net.runner import Probe, ProbeFact, ProbeProblem, run_probes
from mastoaudit.net.target import ScanTarget, parse_resolver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(port: int, proto=socket.SOCK_STREAM) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


NGINX_CONF = """
daemon off;
user root;  # the test files are in a private temporary folder
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;
    uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port};
        server_name site.test;
        root {d}/www;
        location = /to-private {{ return 302 http://10.1.2.3/secret; }}
        location = /to-metadata {{ return 302 http://169.254.169.254/latest/meta-data/; }}
        location = /to-self {{ return 301 http://site.test:{port}/final; }}
        location = /final {{ return 200 "arrived"; }}
        location = /loop {{ return 302 /loop; }}
        location = /to-ftp {{ return 302 ftp://site.test/; }}
        location = /headers {{
{headers}
            return 200 "many";
        }}
    }}
}}
"""


@pytest.fixture(scope="module")
def nginx(tmp_path_factory):
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(binary):
        pytest.skip("nginx is not installed (scripts/setup.sh installs it)")
    d = tmp_path_factory.mktemp("nginx")
    (d / "www").mkdir()
    (d / "www" / "big").write_bytes(b"x" * (2 * 1024 * 1024))
    port = _free_port()
    headers = "\n".join(f"            add_header X-Filler-{i} v{i};" for i in range(150))
    (d / "nginx.conf").write_text(NGINX_CONF.format(d=d, port=port, headers=headers))
    proc = subprocess.Popen([binary, "-c", str(d / "nginx.conf"), "-p", str(d)], stderr=subprocess.DEVNULL)
    try:
        _wait(port)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _client(port: int) -> HttpClient:
    target = ScanTarget("site.test", "site.test", "site.test", addresses=("127.0.0.1",),
                        hosts={"site.test": "127.0.0.1"}, timeout=3)
    return HttpClient(target)


def test_redirect_to_a_private_address_is_not_followed(nginx):
    client = _client(nginx)
    for path, where in (("/to-private", "10.1.2.3"), ("/to-metadata", "169.254.169.254")):
        resp = client.get(f"http://site.test:{nginx}{path}", follow=True)
        assert resp.status == 302 and resp.blocked_redirect and where in resp.blocked_redirect


def test_redirect_to_the_scanned_address_is_followed(nginx):
    resp = _client(nginx).get(f"http://site.test:{nginx}/to-self", follow=True)
    assert resp.status == 200 and resp.body == b"arrived" and resp.redirects


def test_redirect_loops_and_other_schemes_are_bounded(nginx):
    client = _client(nginx)
    with pytest.raises(HttpError, match="more than 5 redirects"):
        client.get(f"http://site.test:{nginx}/loop", follow=True)
    resp = client.get(f"http://site.test:{nginx}/to-ftp", follow=True)
    assert "not http or https" in (resp.blocked_redirect or "")


def test_bodies_and_headers_are_bounded(nginx):
    client = _client(nginx)
    resp = client.get(f"http://site.test:{nginx}/big", max_body=1000)
    assert resp.truncated and len(resp.body) == 1000
    with pytest.raises(HttpError, match="100 headers"):
        client.get(f"http://site.test:{nginx}/headers")


def test_unreachable_and_unresolvable_are_http_errors():
    target = ScanTarget("x", "x.test", "x.test", addresses=("127.0.0.1",), resolver=("127.0.0.1", _free_port()),
                        timeout=0.5)
    client = HttpClient(target)
    with pytest.raises(HttpError):
        client.get(f"http://x.test:{_free_port()}/")
    with pytest.raises(HttpError, match="does not resolve"):
        client.get("http://elsewhere.test/")


KNOT_CONF = """
server:
    listen: 127.0.0.1@{port}
    rundir: {d}
database:
    storage: {d}
zone:
  - domain: core.test
    file: {d}/core.test.zone
"""

ZONE = """$ORIGIN core.test.
$TTL 60
@ SOA ns1 hostmaster 1 60 60 60 60
@ NS ns1
ns1 A 127.0.0.1
@ A 127.0.0.99
@ TXT "v=spf1 -all"
big TXT "{big}" "{big}"
"""


@pytest.fixture(scope="module")
def knot(tmp_path_factory):
    binary = shutil.which("knotd") or "/usr/sbin/knotd"
    if not os.path.exists(binary):
        pytest.skip("knot is not installed (scripts/setup.sh installs it)")
    d = tmp_path_factory.mktemp("knot")
    port = _free_port()
    (d / "knot.conf").write_text(KNOT_CONF.format(d=d, port=port))
    (d / "core.test.zone").write_text(ZONE.format(big="a" * 250))
    proc = subprocess.Popen([binary, "-c", str(d / "knot.conf")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    target = ScanTarget("core.test", "core.test", "core.test", resolver=("127.0.0.1", port), timeout=1)
    resolver = Resolver(target)
    deadline = time.monotonic() + 10
    while resolver.query("core.test", "A").rcode != "NOERROR" and time.monotonic() < deadline:
        time.sleep(0.1)
    yield resolver
    proc.terminate()
    proc.wait(timeout=10)


def test_dns_answers_and_errors(knot):
    assert knot.query("core.test", "A").records == ("127.0.0.99",)
    assert knot.query("core.test", "TXT").records == ("v=spf1 -all",)
    assert knot.query("big.core.test", "TXT").records == ("a" * 500,)  # strings of one record joined
    assert knot.query("nothing.core.test", "A").rcode == "NXDOMAIN"
    assert knot.query("bad..name", "A").rcode.startswith("BADNAME")
    assert knot.addresses("core.test") == ["127.0.0.99"]


def test_dns_timeout_is_an_answer_not_an_exception():
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))  # receives, never answers
    try:
        target = ScanTarget("t", "t.test", "t.test", resolver=silent.getsockname(), timeout=0.3)
        assert Resolver(target).query("t.test", "A").rcode == "TIMEOUT"
    finally:
        silent.close()


def test_runner_reports_failing_and_hanging_probes():
    target = ScanTarget("t", "t.test", "t.test", addresses=("127.0.0.1",))
    kinds.declare("thing", dict, "host", ["network"], "what the test probe finds")

    def good(_t, _c):
        yield ProbeFact("thing", {"ok": True})
        yield ProbeProblem("thing", "half of it failed", "t.test:1")
        yield ProbeFact("undeclared_thing", {"ok": True})
        yield ProbeFact("thing", ["not", "a", "dict"])

    def broken(_t, _c):
        raise ValueError("boom")

    def hangs(_t, _c):
        time.sleep(5)
        return []

    facts = FactSet("t")
    durations = run_probes(target, facts, [Probe("good", good, 5, ""), Probe("broken", broken, 5, ""),
                                           Probe("hangs", hangs, 0.3, "")])
    assert facts.all("thing") == [{"ok": True}]
    messages = [p.message for p in facts.problems]
    assert "half of it failed" in messages
    assert any("probe broken failed: ValueError: boom" in m for m in messages)
    assert any("probe hangs did not finish within 0 s" in m for m in messages)
    # facts of a kind no one declared, or of the wrong type, are the probe's bug: reported, not added
    assert any("unknown fact kind 'undeclared_thing'" in m for m in messages)
    assert any("a list is not a thing fact" in m for m in messages)
    assert durations["hangs"] == 0.3


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.53", ("127.0.0.53", 53)), ("127.0.0.1:5353", ("127.0.0.1", 5353)),
    ("::1", ("::1", 53)), ("[::1]:5353", ("::1", 5353)),
])
def test_parse_resolver(text, expected):
    assert parse_resolver(text) == expected


@pytest.mark.parametrize("text", ["dns.example", "127.0.0.1:x", "127.0.0.1:70000", ""])
def test_parse_resolver_rejects(text):
    with pytest.raises(ValueError):
        parse_resolver(text)


def test_public_addresses():
    assert is_public("93.184.216.34") and not is_public("10.0.0.1") and not is_public("127.0.0.10")
    assert not is_public("169.254.169.254") and not is_public("fe80::1") and not is_public("not-an-ip")


def test_scan_usage_errors(capsys):
    from mastoaudit.cli import main

    for argv in (["scan", "bad domain"], ["scan", "x.test", "--resolver", "dns.example"],
                 ["scan", "x.test", "--resolve", "nohost"], ["scan", "x.test", "--ports", "0"],
                 ["scan", "x.test", "--s3-bucket", "b"], ["scan", "x.test", "--ca-bundle", "/nonexistent"],
                 ["scan", "x.test", "--probe", "no-such-probe"]):
        assert main(argv) == 2, argv
        assert "error" in capsys.readouterr().err


def test_the_test_guard_keeps_traffic_on_loopback():
    """tests/conftest.py refuses anything that would leave the machine: proven here, so a probe
    that tried would fail its test instead of sending traffic."""
    with pytest.raises(OSError, match="test guard"):
        socket.create_connection(("192.0.2.1", 80), timeout=0.1)
    with pytest.raises(OSError, match="test guard"):
        socket.getaddrinfo("example.com", 443)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        with pytest.raises(OSError, match="test guard"):
            udp.sendto(b"x", ("10.255.255.53", 53))
    finally:
        udp.close()
