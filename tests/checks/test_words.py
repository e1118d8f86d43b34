"""Words that are true for what is in front of them: an unset flag is Mastodon's documented default,
not "unknown"; a pass beside failures on the same endpoint says what it covers."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mastoaudit.facts import FactSet
from mastoaudit.facts.mastodon import Endpoint, MastodonExposure
from mastoaudit.model import Status

from ..conftest import check_fn
from ..probes.test_tls import endpoint


def _timeline(expects: dict, unset: frozenset[str]) -> FactSet:
    facts = FactSet("mastodon.example")
    exposure = MastodonExposure("mastodon.example", "mastodon.example", expects, unset=unset)
    exposure.endpoints = [Endpoint("timeline", "https://mastodon.example", "https://mastodon.example/api/v1/timelines/"
                                   "public", status=200, recognised=True, count=20)]
    facts.add("mastodon_exposure", exposure)
    return facts


@pytest.mark.parametrize(("expects", "unset", "status", "severity", "words"), [
    ({"DISALLOW_UNAUTHENTICATED_API_ACCESS": False}, frozenset({"DISALLOW_UNAUTHENTICATED_API_ACCESS"}),
     Status.WARN, "low", "is unset in .env.production, and Mastodon's default (false) allows it"),
    ({"DISALLOW_UNAUTHENTICATED_API_ACCESS": False}, frozenset(), Status.WARN, "low", "as configured"),
    ({"DISALLOW_UNAUTHENTICATED_API_ACCESS": True}, frozenset(), Status.FAIL, "medium", "although"),
    ({}, frozenset(), Status.WARN, "info", "not known to this scan"),  # a scan without .env.production
])
def test_an_unset_flag_is_mastodons_default_not_unknown(expects, unset, status, severity, words):
    [f] = check_fn("exposure.public-timeline")(_timeline(expects, unset))
    assert f.status is status and f.severity.value == severity and words in f.message


def test_the_env_check_says_the_default_too():
    from mastoaudit.parsers.base import SourceFile
    from mastoaudit.parsers.env import parse_mastodon_env

    facts = FactSet("t")
    facts.add("mastodon_env", parse_mastodon_env(SourceFile(".env.production", b"LOCAL_DOMAIN=a.example\n")))
    [f] = check_fn("env.unauthenticated-api")(facts)
    assert "unset, and Mastodon's default (false) allows it" in f.message and f.observed == "unset (false)"


def test_a_profile_pass_beside_cipher_failures_says_what_it_covers():
    e = endpoint(mozilla_deviations={"ciphers": "suites outside the profile", "tls_versions": "TLSv1"})
    facts = FactSet("mastodon.example")
    facts.add("tls_endpoint", e)
    [f] = check_fn("tls.mozilla-profile")(facts)
    assert f.status is Status.PASS and "in what this check covers" in f.message
    assert "deviations judged by tls.ciphers, tls.protocols are not counted here" in f.message
    clean = FactSet("mastodon.example")
    clean.add("tls_endpoint", replace(e, mozilla_deviations={}))
    [f] = check_fn("tls.mozilla-profile")(clean)
    assert "not counted here" not in f.message
