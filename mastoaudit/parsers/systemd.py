"""systemd unit files (systemd.syntax(7)), with drop-ins applied in the order systemd applies them.

Sections in brackets; `Key=value` lines; a key may repeat (list settings accumulate, an empty
assignment resets them; other settings: the last one wins); a line ending in a backslash goes on
on the next line (comment lines inside it are skipped); lines starting with # or ; are comments.
Keys are case-sensitive, as systemd reads them.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from .. import templating
from ..facts import FactSet
from ..model import Location, Status
from .base import ConfigFact, FileProvider, ParseError, SourceFile

_TRUE = {"1", "yes", "y", "true", "t", "on"}
_FALSE = {"0", "no", "n", "false", "f", "off"}
_SECRET_ENV = re.compile(r"PASS|SECRET|TOKEN|PRIVATE|_KEY$|KEY_BASE|CREDENTIAL", re.IGNORECASE)


def parse_bool(text: str) -> bool | None:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return None


@dataclass(frozen=True)
class UnitSetting:
    section: str
    key: str
    value: str
    location: Location


@dataclass
class SystemdUnit(ConfigFact):
    name: str = ""  # the unit's file name, e.g. mastodon-web.service
    settings: list[UnitSetting] = field(default_factory=list)  # main file, then drop-ins in order
    dropins: list[str] = field(default_factory=list)
    sections: dict[str, Location] = field(default_factory=dict)
    ignored_lines: list[tuple[Location, str]] = field(default_factory=list)  # systemd skips these lines

    def assignments(self, key: str, section: str = "Service") -> list[UnitSetting]:
        return [s for s in self.settings if s.section == section and s.key == key]

    def last(self, key: str, section: str = "Service") -> UnitSetting | None:
        """The assignment in force for a single-valued setting (the last one wins)."""
        found = self.assignments(key, section)
        return found[-1] if found else None

    def items(self, key: str, section: str = "Service") -> list[tuple[str, Location]]:
        """A list setting's words in force: each assignment adds, an empty one resets."""
        words: list[tuple[str, Location]] = []
        for setting in self.assignments(key, section):
            if not setting.value.strip():
                words = []
                continue
            words.extend((w, setting.location) for w in split_words(setting.value))
        return words

    def boolean(self, key: str, section: str = "Service") -> tuple[bool | None, UnitSetting | None]:
        setting = self.last(key, section)
        if setting is None:
            return None, None
        return parse_bool(setting.value), setting

    @property
    def exec_start(self) -> str:
        return " ".join(s.value for s in self.assignments("ExecStart") if s.value.strip())

    @property
    def role(self) -> str | None:
        """web | sidekiq | streaming | mastodon (another Mastodon process) | None, from the command."""
        command = self.exec_start
        if not command or re.match(r"^[-@:+!]*(/usr)?/bin/(echo|true)\b", command):
            return None  # a wrapper (mastodon-streaming.service starting its @ instances) runs nothing
        if re.search(r"\bpuma\b|rails s(erver)?\b", command):
            return "web"
        if re.search(r"\bsidekiq\b", command):
            return "sidekiq"
        if "streaming" in command:
            return "streaming"
        if re.search(r"\bbundle\b|\brails\b|\bruby\b|\bnode\b|prometheus", command):
            return "mastodon"
        return None

    @property
    def is_mastodon(self) -> bool:
        """A unit that runs one of Mastodon's processes (by its name or by what it runs)."""
        if self.role is None:
            return False
        if self.name.lower().startswith("mastodon"):
            return True
        where = " ".join([self.exec_start] + [s.value for s in self.assignments("WorkingDirectory")])
        return "mastodon" in where.lower()

    @property
    def has_service(self) -> bool:
        return "Service" in self.sections

    def secret_values(self) -> tuple[str, ...]:
        found = []
        for setting in self.assignments("Environment"):
            for word in split_words(setting.value):
                key, sep, value = word.partition("=")
                if sep and _SECRET_ENV.search(key) and len(value) >= 4 \
                        and not templating.is_templated(value, "systemd"):
                    found.append(value)
        return tuple(found)


def split_words(value: str) -> list[str]:
    """Split a list value the way systemd does for most list settings (quotes group words)."""
    try:
        return shlex.split(value, comments=False, posix=True)
    except ValueError:
        return value.split()


def _logical_lines(text: str):
    """Yield (first line number, joined text) with backslash continuations applied."""
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.split("\n"), start=1):
        stripped = raw.strip()
        if stripped[:1] in ("#", ";"):
            continue  # comments never continue, and are skipped inside a continued line
        if not pending:
            start = number
        if raw.rstrip().endswith("\\"):
            pending.append(raw.rstrip()[:-1])
            continue
        pending.append(raw)
        yield start, " ".join(pending)
        pending = []
    if pending:
        yield start, " ".join(pending)


def read_into(unit: SystemdUnit, source: SourceFile) -> None:
    """Add one file's settings to `unit`; a file with a bad section header adds nothing."""
    section: str | None = None
    settings: list[UnitSetting] = []
    sections: dict[str, Location] = {}
    ignored: list[tuple[Location, str]] = []
    for number, line in _logical_lines(source.config_text):
        text = line.strip()
        if not text or text[0] in "#;":
            continue
        where = Location(source.path, number)
        if text.startswith("["):
            if not text.endswith("]") or len(text) < 3 or "]" in text[1:-1]:
                raise ParseError("invalid section header", number)
            section = text[1:-1]
            sections.setdefault(section, where)
            continue
        key, sep, value = text.partition("=")
        if not sep:
            ignored.append((where, "no '=' on this line: systemd ignores it"))
            continue
        key = key.strip()
        if not key or not re.fullmatch(r"[A-Za-z0-9_.-]+", key):
            ignored.append((where, "not a valid key: systemd ignores this line"))
            continue
        if section is None:
            ignored.append((where, "assignment before any [Section]: systemd ignores it"))
            continue
        settings.append(UnitSetting(section, key, value.strip(), where))
    unit.settings.extend(settings)
    unit.ignored_lines.extend(ignored)
    for name, where in sections.items():
        unit.sections.setdefault(name, where)


def parse_systemd_unit(source: SourceFile) -> SystemdUnit:
    base = source.path.rsplit("/", 1)[-1]
    unit = SystemdUnit(source.path, name=templating.template_name(base) or base)  # a template: the unit it renders
    read_into(unit, source)
    return unit


def _unit_dir_rank(path: str) -> int:
    """Where a unit file sits in systemd's search path: /etc wins over /run over /lib."""
    lowered = "/" + path.lower()
    for rank, marker in enumerate(("/etc/systemd/", "/run/systemd/", "/usr/local/lib/systemd/")):
        if marker in lowered:
            return rank
    return 3


def build_systemd_unit(sources: list[SourceFile], provider: FileProvider, facts: FactSet) -> None:
    """Units are facts; `<unit>.d/*.conf` drop-ins are applied to their unit; enablement links
    (`*.wants/`, `*.requires/`) are the same unit seen twice and are skipped."""
    units: list[SourceFile] = []
    dropins: dict[str, list[SourceFile]] = {}
    for source in sources:
        parts = source.path.replace("\\", "/").split("/")
        folder = parts[-2] if len(parts) > 1 else ""
        if folder.endswith((".wants", ".requires", ".upholds")):
            continue
        if folder.endswith(".d") and parts[-1].endswith(".conf"):
            dropins.setdefault(folder[:-2], []).append(source)
        else:
            units.append(source)
    # A unit in /etc/systemd/system masks the one of the same name in /lib/systemd/system.
    best: dict[str, SourceFile] = {}
    for source in sorted(units, key=lambda s: _unit_dir_rank(s.path)):
        key = source.path.rsplit("/", 1)[-1] if "systemd/" in source.path else source.path
        best.setdefault(key, source)
    for source in best.values():
        try:
            unit = parse_systemd_unit(source)
        except ParseError as exc:
            facts.problem("systemd_unit", f"cannot parse {source.path}: {exc.message}",
                          Location(source.path, exc.line))
            continue
        for dropin in sorted(dropins.get(unit.name, []), key=lambda s: s.path.rsplit("/", 1)[-1]):
            try:
                read_into(unit, dropin)
                unit.dropins.append(dropin.path)
            except ParseError as exc:  # systemd drops a broken drop-in; the unit is judged without it
                facts.problem("systemd_unit", f"cannot parse {dropin.path}: {exc.message}",
                              Location(dropin.path, exc.line))
        for where, why in unit.ignored_lines:
            facts.problem("systemd_unit", why, where, Status.WARN)
        facts.add("systemd_unit", unit)
