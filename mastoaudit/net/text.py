"""Showing what a peer sent: every probe puts network data into findings through `excerpt`."""

from __future__ import annotations

from ..textsafe import excerpt as _excerpt

MAX_TEXT = 200  # characters kept of anything a server sent


def excerpt(value: object, limit: int = MAX_TEXT) -> str:
    """Printable text as it is; anything else (bytes, control characters) escaped; at most `limit`.
    The one sanitizer of every output is mastoaudit.textsafe."""
    return _excerpt(value, limit)


def clean(text: str, limit: int = 100) -> str:
    """A network-supplied string made safe to show: bounded, control characters escaped."""
    return excerpt(text[:limit], limit * 2)  # the one sanitizer (mastoaudit.textsafe)
