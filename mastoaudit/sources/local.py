"""The static collector: config files found under paths on this machine (a repo, a checkout).

The tree is hostile (CI runs `lint` on pull requests it does not control), so `LocalTree` is the
one reader of every file a lint opens (found by name, by content, or through an include):

- nothing outside the audited tree is read: a symbolic link whose target leaves the tree is
  reported (its own path only: where it points is the host's business, not the report's) and not
  followed; includes and globs never list a directory outside it;
- only regular files are opened: the path is checked with lstat, opened with O_NOFOLLOW and
  O_NONBLOCK (a FIFO, socket or device cannot block the run), and the opened descriptor is
  checked again (fstat: a regular file; /proc/self/fd: still inside the tree), so nothing can be
  swapped in between the check and the read;
- at most MAX_CONFIG_BYTES are read of any file;
- a file reached through a link inside the tree is one file: audited once, under the name it has
  in the tree itself;
- names are shown escaped (`mastoaudit.textsafe.shown_path`): bytes that are not UTF-8 and control
  characters in a file name reach no report raw.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import posixpath
import stat
from pathlib import Path

from ..facts import FactSet
from ..model import Location, SkipReason, Status
from ..parsers import Kind, SourceFile, classify
from ..parsers.base import MAX_CONFIG_BYTES
from ..textsafe import shown_path
from .files import group_by_kind, parse_sources

SKIP_DIRS = {".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "venv", ".tox"}
SKIP_SUFFIXES = (".sample", ".example", ".dist", ".orig", ".bak", ".swp", "~", ".md", ".rst", ".png", ".jpg",
                 ".gz", ".zip", ".pem", ".key", ".crt", ".py", ".rb", ".js")
SNIFF_BYTES = 8192
MAX_FILES = 20000
MAX_GLOB_HITS = 5000  # what one include pattern may name
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)
_KINDS_OF_FILE = {stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
                  stat.S_IFBLK: "a block device", stat.S_IFDIR: "a directory", stat.S_IFLNK: "a symbolic link"}


class InputError(Exception):
    """The input named on the command line is unusable (exit code 2)."""


class Refused(OSError):
    """A file the tree may not read: outside it, not a regular file, or too large."""


class OutsideTree(Refused):
    """A symbolic link (or a path through one) that leads out of the audited tree."""


class NotRegular(Refused):
    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


class TooLarge(Refused):
    pass


def _display(path: str) -> str:
    """How a path is shown: relative to the working directory when below it (like the user's PATH)."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


class LocalTree:
    """Files under one root, read only through `open_bytes`; paths resolve inside the root or not at all."""

    MAX_LINKS = 40  # as the kernel's ELOOP limit

    def __init__(self, root: Path | str) -> None:
        named = os.path.abspath(os.fspath(root))
        real = os.path.realpath(named)  # the path named on the command line is audited wherever it leads
        self.root = real if os.path.isdir(real) else os.path.dirname(real)
        # The root as the user named it (shown names are under it): read as the resolved root.
        self._alias = named if os.path.isdir(real) else os.path.dirname(named)
        self._paths: dict[str, str] = {}  # shown name -> the path on disk, where they differ

    # --- names ------------------------------------------------------------------------------------

    def shown(self, path: str) -> str:
        """The name `path` is shown under; remembered, with its folders, so it can be read back."""
        display = _display(path)
        name = shown_path(display)
        disk, shown = display, name
        while shown != disk and shown and shown not in self._paths:
            self._paths[shown] = disk
            disk, shown = os.path.dirname(disk), posixpath.dirname(shown)
        return name

    def disk_path(self, shown: str) -> str:
        return self._paths.get(shown, shown)

    def _under_root(self, path: str) -> bool:
        return path == self.root or path.startswith(self.root.rstrip("/") + "/")

    def resolve(self, path: str) -> str:
        """`path` with every link resolved, like realpath, but without ever looking outside the
        tree: a path or a link target that leaves it raises OutsideTree before anything there is
        touched. A missing part ends the resolution (opening it then fails as it should)."""
        full = os.path.abspath(path)
        alias = self._alias
        if full != self.root and (full == alias or full.startswith(alias.rstrip("/") + "/")):
            full = self.root + full[len(alias):]
        if not self._under_root(full):
            raise OutsideTree("outside the audited tree")
        parts = [p for p in full[len(self.root):].split("/") if p]
        current, links = self.root, 0
        while parts:
            part = parts.pop(0)
            if part == ".":
                continue
            if part == "..":
                if current == self.root:
                    raise OutsideTree("leads outside the audited tree")
                current = os.path.dirname(current)
                continue
            candidate = os.path.join(current, part)
            try:
                mode = os.lstat(candidate).st_mode
            except (FileNotFoundError, NotADirectoryError):
                return os.path.join(candidate, *parts)
            if not stat.S_ISLNK(mode):
                current = candidate
                continue
            links += 1
            if links > self.MAX_LINKS:
                raise OSError(errno.ELOOP, "too many levels of symbolic links")
            target = os.readlink(candidate)
            if os.path.isabs(target):
                target = os.path.normpath(target)
                if not self._under_root(target):
                    target = self._mirrored(target)  # raises OutsideTree when the tree has no copy of it
                current = self.root
                target = target[len(self.root):]
            parts[:0] = [p for p in target.split("/") if p]
        return current

    def _mirrored(self, target: str) -> str:
        """An absolute link in a copy of a host's files names the path on the host
        (`ln -s /etc/nginx/sites-available/mastodon /etc/nginx/sites-enabled/`, as Mastodon's guide
        does it): the same file in the tree is the one it means. Tried as the tree's own path
        (the tree is a copy of `/`), then its trailing parts, longest first, at least a folder and a
        name (the tree is a copy of /etc/nginx). Never a path outside the tree."""
        parts = [p for p in target.split("/") if p and p != "."]
        for start in range(len(parts) - 1):
            mirrored = os.path.join(self.root, *parts[start:])
            if ".." not in parts[start:] and os.path.lexists(mirrored):
                return mirrored
        raise OutsideTree("leads outside the audited tree")

    def inside(self, path: str) -> bool:
        try:
            self.resolve(path)
        except OSError:
            return False
        return True

    # --- reading ----------------------------------------------------------------------------------

    def open_bytes(self, path: str, limit: int = MAX_CONFIG_BYTES) -> tuple[bytes, os.stat_result]:
        """At most `limit` bytes of the regular file at `path` (a path on disk), and its fstat.
        Raises OutsideTree, NotRegular, TooLarge (when the whole file is wanted) or OSError."""
        real = self.resolve(path)  # every link resolved, inside: opened without following any
        kind = stat.S_IFMT(os.lstat(real).st_mode)
        if kind != stat.S_IFREG:
            raise NotRegular(_KINDS_OF_FILE.get(kind, "not a regular file"))
        whole = limit >= MAX_CONFIG_BYTES
        fd = os.open(real, _OPEN_FLAGS)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):  # swapped after the check: never read
                raise NotRegular(_KINDS_OF_FILE.get(stat.S_IFMT(info.st_mode), "not a regular file"))
            if not self._fd_inside(fd):
                raise OutsideTree("leads outside the audited tree")
            if whole and info.st_size > MAX_CONFIG_BYTES:
                raise TooLarge(f"larger than {MAX_CONFIG_BYTES // (1024 * 1024)} MiB")
            os.set_blocking(fd, True)
            chunks, size = [], 0
            while size <= limit:
                chunk = os.read(fd, min(1 << 20, limit + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        finally:
            os.close(fd)
        data = b"".join(chunks)
        if whole and len(data) > limit:
            raise TooLarge(f"larger than {MAX_CONFIG_BYTES // (1024 * 1024)} MiB")
        return data[:limit], info

    def _fd_inside(self, fd: int) -> bool:
        try:
            opened = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return True  # no /proc: the resolution before the open stands
        return self._under_root(opened)

    def read(self, path: str) -> bytes:
        """FileProvider: a file by its shown name (includes, aclfiles)."""
        try:
            return self.open_bytes(self.disk_path(path))[0]
        except OutsideTree:
            raise PermissionError(f"{path} is outside the audited tree") from None
        except NotRegular as exc:
            raise PermissionError(f"{path} is {exc.what}, not a regular file") from None

    def identity(self, path: str) -> tuple[int, int] | None:
        """The file a shown name is (device, inode), links resolved inside the tree; None when it
        cannot be told. Two names of one file have one identity."""
        try:
            info = os.stat(self.resolve(self.disk_path(path)))
        except OSError:
            return None
        return info.st_dev, info.st_ino

    def glob(self, pattern: str, relative_to: str | None = None) -> list[str]:
        """FileProvider: the files a pattern names, inside the tree only; shown names, sorted."""
        base = self.disk_path(relative_to) if relative_to else self.root
        full = pattern if os.path.isabs(pattern) else os.path.join(base, pattern)
        return sorted(self.shown(p) for p in self._glob(os.path.normpath(os.path.abspath(full))))

    def _glob(self, pattern: str) -> list[str]:
        """glob(3) without ever listing a directory outside the tree (a link out is a dead end)."""
        parts = pattern.split("/")
        fixed = []
        while parts and not _magic(parts[0]):
            fixed.append(parts.pop(0))
        start = "/".join(fixed) or "/"
        if not parts:  # no wildcard: the path itself
            return [start] if self._regular_inside(start) else []
        candidates = [start]
        for part in parts:
            found: list[str] = []
            for folder in candidates:
                if not self._dir_inside(folder):
                    continue
                if _magic(part):
                    try:
                        names = sorted(e.name for e in os.scandir(self.resolve(folder)))
                    except OSError:
                        continue
                    hidden = part.startswith(".")
                    found.extend(os.path.join(folder, n) for n in names
                                 if fnmatch.fnmatchcase(n, part) and (hidden or not n.startswith(".")))
                else:
                    found.append(os.path.join(folder, part))
                if len(found) > MAX_GLOB_HITS:
                    break
            candidates = found[:MAX_GLOB_HITS]
        return [c for c in candidates if self._regular_inside(c)]

    def _kind_inside(self, path: str) -> int | None:
        try:
            return stat.S_IFMT(os.lstat(self.resolve(path)).st_mode)
        except OSError:
            return None

    def _dir_inside(self, path: str) -> bool:
        return self._kind_inside(path) == stat.S_IFDIR

    def _regular_inside(self, path: str) -> bool:
        return self._kind_inside(path) == stat.S_IFREG


def _magic(part: str) -> bool:
    return any(c in part for c in "*?[")


# --- the walk --------------------------------------------------------------------------------------


def _walk(root: str, tree: LocalTree, facts: FactSet) -> list[str]:
    """Every file under `root` worth a look, links last (their targets, when in the tree, are
    audited under their own names); a link to a directory out of the tree is reported."""
    if not os.path.isdir(root):
        return [root]
    files: list[str] = []
    links: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        kept = []
        for name in sorted(dirnames):
            if name in SKIP_DIRS:
                continue
            full = os.path.join(dirpath, name)
            if os.path.islink(full):
                if not tree.inside(full):
                    shown = tree.shown(full)
                    facts.problem("file", f"{shown} is a link to a directory outside the audited tree: not followed",
                                  Location(shown), Status.WARN)
                continue  # a link to a folder of the tree: its files are walked where they are
            kept.append(name)
        dirnames[:] = kept
        for name in sorted(filenames):
            if name.endswith(SKIP_SUFFIXES) and not name.lower().endswith(".erb"):  # ERB templates are configs
                continue
            full = os.path.join(dirpath, name)
            (links if os.path.islink(full) else files).append(full)
            if len(files) + len(links) > MAX_FILES:
                raise InputError(f"{shown_path(root)}: more than {MAX_FILES} files; point at the config directories")
    return files + links


def collect_tree(root: Path) -> FactSet:
    """Classify and parse every recognised config file under `root` into one target's facts."""
    raw = os.fspath(root)
    if not os.path.lexists(raw):
        raise InputError(f"{shown_path(raw)}: no such file or directory")
    facts = FactSet(target=shown_path(raw))
    tree = LocalTree(raw)
    top = os.path.realpath(raw)  # the path named on the command line is audited wherever it leads
    base = top if os.path.isdir(top) else os.path.dirname(top)
    classified: list[tuple[Kind, SourceFile]] = []
    seen: dict[tuple[int, int], str] = {}
    for path in _walk(top, tree, facts):
        rel = os.path.relpath(path, base).replace(os.sep, "/")
        rel = rel.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        shown = tree.shown(_shown_under(raw, top, path))
        kind = classify(rel, None)
        try:
            data, info = tree.open_bytes(path, MAX_CONFIG_BYTES if kind else SNIFF_BYTES)
            if kind is None:
                if b"\x00" in data:
                    continue  # binary, and not named like a config: not ours
                kind = classify(rel, data.decode("utf-8", "replace"))
                if kind is None:
                    continue
                if len(data) >= SNIFF_BYTES:
                    data, info = tree.open_bytes(path)
        except OutsideTree:
            if kind is not None and kind.name == "nginx" and "/modules-enabled/" in f"/{rel}":
                # Debian's links to /usr/share/nginx/modules-available: load_module lines of the
                # distribution's module packages, nothing the checks judge.
                facts.problem("nginx", f"{shown} loads a module from outside the audited tree (a distribution's "
                              "modules-enabled link): not read", Location(shown), Status.SKIP,
                              SkipReason.NOT_COLLECTED)
                continue
            facts.problem(kind.name if kind else "file",
                          f"{shown} is a link that leads outside the audited tree: not followed"
                          + (", not audited" if kind else ""), Location(shown), Status.ERROR if kind else Status.WARN)
            continue
        except NotRegular as exc:
            if kind:  # named like a config, and it is a FIFO, socket or device: never opened for reading
                facts.problem(kind.name, f"{shown} is {exc.what}, not a regular file: not read", Location(shown))
            continue
        except TooLarge:
            if kind:
                facts.problem(kind.name, f"{shown} is larger than {MAX_CONFIG_BYTES // (1024 * 1024)} MiB; not audited",
                              Location(shown), Status.ERROR)
            continue
        except OSError as exc:
            if kind:  # a file recognised by name was meant to be audited
                facts.problem(kind.name, f"cannot read {shown}: {exc.strerror or 'unreadable'}", Location(shown))
            continue
        identity = (info.st_dev, info.st_ino)
        if identity in seen:
            continue  # the same file through a link inside the tree: audited once, under its own name
        seen[identity] = shown
        classified.append((kind, SourceFile(shown, data)))
    parse_sources(group_by_kind(classified), tree, facts)
    return facts


def _shown_under(raw: str, top: str, path: str) -> str:
    """`path` (found under the resolved root `top`) as it reads under the root the user named."""
    if path == top:
        return raw
    return os.path.join(raw, os.path.relpath(path, top))
