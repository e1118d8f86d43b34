"""The static collector: config files found under paths on this machine (a repo, a checkout)."""

from __future__ import annotations

import glob as globlib
import os
from pathlib import Path

from ..facts import FactSet
from ..model import Location, Status
from ..parsers import Kind, SourceFile, classify
from ..parsers.base import MAX_CONFIG_BYTES
from .files import group_by_kind, parse_sources

SKIP_DIRS = {".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "venv", ".tox"}
SKIP_SUFFIXES = (".sample", ".example", ".dist", ".orig", ".bak", ".swp", "~", ".md", ".rst", ".png", ".jpg",
                 ".gz", ".zip", ".pem", ".key", ".crt", ".py", ".rb", ".js")
SNIFF_BYTES = 8192
MAX_FILES = 20000


class InputError(Exception):
    """The input named on the command line is unusable (exit code 2)."""


class LocalTree:
    """Files under one root; include paths are resolved inside the root, never outside it."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve() if root.is_dir() else root.parent.resolve()

    def _inside(self, candidate: Path) -> bool:
        try:
            candidate.resolve().relative_to(self.root)
        except ValueError:
            return False
        return True

    def read(self, path: str) -> bytes:
        full = Path(path)  # a shown path: relative to the working directory, like the user's PATH
        if not self._inside(full):
            raise PermissionError(f"{path} is outside the audited tree")
        with open(full, "rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            raise ValueError(f"larger than {MAX_CONFIG_BYTES // (1024 * 1024)} MiB")
        return data

    def glob(self, pattern: str, relative_to: str | None = None) -> list[str]:
        base = Path(relative_to) if relative_to else self.root
        full = pattern if os.path.isabs(pattern) else str(base / pattern)
        hits = sorted(p for p in globlib.glob(full) if os.path.isfile(p) and self._inside(Path(p)))
        return [_display(Path(p)) for p in hits]



def _walk(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in sorted(filenames):
            if name.endswith(SKIP_SUFFIXES):
                continue
            found.append(Path(dirpath) / name)
            if len(found) > MAX_FILES:
                raise InputError(f"{root}: more than {MAX_FILES} files; point at the config directories")
    return found


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def collect_tree(root: Path) -> FactSet:
    """Classify and parse every recognised config file under `root` into one target's facts."""
    if not root.exists():
        raise InputError(f"{root}: no such file or directory")
    facts = FactSet(target=str(root))
    classified: list[tuple[Kind, SourceFile]] = []
    base = root if root.is_dir() else root.parent
    for path in _walk(root):
        rel = path.relative_to(base).as_posix() if root.is_dir() else path.name
        shown = _display(path)
        kind = classify(rel, None)
        try:
            if kind is None:
                if path.is_symlink() or not path.is_file():
                    continue
                with open(path, "rb") as fh:
                    head = fh.read(SNIFF_BYTES)
                if b"\x00" in head:
                    continue  # binary, and not named like a config: not ours
                kind = classify(rel, head.decode("utf-8", "replace"))
                if kind is None:
                    continue
            with open(path, "rb") as fh:
                data = fh.read(MAX_CONFIG_BYTES + 1)
        except OSError as exc:
            # Only a file recognised by name reaches here unread: that one was meant to be audited.
            facts.problem(kind.name if kind else "file", f"cannot read {shown}: {exc.strerror or exc}",
                          Location(shown))
            continue
        if len(data) > MAX_CONFIG_BYTES:
            facts.problem(kind.name, f"{shown} is larger than {MAX_CONFIG_BYTES // (1024 * 1024)} MiB; not audited",
                          Location(shown), Status.ERROR)
            continue
        classified.append((kind, SourceFile(shown, data)))
    parse_sources(group_by_kind(classified), LocalTree(root), facts)
    return facts
