"""Showing what a peer sent: every probe puts network data into findings through `excerpt`."""

from __future__ import annotations

MAX_TEXT = 200  # characters kept of anything a server sent


def excerpt(value: object, limit: int = MAX_TEXT) -> str:
    """Printable text as it is; anything else (bytes, control characters) escaped; at most `limit`."""
    text = value if isinstance(value, str) else repr(value[: limit * 4] if isinstance(value, bytes) else value)
    if isinstance(value, str) and not text.isprintable():
        text = repr(text)[1:-1]
    return text if len(text) <= limit else text[: limit - 1] + "…"
