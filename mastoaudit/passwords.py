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
    "changeme", "change_me", "change-me", "changethis", "changeit", "password", "passw0rd", "p@ssw0rd", "password1",
    "password123", "secret", "secret123", "s3cr3t", "supersecret", "topsecret", "mastodon",
    "mastodon_password", "mastodonpassword", "postgrespassword", "redispassword",
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
    pattern: str | None = None  # what makes most of it predictable: "repeats", "a sequence", ...

    @property
    def level(self) -> str:
        return "high" if self.bits >= 120 else "medium" if self.bits >= 60 else "low"

    def describe(self) -> str:
        """Evidence that says how strong a secret is without saying what it is."""
        shape = f", {self.pattern}" if self.pattern else ""
        return f"length {self.length}, {self.alphabet}{shape}, {self.level} entropy (~{self.bits} bits)"


def strength(value: str) -> Strength:
    """An estimate of how guessable `value` is, from its length, the characters it uses and how
    much of it a guesser predicts from what came before.

    Generated secrets are judged fairly (128 hex characters are ~512 bits). What follows a pattern
    counts for nothing: a repetition of an earlier part (`abcabc`, `Passw0rdPassw0rd`), a step
    sequence (`abcdef`, `13579`, `zyx`), a keyboard walk (`qwertyuiop`), a counter in hex
    (`000102030405...`, bytes in steps); words cannot be told from random letters, which is why
    known placeholders are checked separately."""
    alphabet, per_char = _alphabet(value)
    unit = _smallest_period(value)
    bits = len(unit) * per_char
    if len(set(value)) <= 2 or _is_run(unit):
        bits = min(bits, 8.0)
    surprising, pattern = _unpredicted(value)
    if surprising * per_char < bits:
        bits = surprising * per_char
    else:
        pattern = "repeats" if len(unit) < len(value) else None
    return Strength(len(value), alphabet, int(bits), pattern if bits < 120 else None)


_REPEAT_SCAN = 512  # the search for repetitions is quadratic: bounded for hostile input (a secret is far shorter)
_KEYBOARD = ("1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm", "qwertzuiop", "yxcvbnm", "azertyuiop",
             "qsdfghjklm", "wxcvbn", "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p")
_WALKS = frozenset(w[i:i + 4] for row in _KEYBOARD for w in (row, row[::-1]) for i in range(len(w) - 3))


def _unpredicted(value: str) -> tuple[int, str | None]:
    """How many characters of `value` a guesser cannot predict from the ones before it, and the
    pattern that predicts most of the others."""
    n = len(value)
    how: list[str | None] = [None] * n
    for i in range(2, n):  # a step sequence: the same difference as the step before
        if ord(value[i]) - ord(value[i - 1]) == ord(value[i - 1]) - ord(value[i - 2]):
            how[i] = "a sequence"
    lowered = value.lower()
    for at in range(n - 3):
        if lowered[at:at + 4] in _WALKS:
            for i in range(at + 1, at + 4):
                how[i] = how[i] or "a keyboard walk"
    i = 4
    while i < min(n, _REPEAT_SCAN):  # a repetition of an earlier part of at least four characters
        length = 0
        while length < _REPEAT_SCAN and i + length < n and value[i:i + length + 1] in value[:i]:
            length += 1
        if length >= 4:
            for j in range(i, i + length):
                how[j] = how[j] or "repeats"
            i += length
        else:
            i += 1
    if n >= 16 and n % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in value):
        data = bytes.fromhex(value)
        for k in range(2, len(data)):  # a counter: bytes in steps
            if data[k] - data[k - 1] == data[k - 1] - data[k - 2]:
                how[2 * k] = how[2 * k + 1] = how[2 * k] or "a counter in hex"
    found = [h for h in how if h]
    pattern = max(set(found), key=found.count) if found else None
    return n - len(found), pattern


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
