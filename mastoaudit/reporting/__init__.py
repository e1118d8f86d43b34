"""Reporters: one module per output format, each a function of the run's document."""

from __future__ import annotations

from collections.abc import Callable
from typing import TextIO

from ..engine import RunResult

FORMATS = ("terminal", "json", "html", "sarif", "junit")
EXTENSIONS = {"terminal": "txt", "json": "json", "html": "html", "sarif": "sarif", "junit": "xml"}


def renderer(fmt: str) -> Callable[[RunResult], str]:
    if fmt == "terminal":
        from .terminal import render
    elif fmt == "json":
        from .json_report import render
    elif fmt == "html":
        from .html import render
    elif fmt == "sarif":
        from .sarif import render
    elif fmt == "junit":
        from .junit import render
    else:
        raise ValueError(f"unknown format {fmt!r} (one of: {', '.join(FORMATS)})")
    return render


def writer(fmt: str) -> Callable[[RunResult, TextIO], None]:
    """Write a format to an open text file; JSON streams (huge runs), the others write their text."""
    if fmt == "json":
        from .json_report import write

        return write
    render = renderer(fmt)
    return lambda result, out: out.write(render(result))
