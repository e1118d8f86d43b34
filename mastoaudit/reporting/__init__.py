"""Reporters: one module per output format, each a function of the run's document."""

from __future__ import annotations

from collections.abc import Callable

from ..engine import RunResult

FORMATS = ("terminal", "json", "html", "sarif", "junit")
EXTENSIONS = {"terminal": "txt", "json": "json", "html": "html", "sarif": "sarif", "junit": "xml"}


def _module(fmt: str):
    if fmt == "terminal":
        from . import terminal as module
    elif fmt == "json":
        from . import json_report as module
    elif fmt == "html":
        from . import html as module
    elif fmt == "sarif":
        from . import sarif as module
    elif fmt == "junit":
        from . import junit as module
    else:
        raise ValueError(f"unknown format {fmt!r} (one of: {', '.join(FORMATS)})")
    return module


def renderer(fmt: str) -> Callable[[RunResult], str]:
    """The format's text from a run."""
    return _module(fmt).render


def document_renderer(fmt: str) -> Callable[[dict], str]:
    """The format's text from a run document (a run's, a merge's, or a report read back)."""
    return _module(fmt).render_document
