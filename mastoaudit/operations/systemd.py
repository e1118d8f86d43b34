"""systemd: a sandboxing drop-in for a Mastodon unit (UNIT.d/50-mastoaudit-hardening.conf), checked
with systemd-analyze verify (a line of the drop-in it cannot take refuses the change), then
daemon-reload and a restart of the unit if it runs; a unit that does not come back is rolled back."""

from __future__ import annotations

from io import StringIO

from pyinfra import host
from pyinfra.api import FileUploadCommand, StringCommand, operation

from ..hostfacts import FileBytes
from . import conf_text
from .transaction import Control, backup_dir, control, on_host, q, script

DROPIN = "50-mastoaudit-hardening.conf"

# The drop-in's own lines must all be taken: systemd-analyze names the file for each it ignores.
VERIFY = ("out=$(SYSTEMD_UNIT_PATH={unit_dir}: systemd-analyze verify {unit_name} 2>&1);"
          " if printf '%s\\n' \"$out\" | grep -F {dropin}; then false; else true; fi")


@operation()
def dropin(unit: str, settings: list[tuple[str, str]], checks: list[str]):
    """Write the drop-in for `unit` (the unit file's path as the report names it)."""
    unit_path = on_host(host, unit)
    unit_dir, unit_name = unit_path.rsplit("/", 1)
    target = f"{unit_path}.d/{DROPIN}"
    text = conf_text.dropin(list(settings), checks)
    current = host.get_fact(FileBytes, path=target)
    if current is not None and current.decode("utf-8", "replace") == text:
        return
    backups = f"{backup_dir(host)}/systemd"
    staging = f"{backups}/.staging/{unit_name}.conf"
    base = control(host, "systemd")

    def fill(cmd):
        if cmd is None:
            return None
        return (cmd.replace("{systemd_verify}", VERIFY).replace("{unit_dir}", q(unit_dir))
                .replace("{unit_name}", q(unit_name)).replace("{dropin}", q(target))
                .replace("{units}", q(unit_name))
                .replace("{units_active}", f"! systemctl is-failed --quiet {q(unit_name)}"))

    yield StringCommand(f"umask 077; mkdir -p {q(backups + '/.staging')}")
    yield FileUploadCommand(StringIO(text), staging)
    yield StringCommand(script(f"systemd {unit_name} ({', '.join(sorted(set(checks)))})", [(target, staging)],
                               Control(fill(base.validate), fill(base.reload), fill(base.check)), backups=backups))
