"""sshd_config, with Include resolved and sshd's rule that the first value of a keyword wins.

The same parser reads `sshd -T` output (the effective config, one lower-case keyword a line).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from ..facts import FactSet
from ..model import Location
from .base import ConfigFact, FileProvider, IncludeBudget, IncludeLimit, ParseError, SourceFile

MAX_INCLUDE_DEPTH = 8

# What sshd does with a keyword left unset. OpenSSH's own defaults, and FreeBSD's build of it,
# which changes four of them (its stock sshd_config says so in a comment, and lists them commented
# out): root and plain passwords refused, but PAM on and keyboard-interactive left on, so PAM
# still asks for the password.
OPENSSH_DEFAULTS = {"permitrootlogin": "prohibit-password", "passwordauthentication": "yes",
                    "kbdinteractiveauthentication": "yes", "usepam": "no"}
FREEBSD_DEFAULTS = {**OPENSSH_DEFAULTS, "permitrootlogin": "no", "passwordauthentication": "no", "usepam": "yes"}
_FREEBSD_STOCK = re.compile(r"^\s*#.*\b(FreeBSD's defaults|VersionAddendum\s+FreeBSD)", re.MULTILINE)


@dataclass(frozen=True)
class SshdSetting:
    keyword: str  # lower-case
    value: str
    location: Location


@dataclass
class SshdConfig(ConfigFact):
    settings: dict[str, SshdSetting] = field(default_factory=dict)  # global section, first value wins
    match_blocks: list[tuple[str, Location]] = field(default_factory=list)
    defaults_of: str = "OpenSSH"  # whose compiled-in defaults apply to keywords left unset

    def get(self, keyword: str) -> SshdSetting | None:
        return self.settings.get(keyword.lower())

    def default(self, keyword: str) -> str | None:
        """The value sshd uses when the keyword is not set (None: not a keyword this knows)."""
        table = FREEBSD_DEFAULTS if self.defaults_of == "FreeBSD" else OPENSSH_DEFAULTS
        return table.get(keyword.lower())

    def value(self, keyword: str) -> str | None:
        """The value in force, set or by default, lower-cased."""
        setting = self.get(keyword)
        return setting.value.lower() if setting is not None else self.default(keyword)


def _lines(source: SourceFile):
    for number, raw in enumerate(source.config_text.split("\n"), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "=" in line.split(None, 1)[0]:
            keyword, _, value = line.partition("=")
        else:
            parts = line.split(None, 1)
            keyword, value = parts[0], parts[1] if len(parts) > 1 else ""
        yield number, keyword.strip().lower(), value.strip()


def _read_into(config: SshdConfig, source: SourceFile, provider: FileProvider | None, facts: FactSet | None,
               depth: int, in_match: list[bool], budget: IncludeBudget) -> None:
    for number, keyword, value in _lines(source):
        where = Location(source.path, number)
        if keyword == "match":
            in_match[0] = True
            config.match_blocks.append((value, where))
            continue
        if keyword == "include" and provider is not None:
            if depth >= MAX_INCLUDE_DEPTH:
                raise IncludeLimit(f"Include nested more than {MAX_INCLUDE_DEPTH} deep "
                                   "(files that include each other?)", number)
            try:
                patterns = shlex.split(value)
            except ValueError:
                raise ParseError("an Include value sshd cannot split (unbalanced quotes?)", number) from None
            for pattern in patterns:
                rel = pattern.lstrip("/")
                base = source.path.rsplit("/", 1)[0] if "/" in source.path else None
                # /etc/ssh/sshd_config.d/*.conf is looked up beside the main file, inside the tree.
                hits = provider.glob(rel.split("ssh/", 1)[-1], base) or provider.glob(rel)
                for hit in hits:
                    try:
                        included = SourceFile(hit, provider.read(hit))
                        budget.spend(number, len(included.data))
                        _read_into(config, included, provider, facts, depth + 1, in_match, budget)
                    except (OSError, ValueError) as exc:
                        if facts is not None:
                            facts.problem("sshd_config", f"cannot read included {hit}: {exc}", where)
            continue
        if in_match[0]:
            continue  # settings under Match apply conditionally; the global value is what we judge
        if not value:
            raise ParseError("a keyword without a value", number)
        config.settings.setdefault(keyword, SshdSetting(keyword, value, where))


def parse_sshd_config(source: SourceFile, provider: FileProvider | None = None,
                      facts: FactSet | None = None) -> SshdConfig:
    config = SshdConfig(source.path)
    try:
        if _FREEBSD_STOCK.search(source.text):
            config.defaults_of = "FreeBSD"
    except ParseError:
        pass  # not text: _read_into says so
    _read_into(config, source, provider, facts, 0, [False], IncludeBudget())
    return config


def build_sshd_config(sources: list[SourceFile], provider: FileProvider, facts: FactSet) -> None:
    """Main files (sshd_config) are facts; drop-ins under sshd_config.d are read through Include."""
    mains = [s for s in sources if "sshd_config.d/" not in s.path]
    dropins = [s for s in sources if "sshd_config.d/" in s.path]
    if not mains:
        mains = dropins  # a tree with only drop-ins: judge each on its own
    for source in mains:
        try:
            facts.add("sshd_config", parse_sshd_config(source, provider, facts))
        except ParseError as exc:
            facts.problem("sshd_config", f"cannot parse {source.path}: {exc.message}", Location(source.path, exc.line))
