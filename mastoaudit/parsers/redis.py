"""redis.conf, split into arguments the way redis-server splits it, with includes followed.

A line is `directive arg ...`; '#' starts a comment only at the start of a line (`requirepass
a#b` is the password "a#b"); "..." understands backslash escapes, '...' only \\'. For one-value
directives the last one wins (a later `bind` replaces an earlier one); `rename-command`, `user`
and `save` add up. ACL users come from `user` lines or from the `aclfile` (never both: the server
refuses that), and replace what `requirepass` says about the default user.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import templating
from ..facts import FactSet
from ..model import Location, Status
from .base import ConfigFact, FileProvider, IncludeBudget, IncludeLimit, ParseError, SourceFile, read_include
from .postgres import IncludeRef, find_in_tree

MAX_INCLUDE_DEPTH = 8
SECRET_DIRECTIVES = ("requirepass", "masterauth", "tls-key-file-pass", "tls-client-key-file-pass")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "a": "\a"}

# ACL categories of the commands the checks reason about (from `COMMAND INFO` of Redis 7).
COMMAND_CATEGORIES: dict[str, frozenset[str]] = {
    "flushall": frozenset({"keyspace", "write", "slow", "dangerous"}),
    "flushdb": frozenset({"keyspace", "write", "slow", "dangerous"}),
    "config": frozenset({"admin", "slow", "dangerous"}),
    "debug": frozenset({"admin", "slow", "dangerous"}),
    "module": frozenset({"admin", "slow", "dangerous"}),
    "replicaof": frozenset({"admin", "slow", "dangerous"}),
    "slaveof": frozenset({"admin", "slow", "dangerous"}),
    "keys": frozenset({"keyspace", "read", "slow", "dangerous"}),
    "info": frozenset({"slow", "dangerous"}),
    "eval": frozenset({"slow", "scripting"}),
    "evalsha": frozenset({"slow", "scripting"}),
    "script": frozenset({"slow", "scripting"}),
}


def split_args(line: str, number: int) -> list[str]:
    """Split one config line into arguments (redis' sdssplitargs)."""
    args: list[str] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i].isspace():
            i += 1
        if i >= n:
            return args
        current: list[str] = []
        quote = ""
        while i < n:
            ch = line[i]
            if quote == '"':
                if ch == "\\" and i + 1 < n:
                    nxt = line[i + 1]
                    hexpart = line[i + 2:i + 4]
                    if nxt == "x" and len(hexpart) == 2 and all(c in "0123456789abcdefABCDEF" for c in hexpart):
                        current.append(chr(int(hexpart, 16)))
                        i += 4
                        continue
                    current.append(_ESCAPES.get(nxt, nxt))
                    i += 2
                    continue
            elif quote == "'" and ch == "\\" and line[i + 1:i + 2] == "'":
                current.append("'")
                i += 2
                continue
            if quote and ch == quote:
                if i + 1 < n and not line[i + 1].isspace():
                    raise ParseError("unbalanced quotes (a closing quote must be followed by a space)", number)
                i += 1
                break
            close = None if quote else templating.CLOSING.get(line[i:i + 2])
            end = line.find(close, i + 2) if close and close != "}" else -1
            if end >= 0:  # a template expression ({{ var }}, <%= x %>) is one token, blanks and all
                current.append(line[i:end + len(close)])
                i = end + len(close)
                continue
            if quote:
                current.append(ch)
            elif ch.isspace():
                break
            elif ch in "\"'":
                quote = ch
            else:
                current.append(ch)
            i += 1
        else:
            if quote:
                raise ParseError("unbalanced quotes", number)
        args.append("".join(current))


@dataclass(frozen=True)
class RedisDirective:
    name: str  # lower-case
    args: tuple[str, ...]
    location: Location

    @property
    def value(self) -> str:
        return " ".join(self.args)

    @property
    def templated(self) -> bool:
        return any(templating.is_templated(a, "config") for a in self.args)


@dataclass
class AclState:
    """What one ACL user may do, after its rules are applied."""

    enabled: bool = False
    nopass: bool = False
    passwords: list[str] = field(default_factory=list)  # clear-text >password rules
    hashes: int = 0  # #<sha256> rules
    commands: list[str] = field(default_factory=list)
    selectors: list[list[str]] = field(default_factory=list)

    @property
    def has_password(self) -> bool:
        return not self.nopass and bool(self.passwords or self.hashes)

    def allows(self, command: str) -> bool:
        command = command.lower()
        cats = COMMAND_CATEGORIES.get(command, frozenset())
        return _allowed(self.commands, command, cats) or any(_allowed(s, command, cats) for s in self.selectors)


def _allowed(rules: list[str], command: str, cats: frozenset[str]) -> bool:
    allowed = False
    for rule in rules:
        sign, body = rule[0], rule[1:].lower()
        if body == "@all":
            allowed = sign == "+"
        elif body.startswith("@"):
            if body[1:] in cats:
                allowed = sign == "+"
        elif body.split("|", 1)[0] == command:
            if "|" not in body:
                allowed = sign == "+"
            elif sign == "+":
                allowed = True  # part of the command (a subcommand) is allowed: count it as reachable
    return allowed


def _merge_selectors(rules: list[str], where: Location) -> list[str]:
    """`(~key* +get)` arrives split on blanks; put each selector back together."""
    merged: list[str] = []
    current: list[str] | None = None
    for rule in rules:
        if current is None and rule.startswith("(") and not rule.endswith(")"):
            current = [rule]
        elif current is not None:
            current.append(rule)
            if rule.endswith(")"):
                merged.append(" ".join(current))
                current = None
        else:
            merged.append(rule)
    if current is not None:
        raise ParseError("unmatched parenthesis in an ACL selector", where.line)
    return merged


def _apply(state: AclState, rules: list[str], where: Location) -> None:
    for rule in rules:
        low = rule.lower()
        if low == "on":
            state.enabled = True
        elif low == "off":
            state.enabled = False
        elif low == "nopass":
            state.nopass, state.passwords, state.hashes = True, [], 0
        elif low == "resetpass":
            state.nopass, state.passwords, state.hashes = False, [], 0
        elif low == "reset":
            state.enabled, state.nopass, state.passwords, state.hashes = False, False, [], 0
            state.commands, state.selectors = ["-@all"], []
        elif rule.startswith(">"):
            state.passwords.append(rule[1:])
            state.nopass = False
        elif rule.startswith("<"):
            state.passwords = [p for p in state.passwords if p != rule[1:]]
        elif rule.startswith("#"):
            state.hashes += 1
            state.nopass = False
        elif rule.startswith("!"):
            state.hashes = max(0, state.hashes - 1)
        elif low in ("allcommands", "nocommands"):
            state.commands.append("+@all" if low == "allcommands" else "-@all")
        elif rule[:1] in "+-" and len(rule) > 1:
            state.commands.append(rule)
        elif rule.startswith("(") and rule.endswith(")"):
            state.selectors.append([r for r in rule[1:-1].split() if r[:1] in "+-"])
        elif low == "clearselectors":
            state.selectors = []
        elif rule[:1] in "~%&" or low in ("allkeys", "allchannels", "resetkeys", "resetchannels",
                                          "sanitize-payload", "skip-sanitize-payload"):
            continue  # key and channel patterns: not what the checks judge
        elif not templating.is_templated(rule, "config"):
            raise ParseError("an unknown ACL rule (a password needs '>' before it)", where.line)


@dataclass(frozen=True)
class AclUser:
    name: str
    rules: tuple[str, ...]
    location: Location

    def state(self) -> AclState:
        state = AclState()  # a user defined in a file starts from nothing: off, no commands
        _apply(state, list(self.rules), self.location)
        return state


@dataclass
class RedisConf(ConfigFact):
    directives: list[RedisDirective] = field(default_factory=list)  # in order, includes inlined
    users: dict[str, AclUser] = field(default_factory=dict)
    renames: dict[str, RedisDirective] = field(default_factory=dict)  # original command -> its rename
    includes: list[IncludeRef] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    acl_unread: IncludeRef | None = None  # an aclfile outside the tree: who may connect is unknown

    def get(self, name: str) -> RedisDirective | None:
        found = self.all(name)
        return found[-1] if found else None

    def all(self, name: str) -> list[RedisDirective]:
        return [d for d in self.directives if d.name == name.lower()]

    def renamed_to(self, command: str) -> str | None:
        """The command's new name ("" when disabled), or None when it keeps its name."""
        rename = self.renames.get(command.lower())
        return rename.args[1] if rename else None

    def user_states(self) -> dict[str, tuple[AclState, Location | None]]:
        """Every ACL user and where it is defined; the default user always exists."""
        states = {name: (user.state(), user.location) for name, user in self.users.items()}
        if "default" not in states:
            default = AclState(enabled=True, nopass=True, commands=["+@all"])
            requirepass = self.get("requirepass")
            where = None
            # requirepass sets the default user's password, except when an aclfile defines the users.
            if requirepass is not None and self.get("aclfile") is None:
                where = requirepass.location
                if requirepass.args[0]:
                    default.nopass, default.passwords = False, [requirepass.args[0]]
            states["default"] = (default, where)
        return states

    def secret_values(self) -> tuple[str, ...]:
        found = [d.args[0] for d in self.directives if d.name in SECRET_DIRECTIVES and d.args[0]]
        for user in self.users.values():
            found += [r[1:] for r in user.rules if r.startswith((">", "<")) and len(r) > 1]
        return tuple(v for v in found if not templating.is_templated(v, "config"))


def _rename(conf: RedisConf, directive: RedisDirective) -> None:
    if len(directive.args) != 2:
        raise ParseError("rename-command takes a command and its new name", directive.location.line)
    name = directive.args[0].lower()
    for original, earlier in list(conf.renames.items()):
        if earlier.args[1].lower() == name and earlier.args[1]:
            name = original  # renaming a renamed command: follow it back to its real name
            break
    conf.renames[name] = directive


class _Reader:
    def __init__(self, conf: RedisConf, provider: FileProvider | None, facts: FactSet | None) -> None:
        self.conf, self.provider, self.facts = conf, provider, facts
        self.budget = IncludeBudget()

    def problem(self, message: str, where: Location, status: Status = Status.WARN) -> None:
        if self.facts is not None:
            self.facts.problem("redis_conf", message, where, status)

    def read(self, source: SourceFile, depth: int = 0) -> None:
        self.conf.files.append(source.path)
        for number, raw in enumerate(source.config_text.split("\n"), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            args = split_args(line, number)
            where = Location(source.path, number)
            if len(args) < 2:
                raise ParseError("a directive without an argument (a value wrapped onto its own line?)", number)
            directive = RedisDirective(args[0].lower(), tuple(args[1:]), where)
            if directive.name == "include":
                self.include(source, directive, depth)
                continue
            self.conf.directives.append(directive)
            if directive.name == "rename-command":
                _rename(self.conf, directive)
            elif directive.name == "user":
                self.user(directive)

    def user(self, directive: RedisDirective) -> None:
        name = directive.args[0]
        if name in self.conf.users:
            raise ParseError("an ACL user defined twice", directive.location.line)
        rules = _merge_selectors(list(directive.args[1:]), directive.location)
        _apply(AclState(), rules, directive.location)  # reject unknown rules now, at their line
        self.conf.users[name] = AclUser(name, tuple(rules), directive.location)

    def include(self, source: SourceFile, directive: RedisDirective, depth: int) -> None:
        where, target = directive.location, directive.value
        if self.provider is None or directive.templated:
            self.conf.includes.append(IncludeRef("include", target, where, found=False))
            return
        if depth >= MAX_INCLUDE_DEPTH:
            raise IncludeLimit(f"includes nested more than {MAX_INCLUDE_DEPTH} deep (files that include each other?)",
                               where.line)
        hits = find_in_tree(self.provider, source.path, target, glob=True)
        self.conf.includes.append(IncludeRef("include", target, where, tuple(hits), bool(hits)))
        if not hits:
            self.problem(f"{target} (included at {where}) is not in the audited tree: its directives were not "
                         "audited", where)
        for hit in hits:
            read_include(self, hit, where, depth)

    def aclfile(self, source: SourceFile) -> None:
        directive = self.conf.get("aclfile")
        if directive is None:
            return
        if self.conf.users:
            raise ParseError("users are defined both in this file and in an aclfile (the server refuses that)",
                             directive.location.line)
        hits = [] if self.provider is None or directive.templated else \
            find_in_tree(self.provider, source.path, directive.value)
        ref = IncludeRef("aclfile", directive.value, directive.location, tuple(hits[:1]), bool(hits))
        self.conf.includes.append(ref)
        if not hits:
            self.conf.acl_unread = ref
            return
        try:
            acl = SourceFile(hits[0], self.provider.read(hits[0]))  # type: ignore[union-attr]
            for number, raw in enumerate(acl.config_text.split("\n"), start=1):
                if not raw.strip():
                    continue
                args = split_args(raw.strip(), number)
                if args[0] != "user" or len(args) < 2:
                    raise ParseError("each line must start with `user` and a name", number)
                self.user(RedisDirective("user", tuple(args[1:]), Location(acl.path, number)))
        except (OSError, ValueError) as exc:
            self.conf.acl_unread = ref
            self.problem(f"cannot read the ACL file {hits[0]}: {exc}", directive.location, Status.ERROR)
        except ParseError as exc:
            self.conf.acl_unread = ref
            self.problem(f"cannot parse the ACL file {hits[0]}: {exc.message}", Location(hits[0], exc.line),
                         Status.ERROR)


def parse_redis_conf(source: SourceFile, provider: FileProvider | None = None,
                     facts: FactSet | None = None) -> RedisConf:
    conf = RedisConf(source.path)
    reader = _Reader(conf, provider, facts)
    reader.read(source)
    reader.aclfile(source)
    return conf


def build_redis_conf(sources: list[SourceFile], provider: FileProvider, facts: FactSet) -> None:
    """Main files first; a file that one of them includes is not judged again on its own."""
    read: set[str] = set()
    parsed: list[tuple[SourceFile, RedisConf | ParseError]] = []
    for source in sorted(sources, key=lambda s: not s.path.endswith("redis.conf")):
        if source.path in read:
            continue
        try:
            conf = parse_redis_conf(source, provider, facts)
        except ParseError as exc:
            parsed.append((source, exc))
            continue
        read.update(conf.files[1:])
        parsed.append((source, conf))
    for source, result in parsed:
        if isinstance(result, ParseError):
            facts.problem("redis_conf", f"cannot parse {source.path}: {result.message}",
                          Location(source.path, result.line))
        elif source.path not in read:
            facts.add("redis_conf", result)
