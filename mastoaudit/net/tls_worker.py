"""The TLS scan worker: a child process that imports sslyze once, then scans endpoints side by side,
each in a process forked from it (it has no thread of its own, so forking is safe).

    python -m mastoaudit.net.tls_worker      (started by mastoaudit.net.workers, never by hand)

Input (stdin): frames of a 4-byte big-endian length and a pickle of (task id, target, candidate,
deadline, part of the scan or None); an empty stdin ends the worker. Output (stdout): frames of (task id, outcome), the
outcome being what mastoaudit.probes.tls_sslyze.scan_endpoint returns (plain data) or the text of an
error. Frames are pickled because both ends are this program, run by the same user; nothing here
reads a frame that came from the network.
"""

from __future__ import annotations

import os
import pickle
import selectors
import struct
import sys
import warnings

_HEADER = struct.Struct(">I")


def read_frame(stream) -> bytes | None:
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(head)
    body = stream.read(size)
    return body if len(body) == size else None


def frame(payload: bytes) -> bytes:
    return _HEADER.pack(len(payload)) + payload


def _scan(target, candidate, deadline, part):
    from mastoaudit.probes.tls import BUDGET_S
    from mastoaudit.probes.tls_sslyze import scan_endpoint

    try:
        return scan_endpoint(target, candidate, deadline, BUDGET_S, part)
    except Exception as exc:  # a scan that breaks is that endpoint's error
        return f"{type(exc).__name__}: {exc}"


def _start(task, children: dict, selector) -> None:
    """Fork the process that scans one endpoint; its result comes back on a pipe of its own."""
    task_id, target, candidate, deadline, part = task
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the scan's own process
        os.close(read_end)
        outcome = _scan(target, candidate, deadline, part)
        try:
            data = pickle.dumps((task_id, outcome))
        except Exception as exc:
            data = pickle.dumps((task_id, f"the result could not be sent: {exc}"))
        with os.fdopen(write_end, "wb") as out:
            out.write(data)
        os._exit(0)
    os.close(write_end)
    children[read_end] = (pid, task_id, bytearray())
    selector.register(read_end, selectors.EVENT_READ, read_end)


def main() -> int:
    warnings.filterwarnings("ignore")  # sslyze's trust stores hold a certificate with a negative serial
    import sslyze  # noqa: F401  (once here; every scan's process inherits it)

    import mastoaudit.probes.tls
    import mastoaudit.probes.tls_sslyze  # noqa: F401

    stdin, stdout = sys.stdin.fileno(), sys.stdout.buffer
    selector = selectors.DefaultSelector()
    selector.register(stdin, selectors.EVENT_READ, None)
    children: dict[int, tuple[int, int, bytearray]] = {}  # read end -> (pid, task id, bytes so far)
    pending = bytearray()  # what came in on stdin and is not a whole task yet
    open_input = True
    while open_input or children:
        for key, _ in selector.select():
            if key.data is None:  # tasks (read from the descriptor: a buffered reader would hide them)
                chunk = os.read(stdin, 1 << 16)
                if not chunk:
                    selector.unregister(stdin)
                    open_input = False
                    continue
                pending.extend(chunk)
                while len(pending) >= _HEADER.size:
                    end = _HEADER.size + _HEADER.unpack_from(pending)[0]
                    if len(pending) < end:
                        break
                    body = bytes(pending[_HEADER.size:end])
                    del pending[:end]
                    _start(pickle.loads(body), children, selector)
            else:
                fd = key.data
                chunk = os.read(fd, 1 << 16)
                if chunk:
                    children[fd][2].extend(chunk)
                    continue
                selector.unregister(fd)
                os.close(fd)
                pid, task_id, data = children.pop(fd)
                _, status = os.waitpid(pid, 0)
                if not data:
                    data = bytearray(pickle.dumps((task_id, f"the scan process ended without a result ({status})")))
                stdout.write(frame(bytes(data)))
                stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
