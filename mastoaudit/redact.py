"""Secrets never leave the host: scrub known secret values out of every text a report shows."""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "[redacted]"
# Shorter values would blank out ordinary words; checks never print secret values anyway, this
# is the second line of defence.
MIN_SECRET_LENGTH = 4

# key=value forms that carry a secret whatever the source (URLs with passwords, requirepass ...).
_URL_PASSWORD = re.compile(r"(?P<pre>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<secret>[^@\s/]+)(?P<post>@)", re.I)


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}
        # Longest first so that a secret containing another is replaced whole.
        ordered = sorted(values, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(v) for v in ordered)) if ordered else None

    def scrub(self, text: str | None) -> str | None:
        if text is None:
            return None
        text = _URL_PASSWORD.sub(lambda m: f"{m['pre']}{REDACTED}{m['post']}", text)
        if self._pattern is not None:
            text = self._pattern.sub(REDACTED, text)
        return text
