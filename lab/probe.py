"""Small stdlib clients the lab uses for readiness checks (and tests may reuse): TCP banners,
HTTP(S) with a chosen SNI/Host on a chosen address, a DNS query, a Redis PING."""

from __future__ import annotations

import http.client
import random
import socket
import ssl
import struct
from dataclasses import dataclass


def tcp_open(address: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def banner(address: str, port: int, timeout: float = 2.0, size: int = 256) -> str:
    with socket.create_connection((address, port), timeout=timeout) as s:
        return s.recv(size).decode("latin-1", "replace")


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


class _HTTPSConnection(http.client.HTTPSConnection):
    """Connects to `address` while sending SNI and Host for `server_name` (no DNS needed)."""

    def __init__(self, address: str, port: int, server_name: str, context: ssl.SSLContext, timeout: float):
        super().__init__(server_name, port, context=context, timeout=timeout)
        self._address = address
        self._context = context

    def connect(self):
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def tls_context(cafile: str | None = None, verify: bool = True) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=cafile)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def http_request(address: str, port: int, path: str = "/", *, host: str | None = None, tls: bool = False,
                 cafile: str | None = None, verify: bool = True, method: str = "GET",
                 headers: dict[str, str] | None = None, body: bytes | None = None,
                 timeout: float = 5.0) -> Response:
    name = host or address
    if tls:
        conn: http.client.HTTPConnection = _HTTPSConnection(address, port, name, tls_context(cafile, verify), timeout)
    else:
        conn = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        hdrs = {"Host": name if port in (80, 443) else f"{name}:{port}", **(headers or {})}
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        return Response(resp.status, resp.headers, resp.read())
    finally:
        conn.close()


def dns_query(server: str, port: int, name: str, rtype: int = 6, timeout: float = 2.0) -> tuple[int, int, bool]:
    """(rcode, answer count, authoritative) for one UDP query; rtype 6 = SOA, 16 = TXT, 1 = A."""
    qid = random.randrange(65536)
    q = struct.pack(">HHHHHH", qid, 0x0000, 1, 0, 0, 0)
    q += b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    q += struct.pack(">HH", rtype, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(q, (server, port))
        data = s.recv(4096)
    rid, flags, _qd, an, _ns, _ar = struct.unpack(">HHHHHH", data[:12])
    if rid != qid:
        raise OSError("DNS answer with a wrong id")
    return flags & 0xF, an, bool(flags & 0x0400)


def redis_command(address: str, port: int, *args: str, password: str | None = None,
                  timeout: float = 2.0) -> list[str]:
    """Send AUTH (if a password is given) and one command; return the raw reply lines."""
    def enc(parts: tuple[str, ...]) -> bytes:
        out = f"*{len(parts)}\r\n".encode()
        for p in parts:
            b = p.encode()
            out += f"${len(b)}\r\n".encode() + b + b"\r\n"
        return out

    payload = (enc(("AUTH", password)) if password else b"") + enc(args)
    with socket.create_connection((address, port), timeout=timeout) as s:
        s.sendall(payload)
        want = 2 if password else 1
        buf = b""
        while buf.count(b"\r\n") < want:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    return buf.decode("latin-1").split("\r\n")[:want]
