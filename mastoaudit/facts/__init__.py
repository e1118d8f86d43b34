"""Facts: what collectors learned about one target, by kind (mastoaudit/kinds.py declares every kind).

Collectors add facts; checks read them, typed: `facts.all(kinds.REDIS_CONF)` is a list of RedisConf.
Problems met while collecting (an unreadable file, a malformed config) are kept beside the facts so
the run can report them without losing the rest. The fact types of what the network shows live in
this package's modules (tls, http, mastodon, ports, s3, smtp, mail), apart from the probes that
gather them, so that checks never import a probe; the types of config files and live command
output live beside their parsers (mastoaudit/parsers/).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, overload

from ..model import Location, SkipReason, Status

if TYPE_CHECKING:
    from ..kinds import FactKind

T = TypeVar("T")


@dataclass(frozen=True)
class InputProblem:
    kind: str
    message: str
    location: Location | None = None
    status: Status = Status.ERROR  # ERROR: something could not be audited; WARN: audited partly; SKIP: not judged
    reason: SkipReason | None = None  # why, for a SKIP (a template, a file nothing reads)


@dataclass(frozen=True)
class HostInfo:
    """The target as the inventory (or the scan) names it."""

    name: str
    address: str
    roles: tuple[str, ...] = ()
    local_domain: str = ""
    web_domain: str = ""


def _name(kind: FactKind[Any] | str) -> str:
    return kind if isinstance(kind, str) else kind.name


@dataclass
class FactSet:
    target: str
    _facts: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    problems: list[InputProblem] = field(default_factory=list)
    # Secret values seen while collecting; the engine scrubs them from every finding.
    secrets: set[str] = field(default_factory=set)
    # False when the target could not be collected at all (an unreachable host): its checks are not
    # run, so the report shows the one error instead of a skip per check.
    reachable: bool = True

    def add(self, kind: FactKind[T] | str, fact: T) -> None:
        """Add a fact of a declared kind; a fact of the wrong type is a collector's bug (TypeError)."""
        from ..kinds import resolve

        declared = resolve(kind)
        if not isinstance(fact, declared.type):
            raise TypeError(f"a {type(fact).__name__} is not a {declared.name} fact ({declared.type.__name__})")
        self._facts[declared.name].append(fact)
        for value in getattr(fact, "secret_values", lambda: ())():
            self.secrets.add(value)

    @overload
    def all(self, kind: FactKind[T]) -> list[T]: ...
    @overload
    def all(self, kind: str) -> list[Any]: ...
    def all(self, kind: FactKind[Any] | str) -> list[Any]:
        return list(self._facts.get(_name(kind), ()))

    @overload
    def first(self, kind: FactKind[T]) -> T | None: ...
    @overload
    def first(self, kind: str) -> Any | None: ...
    def first(self, kind: FactKind[Any] | str) -> Any | None:
        found = self._facts.get(_name(kind))
        return found[0] if found else None

    def discard(self, kind: FactKind[Any] | str, which: Callable[[Any], bool]) -> bool:
        """Drop the facts of `kind` that `which` picks, and the problems met reading them (a file that
        turned out not to be of that kind); whether any was dropped."""
        name = _name(kind)
        found = [f for f in self._facts.get(name, ()) if which(f)]
        if not found:
            return False
        self._facts[name] = [f for f in self._facts[name] if not which(f)]
        paths = {getattr(f, "path", None) for f in found}
        self.problems = [p for p in self.problems
                         if not (p.kind == name and p.location is not None and p.location.file in paths)]
        return True

    def has(self, kind: FactKind[Any] | str) -> bool:
        return bool(self._facts.get(_name(kind)))

    def kinds(self) -> list[str]:
        return [k for k, v in self._facts.items() if v]

    @property
    def host(self) -> HostInfo | None:
        """The audited host (or the scanned site), when the collector said."""
        return self.first("host_info")

    def public_addresses(self) -> set[str]:
        """Addresses this target is reached at from outside (a live host's inventory address):
        a socket bound there is exposed even when the address is in 127.0.0.0/8 (labs, tests)."""
        info = self.host
        return {info.address} if info is not None and info.address else set()

    def public_names(self) -> set[str]:
        """Names the report shows anyway (host, domains): never treated as secret values."""
        names = set(self.public_addresses())
        info = self.host
        if info is not None:
            names.update(v for v in (info.name, info.local_domain, info.web_domain) if v)
        names.add(self.target)
        for env in self.all("mastodon_env"):
            for key in ("LOCAL_DOMAIN", "WEB_DOMAIN"):
                var = env.get(key)
                if var is not None and var.value:
                    names.add(var.value)
        return names

    def problem(
        self, kind: str, message: str, location: Location | None = None, status: Status = Status.ERROR,
        reason: SkipReason | None = None,
    ) -> None:
        if status is Status.SKIP and reason is None:
            reason = SkipReason.infer(message)
        self.problems.append(InputProblem(kind, message, location, status, reason))
