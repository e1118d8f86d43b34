"""The probes' view of the outbound client: blocking calls with the API the probes were written
against, run on the one async client (`net/client.py`) in an event loop of its own (a daemon
thread), plus the gate for raw TCP connections (`net/sockets.py`).

- connects to a chosen address with the right Host and SNI (like curl --resolve);
- every address connected to, first hop and redirects alike, is judged by the scan's
  AddressPolicy (`ScanTarget.address_policy()`): public addresses, the addresses the user pointed
  the scan at and the hosts the user named; a redirect elsewhere is not followed and recorded in
  `blocked_redirect`, a first hop elsewhere is an HttpError;
- every request has a total deadline (connect, TLS, headers, body, redirects), enforced by
  cancellation, and the probe's own deadline caps it (`bounded`);
- does not require valid certificates (the TLS checks judge them); it records whether they verify.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import math
import socket
import ssl
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

from .client import USER_AGENT, Client, FetchError, Kind, Limits, Response
from .dns import Resolver
from .sockets import NotPermitted, TcpGate
from .target import ScanTarget

__all__ = ["MAX_BODY_BYTES", "MAX_REDIRECTS", "USER_AGENT", "HttpClient", "HttpError", "Kind", "NotPermitted",
           "Response", "run_on_loop"]

MAX_BODY_BYTES = 512 * 1024
MAX_REDIRECTS = 5
REQUEST_BUDGET = 3  # a request's total deadline, in multiples of the scan's per-connection timeout
T = TypeVar("T")


class HttpError(Exception):
    """The request could not be made or answered (a finding's error, with the reason); `kind` as in
    client.Kind."""

    def __init__(self, message: str, kind: str = Kind.PROTOCOL) -> None:
        super().__init__(message)
        self.kind = kind


class _LoopThread:
    """The event loop every blocking caller shares, in a daemon thread: it never keeps the process
    alive, and a request stuck on a hostile server is cancelled by its own deadline."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="mastoaudit-net", daemon=True).start()
                self._loop = loop
            return self._loop

    def run(self, coro: Coroutine[Any, Any, T], deadline: float) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop())
        try:  # the coroutine keeps its own deadline; this one only guards against a stalled loop
            return future.result(timeout=max(0.0, deadline - time.monotonic()) + 2.0)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError("the request outlived its deadline") from None


LOOP = _LoopThread()


def run_on_loop(coro: Coroutine[Any, Any, T], deadline: float) -> T:
    """Run a coroutine on the shared network loop from blocking code, within `deadline` (monotonic)."""
    return LOOP.run(coro, deadline)


class HttpClient:
    """One scan's outbound connections: HTTP(S) requests (`get`), raw TCP (`connect`, `tls`) and the
    verdict for addresses handed to other libraries (`refusal`, for sslyze). Thread-safe."""

    def __init__(self, target: ScanTarget, resolver: Resolver | None = None, *, deadline: float | None = None,
                 _core: Client | None = None, _gate: TcpGate | None = None) -> None:
        self.target = target
        self.resolver = resolver or Resolver(target)
        self.policy = target.address_policy()
        pins = {name: (address,) for name, address in target.hosts.items()}
        if target.addresses:
            pins[target.web_domain] = target.addresses[:1]
        self._core = _core or Client(
            self.policy, resolve=self._resolve, pins=pins, ca_bundle=target.ca_bundle,
            limits=Limits(connect=target.timeout, read=target.timeout, total=REQUEST_BUDGET * target.timeout,
                          max_body=MAX_BODY_BYTES, max_redirects=MAX_REDIRECTS,
                          per_address=32))  # a scan's requests nearly all go to the site's one address
        self.gate = _gate or TcpGate(self.policy, deadline)
        self.deadline = deadline  # time.monotonic() by which everything this view does has ended

    def bounded(self, deadline: float) -> HttpClient:
        """A view of this client whose requests and sockets all end by `deadline` (a probe's)."""
        deadline = deadline if self.deadline is None else min(deadline, self.deadline)
        return HttpClient(self.target, self.resolver, deadline=deadline, _core=self._core,
                          _gate=self.gate.bounded(deadline))

    async def _resolve(self, name: str) -> list[str]:
        return await self.resolver.addresses_async(name)

    # --- HTTP ---------------------------------------------------------------------------------------

    def get(self, url: str, *, method: str = "GET", headers: dict[str, str] | None = None,
            follow: bool = False, max_body: int = MAX_BODY_BYTES, address: str | None = None,
            verify: str = "record") -> Response:
        """One request within the probe's deadline; `verify` as in Client.request ("record": connect
        whatever the certificate and record whether it verifies; "require": fail when it does not)."""
        now = time.monotonic()
        deadline = min(now + self._core.limits.total, self.deadline if self.deadline is not None else math.inf)
        if deadline <= now:
            raise HttpError(f"{url[:200]}: the probe's time is up", Kind.TIMEOUT)
        try:
            return LOOP.run(self._core.request(url, method=method, headers=headers, follow=follow,
                                               max_body=max_body, address=address, deadline=deadline,
                                               verify=verify), deadline)
        except FetchError as exc:
            raise HttpError(str(exc), exc.kind) from None
        except TimeoutError as exc:
            raise HttpError(f"{url[:200]}: {exc}", Kind.TIMEOUT) from None

    def close(self) -> None:
        """Close the connections kept alive for reuse."""
        with contextlib.suppress(TimeoutError, RuntimeError):
            LOOP.run(self._core.close(), time.monotonic() + 2)

    # --- raw TCP and other libraries ---------------------------------------------------------------

    def refusal(self, address: str, name: str | None = None) -> str | None:
        """None when a connection to `address` (reached as `name`) is allowed, else why not."""
        return self.gate.refusal(address, name)

    def connect(self, address: str, port: int, timeout: float, *, name: str | None = None,
                budget: float | None = None) -> socket.socket:
        """A policy-checked TCP connection with a deadline (see TcpGate.connect)."""
        return self.gate.connect(address, port, timeout, name=name, budget=budget)

    def tls(self, sock: socket.socket, context: ssl.SSLContext, server_hostname: str | None = None) -> ssl.SSLSocket:
        return self.gate.tls(sock, context, server_hostname)
