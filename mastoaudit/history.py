"""History: `--history DIR` keeps each run's JSON report, per scope, and gives the trend.

Layout: `DIR/<scope key>/<started>-<n>.json`, one report per run, and `DIR/<scope key>/index.json`
with one line of counts per kept run (the trend is drawn from the index, without reading every
report). Runs of another scope (another inventory, other checks, another release series, a shard)
live in another folder, so they never meet in one trend. At most `keep` runs are kept per scope:
the oldest go first. A lost or damaged index is rebuilt from the reports.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
from pathlib import Path

from .baseline import compare

DEFAULT_KEEP = 90
MAX_KEEP = 10_000
INDEX = "index.json"
_RUN_FILE = re.compile(r"^\d{8}T\d{6}Z-\d+\.json$")
_TRIM = ("check_id", "title", "component", "severity", "status", "target", "location", "message", "fingerprint")


class HistoryError(Exception):
    """The history folder cannot be used (exit code 2)."""


def _stamp(started_at: str) -> str:
    digits = re.sub(r"[^0-9T]", "", started_at.split("+")[0].split(".")[0])
    return (digits + "000000")[:15] + "Z" if "T" in digits else "00000000T000000Z"


def entry(doc: dict, file: str) -> dict:
    """One run's line in the index: what the trend draws."""
    summary = doc["summary"]
    return {
        "file": file,
        "started_at": doc["run"]["started_at"],
        "tool_version": doc["tool"]["version"],
        "complete": doc["run"]["complete"],
        "checks_run": summary["checks_run"],
        "by_status": summary["by_status"],
        "failed_by_severity": summary["failed_by_severity"],
        "waived": summary.get("waived", 0),
    }


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class History:
    def __init__(self, root: Path, scope: dict, keep: int = DEFAULT_KEEP) -> None:
        if not 1 <= keep <= MAX_KEEP:
            raise HistoryError(f"--history-keep: between 1 and {MAX_KEEP}")
        self.root, self.scope, self.keep = root, scope, keep
        self.dir = root / scope["key"]

    # ------------------------------------------------------------------------------ reading

    def runs(self) -> list[dict]:
        """The kept runs' index entries, oldest first."""
        index = self.dir / INDEX
        if not self.dir.is_dir():
            return []
        try:
            data = json.loads(index.read_text(encoding="utf-8"))
            runs = data["runs"]
            if all((self.dir / r["file"]).is_file() for r in runs):
                return runs
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return self._rebuild()

    def _rebuild(self) -> list[dict]:
        runs = []
        for path in sorted(self.dir.glob("*.json")):
            if not _RUN_FILE.match(path.name):
                continue
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
                runs.append(entry(doc, path.name))
            except (OSError, ValueError, KeyError, TypeError):
                continue  # not a report of ours: left alone, not drawn
        runs.sort(key=lambda r: (r["started_at"], r["file"]))
        return runs

    def previous(self, runs: list[dict]) -> dict | None:
        for run in reversed(runs):
            try:
                return json.loads((self.dir / run["file"]).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
        return None

    # ------------------------------------------------------------------------------ the run

    def attach(self, doc: dict) -> None:
        """Put the trend (the kept runs and this one) and what changed since the previous run
        into `doc["history"]`."""
        runs = self.runs()[-(self.keep - 1):] if self.keep > 1 else []
        previous = self.previous(runs)
        since = None
        if previous is not None:
            found = compare(previous, doc)
            since = {
                "started_at": previous["run"]["started_at"],
                "file": runs[-1]["file"],
                "new": sorted(fp for fp, s in found.states.items() if s["state"] == "new"),
                "changed": sorted(fp for fp, s in found.states.items() if s["state"] == "updated"),
                "resolved": [{k: f.get(k) for k in _TRIM} for f in found.absent],
            }
        doc["history"] = {
            "dir": str(self.root),
            "scope": self.scope["key"],
            "keep": self.keep,
            "runs": [*runs, {**entry(doc, ""), "current": True}],
            "since_previous": since,
        }

    def save(self, doc: dict) -> Path:
        """Keep `doc` (without its history section: each report stands alone) and drop the oldest
        runs beyond `keep`."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HistoryError(f"--history {self.root}: {exc.strerror or exc}") from None
        stored = {k: v for k, v in doc.items() if k != "history"}
        with open(self.dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            runs = self.runs()
            stamp = _stamp(doc["run"]["started_at"])
            n = 1
            while (self.dir / f"{stamp}-{n}.json").exists():
                n += 1
            path = self.dir / f"{stamp}-{n}.json"
            _write_atomic(path, json.dumps(stored, separators=(",", ":")) + "\n")
            runs.append(entry(stored, path.name))
            runs.sort(key=lambda r: (r["started_at"], r["file"]))
            for old in runs[:-self.keep]:
                with contextlib.suppress(FileNotFoundError):
                    (self.dir / old["file"]).unlink()
            runs = runs[-self.keep:]
            _write_atomic(self.dir / INDEX, json.dumps({"scope": self.scope, "runs": runs}, indent=1) + "\n")
        return path
