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


def _trie_pattern(values: Iterable[str]) -> str:
    """One regex for many literals, factored by common prefixes so matching does not try every
    secret at every position (hundreds of secrets in a large tree). Longer matches win."""
    trie: dict = {}
    for value in values:
        node = trie
        for ch in value:
            node = node.setdefault(ch, {})
        node[""] = True

    def build(node: dict) -> str:
        ends = "" in node
        branches = [re.escape(ch) + build(child) for ch, child in sorted(node.items()) if ch != ""]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if ends else body

    return build(trie)


# Names that appear all over a Mastodon report (users, roles, services, units). A "secret" equal
# to one of them is a placeholder the env checks report as such; scrubbing it would blank the word
# everywhere ("role [redacted] is a superuser") and hide nothing an attacker could not guess.
PUBLIC_WORDS = frozenset({
    "mastodon", "postgres", "postgresql", "redis", "elasticsearch", "opensearch", "sidekiq", "streaming",
    "nginx", "root", "www-data", "default", "live", "production", "localhost",
})


class Redactor:
    def __init__(self, secrets: Iterable[str] = (), public_names: Iterable[str] = ()) -> None:
        public = set(PUBLIC_WORDS)
        for name in public_names:
            public.add(name.lower())
            public.update(part for part in name.lower().replace("-", ".").split(".") if part)
        values = {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH and s.lower() not in public}
        self._shortest = min((len(v) for v in values), default=0)
        self._pattern = re.compile(_trie_pattern(values)) if values else None
        self._cache: dict[str, str] = {}

    def scrub(self, text: str | None) -> str | None:
        if text is None:
            return None
        cached = self._cache.get(text)
        if cached is not None:
            return cached
        out = text
        if "://" in out:
            out = _URL_PASSWORD.sub(lambda m: f"{m['pre']}{REDACTED}{m['post']}", out)
        if self._pattern is not None and len(out) >= self._shortest:
            out = self._pattern.sub(REDACTED, out)
        if len(self._cache) < 100_000:
            self._cache[text] = out
        return out
