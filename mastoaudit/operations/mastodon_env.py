"""Mastodon's .env.production: its mode and owner, and the flags that are safe to flip. The file is
edited on the host (it holds every secret of the instance); Mastodon's processes are restarted
afterwards, since they read it when they start."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import OperationError, StringCommand, operation
from pyinfra.facts.files import File

from ..hostfacts import EnvValues
from . import shell
from .transaction import Control, backup_dir, control, on_host, q, script


@operation()
def fix(path: str, checks: list[str], set_values: dict[str, str] | None = None, remove: list[str] = (),
        mode: str | None = None):
    target = on_host(host, path)
    stat = host.get_fact(File, path=target)
    if not stat:
        raise OperationError(f"{target}: no such file on the host")
    set_values = dict(set_values or {})
    keys = tuple(dict.fromkeys([*set_values, *remove]))
    current = host.get_fact(EnvValues, path=target, keys=keys) if keys else {}
    changes = {k: v for k, v in set_values.items() if current.get(k) != v}
    gone = [k for k in remove if k in current]
    if changes or gone:
        backups = f"{backup_dir(host)}/mastodon-env"
        staging = f"{backups}/.staging/env"
        app = control(host, "mastodon")
        what = [*(f"{k}={v}" for k, v in changes.items()), *(f"{k} removed" for k in gone)]
        yield StringCommand(script(
            f"{path} ({'; '.join(what)})", [(target, staging)], Control(None, app.reload, app.check),
            backups=backups, prepare=f"mkdir -p {q(staging.rsplit('/', 1)[0])}\n"
            + shell.env_edit(target, staging, set_plain=changes, remove=gone)))
    if mode is not None:
        owner = stat.get("user")
        if str(stat.get("mode")).lstrip("0") != mode.lstrip("0"):  # pyinfra gives 644 for rw-r--r--
            yield StringCommand(f"chmod {q(mode)} {q(target)}")
        if owner == "root":
            # Mastodon runs as the owner of its directory; a root-owned 600 file would lock it out.
            parent = target.rsplit("/", 1)[0] or "/"
            yield StringCommand(f"chown \"$(stat -c %U:%G {q(parent)})\" {q(target)}")
