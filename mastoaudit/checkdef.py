"""How a check is written: metadata in a decorator, a function of facts that yields outcomes.

    @check(
        id="nginx.server-tokens",
        title="nginx does not announce its version",
        component="nginx",
        severity="low",
        threats=["T-APP-INFO-LEAK"],
        needs=[kinds.NGINX],
        rationale="...",
        remediation=Remediation("Set server_tokens off in the http block.", "server_tokens off;"),
    )
    def server_tokens(facts: FactSet) -> Iterator[Outcome]:
        for conf in facts.all(kinds.NGINX):
            ...
            yield failed("server_tokens is on", at=conf.at(line), observed="on", expected="off")

A check never opens a file or a socket: it reads facts, so the same check audits a file in a
repository, the same file fetched over SSH, or a fixture in a test. What it `needs` (every kind
must be there, else it is skipped with the reason) and what else it `reads` are fact kinds declared
in mastoaudit/kinds.py; an unknown kind is an error when the check is defined. Which commands run it
(`modes`) follows from them. A built-in check's id starts with its component (`redis.…`); the ids
from before that rule are listed in LEGACY_IDS and keep their values (fingerprints depend on them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

from . import kinds as fact_kinds
from .kinds import FactKind
from .model import COMPONENTS, Location, Outcome, Severity, SkipReason, Status

if TYPE_CHECKING:
    from .facts import FactSet

CheckFunction = Callable[["FactSet"], Iterable[Outcome]]


# Ids given before the rule that an id starts with its component: kept as they are (fingerprints,
# waivers and baselines depend on them). Each also answers to its component-qualified name,
# `<component>.<id>` (http.hsts is nginx.http.hsts), so that `--select nginx.*` and
# `--select component:nginx` pick the same checks. No new id goes here.
LEGACY_IDS = frozenset({
    "dns.caa", "dns.dnssec", "env.active-record-encryption", "env.allowed-private-addresses",
    "env.auth-provider-reattach", "env.authorized-fetch", "env.bind-loopback", "env.duplicate-keys",
    "env.local-domain", "env.otp-secret", "env.production-mode", "env.secret-key-base", "env.secrets-distinct",
    "env.service-passwords", "env.streaming-url-tls", "env.trusted-proxy", "env.unauthenticated-api",
    "env.vapid-keys", "exposure.domain-blocks", "exposure.local-domain-webfinger", "exposure.peers-list",
    "exposure.pghero-dashboard", "exposure.public-timeline", "exposure.sidekiq-dashboard",
    "exposure.streaming-metrics", "exposure.unsigned-actor-fetch", "http.csp", "http.frame-options", "http.hsts",
    "http.media-cors", "http.media-headers", "http.nosniff", "http.observatory-grade", "http.permissions-policy",
    "http.redirect", "http.referrer-policy", "http.server-leak", "mail.dkim", "mail.dmarc", "mail.mta-sts",
    "mail.spf-all", "mail.spf-record", "mail.spf-relay", "mail.tls-rpt", "ports.elasticsearch-open",
    "ports.exposed", "ports.postgres-tls", "ports.postgres-trust", "ports.redis-noauth",
})


def qualified_id(check_id: str, component: str) -> str:
    """The id as it reads under its component: itself for every id but the legacy ones."""
    return check_id if check_id.startswith(f"{component}.") else f"{component}.{check_id}"


@dataclass(frozen=True)
class Remediation:
    text: str
    snippet: str | None = None  # a config excerpt that fixes it, where one fits


@dataclass(frozen=True)
class CheckMeta:
    id: str
    title: str
    component: str
    severity: Severity
    threats: tuple[str, ...]
    needs: tuple[str, ...]  # fact kinds that must all be there (else: skipped, with the reason)
    rationale: str
    remediation: Remediation
    references: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    # Which audits it belongs to: "static" (config files), "live" (SSH), "network" (probes); derived
    # from the sources of what it needs (kinds.modes). A command runs only the checks of its modes.
    modes: tuple[str, ...] = ("static", "live")
    reads: tuple[str, ...] = ()  # other fact kinds it looks at when they are there

    @property
    def qualified_id(self) -> str:
        return qualified_id(self.id, self.component)

    def to_dict(self) -> dict:
        """The metadata as plain data, in field order (reports, `checks list --format json`)."""
        out: dict = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "reads":
                continue
            if isinstance(value, Remediation):
                value = {"text": value.text, "snippet": value.snippet}
            out[item.name] = value.value if isinstance(value, Severity) else \
                list(value) if isinstance(value, tuple) else value
        return out


@dataclass(frozen=True)
class Check:
    meta: CheckMeta
    run: CheckFunction = field(compare=False)
    origin: str = "builtin"  # "builtin", an entry-point name, or a --checks-dir file


# Checks defined by importing modules land here; the registry collects them after each import.
_DEFINED: list[Check] = []


def _kinds(check_id: str, what: str, given: Iterable[FactKind | str]) -> list[FactKind]:
    found = []
    for kind in given:
        try:
            found.append(fact_kinds.resolve(kind))
        except fact_kinds.UnknownKind:
            raise ValueError(f"check {check_id}: {what} the unknown fact kind {str(kind)!r} "
                             "(declare it in mastoaudit/kinds.py, or with kinds.declare in a plugin)") from None
    return found


def check(
    *,
    id: str,
    title: str,
    component: str,
    severity: str,
    threats: Iterable[str],
    needs: Iterable[FactKind | str],
    rationale: str,
    remediation: Remediation,
    references: Iterable[str] = (),
    tags: Iterable[str] = (),
    reads: Iterable[FactKind | str] = (),
    modes: Iterable[str] | None = None,
) -> Callable[[CheckFunction], CheckFunction]:
    """Declare a check. Invalid metadata is a programming error and raises at import time: an unknown
    component or fact kind, no threat, an id that names another component (`nginx.x` of component
    tls), or `modes` that say otherwise than what the check needs (leave `modes` out: it is derived).
    (The built-in checks' ids all start with their component, LEGACY_IDS aside: registry.py sees to
    it; a plugin's id may start otherwise, and answers to `<component>.<id>` as well.)"""
    if component not in COMPONENTS:
        raise ValueError(f"check {id}: unknown component {component!r}")
    first = id.partition(".")[0]
    if first in COMPONENTS and first != component:
        raise ValueError(f"check {id}: the id names the component {first}, the check says {component}")
    threat_ids = tuple(threats)
    if not threat_ids:
        raise ValueError(f"check {id}: cites no threat")
    needed = _kinds(id, "needs", needs)
    read = _kinds(id, "reads", reads)
    derived = fact_kinds.modes(needed, read)
    if not derived:
        raise ValueError(f"check {id}: no source produces all of {', '.join(k.name for k in needed)} together")
    if modes is not None and set(modes) != set(derived):
        raise ValueError(f"check {id}: modes {sorted(modes)} differ from what its facts imply "
                         f"({', '.join(derived)}); leave modes out")
    meta = CheckMeta(
        id=id,
        title=title,
        component=component,
        severity=Severity.parse(severity),
        threats=threat_ids,
        needs=tuple(k.name for k in needed),
        rationale=" ".join(rationale.split()),
        remediation=remediation,
        references=tuple(references),
        tags=tuple(tags),
        modes=derived,
        reads=tuple(k.name for k in read),
    )

    def register(fn: CheckFunction) -> CheckFunction:
        _DEFINED.append(Check(meta=meta, run=fn))
        return fn

    return register


def take_defined() -> list[Check]:
    """Hand over the checks defined since the last call (used by the registry)."""
    taken = list(_DEFINED)
    _DEFINED.clear()
    return taken


# --- outcome helpers: a check reads like its verdicts -------------------------------------------


def _outcome(status: Status, message: str, at: Location | None, **kw: object) -> Outcome:
    sev = kw.pop("severity", None)
    return Outcome(
        status=status,
        message=message,
        location=at,
        severity=Severity.parse(sev) if isinstance(sev, str) else sev,  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def passed(message: str, at: Location | None = None, **kw: object) -> Outcome:
    return _outcome(Status.PASS, message, at, **kw)


def failed(message: str, at: Location | None = None, **kw: object) -> Outcome:
    return _outcome(Status.FAIL, message, at, **kw)


def warned(message: str, at: Location | None = None, **kw: object) -> Outcome:
    return _outcome(Status.WARN, message, at, **kw)


def skipped(reason: str, at: Location | None = None, because: SkipReason | None = None, **kw: object) -> Outcome:
    """A subject not judged, and why: `because` (else the reason its words give, SkipReason.infer)."""
    return _outcome(Status.SKIP, reason, at, reason=because or SkipReason.infer(reason), **kw)


def errored(reason: str, at: Location | None = None, **kw: object) -> Outcome:
    return _outcome(Status.ERROR, reason, at, **kw)
