"""The one password rule (mastoaudit/passwords.py): how strong a secret is, and the same verdict for the
same password wherever it is found (.env.production or redis.conf)."""

from __future__ import annotations

import pytest

from mastoaudit import kinds
from mastoaudit.facts import FactSet
from mastoaudit.parsers.base import SourceFile
from mastoaudit.parsers.env import parse_mastodon_env
from mastoaudit.parsers.redis import parse_redis_conf
from mastoaudit.passwords import judge_password, sample_reason, strength

from .conftest import check_fn


def test_strength_classes():
    assert strength("d25c57bad26e7b9a63b6c0e8387128ae" * 4).level == "high"
    assert strength("Rohtv7BXTtU2v7gB2UCN129dHsaPVdla").level == "high"
    assert strength("a" * 128).level == "low"
    assert strength("abcdefghijklmnop").level == "low"
    assert strength("0123456789abcdef" * 8).level == "low"  # a 16-character sequence, repeated
    described = strength("Tr0ub4dor").describe()
    assert "length 9" in described and "Tr0ub4dor" not in described


@pytest.mark.parametrize("value, sample", [
    ("changeme", True), ("password", True), ("precompile_placeholder", True), ("foobared", True),
    ("test_primary_key_DO_NOT_USE_IN_PRODUCTION", True), ("<generate with rails secret>", True),
    ("your_vapid_private_key", True),
    ("100c7faeef00caa29242f6b04156742bf76065771fd4117990c4282b8748ff3d99f8fdae97c982ab5bd2e6756a159121377cce4421f4a8"
     "ecd2d67bd7749a3fb4", True),
    ("Rohtv7BXTtU2v7gB2UCN129dHsaPVdla", False), ("62e899c7135d57e323eef042a473848bb442b20fea4395ca", False),
])
def test_sample_values(value, sample):
    assert (sample_reason(value) is not None) is sample


@pytest.mark.parametrize(("password", "problem"), [
    ("foobared", "sample"), ("mastodon", "sample"), ("hunter2", "short"), ("Rohtv7BXTtU", "short"),
    ("abababababababab", "guessable"), ("aaaaaaaaaaaaaaaaaaaaaaaa", "guessable"),
    ("5f0c2d9e8a7b6c5d4e3f2a1b0c9d8e7f", None), ("Rohtv7BXTtU2v7gB", None),
])
def test_judge_password(password, problem):
    verdict = judge_password(password)
    assert verdict.problem == problem
    assert password not in verdict.observed and password not in verdict.why


@pytest.mark.parametrize("password", ["foobared", "hunter2", "abababababababab", "hunter2hunter",
                                      "5f0c2d9e8a7b6c5d4e3f2a1b0c9d8e7f"])
def test_redis_conf_and_env_production_agree_on_a_password(password):
    """The password Mastodon sends (REDIS_PASSWORD) and the one Redis asks for (requirepass) are the
    same secret: both checks judge it by the one rule."""
    env = FactSet("t")
    env.add(kinds.MASTODON_ENV, parse_mastodon_env(SourceFile(".env", f"REDIS_PASSWORD={password}\n".encode())))
    conf = FactSet("t")
    text = f"bind 127.0.0.1\nrequirepass {password}\n"
    conf.add(kinds.REDIS_CONF, parse_redis_conf(SourceFile("redis.conf", text.encode())))
    [from_env] = [o for o in check_fn("env.service-passwords")(env) if o.subject == "REDIS_PASSWORD"]
    [from_conf] = list(check_fn("redis.auth")(conf))
    assert from_env.status == from_conf.status, (from_env, from_conf)
    if not judge_password(password).ok:
        assert from_env.observed == from_conf.observed


@pytest.mark.parametrize(("value", "pattern"), [
    (bytes(range(64)).hex(), "a counter in hex"),  # 128 hex characters, a counter: not `rails secret`
    (bytes(range(200, 232)).hex(), "a counter in hex"),
    ("abcdefghijklmnopqrstuvwxyzABCDEF", "a sequence"),  # 32 characters, the alphabet
    ("13579bdfhjlnprtvxz", "a sequence"),  # steps of two
    ("qwertyuiopasdfghjkl1234567", "a keyboard walk"),
    ("Sommer24!Sommer24!Sommer24!", "repeats"),
    ("Xk9#mQ2!Xk9#mQ2!Xk9#mQ2!Xk", "repeats"),  # not periodic, still all but eight a repetition
])
def test_long_but_patterned_secrets_are_guessable(value, pattern):
    found = strength(value)
    assert found.level == "low" and found.pattern == pattern, found.describe()
    assert judge_password(value).problem == "guessable"
    assert value not in found.describe()


def test_generated_secrets_stay_strong():
    """What `rails secret`, `openssl rand` and password managers make is never taken for a pattern."""
    import random
    import string

    rng = random.Random(10)
    for _ in range(300):
        hexed = "".join(rng.choice("0123456789abcdef") for _ in range(128))
        alnum = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(32))
        assert strength(hexed).level == "high" and strength(alnum).level == "high"
        assert judge_password(alnum[:16]).ok


def test_a_huge_value_is_judged_in_bounded_time():
    value = "".join(chr(33 + (i * 7919) % 90) for i in range(200_000))
    assert strength(value).length == 200_000  # returns: the quadratic part is bounded
