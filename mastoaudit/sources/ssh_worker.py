"""The SSH worker: a child process that connects to every host at once through pyinfra and runs the
allow-listed commands, reporting each result as a JSON line on standard output.

It runs in its own process because pyinfra's concurrency is gevent, which needs the standard
library patched (`monkey.patch_all`) before anything else is imported; keeping that out of the main
process leaves the network probes (threads, sslyze) untouched.

Input (stdin, JSON): {"hosts": [{"name", "address", "port", "user", "key", "known_hosts", "tofu",
"sudo", "jump", "connect_timeout", "command_timeout", "host_timeout", "commands": [{"key", "id",
"params"}]}], "command_log": optional path}
Output (stdout, JSON lines): {"host", "event": "connected"|"failed"|"result"|"done", ...}
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import base64  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
from gevent.lock import Semaphore  # noqa: E402

from mastoaudit.sources.remote_commands import COMMANDS, CommandRefused, build  # noqa: E402

_out_lock = Semaphore()
MAX_LINE_CHARS = 32 * 1024 * 1024


class SudoPasswordRequired(Exception):
    pass


def _no_prompt(prompt: str = "") -> str:
    # pyinfra asks for a sudo password when sudo wants one; an audit never prompts.
    raise SudoPasswordRequired("sudo asked for a password (use passwordless sudo for the audit user)")


def emit(event: dict) -> None:
    with _out_lock:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()


def _describe(exc: BaseException) -> str:
    name = type(exc).__name__
    text = str(exc).strip() or name
    if "BadHostKey" in name or "does not match" in text:
        return f"host key does not match known_hosts: {text}"
    if "not found in known_hosts" in text or "No host key" in text or "StrictPolicy" in text:
        return f"host key not in known_hosts (add it, or allow trust on first use): {text}"
    if "Authentication" in name or "authentication" in text.lower():
        return f"SSH authentication failed: {text}"
    return f"{name}: {text}" if name not in text else text


def _ssh_config_for_jump(jump: str, tmpdir: str) -> str:
    path = Path(tmpdir) / "ssh_config"
    path.write_text(f"Host *\n    ProxyJump {jump}\n")
    return str(path)


def audit_host(spec: dict, log_path: str | None, tmpdir: str) -> None:
    from pyinfra.api import Config, Inventory, State

    name = spec["name"]
    data = {
        "ssh_hostname": spec["address"],
        "ssh_port": spec["port"],
        "ssh_user": spec["user"],
        "ssh_known_hosts_file": str(Path(spec["known_hosts"]).expanduser()),
        "ssh_strict_host_key_checking": "accept-new" if spec.get("tofu") else "yes",
        "ssh_allow_agent": False,
        "ssh_look_for_keys": False,
    }
    if spec.get("key"):
        data["ssh_key"] = str(Path(spec["key"]).expanduser())
    if spec.get("jump"):
        data["ssh_config_file"] = _ssh_config_for_jump(spec["jump"], tmpdir)
    inventory = Inventory(([(name, data)], {}))
    State(inventory, Config(CONNECT_TIMEOUT=int(max(1, spec["connect_timeout"]))))  # binds the hosts to it
    host = inventory.get_host(name)
    deadline = time.monotonic() + spec["host_timeout"]
    try:
        with gevent.Timeout(spec["connect_timeout"] + 2, TimeoutError("connecting timed out")):
            host.connect(show_errors=False, raise_exceptions=True)
    except BaseException as exc:
        if isinstance(exc, gevent.GreenletExit | KeyboardInterrupt):
            raise
        emit({"host": name, "event": "failed", "error": _describe(exc)})
        return
    emit({"host": name, "event": "connected"})
    try:
        for item in spec["commands"]:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                emit({"host": name, "event": "result", "key": item["key"], "error": "host time limit reached"})
                continue
            run_one(host, name, item, spec, min(spec["command_timeout"], remaining), log_path)
    finally:
        with contextlib.suppress(Exception):  # a failed goodbye changes nothing
            host.disconnect()


def run_one(host, name: str, item: dict, spec: dict, timeout: float, log_path: str | None) -> None:
    try:
        text = build(item["id"], item.get("params"))
    except CommandRefused as exc:
        emit({"host": name, "event": "result", "key": item["key"], "error": f"refused: {exc}"})
        return
    command = COMMANDS[item["id"]]
    use_sudo = command.needs_root and spec["user"] != "root" and spec.get("sudo")
    if log_path:
        with _out_lock, open(log_path, "a", encoding="utf-8") as log:
            log.write(json.dumps({"host": name, "id": item["id"], "sudo": bool(use_sudo), "command": text}) + "\n")
    kwargs: dict = {"_timeout": max(1, int(timeout + 0.999))}
    if use_sudo:
        kwargs["_sudo"] = True
    if command.stdin:
        kwargs["_stdin"] = command.stdin
    try:
        ok, output = host.run_shell_command(text, **kwargs)
    except SudoPasswordRequired as exc:
        emit({"host": name, "event": "result", "key": item["key"], "error": f"sudo refused: {exc}"})
        return
    except TimeoutError:
        emit({"host": name, "event": "result", "key": item["key"], "error": f"timed out after {timeout:.0f} s"})
        return
    except Exception as exc:
        emit({"host": name, "event": "result", "key": item["key"], "error": _describe(exc)})
        return
    stdout = "\n".join(output.stdout_lines)
    stderr = "\n".join(output.stderr_lines)
    emit({
        "host": name, "event": "result", "key": item["key"], "ok": bool(ok),
        "stdout_b64": base64.b64encode(stdout.encode("utf-8", "replace")[:MAX_LINE_CHARS]).decode(),
        "stderr": stderr[:4096],
    })


def main() -> int:
    logging.disable(logging.CRITICAL)  # pyinfra's own messages would mix with the JSON lines
    import pyinfra.connectors.util as connector_util

    connector_util.getpass = _no_prompt  # type: ignore[attr-defined]
    job = json.loads(sys.stdin.read())
    with tempfile.TemporaryDirectory(prefix="mastoaudit-ssh-") as tmpdir:
        greenlets = []
        for spec in job["hosts"]:
            hostdir = Path(tmpdir) / spec["name"]
            hostdir.mkdir()
            greenlets.append(gevent.spawn(_guarded, spec, job.get("command_log"), str(hostdir)))
        gevent.joinall(greenlets)
    return 0


def _guarded(spec: dict, log_path: str | None, tmpdir: str) -> None:
    try:
        with gevent.Timeout(spec["host_timeout"] + spec["connect_timeout"] + 5, TimeoutError("host time limit")):
            audit_host(spec, log_path, tmpdir)
    except BaseException as exc:
        emit({"host": spec["name"], "event": "failed", "error": _describe(exc)})
    finally:
        emit({"host": spec["name"], "event": "done"})


if __name__ == "__main__":
    raise SystemExit(main())
