"""sshd: options set at the top of sshd_config, as one transaction (sshd -t, reload)."""

from __future__ import annotations

from io import StringIO

from pyinfra import host, logger
from pyinfra.api import FileUploadCommand, OperationError, StringCommand, operation

from ..hostfacts import FileBytes
from . import conf_text
from .transaction import Control, backup_dir, control, host_data, on_host, q, script


def _login_user() -> str:
    return str(host_data(host, "ssh_user", "") or getattr(getattr(host, "connector", None), "user", "") or "")


def safe_settings(settings: dict[str, str]) -> dict[str, str]:
    """The settings minus those that would lock this very deploy out of the host."""
    out = dict(settings)
    if out.get("PermitRootLogin", "").lower() == "no" and _login_user() == "root":
        logger.warning(f"{host.name}: this deploy logs in as root; PermitRootLogin no would lock it out. "
                       "Left as it is: log in as an administrator with sudo and apply again.")
        out.pop("PermitRootLogin")
    if out.get("PasswordAuthentication", "").lower() == "no" and host_data(host, "ssh_password"):
        logger.warning(f"{host.name}: this deploy logs in with a password; PasswordAuthentication no would "
                       "lock it out. Left as it is: log in with a key and apply again.")
        out.pop("PasswordAuthentication")
        out.pop("KbdInteractiveAuthentication", None)
    return out


@operation()
def fix(settings: dict[str, str], checks: list[str], config: str = "/etc/ssh/sshd_config"):
    """Set sshd options (first in the file, where sshd reads them first), validate, reload."""
    target = on_host(host, str(host_data(host, "mastoaudit_sshd_config", config)))
    data = host.get_fact(FileBytes, path=target)
    if data is None:
        raise OperationError(f"{target}: no such file on the host")
    text = data.decode("utf-8", "surrogateescape")
    new = conf_text.sshd_set(text, safe_settings(settings), checks)
    if new == text:
        return
    ctl = control(host, "sshd")
    ctl = Control(*(c.replace("{config}", q(target)) if c else c for c in (ctl.validate, ctl.reload, ctl.check)))
    backups = f"{backup_dir(host)}/sshd"
    staging = f"{backups}/.staging/sshd_config"
    yield StringCommand(f"umask 077; mkdir -p {q(backups + '/.staging')}")
    yield FileUploadCommand(StringIO(new.encode("utf-8", "surrogateescape").decode("utf-8", "replace")), staging)
    yield StringCommand(script(f"sshd {target} ({', '.join(sorted(settings))})", [(target, staging)], ctl,
                               backups=backups))
