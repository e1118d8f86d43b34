"""Where reports go: `-o PATH` is a file for one format, a folder for several; reports/ by default."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from ..engine import RunResult
from . import EXTENSIONS, writer
from .terminal import render as render_terminal

DEFAULT_FORMATS = ["terminal", "html", "json"]
DEFAULT_DIR = Path("reports")


def write_reports(result: RunResult, formats: list[str] | None, out: str | None, stem: str,
                  stdout: TextIO | None = None) -> list[Path]:
    stdout = stdout or sys.stdout
    formats = list(dict.fromkeys(formats or DEFAULT_FORMATS))
    files = [f for f in formats if f != "terminal"]
    written: list[Path] = []
    if "terminal" in formats and not (out and not files):
        colour = stdout.isatty()
        # The report escaped every value itself; its own colours go to the stream underneath.
        (getattr(stdout, "raw", stdout) if colour else stdout).write(render_terminal(result, colour=colour))
    if out == "-":
        if len(formats) != 1:
            raise ValueError("-o - (standard output) takes exactly one --format")
        writer(formats[0])(result, stdout)
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
        with path.open("w", encoding="utf-8") as out:
            if fmt == "terminal":
                out.write(render_terminal(result))
            else:
                writer(fmt)(result, out)
        written.append(path)
    return written
