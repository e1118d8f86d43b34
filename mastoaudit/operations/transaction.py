"""One change to a service's files as a transaction on the host: back up, put in place, validate,
reload, check, and on any failure put the backups back (and reload again) and fail the operation.

How each service is validated and reloaded is a `Control`: Debian's and systemd's commands by
default, overridable per host with pyinfra host data (`mastoaudit_control`), for hosts that do not
run the service under systemd (the lab runs its daemons from their own config files).

Host data read here (all optional):

    mastoaudit_path_prefix   prefix for the absolute paths the report names (a lab or chroot)
    mastoaudit_backup_dir    where backups go (default /var/backups/mastoaudit); never beside the
                             file, where nginx's `include sites-enabled/*` or sshd's drop-in glob
                             would read a copy as configuration
    mastoaudit_control       {"nginx": {"validate": "...", "reload": "...", "check": "..."}, ...}
    mastoaudit_postgres      {"socket_dir": "/var/run/postgresql", "port": 5432}
    mastoaudit_redis_port    6379
    mastoaudit_sshd_config   /etc/ssh/sshd_config
    mastoaudit_nginx_config  /etc/nginx/nginx.conf (the add_header lines a site file's servers inherit)
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass

DEFAULT_BACKUP_DIR = "/var/backups/mastoaudit"
# One run of a deploy: backups of the same run land together.
RUN_ID = time.strftime("%Y%m%dT%H%M%S")


@dataclass(frozen=True)
class Control:
    validate: str | None  # shell; exit 0 = the files in place are acceptable to the program
    reload: str | None  # shell; makes the running service use them
    check: str | None = None  # shell, after reload; exit 0 = the service answers


# Debian with systemd. `{config}` is replaced by the file the service reads first (quoted).
DEFAULTS: dict[str, Control] = {
    "nginx": Control("nginx -t -q", "systemctl reload nginx", "systemctl is-active --quiet nginx"),
    "sshd": Control("sshd -t -f {config}", "systemctl reload ssh 2>/dev/null || systemctl reload sshd",
                    "sshd -T -f {config} >/dev/null"),
    # Redis has no config test and reloads nothing on SIGHUP: the candidate is started on a socket of
    # its own (REDIS_PARSE below), then the server restarted.
    "redis": Control("{redis_parse}", "systemctl restart redis-server 2>/dev/null || systemctl restart redis",
                     "{redis_ping}"),
    # PostgreSQL reads the files on disk into pg_hba_file_rules and pg_file_settings without
    # applying them: the validation; pg_reload_conf() applies them.
    "postgresql": Control("{pg_validate}", "{pg_reload}", None),
    "systemd": Control("{systemd_verify}", "systemctl daemon-reload && systemctl try-restart {units}",
                       "{units_active}"),
    # .env.production is read when Mastodon's processes start.
    "mastodon": Control(None, "systemctl try-restart mastodon-web mastodon-sidekiq mastodon-streaming", None),
}


def host_data(host, key: str, default=None):
    data = getattr(host, "data", None)
    if data is None:
        return default
    value = data.get(key) if hasattr(data, "get") else getattr(data, key, None)
    return default if value is None else value


def control(host, service: str) -> Control:
    base = DEFAULTS[service]
    override = (host_data(host, "mastoaudit_control", {}) or {}).get(service) or {}
    return Control(override.get("validate", base.validate), override.get("reload", base.reload),
                   override.get("check", base.check))


def on_host(host, path: str) -> str:
    """The path as it is on this host: the report's path, under the host's prefix if it has one
    (paths that already lie under the prefix, as nginx -T shows them, are left alone)."""
    prefix = str(host_data(host, "mastoaudit_path_prefix", "") or "").rstrip("/")
    if not prefix or path == prefix or path.startswith(prefix + "/"):
        return path
    return prefix + path


def backup_dir(host) -> str:
    base = str(host_data(host, "mastoaudit_backup_dir", DEFAULT_BACKUP_DIR)).rstrip("/")
    return f"{base}/{RUN_ID}"


def q(text: str) -> str:
    return shlex.quote(text)


def script(label: str, files: list[tuple[str, str]], ctl: Control, *, backups: str,
           prepare: str = "", after: str = "") -> str:
    """The transaction, as one POSIX shell text.

    files: (target, candidate) pairs; the candidate already exists on the host (uploaded, or made by
    `prepare`). A target that did not exist is removed again on rollback. `after` runs once the
    change is in force (e.g. restarting the app for .env.production)."""
    lines = [
        "set -u",
        f"bk={q(backups)}",
        'umask 077; mkdir -p "$bk"',
        "mastoaudit_restore() {",
    ]
    for target, _ in files:
        lines.append(f'  if [ -e "$bk"{q(target)} ]; then cp -p "$bk"{q(target)} {q(target)}; '
                     f'elif [ -e "$bk"{q(target + ".absent")} ]; then rm -f {q(target)}; fi')
    lines.append("  :")
    lines.append("}")
    lines.append("mastoaudit_fail() { printf 'mastoaudit: %s\\n' \"$1\" >&2; [ -n \"${2:-}\" ] && "
                 "printf '%s\\n' \"$2\" | tail -n 20 >&2; exit 1; }")
    if prepare:
        lines.append(prepare)
    for target, candidate in files:
        lines += [
            f'mkdir -p "$bk"{q(target.rsplit("/", 1)[0] or "/")}',
            f'if [ -e "$bk"{q(target)} ] || [ -e "$bk"{q(target + ".absent")} ]; then :; '
            f'elif [ -e {q(target)} ]; then cp -p {q(target)} "$bk"{q(target)}; '
            f'else : > "$bk"{q(target + ".absent")}; fi',
            f"mkdir -p {q(target.rsplit('/', 1)[0] or '/')}",
            f"cp {q(candidate)} {q(target + '.mastoaudit-new')} && rm -f {q(candidate)}",
            f"if [ -e {q(target)} ]; then chmod --reference={q(target)} {q(target + '.mastoaudit-new')}; "
            f"chown --reference={q(target)} {q(target + '.mastoaudit-new')}; "
            f"else chmod 644 {q(target + '.mastoaudit-new')}; fi",
            f"mv -f {q(target + '.mastoaudit-new')} {q(target)}",
        ]
    if ctl.validate:
        lines += [
            f"if ! out=$( {{ {ctl.validate}; }} 2>&1 ); then mastoaudit_restore; "
            f"mastoaudit_fail {q(f'{label}: refused, the validation failed; the files are restored from the backup')}"
            ' "$out"; fi',
        ]
    if ctl.reload:
        lines += [
            f"if ! out=$( {{ {ctl.reload}; }} 2>&1 ); then mastoaudit_restore; ( {ctl.reload} ) >/dev/null 2>&1; "
            f"mastoaudit_fail {q(f'{label}: the reload failed; the files are restored and reloaded again')}"
            ' "$out"; fi',
        ]
    if ctl.check:
        lines += [
            f"if ! out=$( {{ {ctl.check}; }} 2>&1 ); then mastoaudit_restore; "
            + (f"( {ctl.reload} ) >/dev/null 2>&1; " if ctl.reload else "")
            + f"mastoaudit_fail {q(f'{label}: the service did not answer after the reload; the files are restored')}"
            ' "$out"; fi',
        ]
    if after:
        lines.append(after)
    lines.append(f"printf 'mastoaudit: %s (backup in %s)\\n' {q(label + ': changed')} \"$bk\"")
    # One function, called at the end: the shell reads all of it before running any of it, so a
    # script it cannot parse changes nothing.
    return "mastoaudit_transaction() {\n" + "\n".join(lines) + "\n}\nmastoaudit_transaction"
