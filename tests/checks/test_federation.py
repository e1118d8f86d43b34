"""The federation posture checks that judge the database beside .env.production: the database is the
federation command's own source, .env.production is read beside it when the user names one, and
without it these checks say so, as the engine says it of a missing kind."""

from __future__ import annotations

from mastoaudit import kinds
from mastoaudit.facts import FactSet
from mastoaudit.federation.queries import DatabaseFacts
from mastoaudit.model import Status
from mastoaudit.parsers.base import SourceFile
from mastoaudit.parsers.env import parse_mastodon_env
from mastoaudit.registry import default_registry

from ..conftest import check_fn

BOTH = ("federation.limited-federation-allowlist", "federation.blocks-enforced")


def _facts(env: str | None) -> FactSet:
    facts = FactSet(target="db")
    facts.add(kinds.MASTODON_DB, DatabaseFacts("postgresql://mastodon@db/mastodon_production", allows=0, blocks=[]))
    if env is not None:
        facts.add(kinds.MASTODON_ENV, parse_mastodon_env(SourceFile(".env.production", env.encode())))
    return facts


def test_without_an_env_file_they_are_not_applicable():
    for check_id in BOTH:
        [found] = check_fn(check_id)(_facts(None))
        assert (found.status, found.message) == (Status.SKIP, "not applicable: no mastodon_env found for this target")


def test_with_one_they_judge_it():
    [found] = check_fn("federation.limited-federation-allowlist")(_facts("LIMITED_FEDERATION_MODE=true\n"))
    assert found.status is Status.FAIL and found.observed == "0"


def test_they_run_in_the_federation_command_only():
    registry = default_registry(plugins=False)
    for check_id in BOTH:
        meta = registry.get(check_id).meta
        assert meta.modes == ("federation",) and meta.needs == ("mastodon_db",) and "mastodon_env" in meta.reads
