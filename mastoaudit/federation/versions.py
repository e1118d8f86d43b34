"""Version strings as peers announce them (NodeInfo `software.version`), read per software.

What is known about the strings (reference notes, checked against real servers' NodeInfo):
- Mastodon "4.3.2", nightlies "4.5.0-nightly.2025-07-11", release candidates "4.3.0-rc.1",
  glitch-soc "4.3.2+glitch" (build metadata after '+');
- Pixelfed "0.12.5", forks "0.12.5+glitch.1.10.1";
- Lemmy "0.19.3", older "v0.16.7", nightlies "0.19.4-nightly-2024-05-01", betas "0.19.0-beta.5";
- GoToSocial "0.17.3+git-abc1234" (a build of 0.17.3), "0.18.0-rc1";
- Misskey calendar versions "2025.4.0", "2024.11.0-beta.3", and before 2023 "13.14.2";
- Akkoma/Pleroma "3.13.2", development builds in `git describe` form "2.5.0-52-g8f5a2b2c-develop"
  (52 commits after 2.5.0: later than 2.5.0, earlier than the next release).

Build metadata ('+...') never changes the order. A pre-release ('-rc.1', '-nightly...', '-beta')
comes before its release; a `git describe` build comes after its base release. A string that does
not start with a release number is unknown, and unknown is its own answer: never "not vulnerable".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

_RELEASE = re.compile(r"^[vV]?(\d{1,9}(?:\.\d{1,9}){0,5})(.*)$", re.DOTALL)
_GIT_DESCRIBE = re.compile(r"^-(\d+)-g[0-9a-f]{4,40}(?:-.*)?$")
MAX_VERSION_CHARS = 200

# Phases: a pre-release sorts before its release, a post-release (git describe) after it.
PRE, FINAL, POST = -1, 0, 1


def _pre_key(text: str) -> tuple:
    """SemVer-style order of pre-release identifiers: numbers before words, numbers by value."""
    parts = [p for p in re.split(r"[.\-]", text) if p]
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p.lower()) for p in parts)


@total_ordering
@dataclass(frozen=True)
class Version:
    """A version that could be read. Compare only versions of the same software."""

    raw: str
    release: tuple[int, ...]
    phase: int = FINAL
    pre: str = ""  # the pre-release label ("nightly.2025-07-11", "rc.1"), for PRE
    post: int = 0  # commits after the release, for POST
    build: str = ""  # build metadata after '+', ignored in comparisons

    @property
    def line(self) -> tuple[int, int]:
        """The release line (major, minor): advisories are fixed per line."""
        padded = (*self.release, 0, 0)
        return padded[0], padded[1]

    @property
    def base(self) -> str:
        return ".".join(map(str, self.release))

    def _key(self) -> tuple:
        release = tuple(self.release) + (0,) * (6 - len(self.release))
        return release, self.phase, _pre_key(self.pre) if self.phase == PRE else (), self.post

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    @property
    def prerelease(self) -> bool:
        return self.phase == PRE

    def __str__(self) -> str:
        return self.raw


def parse(text: object, software: str | None = None) -> Version | None:
    """The version in `text`, or None when it cannot be read (unknown, not "safe").

    `software` is accepted for the day a project needs a rule of its own; the forms above share one
    grammar today (checked per software in the tests)."""
    if not isinstance(text, str):
        return None
    raw = text.strip()
    if not raw or len(raw) > MAX_VERSION_CHARS or any(ord(c) < 0x20 for c in raw):
        return None
    match = _RELEASE.match(raw)
    if not match:
        return None
    release = tuple(int(p) for p in match.group(1).split("."))
    rest, _, build = match.group(2).partition("+")
    if not rest:
        return Version(raw, release, FINAL, build=build)
    if not rest.startswith("-"):
        # "4.3.2rc1", "4.3.2 (abc)": not a form any of the projects uses; refuse rather than guess
        return None
    described = _GIT_DESCRIBE.match(rest)
    if described:
        commits = int(described.group(1))
        return Version(raw, release, POST if commits else FINAL, post=commits, build=build)
    label = rest[1:]
    if not label or not re.fullmatch(r"[0-9A-Za-z.\-_]+", label):
        return None
    return Version(raw, release, PRE, pre=label, build=build)


def describe(software: str, text: object) -> str:
    """For messages: 'pixelfed 0.12.4'."""
    return f"{software} {text}" if text else software
