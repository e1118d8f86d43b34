"""Secrets never leave the host: scrub known secret values out of every text a report shows.

Linear in the size of the text and of the secrets, whatever they hold (a 4 MB private key, ten
thousand generated passwords):

- every secret of up to `HEAD` characters, and the first `HEAD` characters (its head) of every
  longer one, go into one Aho-Corasick automaton (at most `HEAD` states per secret);
- a text is scanned once; where no match is in progress, a compiled expression of the secrets'
  first four characters jumps to the next place one could start (most texts hold none);
- where a head is found, the long secret is compared from there: the whole of it when it is
  there, else as much of it as is there (a cut or wrapped key is still a secret), within a work
  budget proportional to the text; past the budget the longest candidate's length is blanked;
- what is blanked is the union of every occurrence, so overlapping secrets leave nothing showing.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Iterable

REDACTED = "[redacted]"
# Shorter values would blank out ordinary words; checks never print secret values anyway, this
# is the second line of defence.
MIN_SECRET_LENGTH = 4
HEAD = 16  # secrets longer than this are found by their first HEAD characters, then compared
_ANCHOR = MIN_SECRET_LENGTH
_CANDIDATES_PER_HEAD = 16  # long secrets compared at one place (the longest first)
_MAX_CACHED_TEXT = 4096

# key=value forms that carry a secret whatever the source (URLs with passwords, requirepass ...).
# Bounded repetitions: an unbounded scheme or user part would rescan a long run at every position.
_URL_PASSWORD = re.compile(r"(?P<pre>[a-z][a-z0-9+.-]{0,31}://[^:/@\s]{0,256}:)(?P<secret>[^@\s/]{1,1024})(?P<post>@)",
                           re.I)

# Names that appear all over a Mastodon report (users, roles, services, units). A "secret" equal
# to one of them is a placeholder the env checks report as such; scrubbing it would blank the word
# everywhere ("role [redacted] is a superuser") and hide nothing an attacker could not guess.
PUBLIC_WORDS = frozenset({
    "mastodon", "postgres", "postgresql", "redis", "elasticsearch", "opensearch", "sidekiq", "streaming",
    "nginx", "root", "www-data", "default", "live", "production", "localhost",
})


def _trie_pattern(words: Iterable[str]) -> str:
    """One expression for many short literals (at most _ANCHOR characters: shallow recursion)."""
    trie: dict = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})

    def build(node: dict) -> str:
        branches = [re.escape(ch) + build(child) for ch, child in sorted(node.items())]
        if not branches:
            return ""
        return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"

    return build(trie)


class _Anchors:
    """Where the next secret could start: the next place a secret's first characters stand.

    Few anchors: one compiled expression, scanned in C. Many (thousands of secrets): its
    alternatives would be tried one by one at every place, so a set is looked up instead, at a
    cost per character that does not grow with the number of secrets."""

    MAX_IN_EXPRESSION = 256

    def __init__(self, anchors: set[str]) -> None:
        self.anchors = anchors
        self.expression = re.compile(_trie_pattern(anchors)) if len(anchors) <= self.MAX_IN_EXPRESSION else None

    def find(self, text: str, start: int) -> int:
        """The first place at or after `start` where an anchor stands, or -1."""
        if self.expression is not None:
            found = self.expression.search(text, start)
            return -1 if found is None else found.start()
        anchors = self.anchors
        for position in range(start, len(text) - _ANCHOR + 1):
            if text[position:position + _ANCHOR] in anchors:
                return position
        return -1


class _Automaton:
    """Aho-Corasick over the short secrets and the heads of the long ones."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.edges: dict[int, int] = {}  # state << 21 | code point -> state
        self.fail = array("i", [0])
        self.depth = array("i", [0])
        parent, via = array("i", [0]), array("i", [0])  # each state's parent and the character to it
        terminal = bytearray(1)
        for pattern in patterns:
            state = 0
            for ch in pattern:
                key = state << 21 | ord(ch)
                nxt = self.edges.get(key)
                if nxt is None:
                    nxt = len(self.fail)
                    self.edges[key] = nxt
                    self.fail.append(0)
                    self.depth.append(self.depth[state] + 1)
                    parent.append(state)
                    via.append(ord(ch))
                    terminal.append(0)
                state = nxt
            terminal[state] = 1
        # longest[s]: the state of the longest pattern that ends where s does (0: none). Failure
        # links are set shallowest first: a state's link is a shallower state's.
        self.longest = array("i", bytes(4 * len(self.fail)))
        by_depth: list[list[int]] = [[] for _ in range(max(self.depth) + 1)]
        for state in range(1, len(self.fail)):
            by_depth[self.depth[state]].append(state)
        for level in by_depth:
            for child in level:
                up, code = parent[child], via[child]
                if up:
                    f = self.fail[up]
                    while True:
                        nxt = self.edges.get(f << 21 | code)
                        if nxt is not None:
                            self.fail[child] = nxt
                            break
                        if f == 0:
                            break
                        f = self.fail[f]
                self.longest[child] = child if terminal[child] else self.longest[self.fail[child]]


class Redactor:
    def __init__(self, secrets: Iterable[str] = (), public_names: Iterable[str] = ()) -> None:
        public = set(PUBLIC_WORDS)
        for name in public_names:
            public.add(name.lower())
            public.update(part for part in name.lower().replace("-", ".").split(".") if part)
        values = {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH and s.lower() not in public}
        self._shortest = min((min(len(v), HEAD) for v in values), default=0)  # a head alone is blanked too
        self._long: dict[str, list[str]] = {}  # head -> the long secrets that start with it, longest first
        for value in values:
            if len(value) > HEAD:
                self._long.setdefault(value[:HEAD], []).append(value)
        for group in self._long.values():
            group.sort(key=len, reverse=True)
        patterns = sorted({v if len(v) <= HEAD else v[:HEAD] for v in values})
        self._automaton = _Automaton(patterns) if patterns else None
        self._heads = {}  # automaton state of a head -> its head
        if self._automaton is not None:
            for head in self._long:
                state = 0
                for ch in head:
                    state = self._automaton.edges[state << 21 | ord(ch)]
                self._heads[state] = head
        self._anchor = _Anchors({p[:_ANCHOR] for p in patterns}) if patterns else None
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
        if self._automaton is not None and len(out) >= self._shortest:
            out = self._blank(out)
        if len(text) <= _MAX_CACHED_TEXT and len(self._cache) < 100_000:
            self._cache[text] = out
        return out

    # --- the scan ---------------------------------------------------------------------------------

    def _blank(self, text: str) -> str:
        assert self._automaton is not None and self._anchor is not None
        anchor = self._anchor.find
        first = anchor(text, 0)
        if first < 0:
            return text
        automaton = self._automaton
        edges, fail, depth, longest, heads = (automaton.edges, automaton.fail, automaton.depth, automaton.longest,
                                              self._heads)
        spans: list[tuple[int, int]] = []
        budget = [8 * len(text) + 1_000_000]  # characters compared for long secrets, at most
        n = len(text)
        state, j = 0, first
        while j < n:
            if state == 0:
                j = anchor(text, j)
                if j < 0:
                    break
            code = ord(text[j])
            while True:
                nxt = edges.get(state << 21 | code)
                if nxt is not None:
                    state = nxt
                    break
                if state == 0:
                    break
                state = fail[state]
            match = longest[state]
            if match:
                start = j + 1 - depth[match]
                end = j + 1
                head = heads.get(match)
                if head is not None:
                    end = max(end, self._extend(text, start, self._long[head], budget))
                spans.append((start, end))
            j += 1
        if not spans:
            return text
        spans.sort()
        out: list[str] = []
        cursor = 0
        merged_start, merged_end = spans[0]
        for start, end in spans[1:]:
            if start <= merged_end:
                merged_end = max(merged_end, end)
                continue
            out.append(text[cursor:merged_start])
            out.append(REDACTED)
            cursor = merged_end
            merged_start, merged_end = start, end
        out.append(text[cursor:merged_start])
        out.append(REDACTED)
        out.append(text[merged_end:])
        return "".join(out)

    @staticmethod
    def _extend(text: str, start: int, candidates: list[str], budget: list[int]) -> int:
        """Where the long secrets whose head starts at `start` end: the longest that is there whole,
        else the longest part of one that is there; when the budget is spent, the longest one's end."""
        best = start + HEAD
        for secret in candidates[:_CANDIDATES_PER_HEAD]:
            if budget[0] <= 0:
                return min(len(text), start + len(candidates[0]))
            budget[0] -= len(secret)
            if text.startswith(secret, start):
                return max(best, start + len(secret))
            # How much of it is there: the longest prefix (binary search, each probe compares in C).
            low, high = HEAD, min(len(secret), len(text) - start)
            while low < high:
                mid = (low + high + 1) // 2
                budget[0] -= mid
                if text.startswith(secret[:mid], start):
                    low = mid
                else:
                    high = mid - 1
            best = max(best, start + low)
        return best
