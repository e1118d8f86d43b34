"""Progress of a long run (an SSH fleet, the network probes, a sweep of peers) on standard error.

One line, redrawn in place, and only when standard error is a terminal and the run is not
--quiet: a CI log or a redirected stderr gets nothing (the report says everything that matters).
Redraws are rate-limited, so a sweep of thousands of peers costs nothing to show; a ticker keeps
the elapsed time moving while a slow step runs. What it shows comes from inventories and peers,
so it goes through the terminal report's sanitizer.

    with Progress.for_stream(sys.stderr, quiet=args.quiet) as progress:
        progress.stage("auditing 20 hosts over SSH", total=20)
        progress.advance("web1 done")      # 1/20
        progress.note("web7: failed: host key refused")   # a line that stays
"""

from __future__ import annotations

import shutil
import threading
import time
from typing import TextIO

from .terminal import _clean

_SPINNER = "|/-\\"
_CLEAR = "\r\033[2K"


class Progress:
    def __init__(self, stream: TextIO | None, enabled: bool, interval: float = 0.1, tick: float = 0.25) -> None:
        self.stream = stream
        self.enabled = enabled and stream is not None
        self.interval = interval
        self.tick = tick
        self.lock = threading.Lock()
        self.label = ""
        self.total: int | None = None
        self.done = 0
        self.detail = ""
        self.started = time.monotonic()
        self.stage_started = self.started
        self.drawn_at = 0.0
        self.frame = 0
        self.shown = False
        self.stopped = threading.Event()
        self.ticker: threading.Thread | None = None

    @classmethod
    def for_stream(cls, stream: TextIO, quiet: bool = False) -> Progress:
        """Shown only on a terminal (and never with --quiet). The line is cleaned here and drawn
        with escapes of our own, so it goes to the stream under the CLI's textsafe.SafeWriter."""
        isatty = getattr(stream, "isatty", None)
        return cls(getattr(stream, "raw", stream), enabled=not quiet and bool(isatty and isatty()))

    def __enter__(self) -> Progress:
        if self.enabled:
            self.ticker = threading.Thread(target=self._tick, name="progress", daemon=True)
            self.ticker.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def stage(self, label: str, total: int | None = None) -> None:
        """A new step of the run: what it does and how many items it has (if known)."""
        with self.lock:
            self.label, self.total, self.done, self.detail = label, total, 0, ""
            self.stage_started = time.monotonic()
            self._draw(force=True)

    def advance(self, detail: str = "", by: int = 1) -> None:
        with self.lock:
            self.done += by
            self.detail = detail
            self._draw(force=self.total is not None and self.done >= self.total)

    def update(self, detail: str) -> None:
        with self.lock:
            self.detail = detail
            self._draw()

    def note(self, text: str) -> None:
        """A line that stays above the progress line (a failed host, say)."""
        if not self.enabled:
            return
        with self.lock:
            self.stream.write(_CLEAR + _clean(text) + "\n")
            self.shown = False
            self._draw(force=True)

    def close(self) -> None:
        self.stopped.set()
        if self.ticker is not None:
            self.ticker.join(timeout=1)
            self.ticker = None
        if self.enabled:
            with self.lock:
                if self.shown:
                    self.stream.write(_CLEAR)
                    self.stream.flush()
                    self.shown = False
                self.enabled = False

    def _tick(self) -> None:
        while not self.stopped.wait(self.tick):
            with self.lock:
                self.frame += 1
                self._draw(force=True)

    def _draw(self, force: bool = False) -> None:
        if not self.enabled or not self.label:
            return
        now = time.monotonic()
        if not force and now - self.drawn_at < self.interval:
            return
        self.drawn_at = now
        count = f" {self.done}/{self.total}" if self.total else ""
        detail = f" · {self.detail}" if self.detail else ""
        text = _clean(f"{_SPINNER[self.frame % len(_SPINNER)]} {self.label}{count}{detail} · "
                      f"{now - self.stage_started:.1f} s")
        width = shutil.get_terminal_size((100, 24)).columns - 1
        if len(text) > width:
            text = text[: max(10, width - 1)] + "…"
        self.stream.write(_CLEAR + text)
        self.stream.flush()
        self.shown = True
