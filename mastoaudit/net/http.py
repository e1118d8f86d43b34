"""A small, careful HTTP(S) client for probes.

- connects to a chosen address with the right Host and SNI (like curl --resolve);
- bounds everything: connect and read time, header count and size, body size;
- follows redirects only to the same site or to public addresses: a redirect to a private,
  loopback or link-local address that the user did not name is refused and recorded;
- does not verify certificates (the TLS checks judge them); it records whether verification passed.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from ..addresses import is_public
from .dns import Resolver
from .target import ScanTarget

MAX_BODY_BYTES = 512 * 1024
MAX_REDIRECTS = 5
USER_AGENT = "mastoaudit/0.1 (+security audit; read-only)"


@dataclass
class Response:
    url: str
    status: int
    headers: list[tuple[str, str]]  # names lower-cased, in order, repeated headers kept
    body: bytes
    truncated: bool = False
    address: str = ""
    redirects: list[str] = field(default_factory=list)  # the URLs followed to get here
    blocked_redirect: str | None = None  # a redirect that was not followed, and why
    cert_verified: bool | None = None  # None for plain http
    elapsed: float = 0.0

    def header(self, name: str) -> str | None:
        """The first value of a header, or None."""
        name = name.lower()
        return next((v for k, v in self.headers if k == name), None)

    def header_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k == name]

    @property
    def location(self) -> str | None:
        return self.header("location")

    def text(self, limit: int = MAX_BODY_BYTES) -> str:
        return self.body[:limit].decode("utf-8", "replace")


class HttpError(Exception):
    """The request could not be made or answered (a finding's error, with the reason)."""


def _context(verify: bool, ca_bundle: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca_bundle) if verify else ssl._create_unverified_context()
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


class HttpClient:
    def __init__(self, target: ScanTarget, resolver: Resolver | None = None) -> None:
        self.target = target
        self.resolver = resolver or Resolver(target)
        self._verified: dict[tuple[str, int, str], bool] = {}

    def _address(self, host: str) -> str:
        if host == self.target.web_domain and self.target.addresses:
            return self.target.addresses[0]
        found = self.resolver.addresses(host)
        if not found:
            raise HttpError(f"{host} does not resolve")
        return found[0]

    def _allowed(self, address: str) -> bool:
        return is_public(address) or address in self.target.own_addresses()

    def get(self, url: str, *, method: str = "GET", headers: dict[str, str] | None = None,
            follow: bool = False, max_body: int = MAX_BODY_BYTES, address: str | None = None) -> Response:
        chain: list[str] = []
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            response = self._once(current, method, headers or {}, max_body, address)
            response.redirects = chain
            if not follow or response.status not in (301, 302, 303, 307, 308) or not response.location:
                return response
            nxt = urljoin(current, response.location)
            parts = urlsplit(nxt)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                response.blocked_redirect = f"not followed: {nxt[:200]} (not http or https)"
                return response
            try:
                next_address = self._address(parts.hostname)
            except HttpError as exc:
                response.blocked_redirect = f"not followed: {exc}"
                return response
            if not self._allowed(next_address):
                response.blocked_redirect = (f"not followed: {parts.hostname} resolves to {next_address}, a "
                                             "private address the scan was not pointed at")
                return response
            chain.append(current)
            current, address = nxt, next_address
        raise HttpError(f"more than {MAX_REDIRECTS} redirects from {url}")

    def _once(self, url: str, method: str, headers: dict[str, str], max_body: int,
              address: str | None) -> Response:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise HttpError(f"not an http(s) URL: {url[:200]}")
        host = parts.hostname
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = address or self._address(host)
        timeout = self.target.timeout
        started = time.monotonic()
        try:
            sock = socket.create_connection((address, port), timeout=timeout)
        except OSError as exc:
            raise HttpError(f"{address}:{port}: {exc.strerror or exc}") from None
        verified: bool | None = None
        try:
            if parts.scheme == "https":
                verified = self._verifies(address, port, host)
                sock = _context(False, None).wrap_socket(sock, server_hostname=host)
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
            conn.sock = sock
            path = parts.path or "/"
            if parts.query:
                path += "?" + parts.query
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", host if port in (80, 443) else f"{host}:{port}")
            conn.putheader("User-Agent", USER_AGENT)
            conn.putheader("Accept-Encoding", "identity")
            for name, value in headers.items():
                conn.putheader(name, value)
            conn.endheaders()
            resp = conn.getresponse()
            body = b"" if method == "HEAD" else resp.read(max_body + 1)
            return Response(
                url=url, status=resp.status,
                headers=[(k.lower(), v) for k, v in resp.getheaders()],
                body=body[:max_body], truncated=len(body) > max_body, address=address,
                cert_verified=verified, elapsed=time.monotonic() - started,
            )
        except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
            raise HttpError(f"{url[:200]} at {address}:{port}: {type(exc).__name__}: {exc}") from None
        finally:
            sock.close()

    def _verifies(self, address: str, port: int, host: str) -> bool:
        """Whether the certificate chain and name verify against the trusted CAs (one extra handshake
        per endpoint and name, remembered)."""
        key = (address, port, host)
        if key not in self._verified:
            self._verified[key] = self._handshake_verifies(address, port, host)
        return self._verified[key]

    def _handshake_verifies(self, address: str, port: int, host: str) -> bool:
        try:
            with socket.create_connection((address, port), timeout=self.target.timeout) as raw, \
                    _context(True, self.target.ca_bundle).wrap_socket(raw, server_hostname=host):
                return True
        except (OSError, ssl.SSLError):
            return False
