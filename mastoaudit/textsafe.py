"""Text from configs, file names and peers, made safe to show: the one sanitizer for every output.

Audited files are hostile: a file name or a value can carry terminal escapes (ESC, CSI, BEL, a
carriage return that rewrites the line), bidirectional overrides that make evidence read
differently from what it is, invisible characters, code points XML cannot hold, or bytes that are
not UTF-8 at all. Every text output (terminal report, fix plan, diff, `checks`, progress and
errors on stderr, and the document the JSON, HTML, SARIF and JUnit reports draw from) passes what
it shows through `safe_text`, which replaces each such character with a visible escape (`\\x1b`,
`\\u202e`, `\\r`) and leaves everything else as it is.

- `safe_text(text, multiline=False)`: one line of text (newlines escaped too) or, with
  `multiline=True`, text whose line breaks are kept (snippets, documents).
- `shown_path(path)`: a file name as it may be shown: bytes that are not UTF-8 (which Python
  carries as lone surrogates) become `\\xNN`, control characters are escaped.
- `safe_document(value)`: `safe_text(..., multiline=True)` applied to every string of a document.
- `excerpt(value, limit)`: anything a peer sent (str or bytes), escaped and cut to `limit`.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache

# C0 and C1 controls and DEL; soft hyphen; the Arabic letter mark and Mongolian vowel separator;
# zero-width characters and the left-to-right/right-to-left marks; line and paragraph separators;
# the bidirectional embeddings, overrides and isolates; word joiner and invisible operators; the
# byte order mark; interlinear annotations; the noncharacters U+FFFE/U+FFFF (not allowed in XML);
# lone surrogates (undecodable bytes of a file name); tag characters.
_UNSAFE_CLASS = (
    "\x00-\x1f\x7f-\x9f\xad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb"
    "\ufffe\uffff\ud800-\udfff\U000e0000-\U000e007f"
)
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


@lru_cache(maxsize=4)
def _unsafe(keep: str) -> re.Pattern[str]:
    cls = _UNSAFE_CLASS
    if keep:
        # The kept characters (tab, newline) are all in the first range: split it around them.
        allowed = [c for c in map(chr, range(0x20)) if c not in keep]
        cls = "".join(re.escape(c) for c in allowed) + _UNSAFE_CLASS[len("\x00-\x1f"):]
    return re.compile(f"[{cls}]")


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    code = ord(ch)
    if ch in _SHORT:
        return _SHORT[ch]
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape): show the byte
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def safe_text(text: str, multiline: bool = False) -> str:
    """`text` with every unsafe character replaced by a visible escape. Tabs are kept; newlines
    are kept only when `multiline` (a carriage return is always escaped)."""
    pattern = _unsafe("\t\n" if multiline else "\t")
    if pattern.search(text) is None:
        return text
    return pattern.sub(_escape, text)


def shown_path(path: str | bytes | os.PathLike) -> str:
    """A file name as every output may show it (never raises, never holds raw control bytes)."""
    if isinstance(path, bytes):
        text = path.decode("utf-8", "surrogateescape")
    else:
        text = os.fspath(path)
        if isinstance(text, bytes):
            text = text.decode("utf-8", "surrogateescape")
    return safe_text(text)


def safe_document(value):
    """A document (or any part of it) with every string made safe; line breaks are kept."""
    if isinstance(value, str):
        return safe_text(value, multiline=True)
    if isinstance(value, dict):
        return {safe_document(k): safe_document(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [safe_document(v) for v in value]
    return value


def excerpt(value: object, limit: int = 200) -> str:
    """Anything a peer or a file sent, as one escaped line of at most `limit` characters."""
    if isinstance(value, bytes | bytearray):
        text = repr(bytes(value[: limit * 4]))  # b'...': printable ASCII, and plainly bytes
    elif isinstance(value, str):
        text = value[: limit * 4]
    else:
        text = repr(value)[: limit * 4]
    text = safe_text(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class SafeWriter:
    """A text stream that passes everything written to it through `safe_text` (line breaks kept):
    what the command line prints (progress, errors, `checks`, diff, fix plan) cannot carry a raw
    control character, whatever a file name or value held. `raw` is the stream underneath, for a
    writer that escaped its own values and adds colours of its own (the terminal report)."""

    def __init__(self, raw) -> None:
        self.raw = raw

    def write(self, text: str) -> int:
        self.raw.write(safe_text(text, multiline=True))
        return len(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str):  # flush, isatty, fileno, encoding ... of the stream underneath
        return getattr(self.raw, name)
