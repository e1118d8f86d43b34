"""From a report document to a remediation plan: per host, the operations that fix what can be fixed
mechanically, each naming the findings it fixes (by fingerprint), and the rest left to people.

The plan is built from what every report carries and keeps stable (check ids, targets, file
locations, subjects, observed values, fingerprints), never from the checks' internal fact classes:
a report written by an earlier run, or merged from shards, plans the same way as a fresh one.
Waived findings are accepted risks: they are listed as such and never "fixed".
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

from ..ciphers import mozilla_profile
from ..fixplan import checks_by_id

FIXABLE_STATUS = ("fail", "warn")
ENV_FILE = ".env.production"

# Mozilla's intermediate configuration (TLS 1.2 suites; TLS 1.3 ones are OpenSSL's defaults): the
# profile nginx.tls-ciphers judges by (mastoaudit.ciphers).
MOZILLA_INTERMEDIATE = mozilla_profile("intermediate").openssl_string
# As Mastodon's dist/nginx.conf sends it.
HSTS = "max-age=63072000; includeSubDomains"
MEDIA_CSP = "default-src 'none'; form-action 'none'"

# nginx: check id -> (directive, value) set where the finding points.
NGINX_DIRECTIVES = {
    "nginx.tls-protocols": ("ssl_protocols", "TLSv1.2 TLSv1.3"),
    "nginx.tls-ciphers": ("ssl_ciphers", MOZILLA_INTERMEDIATE),
    # What the check expects: on while the list holds weaker suites; off, as Mozilla has it, when this
    # plan also sets Mozilla's list (_preference below).
    "nginx.tls-prefer-server-ciphers": ("ssl_prefer_server_ciphers", "on"),
    "nginx.tls-session-tickets": ("ssl_session_tickets", "off"),
    "nginx.server-tokens": ("server_tokens", "off"),
    "nginx.autoindex": ("autoindex", "off"),
}
# nginx: check id -> (header, value) added to the block the finding names.
NGINX_HEADERS = {
    "nginx.hsts": ("Strict-Transport-Security", HSTS),
    "nginx.media-csp": ("Content-Security-Policy", MEDIA_CSP),
    "nginx.media-nosniff": ("X-Content-Type-Options", "nosniff"),
}
SSHD = {
    "host.sshd-root-login": {"PermitRootLogin": "no"},
    "host.sshd-password-auth": {"PasswordAuthentication": "no", "KbdInteractiveAuthentication": "no"},
    "host.sshd-empty-passwords": {"PermitEmptyPasswords": "no"},
}
# The settings Mastodon's dist/mastodon-*.service units use, per check.
SYSTEMD = {
    "host.systemd-no-new-privileges": [("NoNewPrivileges", "true")],
    "host.systemd-private-tmp": [("PrivateTmp", "true")],
    "host.systemd-capabilities": [("CapabilityBoundingSet", "")],
    "host.systemd-protect-system": [("ProtectSystem", "strict")],
}
SANDBOX_VALUES = {
    "PrivateDevices": "true", "ProtectHostname": "true", "ProtectKernelTunables": "true",
    "ProtectKernelModules": "true", "ProtectKernelLogs": "true", "ProtectControlGroups": "true",
    "ProtectClock": "true", "RestrictNamespaces": "true", "RestrictRealtime": "true", "RestrictSUIDSGID": "true",
    "LockPersonality": "true", "RestrictAddressFamilies": "AF_INET AF_INET6 AF_NETLINK AF_UNIX",
    "SystemCallFilter": "~@clock @cpu-emulation @debug @keyring @module @mount @obsolete @raw-io @reboot @swap",
    "SystemCallArchitectures": "native",
}
REDIS_DANGEROUS = ("FLUSHALL", "FLUSHDB", "CONFIG", "DEBUG", "MODULE")
# Findings the live and network checks make that a configuration fix resolves once the service has
# reloaded: claimed when every failed finding of the configuration checks named, on the same target,
# is fixed by the plan. (live check id, its subject or observed value starts with, configuration checks)
CONSEQUENCES = [
    ("redis.live-auth", "auth", ("redis.auth",)),
    ("redis.live-auth", "bind", ("redis.bind",)),
    ("redis.live-auth", "protected-mode", ("redis.protected-mode",)),
    ("ports.redis-noauth", "", ("redis.auth",)),
    ("ports.exposed", "open: Redis", ("redis.bind",)),
    ("host.internal-services-exposed", "Redis ", ("redis.bind",)),
    ("postgresql.live-settings", "password_encryption", ("postgresql.password-encryption",)),
    ("ports.postgres-trust", "", ("postgresql.hba-trust",)),
    ("tls.protocols", "", ("nginx.tls-protocols",)),
    ("tls.ciphers", "", ("nginx.tls-ciphers", "nginx.tls-protocols")),
    ("http.server-leak", "", ("nginx.server-tokens",)),
    ("http.nosniff", "", ("nginx.media-nosniff",)),
    ("http.media-headers", "", ("nginx.media-nosniff", "nginx.media-csp")),
]


@dataclass
class Claim:
    check_id: str
    fingerprint: str
    severity: str
    where: str
    observed: str

    @classmethod
    def of(cls, f: dict, path: str | None = None) -> Claim:
        loc = f.get("location") or {}
        where = " · ".join(x for x in (f.get("subject") or "", f"{path or loc.get('file') or ''}"
                                       + (f":{loc['line']}" if loc.get("line") else "")) if x)
        return cls(f["check_id"], f.get("fingerprint", ""), f.get("severity", ""), where, str(f.get("observed") or ""))


@dataclass
class Step:
    """One operation call in the deploy."""

    module: str  # mastoaudit.operations.<module>
    function: str
    kwargs: dict
    claims: list[Claim] = field(default_factory=list)
    title: str = ""

    @property
    def checks(self) -> list[str]:
        return sorted({c.check_id for c in self.claims})


@dataclass
class HostPlan:
    target: str
    steps: list[Step] = field(default_factory=list)
    also: list[Claim] = field(default_factory=list)  # live/network findings the steps resolve
    manual: list[dict] = field(default_factory=list)
    waived: list[dict] = field(default_factory=list)

    @property
    def claims(self) -> list[Claim]:
        return [c for s in self.steps for c in s.claims] + self.also


@dataclass
class Plan:
    command: str
    hosts: list[HostPlan]
    checks: dict[str, dict]
    incomplete: int = 0

    @property
    def claims(self) -> dict[str, list[str]]:
        return {h.target: sorted({c.fingerprint for c in h.claims}) for h in self.hosts if h.claims}


def _path(f: dict) -> str | None:
    loc = f.get("location") or {}
    file = loc.get("file")
    if not isinstance(file, str):
        return None
    prefix = f"{f.get('target')}:"
    file = file[len(prefix):] if file.startswith(prefix) else file
    return file if file.startswith("/") else None


_TEXT_FIELDS = ("check_id", "target", "status", "fingerprint")
_OPTIONAL_TEXT = ("subject", "observed", "message", "severity")


def _well_formed(f: object) -> bool:
    """A finding whose fields have the types a report gives them (a report read back is hostile:
    anything else is skipped, never a traceback and never a change)."""
    if not isinstance(f, dict) or not all(isinstance(f.get(k), str) for k in _TEXT_FIELDS):
        return False
    if not all(f.get(k) is None or isinstance(f.get(k), str) for k in _OPTIONAL_TEXT):
        return False
    loc = f.get("location")
    if loc is None:
        return True
    line = loc.get("line") if isinstance(loc, dict) else None
    return (isinstance(loc, dict) and (loc.get("file") is None or isinstance(loc.get("file"), str))
            and (line is None or (isinstance(line, int) and not isinstance(line, bool))))


def _findings(document: dict) -> list[dict]:
    found = document.get("findings")
    return [f for f in found if _well_formed(f)] if isinstance(found, list) else []


class _Host:
    """What the plan knows of one target, from every finding about it (passed ones included)."""

    def __init__(self, target: str, findings: list[dict]) -> None:
        self.target = target
        self.findings = findings
        paths = [p for f in findings if (p := _path(f))]
        self.env = next((p for p in paths if p.endswith("/" + ENV_FILE)), None)
        self.nginx = any(f["check_id"].startswith("nginx.") and _path(f) for f in findings)
        self.failed = [f for f in findings if f.get("status") in FIXABLE_STATUS
                       and not f["check_id"].startswith("waiver.")]


def build(document: dict) -> Plan:
    checks = checks_by_id(document)
    by_target: dict[str, list[dict]] = defaultdict(list)
    for f in _findings(document):
        by_target[f["target"]].append(f)
    errors = sum(1 for f in _findings(document) if f.get("status") == "error")
    run = document.get("run") if isinstance(document.get("run"), dict) else {}
    plan = Plan(str(run.get("command", "")), [], checks, errors or (1 if run.get("complete") is False else 0))
    for target in sorted(by_target):
        plan.hosts.append(_plan_host(_Host(target, by_target[target])))
    return plan


def _preference(nginx_files: dict[str, list]) -> None:
    """ssl_prefer_server_ciphers as nginx.tls-prefer-server-ciphers expects it once the plan has run:
    off, as Mozilla's profile has it, when the plan also sets Mozilla's cipher list on this host;
    on while the list stays as it is (a waived or unfixed nginx.tls-ciphers)."""
    mozilla_list = any(spec[1] == "nginx.tls-ciphers" for items in nginx_files.values() for _, spec in items)
    if not mozilla_list:
        return
    for items in nginx_files.values():
        for index, (claim, spec) in enumerate(items):
            if spec[1] == "nginx.tls-prefer-server-ciphers":
                items[index] = (claim, (*spec[:3], "off", *spec[4:]))


def _plan_host(h: _Host) -> HostPlan:
    out = HostPlan(h.target)
    nginx_files: dict[str, list] = defaultdict(list)
    redis: dict = {"claims": [], "path": None, "bind": None, "protected_mode": False, "password": False,
                   "rename": []}
    pg: dict = {"claims": [], "conf": None, "hba": None, "settings": {}, "rules": {}}
    sshd: dict = {"claims": [], "settings": {}}
    env: dict = {"claims": [], "set": {}, "remove": [], "mode": None}
    units: dict[str, dict] = defaultdict(lambda: {"claims": [], "settings": {}})
    for f in h.failed:
        if f.get("waiver"):
            out.waived.append(f)
            continue
        cid, path, loc = f["check_id"], _path(f), f.get("location") or {}
        observed = str(f.get("observed") or "")
        subject = f.get("subject")
        line = loc.get("line") if isinstance(loc.get("line"), int) else None
        claim = Claim.of(f, path)
        if cid in NGINX_DIRECTIVES and path:
            name, value = NGINX_DIRECTIVES[cid]
            was = None if observed.startswith(("unset", "on,")) else observed
            nginx_files[path].append((claim, ("Directive", cid, name, value, subject, line, was)))
        elif cid in NGINX_HEADERS and path and subject and (
                observed in ("missing", "no Strict-Transport-Security", "no Strict-Transport-Security on files")
                or cid != "nginx.hsts"):
            header, value = NGINX_HEADERS[cid]
            nginx_files[path].append((claim, ("Header", cid, header, value, subject, line)))
        elif cid in SSHD:
            sshd["claims"].append(claim)
            sshd["settings"].update(SSHD[cid])
        elif cid == "redis.bind" and path and h.env:
            redis.update(path=path, bind="127.0.0.1 -::1")
            redis["claims"].append(claim)
        elif cid == "redis.protected-mode" and path:
            redis.update(path=path, protected_mode=True)
            redis["claims"].append(claim)
        elif cid == "redis.auth" and path and h.env and observed == "requirepass unset":
            redis.update(path=path, password=True)
            redis["claims"].append(claim)
        elif cid == "redis.dangerous-commands" and path and observed.endswith(" available"):
            found = [c.strip().upper() for c in observed[:-len(" available")].split(",")]
            redis["rename"] = sorted(set(redis["rename"]) | {c for c in found if c in REDIS_DANGEROUS})
            redis.update(path=path)
            redis["claims"].append(claim)
        elif cid == "postgresql.password-encryption" and path:
            pg.update(conf=path)
            pg["settings"]["password_encryption"] = "scram-sha-256"
            pg["claims"].append(claim)
        elif cid == "postgresql.log-connections" and path:
            pg.update(conf=path)
            pg["settings"]["log_connections"] = "on"
            pg["claims"].append(claim)
        elif cid in ("postgresql.hba-trust", "postgresql.hba-md5", "postgresql.hba-any-address") and path and subject:
            pg.update(hba=path)
            pg["rules"].setdefault(subject, subject)
            pg["claims"].append(claim)
            pg.setdefault("why", defaultdict(set))[subject].add(cid)
        elif cid == "mastodon-env.file-permissions" and path:
            env.update(mode="600")
            env["claims"].append(claim)
            env["path"] = path
        elif cid == "env.auth-provider-reattach" and path:
            env["remove"].append("ALLOW_UNSAFE_AUTH_PROVIDER_REATTACH")
            env["claims"].append(claim)
            env["path"] = path
        elif cid == "env.trusted-proxy" and path and h.nginx:
            env["remove"].append("TRUSTED_PROXY_IP")
            env["claims"].append(claim)
            env["path"] = path
        elif cid == "env.bind-loopback" and path and h.nginx:
            env["set"]["BIND"] = "127.0.0.1"
            env["claims"].append(claim)
            env["path"] = path
        elif cid in SYSTEMD and path:
            units[path]["claims"].append(claim)
            units[path]["settings"].update(SYSTEMD[cid])
        elif cid == "host.systemd-sandboxing" and path and "missing: " in observed:
            missing = [k.strip() for k in observed.split("missing: ", 1)[1].split(",")]
            if all(k in SANDBOX_VALUES for k in missing):
                units[path]["claims"].append(claim)
                units[path]["settings"].update({k: SANDBOX_VALUES[k] for k in missing})
            else:
                out.manual.append(f)
        else:
            out.manual.append(f)
    _preference(nginx_files)
    for path, items in sorted(nginx_files.items()):
        out.steps.append(Step("nginx", "fix", {"path": path, "changes": [spec for _, spec in items]},
                              [c for c, _ in items], f"nginx {path}"))
    if redis["claims"]:
        out.steps.append(Step("redis", "fix", {
            "path": redis["path"], "env": h.env, "bind": redis["bind"], "protected_mode": redis["protected_mode"],
            "password": redis["password"], "rename": redis["rename"]}, redis["claims"], f"redis {redis['path']}"))
    if pg["claims"]:
        rules = {}
        for rule, why in pg.get("why", {}).items():
            from ..operations.conf_text import hba_rule_with

            new = rule
            if why & {"postgresql.hba-trust", "postgresql.hba-md5"}:
                new = hba_rule_with(new, method="peer" if rule.split()[0] == "local" else "scram-sha-256")
            if "postgresql.hba-any-address" in why:
                addr = rule.split()[3] if len(rule.split()) > 3 else ""
                new = hba_rule_with(new, address="::1/128" if ":" in addr else "127.0.0.1/32")
            rules[rule] = new
        out.steps.append(Step("postgresql", "fix", {
            "conf": pg["conf"], "hba": pg["hba"], "settings": pg["settings"], "rules": rules, "env": h.env},
            pg["claims"], "postgresql"))
    if sshd["claims"]:
        out.steps.append(Step("sshd", "fix", {"settings": sshd["settings"]}, sshd["claims"], "sshd"))
    if env["claims"]:
        out.steps.append(Step("mastodon_env", "fix", {
            "path": env["path"], "set_values": env["set"], "remove": sorted(set(env["remove"])), "mode": env["mode"]},
            env["claims"], f"Mastodon {env['path']}"))
    for path, unit in sorted(units.items()):
        settings = dict(unit["settings"])
        if settings.get("ProtectSystem") == "strict":
            settings["ReadWritePaths"] = (h.env.rsplit("/", 1)[0] if h.env else "/home/mastodon/live")
        out.steps.append(Step("systemd", "dropin", {"unit": path, "settings": sorted(settings.items())},
                              unit["claims"], f"systemd {path.rsplit('/', 1)[-1]}"))
    _consequences(h, out)
    return out


def _consequences(h: _Host, out: HostPlan) -> None:
    claimed = {c.fingerprint for s in out.steps for c in s.claims}
    failed_by_check: dict[str, list[dict]] = defaultdict(list)
    for f in h.failed:
        failed_by_check[f["check_id"]].append(f)
    for f in h.failed:
        if f.get("waiver") or f.get("fingerprint") in claimed:
            continue
        for live, start, config in CONSEQUENCES:
            texts = (str(f.get("subject") or ""), str(f.get("observed") or ""))
            if f["check_id"] != live or not any(t.startswith(start) for t in texts):
                continue
            needed = [g for c in config for g in failed_by_check.get(c, [])]
            if needed and all(g.get("fingerprint") in claimed for g in needed):
                out.also.append(Claim.of(f))
                break
    also = {c.fingerprint for c in out.also}
    out.manual = [f for f in out.manual if f.get("fingerprint") not in also]


_ID = re.compile(r"[^A-Za-z0-9_]")


def function_name(target: str) -> str:
    name = _ID.sub("_", target).strip("_") or "host"
    return f"host_{name}"
