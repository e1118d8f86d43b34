"""The one outbound HTTP client: every HTTP(S) request of mastoaudit goes through here, the probes'
(through the blocking facade in `net/http.py`) and the federation sweep's (this async API directly).

What it guarantees, for hostile servers and hostile DNS alike:

- **The address checked is the address connected to.** A name is resolved once per request (or
  pinned, like curl --resolve), every address is judged by `AddressPolicy`, and the socket is
  opened to that very IP literal: there is no second look-up for DNS rebinding to slip into. The
  peer address of the open socket is compared with it again. Every redirect hop is a new request:
  resolved, judged and connected the same way.
- **A total deadline per request** (connect, TLS, headers, body, every redirect hop), enforced by
  cancelling the request's coroutine, besides the per-connect and per-read time limits: a server
  trickling one byte a second ends as that request's `timeout` error.
- **Bounds:** body bytes per document (after decompression: a gzip bomb is inflated only up to the
  cap), header bytes and count, redirects, concurrency overall and per address; one User-Agent that
  names the tool; no cookies are kept or sent; no retries (one fresh connection replaces a pooled
  keep-alive connection the server had already closed, for idempotent requests only).
- **Errors are data:** every failure is a `FetchError` with a `kind` (dns, refused, tls, timeout,
  too-large, not-json, private-address, ...) and a message naming the URL and address.

HTTP/1.1 is spoken with h11 (the protocol state machine httpx is built on); connections are asyncio
streams opened here, so that the connection step, where the policy is applied, is ours.

For many documents (the federation sweep), in one event loop:

    client = Client(AddressPolicy.allowing(user_networks, user_names), resolve=my_resolver,
                    limits=Limits(concurrency=512, per_address=4, total=10))
    async for result in client.map_json(urls, max_bytes=64 * 1024, per_request=10):
        result.ok, result.doc, result.kind, result.error          # kind: a Kind value, or None
    # or, for several requests per peer (NodeInfo index, then the document it links to):
    async for outcome in bounded_map(sweep_one_peer, peers, in_flight=512): ...
    await client.close()

Blocking code (the probes) uses `net/http.py`'s HttpClient, which runs this client on one event loop
in a daemon thread.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import ssl
import zlib
from asyncio import sslproto
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import urljoin, urlsplit

import h11

from ..addresses import AddressPolicy, parse_ip

USER_AGENT = "mastoaudit/0.1 (+security audit; read-only)"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})
READ_CHUNK = 65536
# asyncio gives every TLS connection a 256 KiB read buffer (SSLProtocol.max_size, touched at once): a
# sweep holding a thousand connections would spend 256 MB on buffers. TLS records are 16 KiB at most.
TLS_READ_BUFFER = 32 * 1024
if getattr(sslproto.SSLProtocol, "max_size", 0) > TLS_READ_BUFFER:
    sslproto.SSLProtocol.max_size = TLS_READ_BUFFER


class Kind:
    """Why a request failed (FetchError.kind): stable strings for reports and the sweep's JSON."""

    BAD_URL = "bad-url"
    DNS = "dns"
    PRIVATE = "private-address"  # every address of the name is one the policy refuses
    REFUSED = "refused"  # nothing listens (connection refused)
    UNREACHABLE = "unreachable"  # no route, network down, reset while connecting
    TLS = "tls"
    TIMEOUT = "timeout"
    PROTOCOL = "protocol"  # not HTTP, malformed, too many or too long headers
    RESET = "reset"  # the connection broke during the exchange
    TOO_LARGE = "too-large"
    REDIRECTS = "too-many-redirects"
    REDIRECT_REFUSED = "redirect-refused"  # a redirect the policy does not let us follow
    STATUS = "http-status"  # fetch_json: an answer other than 200
    NOT_JSON = "not-json"


class FetchError(Exception):
    """A request that could not be made or answered; `kind` says why (see Kind)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Limits:
    connect: float = 5.0  # seconds to connect and finish the TLS handshake
    read: float = 5.0  # seconds of silence allowed between two reads
    total: float = 15.0  # seconds for the whole request, redirects included
    max_body: int = 512 * 1024  # bytes of body kept (decompressed)
    max_header_bytes: int = 64 * 1024  # the whole response head
    max_headers: int = 100
    max_redirects: int = 5
    concurrency: int = 64  # requests in flight, overall
    per_address: int = 16  # requests in flight to one IP address
    keepalive: float = 5.0  # seconds an idle connection is kept for reuse (0: never reused)
    max_idle: int = 64  # idle connections kept, overall (the oldest is closed to make room)
    addresses_tried: int = 2  # addresses of one name tried when connecting fails


@dataclass
class Response:
    url: str  # the URL that answered (after redirects followed)
    status: int
    headers: list[tuple[str, str]]  # names lower-cased, in order, repeated headers kept
    body: bytes
    truncated: bool = False
    address: str = ""  # the address connected to
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

    def text(self, limit: int | None = None) -> str:
        return (self.body if limit is None else self.body[:limit]).decode("utf-8", "replace")


@dataclass
class JsonResult:
    """One document of `Client.fetch_json`/`map_json`: the parsed JSON, or the error's kind and message."""

    url: str
    doc: object = None
    response: Response | None = None
    kind: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.kind is None


Resolve = Callable[[str], Awaitable[Sequence[str]]]
_T = TypeVar("_T")
_R = TypeVar("_R")


async def system_resolve(name: str) -> list[str]:
    """The system resolver's A and AAAA answers (getaddrinfo); [] when the name does not resolve."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(name, None, proto=6)  # IPPROTO_TCP
    except OSError:
        return []
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _same_ip(a: str, b: str) -> bool:
    x, y = parse_ip(a), parse_ip(b)
    return x is not None and x == y


def _bracket(address: str) -> str:
    return f"[{address}]" if ":" in address else address


@dataclass(eq=False)
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    address: str
    verified: bool | None
    key: tuple
    protocol: h11.Connection
    idle_since: float = 0.0
    received: int = 0  # bytes received during the current exchange

    def close(self, abort: bool = False) -> None:
        transport = self.writer.transport
        if abort:
            transport.abort()
        else:
            transport.close()

    @property
    def usable(self) -> bool:
        return not self.writer.is_closing() and not self.reader.at_eof()


class _Inflater:
    """gzip/deflate bodies, inflated at most up to a byte budget (a bomb stays a bounded error)."""

    def __init__(self, encoding: str) -> None:
        self._z = zlib.decompressobj(zlib.MAX_WBITS | 16 if encoding in ("gzip", "x-gzip") else zlib.MAX_WBITS)
        self.over = False

    def feed(self, data: bytes, room: int) -> bytes:
        out = self._z.decompress(data, max(room, 1))
        if self._z.unconsumed_tail:
            self.over = True  # more output than room: the caller stops here
        return out


class KeyedLimit:
    """At most `width` holders per key at once (an address, a host); a key's semaphore lives only
    while someone holds or waits for it, so a sweep of 30,000 addresses keeps none of them."""

    def __init__(self, width: int) -> None:
        self.width = max(1, width)
        self._slots: dict[str, list] = {}  # key -> [semaphore, holders and waiters]

    @contextlib.asynccontextmanager
    async def slot(self, key: str):
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = [asyncio.Semaphore(self.width), 0]
        slot[1] += 1
        try:
            async with slot[0]:
                yield
        finally:
            slot[1] -= 1
            if slot[1] == 0:
                self._slots.pop(key, None)

    def __len__(self) -> int:
        return len(self._slots)


async def bounded_map(work: Callable[[_T], Awaitable[_R]], items: Iterable[_T], in_flight: int
                      ) -> AsyncIterator[_R]:
    """work(item) for every item, at most `in_flight` at once, results as they complete. Items are
    drawn lazily: 30,000 peers cost 30,000 results, never 30,000 pending coroutines."""
    pending: set[asyncio.Future] = set()
    source = iter(items)
    width = max(1, in_flight)

    def fill() -> None:
        for item in source:
            pending.add(asyncio.ensure_future(work(item)))
            if len(pending) >= width:
                return

    fill()
    try:
        while pending:
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                pending.discard(task)
                yield task.result()
            fill()
    finally:
        for task in pending:
            task.cancel()


class Client:
    """The async core. One per scan or sweep; use it from one event loop.

    `policy` decides where connections may go; `resolve` turns a name into addresses (the scan's
    resolver, a sweep's resolver map); `pins` fixes the addresses of some names (the scanned site's,
    --resolve), which the policy still judges."""

    def __init__(self, policy: AddressPolicy, *, resolve: Resolve | None = None,
                 pins: Mapping[str, Sequence[str]] | None = None, limits: Limits | None = None,
                 ca_bundle: str | None = None, user_agent: str = USER_AGENT) -> None:
        self.policy = policy
        self.limits = limits or Limits()
        self._resolve = resolve or system_resolve
        self._pins = {k.lower().rstrip("."): tuple(v) for k, v in (pins or {}).items() if v}
        self.user_agent = user_agent
        self._verifying = ssl.create_default_context(cafile=ca_bundle)
        self._unverified = ssl._create_unverified_context()  # the TLS checks judge certificates, not this
        for ctx in (self._verifying, self._unverified):
            ctx.set_alpn_protocols(["http/1.1"])
        self._verdicts: dict[tuple[str, int, str], bool] = {}  # (address, port, name) -> chain verifies
        self._slots: asyncio.Semaphore | None = None
        self._per_address = KeyedLimit(self.limits.per_address)  # requests in flight per address
        self._idle: dict[tuple, list[_Conn]] = {}  # key -> idle connections, the newest last
        self._idle_order: collections.OrderedDict[_Conn, None] = collections.OrderedDict()  # the oldest first

    # --- the public API -------------------------------------------------------------------------

    async def request(self, url: str, *, method: str = "GET", headers: Mapping[str, str] | None = None,
                      follow: bool = False, max_body: int | None = None, address: str | None = None,
                      deadline: float | None = None, verify: str = "record", decompress: bool = False) -> Response:
        """One request (and its redirects when `follow`); raises FetchError.

        `address` connects there instead of resolving the URL's host (Host and SNI stay the name's).
        `deadline` is an absolute loop time (default: now + limits.total). `verify`: "record" connects
        whatever the certificate and records whether it verifies, "require" fails on a certificate that
        does not verify (kind tls), "off" does not look. `decompress` asks for gzip and inflates it,
        up to `max_body`."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = min(deadline if deadline is not None else started + self.limits.total,
                       started + self.limits.total)
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.limits.concurrency)
        try:
            async with asyncio.timeout_at(deadline):
                async with self._slots:
                    return await self._follow(url, method.upper(), dict(headers or {}), follow,
                                              self.limits.max_body if max_body is None else max_body,
                                              address, verify, decompress)
        except TimeoutError:
            raise FetchError(Kind.TIMEOUT, f"{url[:200]}: no complete answer within {deadline - started:.0f} s"
                             ) from None

    async def fetch_json(self, url: str, *, max_bytes: int = 64 * 1024, deadline: float | None = None,
                         headers: Mapping[str, str] | None = None, follow: bool = True,
                         verify: str = "require") -> JsonResult:
        """GET a JSON document; never raises. Errors: every FetchError kind, plus http-status (not 200),
        too-large (more than max_bytes, decompressed) and not-json (invalid, or nested too deep)."""
        wanted = {"Accept": "application/json", **(headers or {})}
        try:
            response = await self.request(url, headers=wanted, follow=follow, max_body=max_bytes,
                                          deadline=deadline, verify=verify, decompress=True)
        except FetchError as exc:
            return JsonResult(url, kind=exc.kind, error=str(exc))
        if response.blocked_redirect:
            return JsonResult(url, response=response, kind=Kind.REDIRECT_REFUSED, error=response.blocked_redirect)
        if response.status != 200:
            return JsonResult(url, response=response, kind=Kind.STATUS, error=f"{url[:200]} answered {response.status}")
        if response.truncated:
            return JsonResult(url, response=response, kind=Kind.TOO_LARGE,
                              error=f"{url[:200]}: larger than {max_bytes} bytes")
        try:
            doc = json.loads(response.body.decode("utf-8"))
        except (ValueError, RecursionError, UnicodeDecodeError) as exc:
            return JsonResult(url, response=response, kind=Kind.NOT_JSON,
                              error=f"{url[:200]}: not JSON ({type(exc).__name__})")
        return JsonResult(url, doc, response)

    async def map_json(self, urls: Iterable[str], *, max_bytes: int = 64 * 1024, per_request: float | None = None,
                       in_flight: int | None = None, **kwargs) -> AsyncIterator[JsonResult]:
        """fetch_json over many URLs, yielding results as they complete; each request has its own
        deadline (`per_request` seconds) and at most `in_flight` run at once (see bounded_map)."""
        loop = asyncio.get_running_loop()

        def one(url: str) -> Awaitable[JsonResult]:
            deadline = loop.time() + (per_request or self.limits.total)
            return self.fetch_json(url, max_bytes=max_bytes, deadline=deadline, **kwargs)

        async for result in bounded_map(one, urls, in_flight or self.limits.concurrency):
            yield result

    async def close(self) -> None:
        """Close the idle connections kept for reuse."""
        for conn in self._idle_order:
            conn.close(abort=True)
        self._idle.clear()
        self._idle_order.clear()

    def verdict(self, address: str, port: int, name: str) -> bool | None:
        """Whether the certificate at address:port verified for `name` (None: not seen)."""
        return self._verdicts.get((address, port, name))

    # --- redirects ------------------------------------------------------------------------------

    async def _follow(self, url: str, method: str, headers: dict[str, str], follow: bool, max_body: int,
                      address: str | None, verify: str, decompress: bool) -> Response:
        chain: list[str] = []
        current = url
        candidates: list[str] | None = None
        for _ in range(self.limits.max_redirects + 1):
            response = await self._once(current, method, headers, max_body, address, candidates, verify, decompress)
            response.redirects = chain
            if not follow or response.status not in REDIRECT_STATUSES or not response.location:
                return response
            nxt = urljoin(current, response.location)
            parts = urlsplit(nxt)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                response.blocked_redirect = f"not followed: {nxt[:200]} (not http or https)"
                return response
            try:
                candidates = await self._addresses(parts.hostname, None)
            except FetchError as exc:
                response.blocked_redirect = f"not followed: {exc}"
                return response
            chain.append(current)
            current, address = nxt, None
            if response.status == 303 and method != "HEAD":
                method = "GET"
        raise FetchError(Kind.REDIRECTS, f"more than {self.limits.max_redirects} redirects from {url[:200]}")

    # --- one hop --------------------------------------------------------------------------------

    async def _addresses(self, host: str, pinned: str | None) -> list[str]:
        """The addresses a connection to `host` may use, judged by the policy (FetchError otherwise)."""
        host = host.lower().rstrip(".")
        if pinned is not None:
            found: Sequence[str] = [pinned]
        elif parse_ip(host) is not None:
            found = [str(parse_ip(host))]
        elif host in self._pins:
            found = self._pins[host]
        else:
            found = await self._resolve(host)
            if not found:
                raise FetchError(Kind.DNS, f"{host[:200]} does not resolve")
        allowed = [a for a in found if self.policy.permits(a, host)]
        if not allowed:
            why = self.policy.refusal(found[0], host) or "not allowed"
            shown = why if _same_ip(host, found[0]) else f"{host[:200]} resolves to {why}"
            raise FetchError(Kind.PRIVATE, shown)
        return allowed[:self.limits.addresses_tried]

    async def _once(self, url: str, method: str, headers: dict[str, str], max_body: int, address: str | None,
                    candidates: list[str] | None, verify: str, decompress: bool) -> Response:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise FetchError(Kind.BAD_URL, f"not a URL: {url[:200]}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchError(Kind.BAD_URL, f"not an http(s) URL: {url[:200]}")
        host = parts.hostname
        tls = parts.scheme == "https"
        port = port or (443 if tls else 80)
        addresses = candidates if candidates is not None and address is None else await self._addresses(host, address)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        shown_host = _bracket(host) if parse_ip(host) is not None else host
        host_header = shown_host if port == (443 if tls else 80) else f"{shown_host}:{port}"
        wanted = [("Host", host_header), ("User-Agent", self.user_agent),
                  ("Accept-Encoding", "gzip, deflate" if decompress else "identity"), *headers.items()]
        loop = asyncio.get_running_loop()
        started = loop.time()
        for i, candidate in enumerate(addresses):
            key = (tls, candidate, port, host, verify if tls else "-")
            async with self._per_address.slot(candidate):
                try:
                    conn = self._reuse(key)
                    reused = conn is not None
                    if conn is None:
                        conn = await self._open(key)
                except FetchError as exc:
                    if exc.kind in (Kind.REFUSED, Kind.UNREACHABLE, Kind.TIMEOUT) and i + 1 < len(addresses):
                        continue  # the next address of the name
                    raise
                try:
                    response = await self._exchange(conn, url, method, path, wanted, max_body, decompress)
                except _StaleConnection as exc:
                    conn.close(abort=True)
                    if not (reused and method in IDEMPOTENT):
                        raise FetchError(Kind.RESET, f"{url[:200]} at {_bracket(candidate)}:{port}: {exc}") from None
                    # The server had closed the kept-alive connection: one fresh connection instead.
                    conn = await self._open(key)
                    try:
                        response = await self._exchange(conn, url, method, path, wanted, max_body, decompress)
                    except _StaleConnection as again:
                        conn.close(abort=True)
                        raise FetchError(Kind.RESET, f"{url[:200]} at {_bracket(candidate)}:{port}: {again}") \
                            from None
                    except BaseException:
                        conn.close(abort=True)
                        raise
                except BaseException:
                    conn.close(abort=True)
                    raise
                response.elapsed = loop.time() - started
                return response
        raise AssertionError("unreachable: the last address raises")

    # --- connections ----------------------------------------------------------------------------

    def _reuse(self, key: tuple) -> _Conn | None:
        idle = self._idle.get(key)
        now = asyncio.get_running_loop().time()
        while idle:
            conn = idle.pop()
            del self._idle_order[conn]
            if conn.usable and now - conn.idle_since < self.limits.keepalive:
                return conn
            conn.close(abort=True)
        self._idle.pop(key, None)
        return None

    def _checkin(self, conn: _Conn) -> None:
        if self.limits.keepalive <= 0 or self.limits.max_idle <= 0 or not conn.usable:
            conn.close()
            return
        while len(self._idle_order) >= self.limits.max_idle:  # make room: the oldest idle connection goes
            oldest, _ = self._idle_order.popitem(last=False)
            peers = self._idle.get(oldest.key, [])
            peers.remove(oldest)
            if not peers:
                self._idle.pop(oldest.key, None)
            oldest.close()
        conn.idle_since = asyncio.get_running_loop().time()
        self._idle.setdefault(conn.key, []).append(conn)
        self._idle_order[conn] = None

    async def _open(self, key: tuple) -> _Conn:
        tls, address, port, host, verify = key
        where = f"{_bracket(address)}:{port}"
        verified: bool | None = None
        context: ssl.SSLContext | None = None
        if tls:
            known = self._verdicts.get((address, port, host))
            context = self._unverified if verify == "off" or (verify == "record" and known is False) \
                else self._verifying
        try:
            reader, writer = await self._connect(address, port, host, context)
            if tls and verify != "off":
                verified = context is self._verifying
        except ssl.SSLCertVerificationError as exc:
            self._verdicts[(address, port, host)] = False
            if verify != "record":
                raise FetchError(Kind.TLS, f"{where}: the certificate does not verify for {host[:200]}: "
                                 f"{exc.verify_message or exc}") from None
            reader, writer = await self._connect(address, port, host, self._unverified)
            verified = False
        if verified is not None:
            self._verdicts[(address, port, host)] = verified
        peer = writer.get_extra_info("peername")
        if not peer or not _same_ip(str(peer[0]), address):  # defence in depth: what we judged is what we reached
            writer.transport.abort()
            raise FetchError(Kind.PRIVATE, f"{where}: connected to {peer!r}, not the address judged")
        return _Conn(reader, writer, address, verified, key,
                     h11.Connection(h11.CLIENT, max_incomplete_event_size=self.limits.max_header_bytes))

    async def _connect(self, address: str, port: int, host: str, context: ssl.SSLContext | None):
        where = f"{_bracket(address)}:{port}"
        kwargs: dict = {}
        if context is not None:
            kwargs = {"ssl": context, "server_hostname": host, "ssl_shutdown_timeout": 1.0}
        try:
            async with asyncio.timeout(self.limits.connect):
                # An IP literal: asyncio connects to exactly this address, with no look-up of its own.
                return await asyncio.open_connection(address, port, limit=READ_CHUNK, **kwargs)
        except TimeoutError:
            raise FetchError(Kind.TIMEOUT, f"{where}: no connection within {self.limits.connect:g} s") from None
        except ssl.SSLCertVerificationError:
            raise
        except ssl.SSLError as exc:
            raise FetchError(Kind.TLS, f"{where}: TLS handshake failed: {exc.reason or exc}") from None
        except ConnectionRefusedError:
            raise FetchError(Kind.REFUSED, f"{where}: Connection refused") from None
        except OSError as exc:  # asyncio's own words hide errno's: say what errno says
            reason = os.strerror(exc.errno) if exc.errno else exc.strerror or type(exc).__name__
            raise FetchError(Kind.UNREACHABLE, f"{where}: {reason}") from None

    # --- the exchange ---------------------------------------------------------------------------

    async def _next_event(self, conn: _Conn, url: str):
        """The next h11 event, reading (within the per-read limit) as long as h11 needs data."""
        proto = conn.protocol
        while True:
            event = proto.next_event()
            if event is not h11.NEED_DATA:
                return event
            try:
                async with asyncio.timeout(self.limits.read):
                    data = await conn.reader.read(READ_CHUNK)
            except TimeoutError:
                raise FetchError(Kind.TIMEOUT, f"{url[:200]} at {_bracket(conn.address)}: no answer within "
                                 f"{self.limits.read:g} s") from None
            except (ConnectionError, ssl.SSLError) as exc:
                raise _StaleConnection(f"{type(exc).__name__}: {exc}") from None
            conn.received += len(data)
            proto.receive_data(data)

    async def _exchange(self, conn: _Conn, url: str, method: str, path: str, headers: list[tuple[str, str]],
                        max_body: int, decompress: bool) -> Response:
        proto = conn.protocol
        where = f"{url[:200]} at {_bracket(conn.address)}"
        conn.received = 0
        try:
            conn.writer.write(proto.send(h11.Request(method=method, target=path, headers=headers))
                              + proto.send(h11.EndOfMessage()))
            await conn.writer.drain()
        except h11.LocalProtocolError as exc:
            raise FetchError(Kind.BAD_URL, f"{where}: cannot be asked: {exc}") from None
        except (ConnectionError, ssl.SSLError) as exc:
            raise _StaleConnection(f"{type(exc).__name__}: {exc}") from None
        try:
            informational = 0
            while True:
                event = await self._next_event(conn, url)
                if isinstance(event, h11.Response):
                    break
                if isinstance(event, h11.InformationalResponse) and informational < 10:
                    informational += 1
                    continue
                if conn.received == 0:
                    raise _StaleConnection("the connection was closed without an answer")
                raise FetchError(Kind.PROTOCOL, f"{where}: not an HTTP answer")
            if len(event.headers) > self.limits.max_headers:
                raise FetchError(Kind.PROTOCOL, f"{where}: more than {self.limits.max_headers} headers")
            response_headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in event.headers]
            encoding = next((v.strip().lower() for k, v in response_headers if k == "content-encoding"), "")
            inflater = _Inflater(encoding) if decompress and encoding in ("gzip", "x-gzip", "deflate") else None
            body = bytearray()
            truncated = False
            while True:
                part = await self._next_event(conn, url)
                if not isinstance(part, h11.Data):
                    break  # EndOfMessage (a body delimited by the close ends with it too)
                data = bytes(part.data)
                if inflater is not None:
                    try:
                        data = inflater.feed(data, max_body + 1 - len(body))
                    except zlib.error as exc:
                        raise FetchError(Kind.PROTOCOL, f"{where}: the {encoding} body is corrupt: {exc}") from None
                body += data
                if len(body) > max_body or (inflater is not None and inflater.over):
                    truncated = True
                    break
        except h11.RemoteProtocolError as exc:
            if conn.received == 0:
                raise _StaleConnection("the connection was closed without an answer") from None
            raise FetchError(Kind.PROTOCOL, f"{where}: not a valid HTTP answer: {exc}") from None
        except _StaleConnection as exc:
            if conn.received == 0:
                raise
            raise FetchError(Kind.RESET, f"{where}: the connection broke during the answer ({exc})") from None
        if not truncated and proto.our_state is h11.DONE and proto.their_state is h11.DONE:
            proto.start_next_cycle()
            self._checkin(conn)
        else:
            conn.close(abort=truncated)
        return Response(url=url, status=event.status_code, headers=response_headers, body=bytes(body[:max_body]),
                        truncated=truncated, address=conn.address, cert_verified=conn.verified)


class _StaleConnection(Exception):
    """The server closed (or reset) the connection before answering."""
