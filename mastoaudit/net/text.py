"""Showing what a peer sent: every probe puts network data into findings through `excerpt`."""

from __future__ import annotations

MAX_TEXT = 200  # characters kept of anything a server sent


def excerpt(value: object, limit: int = MAX_TEXT) -> str:
    """Printable text as it is; anything else (bytes, control characters) escaped; at most `limit`."""
    text = value if isinstance(value, str) else repr(value[: limit * 4] if isinstance(value, bytes) else value)
    if isinstance(value, str) and not text.isprintable():
        text = repr(text)[1:-1]
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clean(text: str, limit: int = 100) -> str:
    """A network-supplied string made safe to show: bounded, control characters escaped."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text[:limit])[:limit * 2]
