"""The installed Mastodon release against the bundled advisory list (data/advisories.yaml)."""

from __future__ import annotations

from collections.abc import Iterator

from mastoaudit import kinds
from mastoaudit.advisories import affecting, supported_lines, version_tuple
from mastoaudit.checkdef import Remediation, check, failed, passed, skipped
from mastoaudit.facts import FactSet
from mastoaudit.model import Outcome, Severity

_SEVERITY_ORDER = [s.value for s in Severity]


@check(
    id="app.mastodon-version",
    title="The installed Mastodon release has no known vulnerabilities and is supported",
    component="app",
    severity="high",
    threats=["T-APP-VULNERABLE-VERSION", "T-FED-PROTOCOL-EXPLOIT", "T-FED-FORGED-ACTIVITY"],
    needs=[],  # any of: the release from version.rb (live), /api/v2/instance (network), an image tag (compose)
    reads=[kinds.MASTODON_VERSION, kinds.COMPOSE],
    rationale="""Mastodon's advisories (TootRoot, origin validation, signature bypasses, SSRF) are
        public and exploited; every release line gets fixes only while it is supported.""",
    remediation=Remediation("Upgrade to the latest patch release of a supported line.",
                            "git fetch --tags && git checkout v4.5.11  # then bundle, yarn, migrate, restart"),
    references=["https://github.com/mastodon/mastodon/security/advisories",
                "https://github.com/mastodon/mastodon/releases"],
    tags=["live", "network", "advisories"],
)
def mastodon_version(facts: FactSet) -> Iterator[Outcome]:
    found_versions = [(f.version, f.location) for f in facts.all("mastodon_version")]
    for compose in facts.all("compose"):
        found_versions += [(version, where) for _service, version, where in compose.mastodon_versions()]
    if not found_versions and not facts.has("mastodon_version"):
        yield skipped("no Mastodon release found (version.rb, the instance API or a pinned image tag)")
    for version, where in found_versions:
        advisories = affecting("mastodon", version)
        if advisories is None:
            yield failed(f"the version {version!r} cannot be read", at=where, observed=version,
                         expected="a release number", severity="info")
            continue
        if advisories:
            worst = max((a.severity for a in advisories), key=_SEVERITY_ORDER.index)
            ids = ", ".join(a.id for a in advisories)
            upgrade = max((a.fixed_in for a in advisories if a.fixed_in), key=lambda v: version_tuple(v) or ())
            yield failed(f"Mastodon {version} is affected by {len(advisories)} known advisories: {ids}", at=where,
                         subject="advisories", observed=version, expected=f">= {upgrade}", severity=worst)
        else:
            yield passed(f"no known advisory affects Mastodon {version}", at=where, subject="advisories",
                         observed=version, expected="no advisories")
        lines = supported_lines("mastodon")
        have = version_tuple(version) or ()
        line = ".".join(map(str, have[:2]))
        newest = max((version_tuple(v) or () for v in lines), default=())
        if line in lines or have[:2] > newest:
            yield passed(f"the {line} line is supported", at=where, subject="support", observed=line,
                         expected=" or ".join(lines))
        else:
            yield failed(f"the {line} line no longer receives security fixes", at=where, subject="support",
                         observed=line, expected=" or ".join(lines), severity="high")
