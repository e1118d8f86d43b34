"""Which known advisories affect a given version of Mastodon or of a peer's software.

The advisories are the OSV records of `mastoaudit.federation.osv` (data/advisories.osv.json, plus
the user's files for the federation commands): one database for `app.mastodon-version` and the
federation checks. This module keeps the small interface the app check reads.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from .federation.osv import AdvisoryDB, default_database
from .federation.versions import parse

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


@cache
def _releases() -> dict:
    return json.loads(resources.files("mastoaudit.data").joinpath("releases.json").read_text(encoding="utf-8"))


def known_software(db: AdvisoryDB | None = None) -> list[str]:
    db = db or default_database()
    return sorted({s for a in db.advisories for s in a.software()})


def supported_lines(software: str) -> list[str]:
    return list(_releases().get(software.lower(), {}).get("supported_lines", []))


def affecting(software: str, version: str, db: AdvisoryDB | None = None) -> list[Advisory] | None:
    """Advisories that affect `version`; None when the version cannot be read."""
    if parse(version, software) is None:
        return None
    found = (db or default_database()).matches(software, version) or []
    return [Advisory(m.advisory.id, m.advisory.summary, m.advisory.severity, m.fixed_in) for m in found]
