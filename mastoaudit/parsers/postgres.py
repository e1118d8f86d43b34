"""postgresql.conf and pg_hba.conf, read the way the server reads them.

postgresql.conf: `name = value` or `name value`, '#' comments, single-quoted values with '' and
backslash escapes, the last value of a name wins, and include / include_if_exists / include_dir
are followed inside the audited tree. A data directory's postgresql.auto.conf (ALTER SYSTEM) is
read after the main file, as the server does.

pg_hba.conf: one rule a line (PostgreSQL 16 also allows a trailing backslash to continue it),
fields split on blanks, comma lists, double-quoted names, @file references (noted, not read) and
the PostgreSQL 16 include directives.
"""

from __future__ import annotations

import glob as globlib
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import templating
from ..facts import FactSet
from ..model import Location, Status
from .base import (
    ConfigFact,
    FileProvider,
    IncludeBudget,
    IncludeLimit,
    ParseError,
    SourceFile,
    read_include,
    vocabulary,
)

MAX_INCLUDE_DEPTH = 10  # the server's own limit (CONF_FILE_MAX_DEPTH)

_NAME_RX = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)*")
_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
# Multipliers to the base unit of memory (kB) and time (ms) parameters, as the server takes them.
MEMORY_UNITS = {"b": 1 / 1024, "kb": 1, "mb": 1024, "gb": 1024**2, "tb": 1024**3}
TIME_UNITS = {"us": 0.001, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}


# --- postgresql.conf ------------------------------------------------------------------------


@dataclass(frozen=True)
class PgSetting:
    name: str  # lower-case
    value: str  # unquoted, escapes resolved
    location: Location
    quoted: bool = False

    @property
    def templated(self) -> bool:
        return templating.is_templated(self.value, "config")

    def as_bool(self) -> bool | None:
        """on/off, true/false, yes/no, 1/0 and their unique prefixes, as the server accepts them."""
        text = self.value.strip().lower()
        if text in ("1", "0"):
            return text == "1"
        words = {word for word in ("true", "false", "yes", "no", "on", "off") if text and word.startswith(text)}
        return words.pop() in ("true", "yes", "on") if len(words) == 1 else None

    def as_number(self, units: dict[str, float]) -> float | None:
        """A number with an optional unit (MEMORY_UNITS in kB, TIME_UNITS in ms)."""
        match = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", self.value)
        if not match:
            return None
        number, unit = float(match[1]), match[2].lower()
        if not unit:
            return number
        return number * units[unit] if unit in units else None


@dataclass(frozen=True)
class IncludeRef:
    directive: str  # include, include_if_exists, include_dir (pg_hba: the same three)
    target: str
    location: Location
    files: tuple[str, ...] = ()  # what it resolved to inside the tree
    found: bool = True  # False: not in the audited tree (or not followed)


@dataclass
class PostgresConf(ConfigFact):
    settings: dict[str, PgSetting] = field(default_factory=dict)  # the value in force, by name
    includes: list[IncludeRef] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # every file read into it, main file first

    def get(self, name: str) -> PgSetting | None:
        return self.settings.get(name.lower())

    @property
    def unresolved(self) -> list[IncludeRef]:
        return [i for i in self.includes if not i.found]

    def overridable(self, setting: PgSetting | None) -> list[IncludeRef]:
        """Includes that were not read and come after `setting` (or anywhere, when it is unset)."""
        if setting is None:
            return self.unresolved
        return [i for i in self.unresolved if i.location.file != setting.location.file
                or (i.location.line or 0) > (setting.location.line or 0)]


def _unquote(text: str, start: int, line: int) -> tuple[str, int]:
    """Read a single-quoted value starting at text[start] == "'"; return it and the end index."""
    out: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "'":
            if text.startswith("''", i):
                out.append("'")
                i += 2
                continue
            return "".join(out), i + 1
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            octal = re.match(r"[0-7]{1,3}", text[i + 1:])
            if octal:
                out.append(chr(int(octal[0], 8)))
                i += 1 + len(octal[0])
                continue
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    raise ParseError("unterminated quoted string", line)


def _conf_lines(source: SourceFile):
    """Yield (line number, name, value, quoted) for each setting line of one file."""
    for number, raw in enumerate(source.config_text.split("\n"), start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        match = _NAME_RX.match(text)
        if not match:
            raise ParseError("syntax error: a line that does not start with a parameter name", number)
        name = match[0].lower()
        rest = text[match.end():].lstrip()
        if rest.startswith("="):
            rest = rest[1:].lstrip()
        if not rest or rest.startswith("#"):
            raise ParseError("a parameter without a value (a value wrapped onto its own line?)", number)
        if rest.startswith("'"):
            value, end = _unquote(rest, 0, number)
            quoted = True
        else:
            value = re.match(r"[^\s#']+", rest)[0]  # type: ignore[index]
            end, quoted = len(value), False
        tail = rest[end:].strip()
        if tail and not tail.startswith("#"):
            if templating.is_templated(rest, "config"):  # `x = {{ var }}`: keep the template, it is judged as such
                value, quoted = rest.split(" #", 1)[0].strip(), False
            else:
                raise ParseError("syntax error after a value (a second word, or an unquoted blank?)", number)
        yield number, name, value, quoted


# --- following includes inside the audited tree ----------------------------------------------


def _dirname(path: str) -> str | None:
    return path.rsplit("/", 1)[0] if "/" in path else None


def find_in_tree(provider: FileProvider, including: str, target: str, pattern: str = "",
                 glob: bool = False) -> list[str]:
    """Files a path names, looked up inside the tree: relative to the including file, or for an
    absolute path, from the tree's root and then beside the including file. `pattern` is added
    below a directory; `glob` keeps wildcards in `target` (redis includes take them)."""
    base = _dirname(including)
    escape = (lambda text: text) if glob else globlib.escape
    suffix = "/" + pattern if pattern else ""
    if not target.startswith("/"):
        return provider.glob(escape(target) + suffix, base)
    hits = provider.glob(escape(target.lstrip("/")) + suffix)
    if not hits:
        hits = provider.glob(escape(target.rstrip("/").rsplit("/", 1)[-1]) + suffix, base)
    return hits


class _Reader:
    """Reads one configuration (a file and what it includes) for either format."""

    def __init__(self, kind: str, provider: FileProvider | None, facts: FactSet | None) -> None:
        self.kind, self.provider, self.facts = kind, provider, facts
        self.includes: list[IncludeRef] = []
        self.files: list[str] = []
        self.stack: list[str] = []  # the chain of files being read, to catch a file including itself
        self.budget = IncludeBudget()

    def problem(self, message: str, where: Location, status: Status = Status.WARN) -> None:
        if self.facts is not None:
            self.facts.problem(self.kind, message, where, status)

    def include(self, source: SourceFile, number: int, directive: str, target: str, depth: int) -> None:
        where = Location(source.path, number)
        if not target:
            raise ParseError(f"{vocabulary(directive, INCLUDE_DIRECTIVES)} needs a file name", number)
        if self.provider is None or templating.is_templated(target, "config"):
            self.includes.append(IncludeRef(directive, target, where, found=False))
            return
        if depth >= MAX_INCLUDE_DEPTH:
            raise IncludeLimit(f"{vocabulary(directive, INCLUDE_DIRECTIVES)} nested more than {MAX_INCLUDE_DEPTH} deep "
                               "(files that include each other?)", number)
        if directive == "include_dir":
            hits = [h for h in find_in_tree(self.provider, source.path, target, "*.conf")
                    if not h.rsplit("/", 1)[-1].startswith(".")]
            hits.sort(key=lambda h: h.rsplit("/", 1)[-1].encode())
            # An empty or absent directory reads as nothing, as the server reads an empty one.
            self.includes.append(IncludeRef(directive, target, where, tuple(hits)))
        else:
            hits = find_in_tree(self.provider, source.path, target)[:1]
            found = bool(hits) or directive == "include_if_exists"
            self.includes.append(IncludeRef(directive, target, where, tuple(hits), found))
            if not hits and directive == "include":
                self.problem(f"{target} (included at {where}) is not in the audited tree: its settings were not "
                             "audited", where)
        for hit in hits:
            if hit in self.stack:  # the server refuses the whole configuration (nesting depth exceeded)
                raise IncludeLimit(f"{vocabulary(directive, INCLUDE_DIRECTIVES)}: the file includes itself", number)
            read_include(self, hit, where, depth)

    def read(self, source: SourceFile, depth: int = 0) -> None:
        self.files.append(source.path)
        self.stack.append(source.path)
        try:
            self.read_lines(source, depth)
        finally:
            self.stack.pop()

    def read_lines(self, source: SourceFile, depth: int) -> None:  # one per format
        raise NotImplementedError


class _ConfReader(_Reader):
    def __init__(self, conf: PostgresConf, provider: FileProvider | None, facts: FactSet | None) -> None:
        super().__init__("postgresql_conf", provider, facts)
        self.conf = conf

    def read_lines(self, source: SourceFile, depth: int) -> None:
        for number, name, value, quoted in _conf_lines(source):
            if name in ("include", "include_if_exists", "include_dir"):
                self.include(source, number, name, value, depth)
            else:
                self.conf.settings[name] = PgSetting(name, value, Location(source.path, number), quoted)


def _read_conf(conf: PostgresConf, source: SourceFile, provider: FileProvider | None,
               facts: FactSet | None) -> None:
    reader = _ConfReader(conf, provider, facts)
    reader.read(source)
    conf.includes.extend(reader.includes)
    conf.files.extend(reader.files)


def parse_postgresql_conf(source: SourceFile, provider: FileProvider | None = None,
                          facts: FactSet | None = None) -> PostgresConf:
    conf = PostgresConf(source.path)
    _read_conf(conf, source, provider, facts)
    return conf


def _is_auto(path: str) -> bool:
    return path.endswith("postgresql.auto.conf")


def _auto_for(conf: PostgresConf, autos: list[SourceFile]) -> SourceFile | None:
    """The postgresql.auto.conf of this configuration's data directory, if the tree holds it."""
    data_dir = conf.get("data_directory")
    in_data_dir = None
    if data_dir is not None and not data_dir.templated:
        in_data_dir = "/" + data_dir.value.strip("/") + "/postgresql.auto.conf"
    for auto in autos:
        if _dirname(auto.path) == _dirname(conf.path):
            return auto
        if in_data_dir and ("/" + auto.path).endswith(in_data_dir):
            return auto
    return None


def _build(kind: str, sources: list[SourceFile], facts: FactSet,
           parse: Callable[[SourceFile], ConfigFact], mains: list[SourceFile]) -> list[ConfigFact]:
    """Parse the main files, then any file no main file included (it is judged on its own)."""
    built: list[ConfigFact] = []
    for source in mains:
        try:
            fact = parse(source)
        except ParseError as exc:
            facts.problem(kind, f"cannot parse {source.path}: {exc.message}", Location(source.path, exc.line))
            continue
        built.append(fact)
    read = {path for fact in built for path in getattr(fact, "files", [])}
    for source in sources:
        if source in mains or source.path in read or source.path.rsplit("/", 1)[-1].startswith("."):
            continue  # read already, or a hidden drop-in the server never reads
        try:
            built.append(parse(source))
        except ParseError as exc:
            facts.problem(kind, f"cannot parse {source.path}: {exc.message}", Location(source.path, exc.line))
    return built


def build_postgresql_conf(sources: list[SourceFile], provider: FileProvider, facts: FactSet) -> None:
    mains = [s for s in sources if s.path.rsplit("/", 1)[-1] == "postgresql.conf"]
    autos = [s for s in sources if _is_auto(s.path)]
    confs = _build("postgresql_conf", [s for s in sources if not _is_auto(s.path)], facts,
                   lambda s: parse_postgresql_conf(s, provider, facts), mains)
    used: set[str] = set()
    for conf in confs:
        assert isinstance(conf, PostgresConf)
        auto = _auto_for(conf, [a for a in autos if a.path not in used])
        if auto is not None:
            used.add(auto.path)
            try:
                _read_conf(conf, auto, provider, facts)  # ALTER SYSTEM values override the files
            except ParseError as exc:
                facts.problem("postgresql_conf", f"cannot parse {auto.path}: {exc.message}",
                              Location(auto.path, exc.line))
        facts.add("postgresql_conf", conf)
    for auto in autos:
        if auto.path not in used:
            try:
                facts.add("postgresql_conf", parse_postgresql_conf(auto, provider, facts))
            except ParseError as exc:
                facts.problem("postgresql_conf", f"cannot parse {auto.path}: {exc.message}",
                              Location(auto.path, exc.line))


# --- pg_hba.conf ------------------------------------------------------------------------------

INCLUDE_DIRECTIVES = ("include", "include_if_exists", "include_dir")
_SINGLE_FIELDS = ("connection type", "address", "authentication method", "IP mask")
CONNECTION_TYPES = ("local", "host", "hostssl", "hostnossl", "hostgssenc", "hostnogssenc")
METHODS = ("trust", "reject", "scram-sha-256", "md5", "password", "gss", "sspi", "ident", "peer", "pam",
           "ldap", "radius", "cert", "bsd")
ADDRESS_KEYWORDS = ("all", "samehost", "samenet")
SECRET_OPTIONS = ("ldapbindpasswd", "radiussecrets")
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class HbaRule:
    conn_type: str
    databases: tuple[str, ...]  # list items as written; a quoted item keeps its quotes ("all" is a name)
    users: tuple[str, ...]
    address: str | None  # as written (address/mask shown as CIDR); None for local
    network: IpNetwork | None  # the parsed network, when the address is an IP range
    method: str
    options: dict[str, str]
    location: Location
    refs: tuple[str, ...] = ()  # @file references in the database or user field (not read)

    @property
    def text(self) -> str:
        """The rule as one line, secret option values (an LDAP bind password) left out."""
        parts = [self.conn_type, ",".join(self.databases), ",".join(self.users)]
        if self.address is not None:
            parts.append(self.address)
        parts.append(self.method)
        parts += [f"{k}={'[redacted]' if k in SECRET_OPTIONS else v}" for k, v in self.options.items()]
        return " ".join(parts)

    @property
    def templated(self) -> bool:
        return templating.is_templated(self.text, "config")

    @property
    def all_databases(self) -> bool:
        return "all" in self.databases

    @property
    def all_users(self) -> bool:
        return "all" in self.users

    @property
    def any_address(self) -> bool:
        """Matches every client address: `all`, 0.0.0.0/0 or ::/0."""
        return self.address == "all" or (self.network is not None and self.network.prefixlen == 0)

    @property
    def loopback_only(self) -> bool:
        if self.conn_type == "local":
            return True
        if self.address in ("samehost", "localhost"):
            return True
        return self.network is not None and self.network.is_loopback


@dataclass
class PgHba(ConfigFact):
    rules: list[HbaRule] = field(default_factory=list)
    includes: list[IncludeRef] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def unresolved(self) -> list[IncludeRef]:
        return [i for i in self.includes if not i.found]

    def secret_values(self) -> tuple[str, ...]:
        found = [v for r in self.rules for k, v in r.options.items() if k in SECRET_OPTIONS and v]
        # radiussecrets is a comma-separated list: each one is a secret
        return tuple(found + [part for v in found for part in v.split(",") if part])


def _hba_fields(text: str, number: int) -> list[list[str]]:
    """Split a rule into fields, each a list of comma-separated items; quoted items keep quotes."""
    fields: list[list[str]] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] in " \t":
            i += 1
            continue
        if text[i] == "#":
            break
        items: list[str] = []
        while True:
            item, in_quotes = [], False
            while i < n and (in_quotes or text[i] not in " \t,#"):
                close = None if in_quotes else templating.CLOSING.get(text[i:i + 2])
                end = text.find(close, i + 2) if close else -1
                if close and end >= 0:  # a template expression is one token, blanks and all
                    item.append(text[i:end + len(close)])
                    i = end + len(close)
                    continue
                if text[i] == '"':
                    in_quotes = not in_quotes
                item.append(text[i])
                i += 1
            if in_quotes:
                raise ParseError("unterminated quoted field", number)
            items.append("".join(item))
            if i < n and text[i] == ",":
                i += 1
                continue
            break
        if any(not item for item in items):
            raise ParseError("empty item in a comma-separated list", number)
        fields.append(items)
    return fields


def _mask_bits(mask: str, number: int) -> int:
    try:
        packed = int(ipaddress.ip_address(mask))
        width = 32 if ":" not in mask else 128
    except ValueError:
        raise ParseError("invalid IP mask", number) from None
    bits = bin(packed)[2:].zfill(width)
    if "01" in bits:
        raise ParseError("invalid IP mask (not contiguous)", number)
    return bits.count("1")


def _single(fieldset: list[str], what: str, number: int) -> str:
    if len(fieldset) != 1:
        raise ParseError(f"the {vocabulary(what, _SINGLE_FIELDS, 'field', quote=False)} cannot be a list", number)
    return fieldset[0]


def _hba_rule(fields: list[list[str]], where: Location) -> HbaRule:
    number = where.line
    conn_type = _single(fields[0], "connection type", number).lower()
    if conn_type not in CONNECTION_TYPES:
        raise ParseError("invalid connection type", number)
    need = 4 if conn_type == "local" else 5
    if len(fields) < need:
        raise ParseError("end of line before the authentication method", number)
    databases, users = tuple(fields[1]), tuple(fields[2])
    rest = fields[3:]
    address = network = None
    if conn_type != "local":
        address = _single(rest.pop(0), "address", number)
        if not templating.is_templated(address, "config") and address.lower() not in ADDRESS_KEYWORDS:
            network, address = _network(address, rest, number)
    if not rest:
        raise ParseError("end of line before the authentication method", number)
    method = _single(rest.pop(0), "authentication method", number).lower()
    if method not in METHODS and not templating.is_templated(method, "config"):
        raise ParseError("invalid authentication method", number)
    options: dict[str, str] = {}
    for option in rest:
        for item in option:
            name, eq, value = item.partition("=")
            if not eq:
                raise ParseError("an authentication option not in name=value form", number)
            options[name] = value.strip('"')
    refs = tuple(i for i in databases + users if i.startswith("@"))
    return HbaRule(conn_type, databases, users, address, network, method, options, where, refs)


def _network(address: str, rest: list[list[str]], number: int) -> tuple[IpNetwork | None, str]:
    """An address field (and the mask field after a bare IP) as a network; hostnames give None."""
    try:
        if "/" in address:
            return ipaddress.ip_network(address, strict=False), address
        ip = ipaddress.ip_address(address)
    except ValueError:
        numeric = re.fullmatch(r"[\d.:/a-fA-F]+", address) and any(c.isdigit() for c in address.split("/")[0][:1])
        if numeric or "/" in address:  # a CIDR that is not one: host names have no '/'
            raise ParseError("invalid IP address", number) from None
        return None, address  # a host name, or a .domain suffix
    if not rest:
        raise ParseError("end of line before the authentication method", number)
    mask = _single(rest.pop(0), "IP mask", number)
    bits = _mask_bits(mask, number)
    return ipaddress.ip_network(f"{ip}/{bits}", strict=False), f"{ip}/{bits}"


class _HbaReader(_Reader):
    def __init__(self, hba: PgHba, provider: FileProvider | None, facts: FactSet | None) -> None:
        super().__init__("pg_hba", provider, facts)
        self.hba = hba

    def read_lines(self, source: SourceFile, depth: int) -> None:
        pending, start = "", 0
        for number, raw in enumerate(source.config_text.split("\n"), start=1):
            text = raw.rstrip()
            if not pending:
                start = number
            if text.endswith("\\") and not text.lstrip().startswith("#"):
                pending += text[:-1] + " "
                continue
            text, pending = pending + text, ""
            fields = _hba_fields(text, start)
            if not fields:
                continue
            first = fields[0][0].lower()
            if first in ("include", "include_if_exists", "include_dir"):
                if len(fields) != 2 or len(fields[1]) != 1:
                    raise ParseError(f"{vocabulary(first, INCLUDE_DIRECTIVES)} takes one file name", start)
                self.include(source, start, first, fields[1][0].strip('"'), depth)
                continue
            self.hba.rules.append(_hba_rule(fields, Location(source.path, start)))


def parse_pg_hba(source: SourceFile, provider: FileProvider | None = None, facts: FactSet | None = None) -> PgHba:
    hba = PgHba(source.path)
    reader = _HbaReader(hba, provider, facts)
    reader.read(source)
    hba.includes, hba.files = reader.includes, reader.files
    return hba


def build_pg_hba(sources: list[SourceFile], provider: FileProvider, facts: FactSet) -> None:
    mains = [s for s in sources if s.path.endswith("pg_hba.conf")] or list(sources)
    for hba in _build("pg_hba", sources, facts, lambda s: parse_pg_hba(s, provider, facts), mains):
        facts.add("pg_hba", hba)
