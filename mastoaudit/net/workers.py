"""Worker processes for the CPU-bound part of the network probes: sslyze's TLS scans.

An sslyze scan is several hundred handshakes driven from Python; scans of two endpoints in one
process share its interpreter lock and take twice as long as one, while the other probes wait on
the same lock. So each scan runs in a process of its own: forked from the TLS worker
(net/tls_worker.py), a child process that imported sslyze once and does nothing else, so the
scans of the web host, the media host and the mail relay run side by side on the machine's cores
while the rest of the audit goes on here. (A child process of our own, not multiprocessing's pools:
those re-run the caller's main script in every worker.)

`warm()` starts the worker ahead of need (the audit does it before it connects over SSH);
`scanner()` is the running worker, or None when it cannot be used or is turned off
(MASTOAUDIT_WORKERS=0): the probe then scans in its own process, as it always could. What
travels to and from the worker is plain data: the scan target, the endpoint, the finished
TlsEndpoint or problem.
"""

from __future__ import annotations

import atexit
import itertools
import os
import pickle
import subprocess
import sys
import threading
from concurrent.futures import Future

from .tls_worker import frame, read_frame

_lock = threading.Lock()
_scanner: TlsScanner | None = None
_prefetched: dict[object, Future] = {}  # scans started ahead of their probe, by what they scan


class WorkerGone(Exception):
    """The worker ended (or could not start): the caller scans in its own process instead."""


class TlsScanner:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "mastoaudit.net.tls_worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
        self.ids = itertools.count(1)
        self.pending: dict[int, Future] = {}
        self.write_lock = threading.Lock()
        self.alive = True
        self.reader = threading.Thread(target=self._read, name="tls-worker-results", daemon=True)
        self.reader.start()

    def submit(self, target, candidate, deadline: float, part: str | None = None) -> Future:
        """Scan an endpoint (or one part of its scan: probes/tls_sslyze.py PARTS) in a process of its own."""
        future: Future = Future()
        task_id = next(self.ids)
        try:
            payload = frame(pickle.dumps((task_id, target, candidate, deadline, part)))
        except Exception as exc:
            future.set_exception(WorkerGone(f"the task could not be sent: {exc}"))
            return future
        with self.write_lock:
            if not self.alive:
                future.set_exception(WorkerGone("the TLS worker has ended"))
                return future
            self.pending[task_id] = future
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(payload)
                self.proc.stdin.flush()
            except OSError:
                self.pending.pop(task_id, None)
                self._gone()
                future.set_exception(WorkerGone("the TLS worker has ended"))
        return future

    def _read(self) -> None:
        assert self.proc.stdout is not None
        while True:
            body = read_frame(self.proc.stdout)
            if body is None:
                break
            try:
                task_id, outcome = pickle.loads(body)
            except Exception:
                break
            future = self.pending.pop(task_id, None)
            if future is not None and not future.done():
                if isinstance(outcome, str):
                    future.set_exception(WorkerGone(outcome))
                else:
                    future.set_result(outcome)
        with self.write_lock:
            self._gone()

    def _gone(self) -> None:
        """Under write_lock: every task still waiting fails over to the caller."""
        self.alive = False
        for future in self.pending.values():
            if not future.done():
                future.set_exception(WorkerGone("the TLS worker has ended"))
        self.pending.clear()

    def close(self) -> None:
        with self.write_lock:
            self.alive = False
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
        except OSError:
            pass
        if self.proc.poll() is None:
            self.proc.kill()  # a scan past its deadline has nothing left to say


def scanner() -> TlsScanner | None:
    """The TLS worker (started on first use), or None when worker processes are off."""
    global _scanner
    if os.environ.get("MASTOAUDIT_WORKERS", "").strip() == "0":
        return None
    with _lock:
        if _scanner is None or not _scanner.alive:
            try:
                _scanner = TlsScanner()
            except OSError:
                return None
            atexit.register(_scanner.close)
        return _scanner


def warm() -> None:
    """Start the worker now: it imports sslyze while the caller does other things."""
    scanner()


def shutdown() -> None:
    global _scanner
    with _lock:
        old, _scanner = _scanner, None
    if old is not None:
        old.close()


def prefetch(key: object, future: Future) -> None:
    """Keep a scan started ahead of its probe (the audit starts the web domain's before its SSH
    collection ends), for `take_prefetched` with the same key."""
    with _lock:
        _prefetched[key] = future


def take_prefetched(key: object) -> Future | None:
    with _lock:
        return _prefetched.pop(key, None)


def forget_prefetched() -> None:
    """At the end of a run: scans started ahead that no probe took are not for the next run."""
    with _lock:
        _prefetched.clear()
