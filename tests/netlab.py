"""Servers for the outbound client's tests: hostile HTTP(S) servers (trickle, slowloris headers, huge
and gzip-bombed bodies, redirect loops and redirects to forbidden addresses), listeners that only
record who connected, and a test CA. Used in-process by tests/net/test_client.py and, inside a
network namespace, as `python -m tests.netlab serve CONFIG.json` by tests/net/test_namespace.py.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import socket
import socketserver
import ssl
import sys
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path

Behaviour = Callable[[socket.socket, dict], None]


# --- certificates -----------------------------------------------------------------------------------


def make_ca_and_cert(folder: Path, names: list[str], addresses: list[str] = ()) -> tuple[Path, Path, Path]:
    """A test CA and a leaf for `names` (and IP `addresses`): (ca.pem, cert.pem, key.pem)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mastoaudit test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
          .not_valid_after(now + dt.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(ca_key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    ca_path, cert_path, key_path = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return ca_path, cert_path, key_path


# --- behaviours ------------------------------------------------------------------------------------


def _head(status: int, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def respond(status: int = 200, body: bytes = b"", headers: list[tuple[str, str]] | None = None,
            close: bool = False) -> Behaviour:
    def run(conn: socket.socket, request: dict) -> None:
        extra = list(headers or [])
        extra.append(("Content-Length", str(len(body))))
        if close:
            extra.append(("Connection", "close"))
        conn.sendall(_head(status, extra) + (b"" if request["method"] == "HEAD" else body))
        if close:
            raise _Done
    return run


def delayed(seconds: float, then: Behaviour) -> Behaviour:
    def run(conn: socket.socket, request: dict) -> None:
        time.sleep(seconds)
        then(conn, request)
    return run


def json_doc(doc: object, status: int = 200) -> Behaviour:
    return respond(status, json.dumps(doc).encode(), [("Content-Type", "application/json")])


def redirect(location: str | Callable[[dict], str], status: int = 302) -> Behaviour:
    def run(conn: socket.socket, request: dict) -> None:
        where = location(request) if callable(location) else location
        respond(status, b"", [("Location", where)])(conn, request)
    return run


def trickle(interval: float = 1.0, head: bool = True) -> Behaviour:
    """A body (or, with head=False, a status line) one byte per `interval`, for ever."""
    def run(conn: socket.socket, request: dict) -> None:
        if head:
            conn.sendall(_head(200, [("Content-Type", "application/json"), ("Content-Length", "100000000")]))
        else:
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
        while True:
            time.sleep(interval)
            conn.sendall(b"x" if head else b"X")  # a header name that never ends (slowloris)
    return run


def huge(chunk: int = 65536) -> Behaviour:
    """An endless body."""
    def run(conn: socket.socket, request: dict) -> None:
        conn.sendall(_head(200, [("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")]))
        piece = b"%x\r\n" % chunk + b"[" * chunk + b"\r\n"
        while True:
            conn.sendall(piece)
    return run


_BOMB: bytes | None = None


def gzip_bomb() -> Behaviour:
    """About 200 KB that inflate to 200 MB of zeros."""
    def run(conn: socket.socket, request: dict) -> None:
        respond(200, bomb(), [("Content-Type", "application/json"), ("Content-Encoding", "gzip")])(conn, request)
    return run


def bomb() -> bytes:
    """200 MB of zeros, gzipped (made a megabyte at a time: the server does not hold 200 MB either)."""
    global _BOMB
    if _BOMB is None:
        packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
        zeros = b"\0" * (1024 * 1024)
        _BOMB = b"".join(packer.compress(zeros) for _ in range(200)) + packer.flush()
    return _BOMB


def close_without_answer() -> Behaviour:
    def run(conn: socket.socket, request: dict) -> None:
        raise _Done
    return run


class _Done(Exception):
    """The behaviour ended the connection."""


# --- servers -------------------------------------------------------------------------------------------


class Recorder:
    """Every connection accepted, as (listening address, port, path or None), thread-safe; appended to
    `log` (a JSON-lines file) as it happens when one is given."""

    def __init__(self, log: Path | None = None) -> None:
        self.events: list[dict] = []
        self.log = log
        self._lock = threading.Lock()

    def add(self, **event) -> None:
        with self._lock:
            self.events.append(event)
            if self.log is not None:
                with self.log.open("a") as out:
                    out.write(json.dumps(event) + "\n")


def _read_request(conn: socket.socket) -> dict | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
        if len(data) > 65536:
            return None
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    first, *lines = head.split("\r\n")
    method, path, _ = ([*first.split(" ", 2), "", ""])[:3]
    headers = [tuple(x.strip() for x in line.split(":", 1)) for line in lines if ":" in line]
    return {"method": method, "path": path, "headers": headers}


class HttpServer:
    """A threaded HTTP/1.1 server (keep-alive) whose paths answer with behaviours; TLS when given a
    certificate. Every connection and request is recorded."""

    def __init__(self, address: str, port: int, routes: dict[str, Behaviour], *, cert: tuple[Path, Path] | None = None,
                 recorder: Recorder | None = None, close_after: int | None = None) -> None:
        self.routes = routes
        self.recorder = recorder or Recorder()
        self.requests: list[dict] = []
        self.open_now = 0
        self.most_open = 0
        self._lock = threading.Lock()
        self.context = None
        if cert is not None:
            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.context.load_cert_chain(str(cert[0]), str(cert[1]))
        server = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                server._serve(self.request, self.server.server_address, close_after)

        family = socket.AF_INET6 if ":" in address else socket.AF_INET

        class Server(socketserver.ThreadingTCPServer):
            address_family = family
            allow_reuse_address = True
            daemon_threads = True
            request_queue_size = 256

        self.server = Server((address, port), Handler)
        self.address, self.port = self.server.server_address[:2]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _serve(self, conn: socket.socket, local: tuple, close_after: int | None) -> None:
        with self._lock:
            self.open_now += 1
            self.most_open = max(self.most_open, self.open_now)
        self.recorder.add(address=local[0], port=local[1], kind="connect")
        try:
            conn.settimeout(30)
            if self.context is not None:
                conn = self.context.wrap_socket(conn, server_side=True)
            served = 0
            while close_after is None or served < close_after:
                request = _read_request(conn)
                if request is None:
                    return
                with self._lock:
                    self.requests.append(request)
                self.recorder.add(address=local[0], port=local[1], kind="request", path=request["path"])
                behaviour = self.routes.get(request["path"].split("?", 1)[0], respond(404))
                behaviour(conn, request)
                served += 1
        except (_Done, OSError, ssl.SSLError):
            return
        finally:
            with self._lock:
                self.open_now -= 1
            with contextlib.suppress(OSError):
                conn.close()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Listener:
    """Accepts on address:port, records the connection, closes it (a service the scan must not reach)."""

    def __init__(self, address: str, port: int, recorder: Recorder) -> None:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, port))
        self.sock.listen(64)
        self.address, self.port = address, self.sock.getsockname()[1]
        self.recorder = recorder
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return
            self.recorder.add(address=self.address, port=self.port, kind="connect", peer=peer[0])
            conn.close()

    def close(self) -> None:
        self.sock.close()


# --- a whole hostile world, for the network-namespace test ---------------------------------------------


def serve(config_path: str) -> None:
    """Start what a JSON config names and run until killed: {"log": path, "listeners": [[addr, port]...],
    "sites": [{"address", "port", "tls": bool, "cert": [cert, key], "routes": {path: [behaviour, args...]}}]}.
    Prints "ready" once everything listens."""
    config = json.loads(Path(config_path).read_text())
    recorder = Recorder(Path(config["log"]))
    for address, port in config.get("listeners", []):
        Listener(address, port, recorder)
    makers = {"respond": lambda status, body="", headers=(): respond(status, body.encode(),
                                                                     [tuple(h) for h in headers]),
              "json": json_doc, "redirect": redirect, "trickle": trickle, "huge": huge, "gzip_bomb": gzip_bomb}
    for site in config.get("sites", []):
        routes = {path: makers[spec[0]](*spec[1:]) for path, spec in site["routes"].items()}
        HttpServer(site["address"], site["port"], routes, cert=tuple(site["cert"]) if site.get("cert") else None,
                   recorder=recorder)
    print("ready", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        serve(sys.argv[2])
    else:
        print("usage: python -m tests.netlab serve CONFIG.json", file=sys.stderr)
        raise SystemExit(2)
