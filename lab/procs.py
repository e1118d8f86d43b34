"""Process helpers: start daemons, check pids, stop by pid (never by name)."""

from __future__ import annotations

import contextlib
import os
import pty
import select
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


class LabError(Exception):
    """A lab step failed; the message names the service and its log."""


def tail(path: Path, lines: int = 15) -> str:
    try:
        data = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log yet)"
    return "\n".join("    " + line for line in data[-lines:]) or "    (empty)"


def fail(service: str, what: str, log: Path | None) -> LabError:
    where = f"; see {log}\n{tail(log)}" if log else ""
    return LabError(f"{service}: {what}{where}")


def proc_state(pid: int) -> str | None:
    """The process state letter, or None when no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2]


def proc_comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def proc_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def alive(pid: int | None, marker: str | None = None) -> bool:
    """A live (non-zombie) process whose command line contains `marker` (guards against pid reuse)."""
    if not pid or pid <= 0:
        return False
    state = proc_state(pid)
    if state is None or state in ("Z", "X"):
        return False
    return marker is None or marker in proc_cmdline(pid) or marker == proc_comm(pid)


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().split()
        return int(text[0]) if text else None
    except (OSError, ValueError):
        return None


def run(argv: list[str], *, log: Path | None = None, timeout: float = 30, check: bool = True,
        service: str = "lab", env: dict[str, str] | None = None, input: str | None = None,
        tty_stderr: bool = False) -> subprocess.CompletedProcess:
    """Run a command to completion; output goes to `log` when given (appended)."""
    full_env = {**os.environ, **(env or {})}
    if tty_stderr:
        return _run_tty(argv, log=log, timeout=timeout, check=check, service=service, env=full_env)
    try:
        if log:
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "ab") as fh:
                cp = subprocess.run(argv, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout, env=full_env,
                                    input=input.encode() if input else None,
                                    stdin=None if input else subprocess.DEVNULL)
        else:
            cp = subprocess.run(argv, capture_output=True, timeout=timeout, env=full_env,
                                input=input.encode() if input else None,
                                stdin=None if input else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise fail(service, f"`{' '.join(argv)}` did not finish within {timeout:.0f} s", log) from e
    except FileNotFoundError as e:
        raise LabError(f"{service}: {argv[0]} is not installed") from e
    if check and cp.returncode != 0:
        extra = ""
        if not log:
            extra = "\n" + (cp.stderr or b"").decode(errors="replace").strip()
        raise fail(service, f"`{' '.join(argv)}` exited with {cp.returncode}{extra}", log)
    return cp


def _run_tty(argv, *, log, timeout, check, service, env):
    """Some tools (postfix) report fatal errors on stderr only when it is a terminal."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env)
    except FileNotFoundError as e:
        os.close(master)
        os.close(slave)
        raise LabError(f"{service}: {argv[0]} is not installed") from e
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    while True:
        r, _, _ = select.select([master], [], [], 0.1)
        if r:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                chunk = b""
            if not chunk and proc.poll() is not None:
                break
            out += chunk
        elif proc.poll() is not None:
            break
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            os.close(master)
            raise fail(service, f"`{' '.join(argv)}` did not finish within {timeout:.0f} s", log)
    os.close(master)
    proc.wait()
    if log:
        with open(log, "ab") as fh:
            fh.write(out.replace(b"\r\n", b"\n"))
    if check and proc.returncode != 0:
        raise fail(service, f"`{' '.join(argv)}` exited with {proc.returncode}: "
                            f"{out.decode(errors='replace').strip()}", log)
    return subprocess.CompletedProcess(argv, proc.returncode, out, b"")


def spawn(argv: list[str], *, log: Path, pidfile: Path, env: dict[str, str] | None = None,
          cwd: Path | None = None, user: str | None = None) -> int:
    """Start a foreground program detached from us (own session), as `user` if given; record its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    ids = {}
    if user:
        import pwd

        pw = pwd.getpwnam(user)
        ids = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        env = {**(env or {}), "HOME": "/nonexistent", "USER": user, "LOGNAME": user}
    with open(log, "ab") as fh:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True,
                                close_fds=True, **ids)
    pidfile.write_text(f"{proc.pid}\n")
    # Popen would warn about a still-running child at exit; the child outlives us on purpose.
    proc.returncode = 0
    return proc.pid


def wait_until(check: Callable[[], object], timeout: float, interval: float = 0.05) -> object:
    """Call `check` until it returns a true value; re-raise its last exception at the deadline."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = check()
            if value:
                return value
        except Exception as e:
            last = e
        if time.monotonic() > deadline:
            if last:
                raise last
            raise TimeoutError("not ready")
        time.sleep(interval)


def stop_pid(pid: int | None, marker: str | None, sig: int = signal.SIGTERM,
             timeout: float = 8.0) -> bool:
    """Signal one process by pid and wait for it to go; SIGKILL after `timeout`. True if it was running."""
    if not alive(pid, marker):
        return False
    assert pid is not None
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            _reap(pid)
            return True
        _reap(pid)
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + 3
    while alive(pid) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.05)
    return True


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
