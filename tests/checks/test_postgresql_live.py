"""The PostgreSQL checks that judge the server as it runs, on facts parsed from outputs recorded on the
lab's database (tests/fixtures/live/). tests/lab/test_live_audit.py runs them against the lab itself."""

from __future__ import annotations

from mastoaudit import kinds
from mastoaudit.facts import FactSet
from mastoaudit.model import Status
from mastoaudit.parsers.live import PasswordHashes, parse_password_hashes
from mastoaudit.registry import default_registry

from ..conftest import FIXTURES, check_fn

LIVE = FIXTURES / "live"


def _hashes(methods_or_profile: dict | str) -> list:
    facts = FactSet(target="db1")
    if isinstance(methods_or_profile, str):
        text = (LIVE / f"postgres-password-hashes-{methods_or_profile}.txt").read_text()
        facts.add(kinds.POSTGRES_PASSWORD_HASHES, parse_password_hashes("db1", text))
    else:
        facts.add(kinds.POSTGRES_PASSWORD_HASHES, PasswordHashes("db1", methods_or_profile))
    return list(check_fn("postgresql.password-hashes")(facts))


def test_an_md5_password_fails_with_the_role_named():
    [found] = _hashes("weak")  # postgres has no password: peer login, judged by postgresql.roles
    assert (found.status, found.subject, found.observed) == (Status.FAIL, "mastodon", "md5")
    assert str(found.location) == "db1:pg_authid"


def test_scram_passes():
    [found] = _hashes("hardened")
    assert (found.status, found.subject, found.observed) == (Status.PASS, "mastodon", "scram-sha-256")


def test_every_login_role_is_judged_and_an_unknown_form_warns():
    found = {o.subject: o.status for o in _hashes({"b": "md5", "a": "scram-sha-256", "c": "other", "d": "none"})}
    assert found == {"a": Status.PASS, "b": Status.FAIL, "c": Status.WARN}


def test_the_check_runs_in_audit_only():
    meta = default_registry(plugins=False).get("postgresql.password-hashes").meta
    assert meta.modes == ("live",) and meta.needs == ("postgres_password_hashes",)
