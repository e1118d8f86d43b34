"""How strong a secret is: the one rule for every password and generated key mastoaudit judges, in
.env.production, redis.conf or anywhere else, so that the same password gets the same verdict
wherever it is found. Evidence says how strong a secret is (its length, alphabet and entropy
class), never what it is.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass

# Values published in Mastodon's own repository or documentation, or that every guide uses.
PUBLISHED_SECRETS = frozenset({
    # config/environments/test.rb and the two-factor migration: the OTP secret of the test suite
    "100c7faeef00caa29242f6b04156742bf76065771fd4117990c4282b8748ff3d99f8fdae97c982ab5bd2e6756a159121377cce4421f4a8ecd2d67bd7749a3fb4",
})


COMMON_PLACEHOLDERS = frozenset({
    "changeme", "change_me", "change-me", "changethis", "password", "passw0rd", "p@ssw0rd", "secret", "mastodon",
    "example", "test", "testing", "admin", "root", "postgres", "redis", "elastic", "default", "placeholder",
    "precompile_placeholder", "123456", "12345678", "123456789", "qwerty", "letmein", "xxx", "xxxx", "todo",
    "fixme", "replaceme", "replace_me", "dummy", "foobar", "foobared", "none", "null",
})


_PLACEHOLDER_SHAPES = re.compile(
    r"^<[^>]*>$|^\[[^\]]*\]$|^x{3,}$|do_not_use_in_production|^your[_-]|changeme|change_me|replace[_-]?(me|with)"
    r"|^generate|^insert[_-]|^todo[_-]|^example[_-]|^sample[_-]|placeholder", re.I)


def sample_reason(value: str) -> str | None:
    """Why `value` is a known sample or placeholder, or None. Never echoes the value."""
    lowered = value.strip().lower()
    if value in PUBLISHED_SECRETS:
        return "a value published in Mastodon's source code"
    if "do_not_use_in_production" in lowered:
        return "a test value from Mastodon's repository"
    if lowered in COMMON_PLACEHOLDERS:
        return "a well-known placeholder"
    if _PLACEHOLDER_SHAPES.search(lowered):
        return "a placeholder left from a template or guide"
    return None


@dataclass(frozen=True)
class Strength:
    length: int
    alphabet: str
    bits: int

    @property
    def level(self) -> str:
        return "high" if self.bits >= 120 else "medium" if self.bits >= 60 else "low"

    def describe(self) -> str:
        """Evidence that says how strong a secret is without saying what it is."""
        return f"length {self.length}, {self.alphabet}, {self.level} entropy (~{self.bits} bits)"


def strength(value: str) -> Strength:
    """An estimate of how guessable `value` is, from its length and the characters it uses.

    Generated secrets are judged fairly (128 hex characters are ~512 bits); repetitions and
    runs such as `aaaa` or `abcdef` count as one unit; words cannot be told from random letters,
    which is why known placeholders are checked separately."""
    alphabet, per_char = _alphabet(value)
    unit = _smallest_period(value)
    bits = len(unit) * per_char
    if len(set(value)) <= 2 or _is_run(unit):
        bits = min(bits, 8.0)
    return Strength(len(value), alphabet, int(bits))


def _alphabet(value: str) -> tuple[str, float]:
    if value and all(c in "0123456789abcdef" for c in value.lower()) and not value.isdigit():
        return "hex", 4.0
    lower = any(c.islower() for c in value)
    upper = any(c.isupper() for c in value)
    digits = any(c.isdigit() for c in value)
    other = any(not c.isalnum() for c in value)
    size = 26 * lower + 26 * upper + 10 * digits + 32 * other
    if other and all(c.isalnum() or c in "+/=_-" for c in value) and lower and upper:
        name = "base64"
    elif other:
        name = "mixed characters"
    elif lower and upper:
        name = "alphanumeric" if digits else "letters"
    elif digits and not (lower or upper):
        name = "digits"
    else:
        name = "lower-case and digits" if digits else "one-case letters"
    return name, math.log2(max(size, 2))


def _smallest_period(value: str) -> str:
    for size in range(1, len(value) // 2 + 1):
        if len(value) % size == 0 and value[:size] * (len(value) // size) == value:
            return value[:size]
    return value


def _is_run(value: str) -> bool:
    if len(value) < 4:
        return False
    steps = {ord(b) - ord(a) for a, b in itertools.pairwise(value)}
    return len(steps) == 1 and steps <= {-1, 0, 1}


# --- passwords ----------------------------------------------------------------------------------------

# Passwords are typed by machines, not people: nothing excuses a short or guessable one. A service
# on the network is brute-forced (Redis answers many thousands of guesses a second), and the sample
# files' values are the first ones tried.
MIN_PASSWORD = 12


@dataclass(frozen=True)
class PasswordVerdict:
    problem: str | None  # None: strong enough; else "sample", "short" or "guessable"
    why: str  # what is wrong, for a message ("a well-known placeholder", "short: 8 characters")
    strength: Strength

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def observed(self) -> str:
        """Evidence without the value."""
        described = self.strength.describe()
        return {"sample": f"sample value ({described})", "short": f"short ({described})"}.get(self.problem or "",
                                                                                              described)


def judge_password(value: str) -> PasswordVerdict:
    """A password is a sample value, short (under MIN_PASSWORD), guessable (repeated or patterned),
    or strong enough."""
    found = strength(value)
    reason = sample_reason(value)
    if reason:
        return PasswordVerdict("sample", reason, found)
    if found.length < MIN_PASSWORD:
        return PasswordVerdict("short", f"short: {found.length} characters", found)
    if found.level == "low":
        return PasswordVerdict("guessable", "guessable (repeated or patterned)", found)
    return PasswordVerdict(None, "long and random", found)
