"""A real sshd on loopback for the live-audit tests, recording every command it is sent.

ForceCommand runs a small wrapper that appends $SSH_ORIGINAL_COMMAND to a log and then executes
it, so the tests see exactly what crossed the wire. The wrapper can also make one kind of command
hang (for the time-limit test): a command mentioning a path containing "/hang-host/" sleeps.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"
TEST_USER = "mastoaudit-t"  # no sudo: for the permission-denied and sudo-refused faults
AUDIT_USER = "mastoaudit-audit"  # passwordless sudo, as the README recommends for audits

WRAPPER = """#!/bin/sh
printf '%s\\t%s\\n' "$(id -un)" "$SSH_ORIGINAL_COMMAND" >> {log}
case "$SSH_ORIGINAL_COMMAND" in
  *"/hang-host/"*) sleep 30 ;;
esac
exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def can_run() -> str | None:
    if os.geteuid() != 0:
        return "needs root (sshd with host keys and a test user)"
    for tool in (SSHD, "/usr/bin/ssh-keygen", "/usr/bin/sudo"):
        if not Path(tool).exists():
            return f"{tool} is not installed (scripts/setup.sh installs openssh-server)"
    return None


def ensure_test_users() -> None:
    """The two accounts the audits log in as (idempotent). Their shell is /bin/sh: root's bash
    would read ~/.bashrc on every SSH command, which on some machines costs a third of a second."""
    for user in (TEST_USER, AUDIT_USER):
        if subprocess.run(["id", user], capture_output=True).returncode != 0:
            subprocess.run(["useradd", "--system", "--shell", "/bin/sh", "--home-dir", "/nonexistent", user],
                           check=True, capture_output=True)
        # '*' rather than the default '!': a locked account may not log in even with a key.
        subprocess.run(["usermod", "-p", "*", user], check=True, capture_output=True)
    sudoers = Path("/etc/sudoers.d/mastoaudit-audit")
    if Path("/usr/bin/sudo").exists() and not sudoers.exists():
        sudoers.write_text(f"{AUDIT_USER} ALL=(ALL) NOPASSWD: ALL\n")
        os.chmod(sudoers, 0o440)


@dataclass
class SshHost:
    directory: Path
    port: int
    client_key: Path
    known_hosts: Path
    command_log: Path
    process: subprocess.Popen

    def commands(self) -> list[tuple[str, str]]:
        if not self.command_log.exists():
            return []
        rows = []
        for line in self.command_log.read_text().splitlines():
            user, _, command = line.partition("\t")
            rows.append((user, command))
        return rows

    def authorized_keys_from(self, other: SshHost) -> None:
        """Let `other`'s client key in here too (one key for a fleet)."""
        shutil.copy(other.directory / "authorized_keys", self.directory / "authorized_keys")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start(directory: Path, extra_config: tuple[str, ...] = ()) -> SshHost:
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o755)
    for name in ("hostkey", "client"):
        if not (directory / name).exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(directory / name)], check=True)
    os.chmod(directory / "client", 0o600)
    shutil.copy(directory / "client.pub", directory / "authorized_keys")
    os.chmod(directory / "authorized_keys", 0o644)
    log = directory / "commands.log"
    log.touch()
    os.chmod(log, 0o666)
    wrapper = directory / "wrap.sh"
    wrapper.write_text(WRAPPER.format(log=log))
    os.chmod(wrapper, 0o755)
    port = free_port()
    config = directory / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {directory / 'hostkey'}",
        f"AuthorizedKeysFile {directory / 'authorized_keys'}", f"PidFile {directory / 'sshd.pid'}",
        "StrictModes no", "UsePAM no", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password", f"ForceCommand {wrapper}", "MaxStartups 100:30:200",
        "LogLevel ERROR", *extra_config, "",
    ]))
    Path("/run/sshd").mkdir(exist_ok=True)
    process = subprocess.Popen([SSHD, "-D", "-f", str(config), "-E", str(directory / "sshd.log")])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.05)
    else:
        process.kill()
        raise RuntimeError(f"sshd did not start: {(directory / 'sshd.log').read_text()[-500:]}")
    host_key = (directory / "hostkey.pub").read_text().split()
    known = directory / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
    return SshHost(directory, port, directory / "client", known, log, process)
