"""Facts: what collectors learned about one target, keyed by kind.

A kind names what a fact holds ("nginx", "mastodon_env", "redis_live", ...). Collectors add facts;
checks read them. Problems met while collecting (an unreadable file, a malformed config) are kept
beside the facts so the run can report them without losing the rest.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from ..model import Location, Status


@dataclass(frozen=True)
class InputProblem:
    kind: str
    message: str
    location: Location | None = None
    status: Status = Status.ERROR  # ERROR: something could not be audited; WARN: audited partly


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

    def add(self, kind: str, fact: Any) -> None:
        self._facts[kind].append(fact)
        for value in getattr(fact, "secret_values", lambda: ())():
            self.secrets.add(value)

    def all(self, kind: str) -> list[Any]:
        return list(self._facts.get(kind, ()))

    def first(self, kind: str) -> Any | None:
        found = self._facts.get(kind)
        return found[0] if found else None

    def has(self, kind: str) -> bool:
        return bool(self._facts.get(kind))

    def kinds(self) -> list[str]:
        return [k for k, v in self._facts.items() if v]

    def public_addresses(self) -> set[str]:
        """Addresses this target is reached at from outside (a live host's inventory address):
        a socket bound there is exposed even when the address is in 127.0.0.0/8 (labs, tests)."""
        info = self.first("host_info")
        return {info["address"]} if isinstance(info, dict) and info.get("address") else set()

    def public_names(self) -> set[str]:
        """Names the report shows anyway (host, domains): never treated as secret values."""
        names = set(self.public_addresses())
        info = self.first("host_info")
        if isinstance(info, dict):
            names.update(str(info.get(k)) for k in ("name", "local_domain", "web_domain") if info.get(k))
        names.add(self.target)
        for env in self.all("mastodon_env"):
            for key in ("LOCAL_DOMAIN", "WEB_DOMAIN"):
                var = env.get(key) if hasattr(env, "get") else None
                if var is not None and getattr(var, "value", None):
                    names.add(var.value)
        return names

    def problem(
        self, kind: str, message: str, location: Location | None = None, status: Status = Status.ERROR
    ) -> None:
        self.problems.append(InputProblem(kind, message, location, status))
