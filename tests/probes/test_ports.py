"""The ports probe's parsers and the ports.* checks on small inputs, hostile ones included: junk,
oversized and malformed answers give a clear finding (unidentified, unparseable, an error) and
never an exception."""

from __future__ import annotations

import json
import socket
import struct
import threading

import pytest

from mastoaudit.addresses import AddressPolicy
from mastoaudit.facts import FactSet
from mastoaudit.facts import ports as FP
from mastoaudit.model import Status
from mastoaudit.net.sockets import TcpGate
from mastoaudit.probes import ports as P

GATE = TcpGate(AddressPolicy.allowing(["127.0.0.1"]))  # the test's servers listen there

# --- Redis ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("reply", "expected"), [
    (b"+PONG\r\n", "none"),
    (b"-NOAUTH Authentication required.\r\n", "required"),
    (b"-WRONGPASS invalid username-password pair\r\n", "required"),
    (b"-DENIED Redis is running in protected mode because protected mode is enabled\r\n", "protected-mode"),
    (b"HTTP/1.1 400 Bad Request\r\n\r\n", None),
    (b"+PONGX\r\n", None),
    (b"\x00\xff\xfe" * 1000, None),
    (b"", None),
    (b"ERROR\r\n", None),
])
def test_redis_ping_replies(reply, expected):
    assert P.classify_redis_reply(reply) == expected


def test_redis_info_parsed_and_hostile_info_rejected():
    body = b"# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n"
    info = P.parse_redis_info(b"$%d\r\n" % len(body) + body)
    assert info and info["redis_version"] == "7.0.15"
    assert P.parse_redis_info(b"-ERR unknown command\r\n") is None
    assert P.parse_redis_info(b"$abc\r\nredis_version:1\r\n") is None
    junk = P.parse_redis_info(b"$10\r\n" + b"\xff" * 5000 + b":" + b"A" * 5000)
    assert junk == {}
    long_value = P.parse_redis_info(b"$9999\r\nredis_version:" + b"9" * 10000 + b"\r\n")
    assert len(long_value["redis_version"]) == 100


# --- PostgreSQL ----------------------------------------------------------------------------------


def pg(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("!I", len(payload) + 4) + payload


def test_pg_trust_password_and_refusal():
    assert P.judge_pg_answer(pg(b"R", struct.pack("!I", 0)))["result"] == "trust"
    sasl = P.judge_pg_answer(pg(b"R", struct.pack("!I", 10) + b"SCRAM-SHA-256\0\0"))
    assert sasl == {"result": "password", "method": "password (SASL SCRAM-SHA-256)"}
    assert P.judge_pg_answer(pg(b"R", struct.pack("!I", 5) + b"salt"))["method"] == "password (MD5)"
    refused = P.judge_pg_answer(pg(b"E", b"SFATAL\0C28000\0Mno pg_hba.conf entry for host\0\0"))
    assert refused["result"] == "refused" and refused["sqlstate"] == "28000"
    assert "pg_hba" in refused["message"]
    # NegotiateProtocolVersion before the authentication request
    assert P.judge_pg_answer(pg(b"v", b"\0\0\0\0\0\0\0\0") + pg(b"R", struct.pack("!I", 0)))["result"] == "trust"


@pytest.mark.parametrize("data", [
    b"HTTP/1.1 400 Bad Request\r\n\r\n",  # not PostgreSQL at all
    b"R\xff\xff\xff\xff" + b"\0" * 100,  # a length beyond any message
    b"R\x00\x00\x00\x02",  # a length shorter than itself
    bytes(range(256)) * 20,
    b"\x1b[31mred\x1b[0m\r\n",
])
def test_pg_hostile_answers_are_unparseable_with_an_escaped_excerpt(data):
    answer = P.judge_pg_answer(data)
    assert answer["result"] == "unparseable"
    assert "\x1b" not in answer["message"] and "\r" not in answer["message"]
    assert len(answer["message"]) < 300


def test_pg_incomplete_and_empty_answers():
    messages, bad = P.parse_pg_messages(pg(b"R", struct.pack("!I", 0))[:6])
    assert messages == [] and bad is None
    assert P.judge_pg_answer(b"")["message"] == "no answer (connection closed)"


def test_startup_message_is_well_formed_and_carries_no_password():
    msg = P.startup_message("mastodon", "mastodon_production")
    assert struct.unpack("!I", msg[:4])[0] == len(msg)
    assert struct.unpack("!I", msg[4:8])[0] == 196608
    assert b"user\0mastodon\0database\0mastodon_production\0" in msg and b"password" not in msg


# --- HTTP ----------------------------------------------------------------------------------------


def http(status: str, headers: dict[str, str], body: bytes) -> bytes:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return f"HTTP/1.1 {status}\r\n{head}\r\n".encode() + body


ES_ROOT = json.dumps({"name": "n", "cluster_name": "mastodon", "version": {"number": "6.8.23"},
                      "tagline": "You Know, for Search"}).encode()


def test_elasticsearch_open_and_secured():
    service, label, details = P.classify_http(P.parse_http(http("200 OK", {}, ES_ROOT)))
    assert service == "elasticsearch" and label == "Elasticsearch 6.8.23"
    assert details["open"] and details["cluster_name"] == "mastodon"
    secured = http("401 Unauthorized", {"WWW-Authenticate": 'Basic realm="security" charset="UTF-8"'},
                   b'{"error":{"type":"security_exception"},"status":401}')
    service, _, details = P.classify_http(P.parse_http(secured))
    assert service == "elasticsearch" and details["open"] is False
    opensearch = json.dumps({"version": {"number": "2.11.0", "distribution": "opensearch"},
                             "tagline": "The OpenSearch Project: https://opensearch.org/"}).encode()
    assert P.classify_http(P.parse_http(http("200 OK", {}, opensearch)))[0] == "opensearch"


def test_metrics_mastodon_and_plain_http():
    metrics = http("200 OK", {}, b"# HELP connected_clients x\n# TYPE connected_clients gauge\nconnected_clients 0\n")
    assert P.classify_http(P.parse_http(metrics))[0] == "metrics"
    web = http("200 OK", {"Content-Security-Policy": "default-src 'none'", "X-Frame-Options": "DENY"}, b"<html>")
    assert P.classify_http(P.parse_http(web))[0] == "mastodon-web"
    plain = P.parse_http(http("404 Not Found", {"Server": "x" * 500}, b""))
    assert P.classify_http(plain)[1] == "HTTP server " + "x" * 60


def test_a_port_is_named_by_what_answered_there():
    """nginx adding security headers on Puma's port is nginx, not Puma; and what answered sets the
    severity, not the port's usual owner: an SSH or web server on 5432 is not PostgreSQL."""
    nginx = http("200 OK", {"Server": "nginx/1.22.1", "Content-Security-Policy": "default-src 'self'",
                            "X-Frame-Options": "DENY"}, b"<html>welcome</html>")
    service, label, _ = P.classify_http(P.parse_http(nginx))
    assert (service, label) == ("http", "HTTP server nginx/1.22.1")
    rails = http("200 OK", {"X-Runtime": "0.01", "Server": "nginx"}, b"<html>")
    assert P.classify_http(P.parse_http(rails))[0] == "mastodon-web"  # Rails' own header behind nginx
    from mastoaudit_checks.host import _label, _severity

    ssh = FP.PortResult("203.0.113.5", 5432, "open", service="ssh", label="SSH OpenSSH_9.2")
    assert (_label(ssh), _severity(ssh)) == ("SSH OpenSSH_9.2", "medium")
    unknown = FP.PortResult("203.0.113.5", 5432, "open", service="unknown", label="unidentified service")
    assert _label(unknown) == "unidentified service on the PostgreSQL port" and _severity(unknown) == "critical"


@pytest.mark.parametrize("data", [
    b"HTTP/1.1 abc Bad\r\n\r\n",
    b"HTTP/1.1\r\n\r\n",
    b"SSH-2.0-OpenSSH\r\n",
    b"\x16\x03\x01\x02\x00" + b"\x00" * 100,
    b"",
])
def test_not_http_is_none(data):
    assert P.parse_http(data) is None


def test_hostile_http_bodies_and_headers():
    many = http("200 OK", {f"X-H{i}": "v" * 2000 for i in range(500)}, b"")
    parsed = P.parse_http(many)
    assert len(parsed.headers) == 100 and all(len(v) <= 500 for v in parsed.headers.values())
    deep = http("200 OK", {}, b"[" * 50000)
    assert P.classify_http(P.parse_http(deep))[0] == "http"  # too deep for json: not a crash
    not_es = http("200 OK", {}, b'{"tagline": 42, "version": "x"}')
    assert P.classify_http(P.parse_http(not_es))[0] == "http"
    weird_version = http("200 OK", {}, b'{"tagline": "You Know, for Search", "version": ["x"]}')
    assert P.classify_http(P.parse_http(weird_version))[1] == "Elasticsearch"


# --- banners and the order of hellos -------------------------------------------------------------


def test_banners():
    assert P.classify_banner(b"SSH-2.0-OpenSSH_9.2p1 Debian\r\n")[0] == "ssh"
    assert P.classify_banner(b"220 mail.example ESMTP Postfix\r\n") == ("smtp", "SMTP")
    assert P.classify_banner(b"\x4a\x00\x00\x00\x0a5.7.0\x00" + b"\x00" * 40)[0] == "mysql"
    assert P.classify_banner(b"\xff" * 10)[0] == "unknown"


def test_hello_order_puts_the_likely_protocol_first():
    assert P.hello_order(5432)[0] == "postgresql"
    assert P.hello_order(6380)[:2] == ["redis", "tls-redis"]
    assert P.hello_order(9200)[0] == "http" and "tls-http" in P.hello_order(9200)
    assert P.hello_order(12345)[0] == "http"


def test_network_strings_shown_are_cleaned():
    doc = json.dumps({"tagline": "You Know, for Search", "cluster_name": "\x1b[2Jowned" + "x" * 500,
                      "version": {"number": "7\x07.0"}}).encode()
    _, label, details = P.classify_http(P.parse_http(http("200 OK", {}, doc)))
    assert "\x1b" not in details["cluster_name"] and len(details["cluster_name"]) <= 200
    assert label == "Elasticsearch 7\\x07.0"
    info = P.parse_redis_info(b"$40\r\nredis_version:\x1b]0;title\x07\r\n")
    assert info["redis_version"] == "\\x1b]0;title\\x07"


def test_excerpt_is_escaped_and_bounded():
    text = P.excerpt(b"\x1b]0;owned\x07\r\n" + b"A" * 1000)
    assert "\x1b" not in text and "\x07" not in text and len(text) <= 200


# --- hostile servers on a local socket (not stand-ins: junk no real service sends) ---------------


def serve_once(behaviour) -> tuple[int, threading.Event]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    stop = threading.Event()

    def loop():
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=behaviour, args=(conn, stop), daemon=True).start()
        listener.close()

    threading.Thread(target=loop, daemon=True).start()
    return listener.getsockname()[1], stop


def flood(conn, stop):
    try:
        for _ in range(200):
            conn.sendall(b"\x00\xffjunk\x1b[2J" * 1000)
    except OSError:
        pass
    finally:
        conn.close()


def silent(conn, stop):
    stop.wait(5)
    conn.close()


def test_a_flooding_service_is_bounded_and_unidentified():
    port, stop = serve_once(flood)
    try:
        result = FP.PortResult("127.0.0.1", port, "open")
        P.identify(GATE, result, 0.3)
        assert result.service == "unknown" and len(result.banner) <= 200 and "\x1b" not in result.banner
    finally:
        stop.set()


def test_a_silent_service_is_given_up_on():
    port, stop = serve_once(silent)
    try:
        result = FP.PortResult("127.0.0.1", port, "open")
        P.identify(GATE, result, 0.2)
        assert result.service == "unknown" and "silent" in result.label
    finally:
        stop.set()


def test_connect_states():
    port, stop = serve_once(silent)
    try:
        assert P.connect_state(GATE, "127.0.0.1", port, 0.5) == ("open", "connected")
    finally:
        stop.set()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    free = closed.getsockname()[1]
    closed.close()
    assert P.connect_state(GATE, "127.0.0.1", free, 0.5)[0] == "closed"


# --- the checks ----------------------------------------------------------------------------------


def facts_with(*rows: FP.PortResult, addresses=("203.0.113.5",), extra=()) -> FactSet:
    facts = FactSet("example.social")
    facts.add("port_scan", FP.PortScan(tuple(addresses) + tuple(extra), (5432, 6379, 9200), tuple(addresses)))
    for row in rows:
        facts.add("port", row)
    return facts


def run(registry, check_id: str, facts: FactSet):
    return list(registry.get(check_id).run(facts))


def closed_rows(address="203.0.113.5"):
    return [FP.PortResult(address, p, "closed", "refused") for p in (5432, 6379, 9200)]


@pytest.mark.parametrize("check_id", ["ports.exposed", "ports.redis-noauth", "ports.postgres-trust",
                                      "ports.postgres-tls", "ports.elasticsearch-open"])
def test_nothing_open_passes_with_the_ports_named(registry, check_id):
    outcomes = run(registry, check_id, facts_with(*closed_rows()))
    assert [o.status for o in outcomes] == [Status.PASS]
    assert outcomes[0].message == "nothing answered on ports 5432, 6379, 9200 of 203.0.113.5"


def test_unreachable_address_is_skipped_not_passed(registry):
    rows = [FP.PortResult("2001:db8::1", p, "unreachable", "Network is unreachable") for p in (5432, 6379, 9200)]
    outcomes = run(registry, "ports.exposed", facts_with(*rows, addresses=("2001:db8::1",)))
    assert [o.status for o in outcomes] == [Status.SKIP]


def test_open_redis_without_password(registry):
    redis = FP.PortResult("203.0.113.5", 6379, "open", service="redis", label="Redis 7.0.15",
                         banner="b'+PONG\\r\\n'", details={"auth": "none", "version": "7.0.15"}, public=True)
    facts = facts_with(redis, *closed_rows()[::2])
    exposed = run(registry, "ports.exposed", facts)
    assert [(o.status, str(o.severity), o.location.file) for o in exposed] == [
        (Status.FAIL, "critical", "203.0.113.5:6379")]
    noauth = run(registry, "ports.redis-noauth", facts)
    assert noauth[0].status is Status.FAIL and "redis_version 7.0.15" in noauth[0].observed
    pg_checks = run(registry, "ports.postgres-trust", facts)
    assert pg_checks[0].status is Status.PASS and "no PostgreSQL answered" in pg_checks[0].message


def test_postgres_trust_tls_and_unparseable(registry):
    trust = FP.PortResult("203.0.113.5", 5432, "open", service="postgresql", label="PostgreSQL", banner="b'N'",
                         details={"tls_offered": False, "logins": {
                             "mastodon": {"result": "trust"},
                             "postgres": {"result": "password", "method": "password (SASL SCRAM-SHA-256)"}}})
    facts = facts_with(trust)
    out = run(registry, "ports.postgres-trust", facts)[0]
    assert out.status is Status.FAIL and "lets mastodon in" in out.message
    assert "postgres: asks for password (SASL SCRAM-SHA-256)" in out.observed
    assert run(registry, "ports.postgres-tls", facts)[0].status is Status.FAIL
    junk = FP.PortResult("203.0.113.5", 5432, "open", service="postgresql", label="PostgreSQL", details={
        "tls_offered": True, "logins": {"mastodon": {"result": "unparseable", "message": "not a message"}}})
    out = run(registry, "ports.postgres-trust", facts_with(junk))[0]
    assert out.status is Status.ERROR and "not a message" in out.observed
    assert run(registry, "ports.postgres-tls", facts_with(junk))[0].status is Status.PASS


def test_elasticsearch_checks(registry):
    es = FP.PortResult("203.0.113.5", 9200, "open", service="elasticsearch", label="Elasticsearch 6.8.23",
                      details={"open": True, "status": 200, "cluster_name": "c", "version": "6.8.23", "scheme": "http"})
    out = run(registry, "ports.elasticsearch-open", facts_with(es))[0]
    assert out.status is Status.FAIL and out.location.file == "http://203.0.113.5:9200/"
    secured = FP.PortResult("203.0.113.5", 9200, "open", service="elasticsearch",
                           label="Elasticsearch (authentication required)",
                           details={"open": False, "status": 401, "scheme": "https"})
    out = run(registry, "ports.elasticsearch-open", facts_with(secured))
    assert [o.status for o in out] == [Status.PASS]
    # reachable from outside even with auth: still exposed
    assert run(registry, "ports.exposed", facts_with(secured))[0].status is Status.FAIL


def test_private_extra_address_warns_and_unknown_service_is_named(registry):
    row = FP.PortResult("10.0.0.5", 5432, "open", in_scope=False, service="unknown", label="unidentified service")
    out = run(registry, "ports.exposed", facts_with(row, extra=("10.0.0.5",)))
    warned = [o for o in out if o.location.file == "10.0.0.5:5432"]
    assert warned[0].status is Status.WARN
    assert "unidentified service on the PostgreSQL port" in warned[0].message
