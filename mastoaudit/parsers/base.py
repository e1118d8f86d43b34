"""What every parser shares: the source file it reads, the error it raises, the fact it returns."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol

from ..model import Location, SkipReason, Status
from ..templating import statement_lines

# A config file larger than this is not a config file; reading it whole would be the attack.
MAX_CONFIG_BYTES = 4 * 1024 * 1024


class ParseError(Exception):
    """Malformed input: reported as an error finding at the file and line, never a traceback.

    The message says what kind of problem it is in fixed words, and never repeats the file's text:
    the line may be half of a password wrapped onto a line of its own, and a file that does not
    parse has no secret values the engine knows to scrub. A name may be shown only when it is a
    word of the format's own vocabulary (`vocabulary`). tests/hostile/test_error_text.py holds
    every parser to this."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


# Includes count what they expand to, not only how deep they nest and which files they name: a
# glob of files that each include the glob again is exponential (8 files, depth 8: 16 million).
MAX_INCLUDED_FILES = 1000  # files read through includes for one configuration, repeats counted
MAX_INCLUDED_BYTES = 32 * 1024 * 1024  # and what they hold


class IncludeLimit(ParseError):
    """Includes nested or expanding past the bounds: the whole configuration is an input error
    (readers of an include let it through instead of reporting it at each level)."""


class ExpansionLimit(IncludeLimit):
    """Includes that expand past the bounds."""

    def __init__(self, line: int | None) -> None:
        super().__init__(f"includes expand to more than {MAX_INCLUDED_FILES} files or "
                         f"{MAX_INCLUDED_BYTES // (1024 * 1024)} MiB (files that include each other through a glob?)",
                         line)


class IncludeBudget:
    """What one configuration's includes may still read; `spend` raises ExpansionLimit past it."""

    def __init__(self, files: int = MAX_INCLUDED_FILES, size: int = MAX_INCLUDED_BYTES) -> None:
        self.files, self.size = files, size

    def spend(self, line: int | None, size: int = 0) -> None:
        self.files -= 1
        self.size -= size
        if self.files < 0 or self.size < 0:
            raise ExpansionLimit(line)


class IncludeReader(Protocol):
    """A reader of a format whose files include others (postgresql.conf, redis.conf)."""

    provider: FileProvider
    budget: IncludeBudget

    def read(self, source: SourceFile, depth: int = 0) -> None: ...

    def problem(self, message: str, where: Location, status: Status = ...) -> None: ...


def read_include(reader: IncludeReader, hit: str, where: Location, depth: int) -> None:
    """Read one included file into `reader` (spending its budget), or report why it could not be
    read; an IncludeLimit goes through: the whole configuration is refused, not this one include."""
    try:
        data = reader.provider.read(hit)
        reader.budget.spend(where.line, len(data))
        reader.read(SourceFile(hit, data), depth + 1)
    except (OSError, ValueError) as exc:
        reader.problem(f"cannot read {hit} (included at {where}): {exc}", where, Status.ERROR)
    except IncludeLimit:
        raise
    except ParseError as exc:
        reader.problem(f"cannot parse {hit} (included at {where}): {exc.message}", Location(hit, exc.line),
                       Status.ERROR)


def vocabulary(word: str, words: Collection[str], other: str = "a name", quote: bool = True) -> str:
    """`word` (in quotes) when it is one of `words` (a format's directive names, say), else `other`:
    how a parse error may name what it is about without repeating an unknown token."""
    if word not in words:
        return other
    return f'"{word}"' if quote else word


@dataclass(frozen=True)
class SourceFile:
    """One config file's bytes and the name it is shown under (a relative path, or host:path)."""

    path: str
    data: bytes

    @property
    def text(self) -> str:
        if b"\x00" in self.data[:8192]:
            raise ParseError("not a text file (binary content)", None)
        try:
            text = self.data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = self.data[: exc.start].count(b"\n") + 1
            raise ParseError("not valid UTF-8", line) from None
        if text.startswith("\ufeff"):
            text = text[1:]
        # CRLF and lone CR files are read as the tools that consume them would: line by line.
        return text.replace("\r\n", "\n").replace("\r", "\n")

    @property
    def config_text(self) -> str:
        """The text as a line-oriented format's parser reads it: a template's control statements
        (`{% if %}`, `{{- end }}`, `<% end %>`) blanked, line numbers kept; its expressions stay and
        make the values that hold them templated (mastoaudit.templating)."""
        return statement_lines(self.text)

    def at(self, line: int | None = None) -> Location:
        return Location(self.path, line)


@dataclass
class ConfigFact:
    """Base of parsed config facts: where it came from, and how to point at one of its lines."""

    path: str

    def at(self, line: int | None = None) -> Location:
        return Location(self.path, line)

    def secret_values(self) -> tuple[str, ...]:
        """Values that must never appear in a report (the engine scrubs them)."""
        return ()

    def why_nothing(self) -> tuple[SkipReason, str] | None:
        """When a check finds nothing to judge in this fact: why (an nginx file with no server
        block), for the skip the engine reports; None when the fact has nothing to say."""
        return None


class FileProvider(Protocol):
    """Reads files for parsers that follow references (nginx includes): local tree or SSH copy."""

    def read(self, path: str) -> bytes: ...

    def glob(self, pattern: str, relative_to: str | None = None) -> list[str]: ...
