"""nginx: TLS and header directives in one file, as one transaction (nginx -t, reload)."""

from __future__ import annotations

from dataclasses import dataclass
from io import StringIO

from pyinfra import host
from pyinfra.api import FileUploadCommand, OperationError, StringCommand, operation

from ..hostfacts import FileBytes
from . import nginx_text
from .transaction import backup_dir, control, host_data, on_host, q, script


@dataclass(frozen=True)
class Directive:
    """Give `name` the value `value` where the finding points (scope, line), replacing `was`."""

    check: str
    name: str
    value: str
    scope: str | None = None
    line: int | None = None
    was: str | None = None


@dataclass(frozen=True)
class Header:
    """Send `header: value` (always) from the block the finding names."""

    check: str
    header: str
    value: str
    scope: str | None = None
    line: int | None = None


Change = Directive | Header


def apply_changes(text: str, changes: list[Change], inherited=()) -> tuple[str, list[str]]:
    """The file with every change made (each one idempotent), and what was done."""
    done = []
    for c in changes:
        if isinstance(c, Directive):
            r = nginx_text.set_directive(text, c.name, c.value.split(), scope=c.scope, line=c.line,
                                         was=c.was.split() if c.was else None, check=c.check)
        else:
            r = nginx_text.add_header(text, c.header, c.value, scope=c.scope, line=c.line, check=c.check,
                                      inherited=list(inherited))
        if r.changed:
            done.append(f"{c.check}: {r.note}")
        text = r.text
    return text, done


def _config_text(path: str) -> str:
    data = host.get_fact(FileBytes, path=path)
    if data is None:
        raise OperationError(f"{path}: no such file on the host")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise OperationError(f"{path}: not UTF-8 text; left alone") from None


@operation()
def fix(path: str, changes: list[Change], checks: list[str] = (), main_config: str = "/etc/nginx/nginx.conf"):
    """Make `changes` in the nginx file at `path` (as the report names it), then validate with
    nginx -t and reload; any failure puts the file back."""
    target = on_host(host, path)
    text = _config_text(target)
    inherited = []
    main = on_host(host, str(host_data(host, "mastoaudit_nginx_config", main_config)))
    if main != target and any(isinstance(c, Header) for c in changes):
        data = host.get_fact(FileBytes, path=main)
        if data is not None:
            inherited = nginx_text.http_add_headers(data.decode("utf-8", "replace"))
    try:
        new, done = apply_changes(text, changes, inherited)
    except nginx_text.NginxEditError as exc:
        raise OperationError(f"{target}: {exc}") from None
    if new == text:
        return
    label = f"nginx {path}"
    backups = f"{backup_dir(host)}/nginx"
    staging = f"{backups}/.staging/{target.replace('/', '_')}"
    yield StringCommand(f"umask 077; mkdir -p {q(backups + '/.staging')}")
    yield FileUploadCommand(StringIO(new), staging)
    yield StringCommand(script(label + " (" + "; ".join(done) + ")", [(target, staging)], control(host, "nginx"),
                               backups=backups))
