"""Where checks come from: the built-in `checks/` package, entry points, and --checks-dir."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
from importlib.metadata import entry_points
from pathlib import Path

from . import checkdef
from .checkdef import LEGACY_IDS, Check
from .threats import ThreatCatalogue

ENTRY_POINT_GROUP = "mastoaudit.checks"


class CheckLoadError(Exception):
    """A check module could not be loaded or declares bad metadata (exit code 2)."""


class Registry:
    def __init__(self, catalogue: ThreatCatalogue) -> None:
        self.catalogue = catalogue
        self._checks: dict[str, Check] = {}

    def __iter__(self):
        return iter(sorted(self._checks.values(), key=lambda c: c.meta.id))

    def __len__(self) -> int:
        return len(self._checks)

    def get(self, check_id: str) -> Check | None:
        return self._checks.get(check_id)

    def _adopt(self, origin: str) -> None:
        for found in checkdef.take_defined():
            meta = found.meta
            if origin == "builtin" and meta.qualified_id != meta.id and meta.id not in LEGACY_IDS:
                raise CheckLoadError(f"check {meta.id}: a built-in check's id starts with its component "
                                     f"({meta.component}.…)")
            if meta.id in self._checks:
                raise CheckLoadError(f"{origin}: check id {meta.id} is already defined by "
                                     f"{self._checks[meta.id].origin}")
            unknown = [t for t in meta.threats if t not in self.catalogue.threats]
            if unknown:
                raise CheckLoadError(f"{origin}: check {meta.id} cites unknown threat ids {unknown}")
            self._checks[meta.id] = Check(meta=meta, run=found.run, origin=origin)

    def load_builtin(self) -> None:
        import mastoaudit_checks

        checkdef.take_defined()  # drop anything defined outside a load
        for info in sorted(pkgutil.iter_modules(mastoaudit_checks.__path__), key=lambda i: i.name):
            name = f"mastoaudit_checks.{info.name}"
            if name in sys.modules:
                # Already imported (tests, a second registry): re-run it so its checks are defined again.
                importlib.reload(sys.modules[name])
            else:
                importlib.import_module(name)
            self._adopt("builtin")

    def load_entry_points(self) -> None:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                ep.load()
            except Exception as exc:  # a broken plugin is reported, not a traceback
                raise CheckLoadError(f"entry point {ep.name} ({ep.value}) failed to load: {exc}") from exc
            self._adopt(f"entry point {ep.name}")

    def load_directory(self, directory: Path) -> None:
        if not directory.is_dir():
            raise CheckLoadError(f"--checks-dir {directory}: not a directory")
        for path in sorted(directory.glob("*.py")):
            module_name = f"mastoaudit_local_checks.{path.stem}"
            spec = importlib.util.spec_from_file_location(module_name, path)
            if spec is None or spec.loader is None:
                raise CheckLoadError(f"{path}: cannot be imported")
            module = importlib.util.module_from_spec(spec)
            try:
                spec.loader.exec_module(module)
            except Exception as exc:
                checkdef.take_defined()
                raise CheckLoadError(f"{path}: {type(exc).__name__}: {exc}") from exc
            self._adopt(str(path))


def default_registry(checks_dirs: list[Path] | None = None, plugins: bool = True) -> Registry:
    registry = Registry(ThreatCatalogue.load())
    registry.load_builtin()
    if plugins:
        registry.load_entry_points()
    for directory in checks_dirs or []:
        registry.load_directory(directory)
    return registry
