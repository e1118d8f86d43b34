"""systemd units of Mastodon's processes (mastodon-web, -sidekiq, -streaming): who they run as and
how far their sandbox contains a code-execution bug (T-HOST-COMPROMISE, T-APP-UPLOAD-RCE).

Mastodon ships these units in dist/ with a strict sandbox; the checks hold installed units to that
shape. Only units that run Mastodon are judged (by name, or by a Mastodon command and path);
wrapper units that run nothing (mastodon-streaming.service starting its @ instances) are not.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from mastoaudit.checkdef import Remediation, check, failed, passed, skipped, warned
from mastoaudit.facts import FactSet
from mastoaudit.model import Outcome
from mastoaudit.parsers.systemd import SystemdUnit, is_templated, parse_bool

SYSTEMD_EXEC = "https://www.freedesktop.org/software/systemd/man/latest/systemd.exec.html"
MASTODON_UNIT = "https://github.com/mastodon/mastodon/blob/main/dist/mastodon-web.service"
MASTODON_INSTALL = "https://docs.joinmastodon.org/admin/install/#setting-up-systemd-services"


def _units(facts: FactSet) -> list[SystemdUnit]:
    return [u for u in facts.all("systemd_unit") if u.has_service and u.is_mastodon]


def _subject(unit: SystemdUnit) -> str:
    return f"unit {unit.name}"


def _service_at(unit: SystemdUnit):
    return unit.sections.get("Service", unit.at())


@check(
    id="host.systemd-service-user",
    title="Mastodon's services run as their own unprivileged user",
    component="host",
    severity="high",
    threats=["T-HOST-COMPROMISE", "T-APP-UPLOAD-RCE"],
    needs=["systemd_unit"],
    rationale="""Without User=, systemd runs the service as root: a file-write or code-execution bug in
        Puma, Sidekiq or the streaming server (TootRoot wrote files anywhere the process could) is then
        a root compromise of the host. Mastodon's units run as the mastodon user.""",
    remediation=Remediation("Run the service as the mastodon user.", "[Service]\nUser=mastodon"),
    references=[SYSTEMD_EXEC, MASTODON_UNIT, MASTODON_INSTALL],
    tags=["systemd", "cis"],
)
def service_user(facts: FactSet) -> Iterator[Outcome]:
    for unit in _units(facts):
        subject = _subject(unit)
        dynamic, dyn_setting = unit.boolean("DynamicUser")
        user = unit.last("User")
        if dynamic and dyn_setting is not None:
            yield passed("runs as a dynamic unprivileged user", at=dyn_setting.location, subject=subject,
                         observed="DynamicUser=yes", expected="a non-root User=")
        elif user is None or not user.value:
            yield failed("no User= is set: systemd runs the service as root", at=user.location if user else
                         _service_at(unit), subject=subject, observed="unset (root)", expected="User=mastodon")
        elif is_templated(user.value):
            yield skipped(f"User= is templated ({user.value}): cannot tell who runs it", at=user.location,
                          subject=subject, observed="templated", expected="a non-root user")
        elif user.value in ("root", "0"):
            yield failed("the service runs as root", at=user.location, subject=subject,
                         observed=f"User={user.value}", expected="User=mastodon")
        else:
            yield passed(f"runs as {user.value}", at=user.location, subject=subject,
                         observed=f"User={user.value}", expected="a non-root user")


@check(
    id="host.systemd-no-new-privileges",
    title="Mastodon's services cannot gain privileges (NoNewPrivileges)",
    component="host",
    severity="medium",
    threats=["T-HOST-COMPROMISE", "T-APP-UPLOAD-RCE"],
    needs=["systemd_unit"],
    rationale="""NoNewPrivileges=true stops the service and its children from gaining privileges
        through setuid programs or file capabilities (sudo, su, pkexec): code run through a bug stays
        the mastodon user. Mastodon's units set it.""",
    remediation=Remediation("Set NoNewPrivileges.", "[Service]\nNoNewPrivileges=true"),
    references=[SYSTEMD_EXEC, MASTODON_UNIT],
    tags=["systemd", "sandbox"],
)
def no_new_privileges(facts: FactSet) -> Iterator[Outcome]:
    for unit in _units(facts):
        subject = _subject(unit)
        value, setting = unit.boolean("NoNewPrivileges")
        if setting is None:
            yield failed("NoNewPrivileges is not set", at=_service_at(unit), subject=subject,
                         observed="unset (no)", expected="NoNewPrivileges=true")
        elif value is True:
            yield passed("the service cannot gain privileges", at=setting.location, subject=subject,
                         observed=f"NoNewPrivileges={setting.value}", expected="true")
        else:
            yield failed("NoNewPrivileges is off", at=setting.location, subject=subject,
                         observed=f"NoNewPrivileges={setting.value}", expected="true")


@check(
    id="host.systemd-protect-system",
    title="Mastodon's services see the operating system read-only (ProtectSystem)",
    component="host",
    severity="medium",
    threats=["T-HOST-COMPROMISE", "T-APP-UPLOAD-RCE"],
    needs=["systemd_unit"],
    rationale="""ProtectSystem=strict mounts the whole file system read-only for the service, so a
        file-write bug cannot plant code or change configuration; `full` protects /usr, /boot and
        /etc. Mastodon's units use strict. `true` protects only /usr and /boot.""",
    remediation=Remediation("Set ProtectSystem=strict, with ReadWritePaths for what the service writes "
                            "(local media).", "[Service]\nProtectSystem=strict\nReadWritePaths=/home/mastodon/live"),
    references=[SYSTEMD_EXEC, MASTODON_UNIT],
    tags=["systemd", "sandbox"],
)
def protect_system(facts: FactSet) -> Iterator[Outcome]:
    for unit in _units(facts):
        subject = _subject(unit)
        setting = unit.last("ProtectSystem")
        value = setting.value.strip().lower() if setting else ""
        if setting is None or parse_bool(value) is False or not value:
            yield failed("the operating system is writable by the service" if setting else
                         "ProtectSystem is not set: the operating system is writable by the service",
                         at=setting.location if setting else _service_at(unit), subject=subject,
                         observed=f"ProtectSystem={setting.value}" if setting else "unset (no)",
                         expected="strict (or full)")
        elif value in ("strict", "full"):
            yield passed(f"ProtectSystem={value}", at=setting.location, subject=subject,
                         observed=f"ProtectSystem={setting.value}", expected="strict (or full)")
        elif parse_bool(value) is True:
            yield warned("ProtectSystem=true protects only /usr and /boot; /etc stays writable", at=setting.location,
                         subject=subject, observed=f"ProtectSystem={setting.value}", expected="strict (or full)")
        else:
            yield warned(f"unrecognised ProtectSystem value {setting.value!r}", at=setting.location,
                         subject=subject, observed=f"ProtectSystem={setting.value}", expected="strict (or full)")


@check(
    id="host.systemd-private-tmp",
    title="Mastodon's services have a private /tmp",
    component="host",
    severity="low",
    threats=["T-HOST-COMPROMISE"],
    needs=["systemd_unit"],
    rationale="""With PrivateTmp=true the service gets its own /tmp: other users' processes cannot
        plant or read files the service writes there (uploads being processed, temporary exports), and
        the service cannot reach theirs.""",
    remediation=Remediation("Set PrivateTmp.", "[Service]\nPrivateTmp=true"),
    references=[SYSTEMD_EXEC, MASTODON_UNIT],
    tags=["systemd", "sandbox"],
)
def private_tmp(facts: FactSet) -> Iterator[Outcome]:
    for unit in _units(facts):
        subject = _subject(unit)
        value, setting = unit.boolean("PrivateTmp")
        if value is True:
            yield passed("/tmp is private to the service", at=setting.location, subject=subject,
                         observed=f"PrivateTmp={setting.value}", expected="true")
        else:
            yield failed("the service shares the host's /tmp", at=setting.location if setting else _service_at(unit),
                         subject=subject, observed=f"PrivateTmp={setting.value}" if setting else "unset (no)",
                         expected="true")


_DANGEROUS_CAPS = {"CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_DAC_OVERRIDE",
                   "CAP_DAC_READ_SEARCH", "CAP_SETUID", "CAP_SETGID", "CAP_CHOWN", "CAP_FOWNER", "CAP_NET_ADMIN",
                   "CAP_NET_RAW", "CAP_BPF", "CAP_SYS_BOOT", "CAP_SETPCAP", "CAP_SETFCAP", "CAP_MKNOD",
                   "CAP_LINUX_IMMUTABLE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_CONTROL", "CAP_MAC_ADMIN",
                   "CAP_MAC_OVERRIDE", "CAP_SYSLOG", "CAP_PERFMON", "CAP_CHECKPOINT_RESTORE", "CAP_FSETID"}


def bounding_set(unit: SystemdUnit) -> tuple[str, set[str]] | None:
    """The capability bounding set in force: ('only', caps) or ('except', caps); None when unset.

    Assignments accumulate: plain lists add, `~` lists remove, an empty assignment empties it.
    """
    state: tuple[str, set[str]] | None = None
    for setting in unit.assignments("CapabilityBoundingSet"):
        text = setting.value.strip()
        if not text:
            state = ("only", set())
            continue
        invert = text.startswith("~")
        caps = {c.upper() for c in text.lstrip("~").split()}
        if state is None:
            state = ("except" if invert else "only", caps)
        elif state[0] == "only":
            state = ("only", state[1] - caps if invert else state[1] | caps)
        else:
            state = ("except", state[1] | caps if invert else state[1] - caps)
    return state


@check(
    id="host.systemd-capabilities",
    title="Mastodon's services hold no Linux capabilities",
    component="host",
    severity="medium",
    threats=["T-HOST-COMPROMISE", "T-APP-UPLOAD-RCE"],
    needs=["systemd_unit"],
    rationale="""Mastodon's processes need no capability: they bind ports above 1024 and write their own
        files. An empty CapabilityBoundingSet= removes every capability from the service and whatever
        it starts, so even a root process or a setuid program inside it cannot use them. Mastodon's
        units set it empty.""",
    remediation=Remediation("Empty the capability bounding set.", "[Service]\nCapabilityBoundingSet="),
    references=[SYSTEMD_EXEC, MASTODON_UNIT, "https://man7.org/linux/man-pages/man7/capabilities.7.html"],
    tags=["systemd", "sandbox"],
)
def capabilities(facts: FactSet) -> Iterator[Outcome]:
    for unit in _units(facts):
        subject = _subject(unit)
        found = unit.assignments("CapabilityBoundingSet")
        at = found[-1].location if found else _service_at(unit)
        state = bounding_set(unit)
        if state is None:
            yield failed("CapabilityBoundingSet is not set: the service may hold every capability", at=at,
                         subject=subject, observed="unset (all)", expected="CapabilityBoundingSet= (empty)")
        elif state[0] == "except":
            shown = "~" + " ".join(sorted(state[1]))
            yield failed("the bounding set keeps every capability but a few", at=at, subject=subject,
                         observed=f"CapabilityBoundingSet={shown}", expected="empty, or a few harmless ones")
        elif not state[1]:
            yield passed("the service holds no capability", at=at, subject=subject,
                         observed="CapabilityBoundingSet= (empty)", expected="empty")
        else:
            shown = " ".join(sorted(state[1]))
            risky = sorted(state[1] & _DANGEROUS_CAPS)
            if risky:
                yield failed(f"the bounding set keeps powerful capabilities ({', '.join(risky)})", at=at,
                             subject=subject, observed=f"CapabilityBoundingSet={shown}", expected="empty")
            else:
                yield passed(f"the bounding set is limited to {shown}", at=at, subject=subject,
                             observed=f"CapabilityBoundingSet={shown}", expected="empty, or a few harmless ones")


# What Mastodon's dist units set beyond the settings judged on their own above.
SANDBOX = [
    ("PrivateDevices", "true"), ("ProtectHostname", "true"), ("ProtectKernelTunables", "true"),
    ("ProtectKernelModules", "true"), ("ProtectKernelLogs", "true"), ("ProtectControlGroups", "true"),
    ("ProtectClock", "true"), ("RestrictNamespaces", "true"), ("RestrictRealtime", "true"),
    ("RestrictSUIDSGID", "true"), ("LockPersonality", "true"), ("RestrictAddressFamilies", "list"),
    ("SystemCallFilter", "list"), ("SystemCallArchitectures", "native"),
]


def _sandbox_present(unit: SystemdUnit, key: str, kind: str) -> bool:
    if kind == "list":
        return bool(unit.items(key))
    setting = unit.last(key)
    if setting is None:
        return False
    value = setting.value.strip()
    if kind == "native":
        return "native" in value.split()
    if key == "RestrictNamespaces":
        return parse_bool(value) is True or (bool(value) and parse_bool(value) is None)  # a list allows some
    return parse_bool(value) is True


@check(
    id="host.systemd-sandboxing",
    title="Mastodon's services are sandboxed like Mastodon's own units",
    component="host",
    severity="medium",
    threats=["T-HOST-COMPROMISE", "T-APP-UPLOAD-RCE"],
    needs=["systemd_unit"],
    rationale="""Mastodon's units shut the kernel's tunables, modules, logs and clock, namespaces,
        exotic socket families and unneeded system calls away from the service. Each closes a way for
        code run through a bug to reach the kernel or the rest of the host. The finding lists what is
        missing; a few missing is a warning, most of them a failure.""",
    remediation=Remediation(
        "Add the missing settings from Mastodon's dist/mastodon-*.service.",
        "PrivateDevices=true\nProtectKernelTunables=true\nProtectKernelModules=true\nProtectKernelLogs=true\n"
        "ProtectControlGroups=true\nProtectClock=true\nProtectHostname=true\nRestrictNamespaces=true\n"
        "RestrictRealtime=true\nRestrictSUIDSGID=true\nLockPersonality=true\n"
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_NETLINK AF_UNIX\nSystemCallArchitectures=native\n"
        "SystemCallFilter=~@clock @cpu-emulation @debug @keyring @module @mount @obsolete @raw-io @reboot @swap"),
    references=[SYSTEMD_EXEC, MASTODON_UNIT, "https://www.freedesktop.org/software/systemd/man/latest/systemd-analyze.html#systemd-analyze%20security%20%5BUNIT...%5D"],
    tags=["systemd", "sandbox"],
)
def sandboxing(facts: FactSet) -> Iterator[Outcome]:
    for unit in _units(facts):
        subject = _subject(unit)
        missing = [key for key, kind in SANDBOX if not _sandbox_present(unit, key, kind)]
        score = f"{len(SANDBOX) - len(missing)}/{len(SANDBOX)}"
        observed = f"{score} set; missing: {', '.join(missing)}" if missing else f"{score} set"
        expected = "all of " + ", ".join(k for k, _ in SANDBOX)
        at = _service_at(unit)
        if not missing:
            yield passed("the service is sandboxed like Mastodon's units", at=at, subject=subject,
                         observed=observed, expected="all set")
        elif len(missing) * 2 > len(SANDBOX):
            yield failed(f"most of the sandbox is missing ({score} set)", at=at, subject=subject,
                         observed=observed, expected=expected)
        else:
            yield warned(f"part of the sandbox is missing ({score} set)", at=at, subject=subject,
                         observed=observed, expected=expected)


# Paths that must not be made writable for the service: system trees, and homes as a whole (the
# mastodon user's ~/.ssh and ~/.rbenv would let a bug persist or log in).
_BROAD = re.compile(r"^/(|etc|usr|bin|sbin|lib|lib64|lib32|boot|root|home|var|var/lib|opt|srv|run|home/[^/]+)$")
_HIDDEN_IN_HOME = re.compile(r"^/home/[^/]+/\.(ssh|rbenv|bashrc|profile|config)(/|$)")


@check(
    id="host.systemd-writable-paths",
    title="Mastodon's services may write only where Mastodon writes",
    component="host",
    severity="medium",
    threats=["T-HOST-COMPROMISE", "T-APP-UPLOAD-RCE"],
    needs=["systemd_unit"],
    rationale="""ReadWritePaths= punches holes in ProtectSystem=strict. Mastodon needs its live
        directory (local media under public/system) and nothing else; a whole home directory, /var or
        / gives a file-write bug the mastodon user's SSH keys and Ruby shims, or the system, to plant
        code in.""",
    remediation=Remediation("Limit ReadWritePaths to Mastodon's directory (or its public/system).",
                            "ReadWritePaths=/home/mastodon/live"),
    references=[SYSTEMD_EXEC, MASTODON_UNIT],
    tags=["systemd", "sandbox"],
)
def writable_paths(facts: FactSet) -> Iterator[Outcome]:
    for unit in _units(facts):
        subject = _subject(unit)
        paths = unit.items("ReadWritePaths")
        if not paths:
            yield passed("no path is made writable beyond what the sandbox allows", at=_service_at(unit),
                         subject=subject, observed="no ReadWritePaths", expected="Mastodon's directory at most")
            continue
        for word, where in paths:
            path = word.lstrip("-+")
            if is_templated(path):
                yield skipped(f"ReadWritePaths entry {path} uses a specifier or template: cannot judge",
                              at=where, subject=subject, observed="templated", expected="Mastodon's directory at most")
                continue
            norm = "/" + "/".join(p for p in path.split("/") if p and p != ".")
            if _BROAD.match(norm) or _HIDDEN_IN_HOME.match(norm) or ".." in path.split("/"):
                yield failed(f"{path} is made writable for the service", at=where, subject=subject,
                             observed=f"ReadWritePaths={path}", expected="Mastodon's directory at most")
            else:
                yield passed(f"{path} is writable", at=where, subject=subject, observed=f"ReadWritePaths={path}",
                             expected="Mastodon's directory at most")
