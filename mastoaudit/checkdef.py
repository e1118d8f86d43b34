"""How a check is written: metadata in a decorator, a function of facts that yields outcomes.

    @check(
        id="nginx.server-tokens",
        title="nginx does not announce its version",
        component="nginx",
        severity="low",
        threats=["T-APP-INFO-LEAK"],
        needs=["nginx"],
        rationale="...",
        remediation=Remediation("Set server_tokens off in the http block.", "server_tokens off;"),
    )
    def server_tokens(facts: FactSet) -> Iterator[Outcome]:
        for conf in facts.all("nginx"):
            ...
            yield failed("server_tokens is on", at=conf.location(line), observed="on", expected="off")

A check never opens a file or a socket: it reads facts, so the same check audits a file in a
repository, the same file fetched over SSH, or a fixture in a test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .model import COMPONENTS, Location, Outcome, Severity, Status

if TYPE_CHECKING:
    from .facts import FactSet

CheckFunction = Callable[["FactSet"], Iterable[Outcome]]


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
    needs: tuple[str, ...]
    rationale: str
    remediation: Remediation
    references: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    # Which audits it belongs to: "static" (config files), "live" (SSH), "network" (probes),
    # "federation" (the federation commands: Mastodon's database and the peers).
    # A check whose facts are absent is skipped anyway; this only decides what `checks list` shows.
    modes: tuple[str, ...] = ("static", "live")

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "title": self.title,
            "component": self.component,
            "severity": self.severity.value,
            "threats": list(self.threats),
            "needs": list(self.needs),
            "rationale": self.rationale,
            "remediation": {"text": self.remediation.text, "snippet": self.remediation.snippet},
            "references": list(self.references),
            "tags": list(self.tags),
            "modes": list(self.modes),
        }


@dataclass(frozen=True)
class Check:
    meta: CheckMeta
    run: CheckFunction = field(compare=False)
    origin: str = "builtin"  # "builtin", an entry-point name, or a --checks-dir file


# Checks defined by importing modules land here; the registry collects them after each import.
_DEFINED: list[Check] = []


def check(
    *,
    id: str,
    title: str,
    component: str,
    severity: str,
    threats: Iterable[str],
    needs: Iterable[str],
    rationale: str,
    remediation: Remediation,
    references: Iterable[str] = (),
    tags: Iterable[str] = (),
    modes: Iterable[str] = ("static", "live"),
) -> Callable[[CheckFunction], CheckFunction]:
    """Declare a check. Invalid metadata is a programming error and raises at import time."""
    if component not in COMPONENTS:
        raise ValueError(f"check {id}: unknown component {component!r}")
    bad_modes = set(modes) - {"static", "live", "network", "federation"}
    if bad_modes:
        raise ValueError(f"check {id}: unknown modes {sorted(bad_modes)}")
    threat_ids = tuple(threats)
    if not threat_ids:
        raise ValueError(f"check {id}: cites no threat")
    meta = CheckMeta(
        id=id,
        title=title,
        component=component,
        severity=Severity.parse(severity),
        threats=threat_ids,
        needs=tuple(needs),
        rationale=" ".join(rationale.split()),
        remediation=remediation,
        references=tuple(references),
        tags=tuple(tags),
        modes=tuple(modes),
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


def skipped(reason: str, at: Location | None = None, **kw: object) -> Outcome:
    return _outcome(Status.SKIP, reason, at, **kw)


def errored(reason: str, at: Location | None = None, **kw: object) -> Outcome:
    return _outcome(Status.ERROR, reason, at, **kw)
