"""Where reports go: `-o PATH` is a file for one format, a folder for several; reports/ by default.

Every format is drawn from one document, built once: a run's, a merge's or a diff's (each passes
its own `render(fmt, doc, colour)`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from . import EXTENSIONS, document_renderer

DEFAULT_FORMATS = ["terminal", "html", "json"]
DEFAULT_DIR = Path("reports")

Render = Callable[[str, dict, bool], str]


def render_run(fmt: str, doc: dict, colour: bool = False, show_passed: bool = False, quiet: bool = False) -> str:
    if fmt == "terminal":
        from .terminal import render_document

        return render_document(doc, colour=colour, show_passed=show_passed, quiet=quiet)
    return document_renderer(fmt)(doc)


def write_reports(doc: dict, formats: list[str] | None, out: str | None, stem: str,
                  stdout: TextIO | None = None, render: Render | None = None,
                  show_passed: bool = False, quiet: bool = False) -> list[Path]:
    """`quiet` (--quiet): the terminal report is the verdict and one line per failing check."""
    from .terminal import colour_wanted

    stdout = stdout or sys.stdout
    streams = render is None  # a run's own JSON is written finding by finding (huge runs)
    if render is None:
        def render(fmt: str, document: dict, colour: bool) -> str:
            return render_run(fmt, document, colour, show_passed, quiet)
    formats = list(dict.fromkeys(formats or DEFAULT_FORMATS))
    files = [f for f in formats if f != "terminal"]
    written: list[Path] = []
    if "terminal" in formats and not (out and not files):
        colour = colour_wanted(stdout)
        # The report escaped every value itself; its own colours go to the stream underneath
        # (textsafe.SafeWriter would escape them).
        (getattr(stdout, "raw", stdout) if colour else stdout).write(render("terminal", doc, colour))
    if out == "-":
        if len(formats) != 1:
            raise ValueError("-o - (standard output) takes exactly one --format")
        stdout.write(render(formats[0], doc, False))
        return written
    targets: dict[str, Path] = {}
    if out is None:
        for fmt in files:
            targets[fmt] = DEFAULT_DIR / f"{stem}.{EXTENSIONS[fmt]}"
    else:
        path = Path(out)
        single = files if files else formats
        if len(single) == 1 and not (path.is_dir() or out.endswith("/")):
            targets[single[0]] = path
        else:
            for fmt in single:
                targets[fmt] = path / f"{stem}.{EXTENSIONS[fmt]}"
    for fmt, path in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as fh:
            if streams and fmt == "json":
                from .json_report import write_document

                write_document(doc, fh)
            else:
                fh.write(render(fmt, doc, False))
        written.append(path)
    return written
