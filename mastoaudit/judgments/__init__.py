"""Judgments the checks of several components share: one answer to each question, written once.

A check module holds the checks of one component (checks/<component>.py); where the checks of two
components ask the same question of the same kind of fact (is this compose service published beyond
loopback? what answered on the scanned ports? is this .env value a template?), the answer lives here,
in a module named after the fact it reads. What is not a judgment of a fact but a rule of its own
lives in a module of its own: addresses.py (address scope, host:port), templating.py (templates),
passwords.py (password strength).
"""

from __future__ import annotations

from typing import Protocol

from ..checkdef import skipped
from ..model import Location, Outcome


class Setting(Protocol):
    """A config file's setting, whatever the format (PostgreSQL, Redis, Elasticsearch ...)."""

    @property
    def value(self) -> str: ...

    @property
    def location(self) -> Location: ...


def template_value(setting: Setting, name: str, expected: str) -> Outcome:
    """The skip for a setting a template fills in later: it cannot be judged from the file."""
    return skipped(f"{name} is a template value", at=setting.location, observed=setting.value, expected=expected)
