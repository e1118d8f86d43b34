"""The gate for raw TCP connections (the port scan, SMTP, the PostgreSQL/Redis/HTTP hellos, the TLS
probe's pre-checks): the only place a probe may open a socket.

`TcpGate.connect` judges the address with the scan's `AddressPolicy` before connecting to that very
address (an IP literal: no look-up in between), and gives every socket a deadline. At the deadline
a watchdog thread shuts the socket down, which ends any read, write or TLS handshake blocked on it
in another thread: a peer trickling a byte a second cannot hold a probe's thread (and so the
process) past the deadline, whatever per-read time limits the caller set. Sockets wrapped in TLS
through `TcpGate.tls` keep their deadline.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import itertools
import socket
import ssl
import threading
import time
import weakref

from ..addresses import AddressPolicy, parse_ip


class NotPermitted(OSError):
    """The policy does not let a connection go to this address (an OSError, so that callers that
    handle a refused or unreachable peer handle this too; the message says which it was)."""

    def __init__(self, reason: str) -> None:
        super().__init__(errno.EACCES, reason)

    def __str__(self) -> str:
        return str(self.strerror)


class Watchdog:
    """One daemon thread that shuts sockets down at their deadlines."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, weakref.ref]] = []
        self._seq = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, sock: socket.socket, deadline: float) -> None:
        with self._wake:
            heapq.heappush(self._heap, (deadline, next(self._seq), weakref.ref(sock)))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="mastoaudit-socket-deadlines", daemon=True)
                self._thread.start()
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    self._wake.wait(None if not self._heap else self._heap[0][0] - time.monotonic())
                _, _, ref = heapq.heappop(self._heap)
            sock = ref()
            if sock is not None and sock.fileno() != -1:
                # The plain socket's shutdown, also for an SSLSocket: it wakes whoever is blocked on it.
                with contextlib.suppress(OSError):  # already closed, or never connected
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)


WATCHDOG = Watchdog()


class TcpGate:
    """Policy-checked, deadline-bounded TCP connections for one scan (or one probe of it)."""

    def __init__(self, policy: AddressPolicy, deadline: float | None = None) -> None:
        self.policy = policy
        self.deadline = deadline  # time.monotonic() after which no socket of this gate stays open
        self._deadlines: weakref.WeakKeyDictionary[socket.socket, float] = weakref.WeakKeyDictionary()

    def bounded(self, deadline: float | None) -> TcpGate:
        """The same policy, with every socket ending by `deadline` at the latest."""
        if deadline is None:
            return self
        return TcpGate(self.policy, deadline if self.deadline is None else min(deadline, self.deadline))

    def refusal(self, address: str, name: str | None = None) -> str | None:
        """None when a connection to `address` (reached as `name`) is allowed, else why not."""
        return self.policy.refusal(address, name)

    def connect(self, address: str, port: int, timeout: float, *, name: str | None = None,
                budget: float | None = None) -> socket.socket:
        """A connected socket to address:port (an IP address), with `timeout` per operation; shut
        down `budget` seconds from now (default: three times the timeout) or at the gate's deadline.
        Raises NotPermitted when the policy refuses the address, OSError when connecting fails."""
        ip = parse_ip(address)
        if ip is None:
            raise NotPermitted(f"{address!s} is not an IP address (names are resolved and judged first)")
        why = self.policy.refusal(ip, name)
        if why is not None:
            raise NotPermitted(why)
        now = time.monotonic()
        deadline = now + (3 * timeout if budget is None else budget)
        if self.deadline is not None:
            deadline = min(deadline, self.deadline)
        if deadline <= now:
            raise TimeoutError(f"no time left to connect to {address}:{port}")
        sock = socket.create_connection((str(ip), port), timeout=min(timeout, deadline - now))
        sock.settimeout(timeout)
        self._deadlines[sock] = deadline
        WATCHDOG.watch(sock, deadline)
        return sock

    def tls(self, sock: socket.socket, context: ssl.SSLContext, server_hostname: str | None = None) -> ssl.SSLSocket:
        """Wrap a socket of this gate in TLS (the handshake included); the deadline carries over."""
        deadline = self._deadlines.get(sock)
        wrapped = context.wrap_socket(sock, server_hostname=server_hostname, do_handshake_on_connect=False)
        if deadline is not None:  # watched before the handshake: a trickled handshake ends at the deadline
            self._deadlines[wrapped] = deadline
            WATCHDOG.watch(wrapped, deadline)
        try:
            wrapped.do_handshake()
        except BaseException:
            wrapped.close()
            raise
        return wrapped
