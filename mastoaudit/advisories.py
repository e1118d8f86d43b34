"""Which known advisories affect a given version of Mastodon or of a peer's software."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from . import yamlsafe

_NUMERIC = re.compile(r"^v?(\d+(?:\.\d+)*)")


@dataclass(frozen=True)
class Advisory:
    id: str
    title: str
    severity: str
    fixed_in: str | None  # the fixed release to upgrade to, for the version's line


def version_tuple(text: str) -> tuple[int, ...] | None:
    """'4.5.0-nightly.2025-07-11' -> (4, 5, 0); None when there is no leading number."""
    match = _NUMERIC.match(text.strip())
    return tuple(int(p) for p in match.group(1).split(".")) if match else None


def _is_prerelease(text: str) -> bool:
    return "-" in text.strip().lstrip("v")


@cache
def _catalogue() -> dict:
    text = resources.files("mastoaudit.data").joinpath("advisories.yaml").read_text(encoding="utf-8")
    return yamlsafe.load(text)["software"]


def known_software() -> list[str]:
    return sorted(_catalogue())


def supported_lines(software: str) -> list[str]:
    return list(_catalogue().get(software, {}).get("supported_lines", []))


def affecting(software: str, version: str) -> list[Advisory] | None:
    """Advisories that affect `version`; None when the version cannot be read."""
    entry = _catalogue().get(software.lower())
    have = version_tuple(version)
    if entry is None or have is None:
        return None if have is None else []
    found = []
    for adv in entry["advisories"]:
        fixes = sorted((version_tuple(f) for f in adv["fixed"]), key=lambda v: v or ())
        fixes = [f for f in fixes if f]
        if adv.get("all_lines"):
            target = fixes[-1]
            # A prerelease of the fixed version (x.y.z-rc1) is not yet the fix.
            if have < target or (have == target and _is_prerelease(version)):
                found.append(Advisory(adv["id"], adv["title"], adv["severity"], ".".join(map(str, target))))
            continue
        line = have[:2]
        same_line = [f for f in fixes if f[:2] == line]
        supported = {version_tuple(v) for v in entry.get("supported_lines", [])}
        if same_line:
            target = same_line[0]
            if have < target or (have == target and _is_prerelease(version)):
                found.append(Advisory(adv["id"], adv["title"], adv["severity"], ".".join(map(str, target))))
        elif line in supported or line > fixes[-1][:2]:
            continue  # supported lines get every backport; newer lines came after the fix
        elif len(fixes) > 1 and line < fixes[-1][:2]:
            # An unsupported line inside or below a long-standing bug's range: no fix will come.
            later = [f for f in fixes if f[:2] > line]
            found.append(Advisory(adv["id"], adv["title"], adv["severity"], ".".join(map(str, later[0]))))
    return found
