"""Ports: what answers on the internal services' ports from the auditor's side.

A TCP connect scan of target.ports on every target address (all at once, each connect with a short
time limit, so the scan takes about one time limit), then each open port identified: a banner read
(send nothing), then protocol hellos (Redis PING, PostgreSQL SSLRequest, HTTP GET /, memcached
version), with TLS tried when the plain hellos get nothing. Reachable Redis, PostgreSQL and
Elasticsearch are asked the one question that matters: do they let a stranger in?

Every answer is hostile data: reads are bounded (READ_LIMIT), parsers never raise, and what could
not be understood is kept as an escaped excerpt.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import struct
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..addresses import is_public
from ..facts.ports import PortResult, PortScan
from ..net.runner import ProbeContext, ProbeFact, ProbeProblem, probe
from ..net.sockets import TcpGate
from ..net.target import ScanTarget
from ..net.text import clean, excerpt

READ_LIMIT = 4096  # bytes read from any one answer (HTTP: HTTP_LIMIT)
HTTP_LIMIT = 8192
CONNECT_TIMEOUT = 1.5  # filtered ports cost this once: all connects run at once
BANNER_WAIT = 0.75  # how long a silent service may take before we speak first
HELLO_TIMEOUT = 2.0
USER_AGENT = "mastoaudit/0.1 (+security audit; read-only)"

# port -> the service it usually is (the hello tried first)
PORT_HINTS = {5432: "postgresql", 6379: "redis", 6380: "redis", 11211: "memcached", 9200: "http", 9300: "http",
              3000: "http", 4000: "http", 9394: "http", 9090: "http"}
# Roles whose password-less login we try, with the database Mastodon uses for each.
PG_ROLES = (("mastodon", "mastodon_production"), ("postgres", "postgres"))
PG_AUTH_METHODS = {3: "password (cleartext)", 5: "password (MD5)", 10: "password (SASL)", 7: "GSSAPI", 9: "SSPI",
                   2: "Kerberos V5", 6: "SCM credentials"}
SSL_REQUEST = struct.pack("!II", 8, 80877103)


# --- sockets ------------------------------------------------------------------------------------


_TLS = ssl._create_unverified_context()  # identification only: certificates are judged elsewhere
_TLS.check_hostname = False


def connect_state(gate: TcpGate, address: str, port: int, timeout: float) -> tuple[str, str]:
    try:
        with gate.connect(address, port, timeout):
            return "open", "connected"
    except ConnectionRefusedError:
        return "closed", "refused"
    except TimeoutError:
        return "filtered", f"no answer within {timeout:g} s"
    except OSError as exc:
        return "unreachable", exc.strerror or type(exc).__name__


def read_bounded(sock: socket.socket, timeout: float, limit: int = READ_LIMIT,
                 done: Callable[[bytes], bool] | None = None) -> bytes:
    """Read until the peer closes, `limit` bytes, `done(data)`, or `timeout` seconds in all."""
    data = b""
    deadline = time.monotonic() + timeout
    while len(data) < limit:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            chunk = sock.recv(limit - len(data))
        except OSError:  # a time-out, a reset, a TLS error: what came so far is the answer
            break
        if not chunk:
            break
        data += chunk
        if done is not None and done(data):
            break
    return data[:limit]


def exchange(gate: TcpGate, address: str, port: int, payload: bytes | None, timeout: float, *, tls: bool = False,
             limit: int = READ_LIMIT, done: Callable[[bytes], bool] | None = None) -> bytes:
    """Connect (optionally TLS), send `payload`, return the bounded answer. Raises OSError when the
    connection or the TLS handshake fails."""
    sock = gate.connect(address, port, timeout)
    try:
        if tls:
            sock = gate.tls(sock, _TLS)
        if payload:
            sock.sendall(payload)
        return read_bounded(sock, timeout, limit, done)
    finally:
        sock.close()


def _line_done(data: bytes) -> bool:
    return b"\n" in data


# --- banners ------------------------------------------------------------------------------------


def classify_banner(data: bytes) -> tuple[str, str]:
    """What sent this unprompted banner: (service, label)."""
    if data.startswith(b"SSH-"):
        return "ssh", "SSH " + clean(data.split(b"\r\n", 1)[0][4:60].decode("ascii", "replace"))
    if data.startswith(b"220"):
        text = data[:200].decode("utf-8", "replace")
        return ("smtp", "SMTP") if "SMTP" in text.upper() else ("ftp", "FTP") if "FTP" in text.upper() else (
            "smtp", "SMTP or FTP")
    if len(data) > 5 and data[4] == 0x0A and b"\x00" in data[5:40]:
        return "mysql", "MySQL/MariaDB"
    return "unknown", "unknown service (sends a banner)"


# --- Redis --------------------------------------------------------------------------------------


def classify_redis_reply(reply: bytes) -> str | None:
    """The first line of a PING answer: 'none' (PONG: no password), 'required', 'protected-mode', or
    None when this is not Redis."""
    line = reply.split(b"\r\n", 1)[0].split(b"\n", 1)[0]
    if line == b"+PONG":
        return "none"
    if line.startswith((b"-NOAUTH", b"-WRONGPASS", b"-ERR operation not permitted")):
        return "required"
    if line.startswith(b"-DENIED"):
        return "protected-mode"
    return None


def parse_redis_info(reply: bytes) -> dict[str, str] | None:
    """A bulk-string INFO answer ($len\\r\\nkey:value\\r\\n...) -> its fields; None when it is not one."""
    if not reply.startswith(b"$"):
        return None
    head, sep, body = reply.partition(b"\r\n")
    if not sep or not head[1:].isdigit():
        return None
    fields: dict[str, str] = {}
    for raw in body.split(b"\r\n"):
        key, colon, value = raw.partition(b":")
        if colon and re.fullmatch(rb"[a-z_0-9]{1,64}", key):
            fields[key.decode()] = clean(value[:100].decode("utf-8", "replace"))
    return fields


def _bulk_done(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n")
    if not sep:
        return False
    if not head.startswith(b"$") or not head[1:].isdigit():
        return True  # an error or something else: the first line is all there is
    return len(body) >= int(head[1:]) + 2


def hello_redis(gate: TcpGate, result: PortResult, timeout: float, tls: bool) -> bool:
    reply = exchange(gate, result.address, result.port, b"PING\r\n", timeout, tls=tls, done=_line_done)
    auth = classify_redis_reply(reply)
    if auth is None:
        return False
    result.service, result.label, result.banner = "redis", "Redis", excerpt(reply)
    result.details["auth"] = auth
    if auth == "none":
        info = exchange(gate, result.address, result.port, b"INFO server\r\n", timeout, tls=tls, done=_bulk_done)
        fields = parse_redis_info(info)
        if fields is None or "redis_version" not in fields:
            result.unparseable.append(f"INFO server answered {excerpt(info)}")
        else:
            result.details["version"] = fields["redis_version"]
            result.label = f"Redis {fields['redis_version']}"
    return True


# --- PostgreSQL ---------------------------------------------------------------------------------


def startup_message(user: str, database: str) -> bytes:
    params = b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in
                      (("user", user), ("database", database), ("application_name", "mastoaudit")))
    body = struct.pack("!I", 196608) + params + b"\0"
    return struct.pack("!I", len(body) + 4) + body


def parse_pg_messages(data: bytes) -> tuple[list[tuple[str, bytes]], str | None]:
    """Backend messages (type, payload) from the start of `data`; the second value names what was
    malformed (None when everything read so far is well formed; an incomplete tail is not malformed)."""
    messages: list[tuple[str, bytes]] = []
    pos = 0
    while len(data) - pos >= 5:
        kind = chr(data[pos])
        (length,) = struct.unpack("!I", data[pos + 1:pos + 5])
        if not kind.isalpha() or length < 4 or length > 65536:
            return messages, f"not a PostgreSQL message at byte {pos}: {excerpt(data[pos:pos + 40])}"
        if len(data) - pos - 1 < length:
            break
        messages.append((kind, data[pos + 5:pos + 1 + length]))
        pos += 1 + length
    return messages, None


def parse_pg_error(payload: bytes) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in payload.split(b"\0"):
        if len(part) >= 2:
            fields[chr(part[0])] = clean(part[1:200].decode("utf-8", "replace"), 200)
    return fields


def judge_pg_answer(data: bytes) -> dict[str, str]:
    """What a StartupMessage got: result 'trust' (AuthenticationOk without a password), 'password'
    (a credential was asked for), 'refused' (an error), or 'unparseable'."""
    messages, bad = parse_pg_messages(data)
    for kind, payload in messages:
        if kind == "R" and len(payload) >= 4:
            (code,) = struct.unpack("!I", payload[:4])
            if code == 0:
                return {"result": "trust", "method": "none (trust)"}
            method = PG_AUTH_METHODS.get(code, f"authentication request {code}")
            if code == 10:
                mechs = [clean(m.decode("ascii", "replace"), 40) for m in payload[4:200].split(b"\0") if m]
                method = f"password (SASL {', '.join(mechs)[:60]})" if mechs else method
            return {"result": "password", "method": method}
        if kind == "E":
            err = parse_pg_error(payload)
            return {"result": "refused", "method": "", "sqlstate": err.get("C", ""),
                    "message": err.get("M", "")[:200]}
        if kind not in ("v", "N"):  # NegotiateProtocolVersion and notices may come first
            break
    why = bad or (f"no authentication answer: {excerpt(data)}" if data else "no answer (connection closed)")
    return {"result": "unparseable", "method": "", "message": why}


def _pg_answer_done(data: bytes) -> bool:
    messages, bad = parse_pg_messages(data)
    return bad is not None or any(k in ("R", "E") for k, _ in messages)


def pg_startup(gate: TcpGate, address: str, port: int, user: str, database: str, timeout: float,
               tls: bool) -> dict[str, str]:
    """Ask to log in as `user` without any password (over TLS when `tls`); never sends a password."""
    sock = gate.connect(address, port, timeout)
    try:
        if tls:
            sock.sendall(SSL_REQUEST)
            if read_bounded(sock, timeout, 1) != b"S":
                return {"result": "unparseable", "method": "", "message": "TLS no longer offered"}
            sock = gate.tls(sock, _TLS)
        sock.sendall(startup_message(user, database))
        answer = judge_pg_answer(read_bounded(sock, timeout, READ_LIMIT, _pg_answer_done))
        if answer["result"] == "trust":
            sock.sendall(b"X\x00\x00\x00\x04")  # Terminate: we only wanted to know
        return answer
    finally:
        sock.close()


def hello_postgres(gate: TcpGate, result: PortResult, timeout: float) -> bool:
    reply = exchange(gate, result.address, result.port, SSL_REQUEST, timeout, limit=64, done=lambda d: len(d) >= 1)
    messages, bad = parse_pg_messages(reply)
    if reply in (b"S", b"N"):
        tls = reply == b"S"
    elif bad is None and messages and messages[0][0] == "E":
        tls = False  # a server that cannot take SSLRequest answers with an ErrorResponse
    else:
        return False
    result.service, result.label, result.tls = "postgresql", "PostgreSQL", tls
    result.banner = excerpt(reply)
    logins: dict[str, dict[str, str]] = {}
    for user, database in PG_ROLES:
        try:
            answer = pg_startup(gate, result.address, result.port, user, database, timeout, False)
            if tls and answer["result"] == "refused" and answer.get("sqlstate") == "28000":
                answer = pg_startup(gate, result.address, result.port, user, database, timeout, True) | {"over": "tls"}
        except OSError as exc:
            answer = {"result": "unparseable", "method": "", "message": f"connection failed: {exc}"}
        logins[user] = answer
        if answer["result"] == "unparseable":
            result.unparseable.append(f"login as {user}: {answer['message']}")
    result.details["tls_offered"] = tls
    result.details["logins"] = logins
    return True


# --- HTTP (Elasticsearch, Prometheus, Puma, streaming) ------------------------------------------


@dataclass
class HttpAnswer:
    status: int
    headers: dict[str, str]  # lower-cased names, first value
    body: bytes


def parse_http(data: bytes) -> HttpAnswer | None:
    """A bounded HTTP/1.x response; None when it is not one (or its head is malformed)."""
    if not data.startswith(b"HTTP/"):
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[1].isdigit() or len(parts[1]) != 3:
        return None
    headers: dict[str, str] = {}
    for line in lines[1:101]:
        name, colon, value = line.partition(b":")
        if colon and name and len(name) <= 100:
            headers.setdefault(name.strip().lower().decode("latin-1"), value.strip()[:500].decode("latin-1"))
    return HttpAnswer(int(parts[1]), headers, body)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8", "replace"))
    except (ValueError, RecursionError):
        return None


def is_metrics_text(body: bytes) -> bool:
    lines = body.lstrip()[:2000].split(b"\n")
    return any(line.startswith((b"# HELP ", b"# TYPE ")) for line in lines)


def classify_http(answer: HttpAnswer) -> tuple[str, str, dict[str, Any]]:
    """(service, label, details) of an HTTP answer to GET /."""
    doc = _json(answer.body)
    if isinstance(doc, dict) and isinstance(doc.get("tagline"), str):
        version = doc.get("version") if isinstance(doc.get("version"), dict) else {}
        number = clean(str(version.get("number", "")), 40)
        flavour = "opensearch" if "opensearch" in doc["tagline"].lower() or version.get(
            "distribution") == "opensearch" else "elasticsearch"
        name = "OpenSearch" if flavour == "opensearch" else "Elasticsearch"
        return flavour, f"{name} {number}".strip(), {
            "open": answer.status == 200, "status": answer.status, "version": number,
            "cluster_name": clean(str(doc.get("cluster_name", "")))}
    auth = answer.headers.get("www-authenticate", "")
    if answer.status in (401, 403) and (b"security_exception" in answer.body or 'realm="security"' in auth
                                        or "opensearch" in auth.lower()):
        return "elasticsearch", "Elasticsearch (authentication required)", {"open": False, "status": answer.status}
    if is_metrics_text(answer.body):
        return "metrics", "Prometheus metrics", {"metrics_public": True, "status": answer.status}
    if "/graph" in answer.headers.get("location", "") or b"Prometheus Time Series" in answer.body:
        return "prometheus", "Prometheus", {"status": answer.status}
    server = answer.headers.get("server", "")
    # Named by what answered: Rails' own headers, or Mastodon in the page; a web server that merely
    # adds security headers (nginx, Caddy ...) is that web server, whatever port it is on.
    web_server = re.match(r"(?i)(nginx|apache|caddy|lighttpd|traefik|envoy|openresty|h2o)\b", server)
    rails = "x-runtime" in answer.headers or ("x-request-id" in answer.headers and "x-frame-options" in answer.headers)
    mastodonish = not web_server and "content-security-policy" in answer.headers and "x-frame-options" in answer.headers
    if rails or mastodonish or b"mastodon" in answer.body[:4000].lower():
        return "mastodon-web", "Puma (Mastodon web)", {"status": answer.status}
    label = f"HTTP server {clean(server, 60)}".strip() if server else "HTTP server"
    return "http", label, {"status": answer.status}


def http_get(gate: TcpGate, address: str, port: int, path: str, timeout: float, tls: bool) -> bytes:
    host = f"[{address}]" if ":" in address else address
    request = (f"GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\nUser-Agent: {USER_AGENT}\r\nAccept: */*\r\n"
               "Connection: close\r\n\r\n").encode()
    return exchange(gate, address, port, request, timeout, tls=tls, limit=HTTP_LIMIT)


def hello_http(gate: TcpGate, result: PortResult, timeout: float, tls: bool) -> bool:
    data = http_get(gate, result.address, result.port, "/", timeout, tls)
    answer = parse_http(data)
    if answer is None:
        if data.startswith(b"HTTP/"):
            result.unparseable.append(f"GET / answered a malformed HTTP response: {excerpt(data)}")
        return False
    if answer.status == 400 and re.search(rb"(?i)plain http request|https port|client sent an http request to an "
                                          rb"https server", answer.body[:2000]) and not tls:
        return hello_http(gate, result, timeout, True)
    service, label, details = classify_http(answer)
    result.service, result.label, result.tls = service, label, tls
    result.banner = excerpt(data.split(b"\r\n", 1)[0])
    result.details.update(details, scheme="https" if tls else "http")
    if service in ("http", "prometheus"):
        health = parse_http(http_get(gate, result.address, result.port, "/api/v1/streaming/health", timeout, tls))
        if health is not None and health.status == 200 and health.body.strip()[:10] == b"OK":
            result.service, result.label = "mastodon-streaming", "Mastodon streaming"
    if result.service in ("http", "mastodon-streaming", "prometheus"):
        metrics = parse_http(http_get(gate, result.address, result.port, "/metrics", timeout, tls))
        if metrics is not None and metrics.status == 200 and is_metrics_text(metrics.body):
            result.details["metrics_public"] = True
    return True


# --- memcached ----------------------------------------------------------------------------------


def hello_memcached(gate: TcpGate, result: PortResult, timeout: float) -> bool:
    reply = exchange(gate, result.address, result.port, b"version\r\n", timeout, done=_line_done)
    match = re.match(rb"VERSION ([0-9A-Za-z.\-]{1,40})\r?\n", reply)
    if not match:
        return False
    result.service, result.label = "memcached", f"memcached {match.group(1).decode()}"
    result.banner = excerpt(reply)
    result.details["version"] = match.group(1).decode()
    return True


# --- identification -----------------------------------------------------------------------------


def hello_order(port: int) -> list[str]:
    """The hellos to try on a port, the likeliest first (TLS ones only if a handshake works)."""
    hint = PORT_HINTS.get(port, "http")
    others = [h for h in ("http", "redis", "memcached", "postgresql") if h != hint]
    if hint == "redis":
        return ["redis", "tls-redis", *others, "tls-http"]
    return [hint, *others, "tls-http", "tls-redis"]


def identify(gate: TcpGate, result: PortResult, timeout: float) -> None:
    """Fill in the service of an open port; never raises."""
    try:
        banner = exchange(gate, result.address, result.port, None, min(BANNER_WAIT, timeout), limit=READ_LIMIT,
                          done=_line_done)
    except OSError as exc:
        result.reason = f"closed again before the banner: {exc}"
        banner = b""
    if banner:
        result.service, result.label = classify_banner(banner)
        result.banner = excerpt(banner)
        return
    hellos: dict[str, Callable[[], bool]] = {
        "redis": lambda: hello_redis(gate, result, timeout, False),
        "tls-redis": lambda: hello_redis(gate, result, timeout, True),
        "postgresql": lambda: hello_postgres(gate, result, timeout),
        "http": lambda: hello_http(gate, result, timeout, False),
        "tls-http": lambda: hello_http(gate, result, timeout, True),
        "memcached": lambda: hello_memcached(gate, result, timeout),
    }
    tls_ok: bool | None = None
    silent = 0
    for name in hello_order(result.port):
        if name.startswith("tls-"):
            if tls_ok is None:
                tls_ok = _speaks_tls(gate, result.address, result.port, timeout)
            if not tls_ok:
                continue
        started = time.monotonic()
        try:
            if hellos[name]():
                return
        except OSError:
            continue  # refused or reset by this hello: try the next one
        if time.monotonic() - started >= timeout * 0.9:
            silent += 1  # it kept the connection open and said nothing
            if silent >= 2:
                break
    result.service = "unknown"
    result.label = "unidentified service (speaks TLS)" if tls_ok else "unidentified service"
    if silent >= 2:
        result.label += ", silent to every hello"


def _speaks_tls(gate: TcpGate, address: str, port: int, timeout: float) -> bool:
    try:
        with gate.connect(address, port, timeout) as raw, gate.tls(raw, _TLS):
            return True
    except OSError:
        return False


def scan(target: ScanTarget, gate: TcpGate) -> tuple[PortScan, list[PortResult]]:
    in_scope = tuple(dict.fromkeys(target.addresses))
    addresses = tuple(dict.fromkeys([*target.addresses, *target.scan_addresses]))
    ports = tuple(dict.fromkeys(target.ports))
    connect_timeout = min(CONNECT_TIMEOUT, target.timeout)
    pairs = [(a, p) for a in addresses for p in ports]
    results: list[PortResult] = []
    if pairs:
        with ThreadPoolExecutor(max_workers=min(64, len(pairs)), thread_name_prefix="ports") as pool:
            states = list(pool.map(lambda ap: connect_state(gate, ap[0], ap[1], connect_timeout), pairs))
        results = [PortResult(a, p, state, reason, a in in_scope, is_public(a))
                   for (a, p), (state, reason) in zip(pairs, states, strict=True)]
        opened = [r for r in results if r.state == "open"]
        if opened:
            hello_timeout = min(HELLO_TIMEOUT, target.timeout)
            with ThreadPoolExecutor(max_workers=min(16, len(opened)), thread_name_prefix="ports-id") as pool:
                list(pool.map(lambda r: identify(gate, r, hello_timeout), opened))
    return PortScan(addresses, ports, in_scope), results


@probe("ports", timeout=40, description="TCP connect scan of the internal services' ports, with banners and "
                                         "auth tests (Redis, PostgreSQL, Elasticsearch)")
def probe_ports(target: ScanTarget, ctx: ProbeContext):
    summary, results = scan(target, ctx.http.gate)
    if not summary.addresses:
        yield ProbeProblem("port_scan", "no address to scan (the web domain did not resolve)", target.name)
        return
    yield ProbeFact("port_scan", summary)
    for result in results:
        yield ProbeFact("port", result)
