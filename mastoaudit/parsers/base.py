"""What every parser shares: the source file it reads, the error it raises, the fact it returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..model import Location

# A config file larger than this is not a config file; reading it whole would be the attack.
MAX_CONFIG_BYTES = 4 * 1024 * 1024


class ParseError(Exception):
    """Malformed input: reported as an error finding at the file and line, never a traceback."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


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
            raise ParseError(f"not valid UTF-8 (byte {exc.start})", line) from None
        if text.startswith("\ufeff"):
            text = text[1:]
        # CRLF and lone CR files are read as the tools that consume them would: line by line.
        return text.replace("\r\n", "\n").replace("\r", "\n")

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


class FileProvider(Protocol):
    """Reads files for parsers that follow references (nginx includes): local tree or SSH copy."""

    def read(self, path: str) -> bytes: ...

    def glob(self, pattern: str, relative_to: str | None = None) -> list[str]: ...
