"""Turn a set of config files (from any source) into facts: classify, parse, record problems.

The local tree collector and the SSH collector both end here, so a check sees the same fact
whether the file came from a repository or from a live host.
"""

from __future__ import annotations

import importlib
from collections import defaultdict

from ..facts import FactSet
from ..model import Location
from ..parsers import KINDS, Kind, ParseError, SourceFile
from ..parsers.base import FileProvider
from ..parsers.compose import settle_project_env


def parse_sources(sources: dict[str, list[SourceFile]], provider: FileProvider, facts: FactSet) -> None:
    """Parse classified sources (kind name -> files) into `facts`; bad input becomes a problem.

    A parser that fails in a way it did not foresee is a bug; the run still finishes, with an
    error finding that names the file and the exception's type, never its text (which could
    quote the file)."""
    for kind_name, files in sources.items():
        kind = KINDS[kind_name]
        module = importlib.import_module(f"mastoaudit.parsers.{kind.module}")
        build = getattr(module, f"build_{kind_name}", None)
        if build is not None:
            # Kinds whose files refer to each other (nginx includes) are parsed as a group.
            try:
                build(files, provider, facts)
            except RecursionError:
                facts.problem(kind_name, f"cannot parse the {kind_name} files: nested too deeply",
                              Location(files[0].path))
            except Exception as exc:  # a parser bug: reported, never a traceback that ends the run
                facts.problem(kind_name, f"cannot parse the {kind_name} files: the parser failed "
                              f"({type(exc).__name__}); please report this", Location(files[0].path))
            continue
        parse = getattr(module, f"parse_{kind_name}")
        for source in files:
            try:
                facts.add(kind_name, parse(source))
            except ParseError as exc:
                facts.problem(kind_name, f"cannot parse {source.path}: {exc.message}", Location(source.path, exc.line))
            except RecursionError:
                facts.problem(kind_name, f"cannot parse {source.path}: nested too deeply", Location(source.path))
            except Exception as exc:  # as above
                facts.problem(kind_name, f"cannot parse {source.path}: the parser failed ({type(exc).__name__}); "
                              "please report this", Location(source.path))
    settle_project_env(facts)


def group_by_kind(classified: list[tuple[Kind, SourceFile]]) -> dict[str, list[SourceFile]]:
    grouped: dict[str, list[SourceFile]] = defaultdict(list)
    for kind, source in classified:
        grouped[kind.name].append(source)
    return dict(grouped)
