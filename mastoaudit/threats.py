"""The threat catalogue (data/threats.yaml) and the coverage view built from it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

from . import yamlsafe

if TYPE_CHECKING:
    from .checkdef import CheckMeta
    from .model import Finding


@dataclass(frozen=True)
class Threat:
    id: str
    title: str
    source: str
    components: tuple[str, ...]
    description: str
    people: tuple[str, ...]  # mitigations no automated check can verify


@dataclass(frozen=True)
class ThreatCatalogue:
    version: int
    threats: dict[str, Threat]
    components: dict[str, str]

    @classmethod
    def load(cls) -> ThreatCatalogue:
        text = resources.files("mastoaudit.data").joinpath("threats.yaml").read_text(encoding="utf-8")
        raw = yamlsafe.load(text)
        threats = {}
        for item in raw["threats"]:
            threats[item["id"]] = Threat(
                id=item["id"],
                title=item["title"],
                source=item["source"],
                components=tuple(item.get("components", ())),
                description=" ".join(item.get("description", "").split()),
                people=tuple(item.get("people") or ()),
            )
        return cls(version=raw["version"], threats=threats, components=dict(raw["components"]))

    def coverage(self, checks: Iterable[CheckMeta], findings: Iterable[Finding] = ()) -> list[dict]:
        """Per threat: the checks that verify it, how they ended in this run, what is left to people."""
        by_threat: dict[str, list[str]] = {tid: [] for tid in self.threats}
        for meta in checks:
            for tid in meta.threats:
                by_threat.setdefault(tid, []).append(meta.id)
        statuses: dict[str, dict[str, int]] = {}
        for f in findings:
            for tid in f.threats:
                counts = statuses.setdefault(tid, {})
                counts[f.status.value] = counts.get(f.status.value, 0) + 1
        rows = []
        for tid, threat in self.threats.items():
            rows.append({
                "id": tid,
                "title": threat.title,
                "source": threat.source,
                "components": list(threat.components),
                "description": threat.description,
                "checks": sorted(by_threat.get(tid, [])),
                "results": statuses.get(tid, {}),
                "people": list(threat.people),
            })
        return rows
