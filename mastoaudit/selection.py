"""Choosing which checks run: by id (glob), component, severity or tag.

An id or glob matches a check's id or its component-qualified name (`checkdef.qualified_id`): every
id starts with its component except the legacy ones, which answer to `<component>.<id>` too. So
`nginx.*` selects exactly what `component:nginx` selects, and `http.*` still selects the http.* ids.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from .checkdef import CheckMeta
from .model import COMPONENTS, Severity

SELECTOR_HELP = "ID or glob (nginx.*), component:NAME, severity:LEVEL (that level or higher), tag:NAME"


@dataclass(frozen=True)
class Selector:
    field: str  # id, component, severity, tag
    value: str

    @classmethod
    def parse(cls, text: str) -> Selector:
        name, sep, value = text.partition(":")
        if not sep:
            return cls("id", text)
        if name not in ("component", "severity", "tag", "id"):
            raise ValueError(f"unknown selector {text!r}: use {SELECTOR_HELP}")
        if name == "component" and value not in COMPONENTS:
            raise ValueError(f"unknown component {value!r} (one of: {', '.join(COMPONENTS)})")
        if name == "severity":
            Severity.parse(value)
        return cls(name, value)

    def matches(self, meta: CheckMeta) -> bool:
        if self.field == "id":
            return fnmatch.fnmatchcase(meta.id, self.value) or fnmatch.fnmatchcase(meta.qualified_id, self.value)
        if self.field == "component":
            return meta.component == self.value
        if self.field == "severity":
            return meta.severity.rank >= Severity.parse(self.value).rank
        return self.value in meta.tags


@dataclass(frozen=True)
class Selection:
    include: tuple[Selector, ...] = field(default_factory=tuple)
    exclude: tuple[Selector, ...] = field(default_factory=tuple)

    @classmethod
    def parse(cls, include: list[str] | None, exclude: list[str] | None) -> Selection:
        return cls(tuple(Selector.parse(t) for t in include or []), tuple(Selector.parse(t) for t in exclude or []))

    def wants(self, meta: CheckMeta) -> bool:
        if self.include and not any(s.matches(meta) for s in self.include):
            return False
        return not any(s.matches(meta) for s in self.exclude)
