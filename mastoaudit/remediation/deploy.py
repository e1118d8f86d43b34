"""A plan as a pyinfra deploy: a Python file an admin reads top to bottom, then runs with
`pyinfra INVENTORY deploy.py`. Every operation says which findings it fixes; what the deploy does
not fix is listed after it with the checks' remediation text, and waived findings are listed as
accepted. No secret is ever written here: passwords are read or generated on the host.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime

from .. import __version__
from ..textsafe import safe_text
from .plan import Plan, Step, function_name

MODULES = ("nginx", "redis", "postgresql", "sshd", "mastodon_env", "systemd")


def _safe(value: object) -> str:
    """Text from the report, for a comment line: one line, every unsafe character escaped (the
    project's one sanitizer), cut to a readable length."""
    text = safe_text("" if value is None else str(value))
    return text if len(text) <= 240 else text[:239] + "…"


def _doc(value: object) -> str:
    """Text from the report, for the deploy's docstring: as _safe, and no quote or backslash that
    could end the string early."""
    return _safe(value).replace("\\", "/").replace('"', "'")


def _literal(value: object, indent: int) -> str:
    if isinstance(value, tuple) and value and value[0] in ("Directive", "Header"):
        kind, check, *rest = value
        if kind == "Directive":
            name, val, scope, line, was = rest
            args = [repr(check), repr(name), repr(val), f"scope={scope!r}", f"line={line!r}", f"was={was!r}"]
        else:
            header, val, scope, line = rest
            args = [repr(check), repr(header), repr(val), f"scope={scope!r}", f"line={line!r}"]
        return f"nginx.{kind}({', '.join(args)})"
    if isinstance(value, list) and value and isinstance(value[0], tuple) and value[0] and value[0][0] in (
            "Directive", "Header"):
        pad = " " * (indent + 4)
        inner = ",\n".join(pad + _literal(v, indent + 4) for v in value)
        return "[\n" + inner + ",\n" + " " * indent + "]"
    if isinstance(value, list) and value and isinstance(value[0], tuple):
        pad = " " * (indent + 4)
        return "[\n" + "".join(f"{pad}{tuple(v)!r},\n" for v in value) + " " * indent + "]"
    if isinstance(value, dict) and len(repr(value)) > 80:
        pad = " " * (indent + 4)
        return "{\n" + "".join(f"{pad}{k!r}: {v!r},\n" for k, v in value.items()) + " " * indent + "}"
    return repr(value)


# What each operation does beyond what its arguments say, for the reader.
NOTES = {
    "nginx": "Each change goes where the finding points; nginx -t, then a reload.",
    "redis": "bind changes only if Mastodon's REDIS_HOST is on this host. The password is generated on the host "
             "and written to REDIS_PASSWORD in .env.production. The candidate config is started on a socket of "
             "its own first; then Redis restarts and must answer PING with the password.",
    "postgresql": "The app role's password is set again as SCRAM from DB_PASS (on the host) before any rule "
                  "asks for SCRAM; addresses narrow to loopback only if Mastodon's DB_HOST is local. After "
                  "pg_reload_conf() the app's own credentials must still log in.",
    "sshd": "Placed first in sshd_config (sshd keeps the first value it reads); sshd -t, then a reload. "
            "Nothing that would lock this deploy out: not as root, not with a password.",
    "mastodon_env": "Edited on the host (the file is never read here); Mastodon is restarted to read it.",
    "systemd": "A drop-in beside the unit (50-mastoaudit-hardening.conf); systemd-analyze verify, "
               "daemon-reload, and a restart if the unit runs.",
}


def _call(step: Step) -> list[str]:
    lines = [f"    # --- {_safe(step.title)}: fixes {len(step.claims)} finding{'s' * (len(step.claims) != 1)}"]
    lines += [f"    #   {line}" for line in textwrap.wrap(NOTES.get(step.module, ""), 94)]
    for c in step.claims:
        lines.append(f"    #   [{c.severity}] {c.check_id}  {_safe(c.where)}")
        if c.observed:
            lines.append(f"    #       was: {_safe(c.observed)}")
    lines.append(f"    {step.module}.{step.function}(")
    lines.append(f"        name={_safe(step.title + ' (' + ', '.join(step.checks) + ')')!r},")
    for key, value in step.kwargs.items():
        if value in (None, False, [], {}, ()) and key not in ("path", "unit"):
            continue
        lines.append(f"        {key}={_literal(value, 8)},")
    lines.append(f"        checks={step.checks!r},")
    lines.append("    )")
    return lines


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


def _remediation(plan: Plan, check_id: str) -> str:
    meta = plan.checks.get(check_id) or {}
    rem = meta.get("remediation") if isinstance(meta.get("remediation"), dict) else {}
    return _safe(rem.get("text") or "")


def render(plan: Plan, source: str) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    total = sum(len(h.claims) for h in plan.hosts)
    ops = sum(len(h.steps) for h in plan.hosts)
    manual = sum(len(h.manual) for h in plan.hosts)
    waived = sum(len(h.waived) for h in plan.hosts)
    head = f'''\
"""Remediation deploy written by mastoaudit {__version__} (`fix --plan`) from {_doc(source)}, {now}.

Nothing has been changed yet. Read this file, then apply it with pyinfra:

    pyinfra INVENTORY {{this file}} --dry     # what would change, changing nothing
    pyinfra INVENTORY {{this file}}           # apply

INVENTORY is a pyinfra inventory whose host names are the audited hosts' names (the report's
targets: {", ".join(_doc(h.target) for h in plan.hosts) or "none"}); log in as an administrator
with sudo (`_sudo=True` in its data). {_count(ops, "operation")} fix {_count(total, "finding")};
{_count(manual, "finding")} left to do by hand, {_count(waived, "finding")} waived (both listed at the end).

Every operation backs up what it changes (under /var/backups/mastoaudit/RUN/), validates the result
with the service's own program (nginx -t, sshd -t, PostgreSQL's pg_hba_file_rules and
pg_file_settings, Redis started on a socket of its own, systemd-analyze verify), reloads the
service and checks that it answers; on any failure it puts the files back and stops. A second run
changes nothing. Passwords are never written here: Redis's is generated on the host and shared
with Mastodon through .env.production, and PostgreSQL's app role keeps DB_PASS.

Host data the operations read (set them in the inventory when the defaults do not fit):
mastoaudit_path_prefix, mastoaudit_backup_dir, mastoaudit_control (how each service is validated
and reloaded), mastoaudit_postgres (socket_dir, port), mastoaudit_redis_port,
mastoaudit_sshd_config, mastoaudit_nginx_config. See mastoaudit/operations/transaction.py.
"""

from pyinfra import host, logger

from mastoaudit.operations import {", ".join(MODULES)}


'''
    if plan.incomplete:
        head += textwrap.dedent(f"""\
            # The audit was incomplete: {plan.incomplete} result(s) could not be checked. What was not
            # checked is not in this deploy and is not proven safe.

            """)
    body: list[str] = []
    hosts = []
    used: set[str] = set()
    for h in plan.hosts:
        fn = base = function_name(h.target)
        n = 1
        while fn in used:  # web1.example and web1_example: two functions
            n += 1
            fn = f"{base}_{n}"
        used.add(fn)
        hosts.append((h.target, fn))
        body.append(f"def {fn}():")
        body.append(f'    """{_doc(h.target)}: {len(h.steps)} operation(s)."""')
        if not h.steps:
            body.append("    pass  # nothing here can be fixed mechanically")
        for step in h.steps:
            body.extend(_call(step))
            body.append("")
        if h.also:
            body.append("    # These live and network findings follow from the operations above once the")
            body.append("    # services have reloaded (the next audit shows them passing):")
            for c in h.also:
                body.append(f"    #   [{c.severity}] {c.check_id}  {_safe(c.where)}")
        body.append("")
        body.append("")
    body.append("HOSTS = {" + ", ".join(f"{t!r}: {fn}" for t, fn in hosts) + "}")
    body.append("# The findings each host's operations fix (fingerprints, as in the JSON report).")
    body.append("CLAIMS = {")
    for target, prints in plan.claims.items():
        body.append(f"    {target!r}: {prints!r},")
    body.append("}")
    body.append("")
    body.append("if host.name in HOSTS:")
    body.append("    HOSTS[host.name]()")
    body.append("else:")
    body.append('    logger.warning(f"{host.name}: not in the report this deploy was written from; nothing to do")')
    body.append("")
    tail = ["", "# " + "-" * 97]
    for h in plan.hosts:
        if h.manual:
            tail.append(f"# Not fixed by this deploy, on {_safe(h.target)} (do these by hand):")
            seen: set[str] = set()
            for f in h.manual:
                loc = f.get("location") or {}
                where = _safe(loc.get("file") or "") + (f":{loc['line']}" if loc.get("line") else "")
                tail.append(f"#   [{_safe(f.get('severity'))}] {_safe(f['check_id'])}  {_safe(f.get('subject') or '')}"
                            f"{' · ' if f.get('subject') and where else ''}{where}")
                tail.append(f"#       {_safe(f.get('message'))}")
                if f["check_id"] not in seen:
                    seen.add(f["check_id"])
                    for line in textwrap.wrap(_remediation(plan, f["check_id"]), 92):
                        tail.append(f"#       fix: {line}" if line else "#")
        if h.waived:
            tail.append(f"# Waived on {_safe(h.target)} (accepted risks, left as they are):")
            for f in h.waived:
                w = f["waiver"] if isinstance(f.get("waiver"), dict) else {}
                tail.append(f"#   {_safe(f['check_id'])}  {_safe(f.get('subject') or '')}: {_safe(w.get('reason'))}"
                            f" ({_safe(w.get('owner'))}, until {_safe(w.get('expires') or 'never')})")
    return head + "\n".join(body) + "\n".join(tail) + "\n"


def summary(plan: Plan) -> str:
    total = sum(len(h.claims) for h in plan.hosts)
    ops = sum(len(h.steps) for h in plan.hosts)
    manual = sum(len(h.manual) for h in plan.hosts)
    waived = sum(len(h.waived) for h in plan.hosts)
    return (f"{ops} operation(s) on {len(plan.hosts)} host(s) fix {total} finding(s); {manual} left to do by hand, "
            f"{waived} waived")
