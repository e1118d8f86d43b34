"""Plain data shared by the engine and the reporters: severities, statuses, findings.

Reporters only ever see these types; nothing here knows how a fact was collected.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum


class Severity(StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_ORDER.index(self)

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls(text.lower())
        except ValueError:
            names = ", ".join(s.value for s in cls)
            raise ValueError(f"unknown severity {text!r} (one of: {names})") from None


_SEVERITY_ORDER = [Severity.INFO, Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL]


class Status(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    WARN = "warn"
    SKIP = "skip"
    ERROR = "error"


class SkipReason(StrEnum):
    """Why something was not judged: every skip carries one, so a report can say, grouped, what was
    left out and why (nothing is skipped in silence)."""

    TEMPLATED = "templated"  # a template or placeholder: a tool fills the value in later
    NOT_COLLECTED = "not-collected"  # the input was there but could not be read (a file, a command)
    NO_SERVER_BLOCK = "no-server-block"  # nginx: the file holds no server (block) the check applies to
    NOT_APPLICABLE = "not-applicable"  # nothing of the kind in what was audited, or a feature not in use
    NO_ANSWER = "no-answer"  # the network endpoint did not answer
    NOT_ACTIVE = "not-active"  # a file nothing that runs reads (a site not enabled, a snippet not included)

    @property
    def label(self) -> str:
        return SKIP_LABELS[self]

    @classmethod
    def infer(cls, message: str) -> SkipReason:
        """The reason a skip's own words give, for skips that do not name one."""
        text = message.lower()
        if "templat" in text or "placeholder" in text or "set by a variable" in text:
            return cls.TEMPLATED
        if "no server block" in text or "no tls server" in text:
            return cls.NO_SERVER_BLOCK
        if any(w in text for w in ("did not answer", "no answer", "not answer", "could not be reached",
                                   "unreachable", "no vhost answered")):
            return cls.NO_ANSWER
        if "not collected" in text or "could not be read" in text or "could not be asked" in text:
            return cls.NOT_COLLECTED
        return cls.NOT_APPLICABLE


SKIP_LABELS = {
    SkipReason.TEMPLATED: "templated (a tool fills it in later)",
    SkipReason.NOT_COLLECTED: "fact not collected",
    SkipReason.NO_SERVER_BLOCK: "no server block found",
    SkipReason.NOT_APPLICABLE: "not applicable here",
    SkipReason.NO_ANSWER: "no answer from the network",
    SkipReason.NOT_ACTIVE: "not active (nothing reads it)",
}


COMPONENTS = (
    "nginx",
    "app",
    "streaming",
    "postgresql",
    "redis",
    "sidekiq",
    "elasticsearch",
    "s3",
    "smtp",
    "mail-dns",
    "tls",
    "host",
    "mastodon-env",
    "federation",
)


@dataclass(frozen=True)
class Location:
    """Where a finding points: a file (as the user named it, or host:path) and a 1-based line."""

    file: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True)
class Outcome:
    """What a check yields: one verdict about one subject. The engine turns it into a Finding."""

    status: Status
    message: str
    location: Location | None = None
    subject: str | None = None  # what was judged, e.g. "server example.com:443" or "REDIS_PASSWORD"
    observed: str | None = None
    expected: str | None = None
    severity: Severity | None = None  # overrides the check's severity for this outcome
    reason: SkipReason | None = None  # why a skip did not judge (set for every skip)


@dataclass
class Finding:
    check_id: str
    title: str
    component: str
    severity: Severity
    status: Status
    message: str
    target: str
    threats: list[str] = field(default_factory=list)
    location: Location | None = None
    subject: str | None = None
    observed: str | None = None
    expected: str | None = None
    skip_reason: SkipReason | None = None  # set on skips only

    @property
    def fingerprint(self) -> str:
        """Stable identity across runs (for diff and SARIF): check, target, file and subject.

        The line number is left out on purpose so that an edit above a finding does not make it
        look new.
        """
        parts = [self.check_id, self.target, self.location.file if self.location else "", self.subject or ""]
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]

    def to_dict(self) -> dict:
        return {
            "check_id": self.check_id,
            "title": self.title,
            "component": self.component,
            "severity": self.severity.value,
            "status": self.status.value,
            "message": self.message,
            "target": self.target,
            "threats": list(self.threats),
            "location": {"file": self.location.file, "line": self.location.line} if self.location else None,
            "subject": self.subject,
            "observed": self.observed,
            "expected": self.expected,
            "fingerprint": self.fingerprint,
            "skip_reason": self.skip_reason.value if self.skip_reason else None,
        }
