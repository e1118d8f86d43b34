"""The SSH worker: a child process that connects to every host at once through pyinfra and runs the
allow-listed commands, reporting each result as a JSON line on standard output.

It runs in its own process because pyinfra's concurrency is gevent, which needs the standard
library patched (`monkey.patch_all`) before anything else is imported; keeping that out of the main
process leaves the network probes (threads, sslyze) untouched.

Input (stdin, JSON): {"hosts": [{"name", "address", "port", "user", "key", "known_hosts", "tofu",
"sudo", "jump", "connect_timeout", "command_timeout", "host_timeout", "commands": [{"key", "id",
"params"}], "early": [keys run in a round trip of their own, before the rest], "beside": [keys run
beside the rest, at the same time, on a channel of their own]}], "command_log": optional path}
Output (stdout, JSON lines): {"host", "event": "connected"|"failed"|"result"|"done", ...}
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import base64  # noqa: E402
import binascii  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
from gevent.lock import Semaphore  # noqa: E402

from mastoaudit.sources.remote_commands import CommandRefused, build, bundle, needs_root  # noqa: E402

_out_lock = Semaphore()
_STARTED = time.monotonic()
MAX_LINE_CHARS = 32 * 1024 * 1024


class SudoPasswordRequired(Exception):
    pass


def _no_prompt(prompt: str = "") -> str:
    # pyinfra asks for a sudo password when sudo wants one; an audit never prompts.
    raise SudoPasswordRequired("sudo asked for a password (use passwordless sudo for the audit user)")


def emit(event: dict) -> None:
    event["t"] = round(time.monotonic() - _STARTED, 3)
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


TARGET_ALIAS = "mastoaudit-target"
JUMP_ALIAS = "mastoaudit-jump"


def _ssh_config_for_jump(spec: dict, tmpdir: str) -> str:
    """An ssh_config for pyinfra's ProxyJump: the target and the jump host under aliases of their
    own (a `Host *` entry would apply ProxyJump to the jump host too), each with its key, known_hosts
    and strict host-key checking, so the hop never prompts or trusts blindly."""
    jump = spec["jump"]

    def line(name: str, value: object) -> str:
        text = str(value)
        if any(c in text for c in "\n\r\"") or not text.strip():
            raise ValueError(f"unusable value for {name} in the jump settings")
        return f"    {name} {text}\n"

    known = jump.get("known_hosts") or spec["known_hosts"]
    text = (f"Host {TARGET_ALIAS}\n" + line("HostName", spec["address"]) + line("Port", spec["port"])
            + line("ProxyJump", JUMP_ALIAS) + f"Host {JUMP_ALIAS}\n" + line("HostName", jump["address"])
            + line("Port", jump["port"]) + line("User", jump.get("user") or spec["user"])
            + line("UserKnownHostsFile", Path(known).expanduser())
            + line("StrictHostKeyChecking", "accept-new" if jump.get("tofu") else "yes"))
    key = jump.get("key") or spec.get("key")
    if key:
        text += line("IdentityFile", Path(key).expanduser())
    path = Path(tmpdir) / "ssh_config"
    path.write_text(text)
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
        data["ssh_config_file"] = _ssh_config_for_jump(spec, tmpdir)
        data["ssh_hostname"] = TARGET_ALIAS
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
    # The early commands (the .env.production the network probes wait for) in a round trip of
    # their own, then the rest. (Both at once on two channels was slower: the rest's commands
    # held up the early read.) The rest go in two round trips at once on two channels: the
    # database reads ("beside") wait on their servers while the other commands run.
    early = [i for i in spec["commands"] if i["key"] in spec.get("early", ())]
    beside = [i for i in spec["commands"] if i["key"] in spec.get("beside", ()) and i not in early]
    rest = [i for i in spec["commands"] if i not in early and i not in beside]

    def trip(items: list[dict], log: str | None = log_path, one_of_two: bool = False) -> bool:
        return not items or run_bundle(host, name, {**spec, "commands": items}, deadline - time.monotonic(), log,
                                       one_of_two)

    try:
        trip(early)
        both = [(items, gevent.spawn(trip, items, log_path, True)) for items in (rest, beside) if items]
        gevent.joinall([greenlet for _, greenlet in both], raise_error=True)
        # A host that allows one session at a time (sshd's MaxSessions 1, a hardening setting)
        # refuses the second channel: those commands run after the others, on the channel then free
        # (already in the command log: sent once).
        for items, greenlet in both:
            if greenlet.value is False:
                trip(items, None)
    finally:
        with contextlib.suppress(Exception):  # a failed goodbye changes nothing
            host.disconnect()


def _channel_refused(exc: BaseException) -> bool:
    from paramiko import ChannelException

    return isinstance(exc, ChannelException)


def run_bundle(host, name: str, spec: dict, remaining: float, log_path: str | None,
               one_of_two: bool = False) -> bool:
    """Run one round trip and report its results; False (nothing reported) when it is `one_of_two`
    channels at once and the host refused to open this one."""
    items = spec["commands"]
    try:
        text = bundle([(i["key"], i["id"], i.get("params") or {}) for i in items], spec["command_timeout"])
    except CommandRefused as exc:
        for item in items:
            emit({"host": name, "event": "result", "key": item["key"], "error": f"refused: {exc}"})
        return True
    use_sudo = spec["user"] != "root" and bool(spec.get("sudo")) and needs_root([i["id"] for i in items])
    if log_path:
        with _out_lock, open(log_path, "a", encoding="utf-8") as log:
            for item in items:
                log.write(json.dumps({"host": name, "id": item["id"], "sudo": use_sudo,
                                      "command": build(item["id"], item.get("params"))}) + "\n")
    kwargs: dict = {"_timeout": max(1, int(remaining))}
    if use_sudo:
        kwargs["_sudo"] = True
    failure = None
    output = None
    try:
        _ok, output = host.run_shell_command(text, **kwargs)
    except SudoPasswordRequired as exc:
        failure = f"sudo refused: {exc}"
    except TimeoutError:
        failure = f"timed out after {remaining:.0f} s (host time limit)"
    except Exception as exc:  # a broken channel is a result, not a crash
        if one_of_two and _channel_refused(exc):
            return False
        failure = _describe(exc)
    if failure is None and output is not None and any(
        line.strip() in ("sudo: a password is required", "sudo-rs: interactive authentication is required")
        for line in output.stderr_lines
    ):
        failure = "sudo refused: sudo asked for a password (use passwordless sudo for the audit user)"
    results = parse_bundle(output.stdout_lines if output is not None and failure is None else [])
    for item in items:
        key = item["key"]
        if failure is not None:
            emit({"host": name, "event": "result", "key": key, "error": failure})
        elif key not in results:
            stderr = " ".join(output.stderr_lines)[:300] if output is not None else ""
            emit({"host": name, "event": "result", "key": key,
                  "error": "no answer (the host stopped before this command)" + (f": {stderr}" if stderr else "")})
        else:
            out, rc = results[key]
            event = {"host": name, "event": "result", "key": key, "ok": rc == 0, "rc": rc,
                     "stdout_b64": base64.b64encode(out[:MAX_LINE_CHARS]).decode()}
            if rc == 124:
                event["error"] = f"timed out after {spec['command_timeout']:.0f} s"
            emit(event)
    return True


def parse_bundle(lines: list[str]) -> dict[str, tuple[bytes, int | None]]:
    """`@@cmd KEY` lines, each followed by a base64 line ending in `@@rc N` once decoded."""
    results: dict[str, tuple[bytes, int | None]] = {}
    for i, line in enumerate(lines):
        if not line.startswith("@@cmd ") or i + 1 >= len(lines):
            continue
        key = line[6:].strip()
        try:
            raw = base64.b64decode(lines[i + 1].strip(), validate=False)
        except (ValueError, binascii.Error):
            continue
        body, _, last = raw.rstrip(b"\n").rpartition(b"\n")
        if last.startswith(b"@@rc ") and last[5:].strip().isdigit():
            results[key] = (body, int(last[5:].strip()))
        elif raw.startswith(b"@@rc ") and raw[5:].strip().isdigit():
            results[key] = (b"", int(raw[5:].strip()))
        else:
            results[key] = (raw, None)  # cut at the size limit: no status
    return results


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
