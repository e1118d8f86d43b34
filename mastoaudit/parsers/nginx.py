"""nginx configuration: files tokenised by crossplane, includes followed, one tree per root file.

A root is a file no other file includes (nginx.conf, or a site file audited on its own, which is
read as the inside of an http block). Every directive keeps the file and line it came from, so an
include is transparent to the checks. On top of the tree `NginxConfig` answers what nginx would:
which value of a directive applies at a level (inheritance http -> server -> location), which
add_header / proxy_set_header lines apply (a level inherits them only if it defines none itself),
and which location serves a URI.
"""

from __future__ import annotations

import posixpath
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import crossplane
from crossplane.analyzer import DIRECTIVES, analyze, enter_block_ctx
from crossplane.errors import (
    NgxParserBaseException,
    NgxParserDirectiveContextError,
    NgxParserDirectiveError,
    NgxParserDirectiveUnknownError,
)

from .. import templating
from ..addresses import is_loopback, parse_ip, split_host_port
from ..facts import FactSet
from ..model import Location, SkipReason, Status
from .base import ConfigFact, FileProvider, ParseError, SourceFile, vocabulary

KIND = "nginx"
MAX_INCLUDE_DEPTH = 10
MAX_FILES_PER_ROOT = 500
MAX_BLOCK_DEPTH = 64
# What one root may expand to through includes (the same snippet in 6,000 server blocks is 6,000):
# files that include each other through a glob grow exponentially; past these, an input error.
MAX_EXPANSIONS = 20_000
MAX_DIRECTIVES_PER_ROOT = 500_000
# The statuses add_header adds its header to without `always`.
_ADD_HEADER_STATUSES = frozenset({200, 201, 204, 206, 301, 302, 303, 304, 307, 308})
# Directories whose files nginx reads through an include from the directory above (the prefix).
_SITE_DIRS = {"sites-enabled", "sites-available", "conf.d", "snippets", "vhosts.d", "sites", "http.d"}
# Levels whose settings a location inherits (if / limit_except blocks are conditional: not followed).
_LEVELS = {"main", "http", "server", "location"}
# Files under /etc/nginx that are not configuration (auth_basic password files, keys): never parsed.
_NOT_CONFIG = re.compile(r"htpasswd|htdigest|passw(or)?d|\.(pem|key|crt|der|p12|pfx)$", re.I)
_SECRET_HEADERS = {"authorization", "proxy-authorization", "x-api-key", "cookie", "x-auth-token"}
# Words an error may repeat: nginx's directive names, and the lexer's own messages. Any other
# token (a password on a line of its own, say) is described, never quoted.
DIRECTIVE_NAMES = frozenset(DIRECTIVES)
_LEX_ERRORS = frozenset({'unexpected "}"', 'unexpected end of file, expecting "}"'})


# --- the tree ------------------------------------------------------------------------------------


@dataclass(eq=False)
class Directive:
    """One directive with its arguments, where it was written, and its block if it has one."""

    name: str
    args: list[str]
    file: str
    line: int | None
    block: list[Directive] | None = None
    parent: Directive | None = field(default=None, repr=False)
    unresolved: bool = False  # an include whose files could not be read: its settings are unseen
    template: bool = False  # a template's own insertion (`{{ extra_config }}`, `{% include %}`): unseen too
    # The server block a file of location blocks is read inside when nothing in the tree includes it
    # (an app package's snippet): not written anywhere, its own settings unknown.
    implicit: bool = False

    @property
    def location(self) -> Location:
        return Location(self.file, self.line)

    @property
    def arg(self) -> str:
        return self.args[0] if self.args else ""

    def _by_name(self) -> dict[str, list[Directive]]:
        # Checks ask a block for its children by name many times; index once (blocks never change
        # after parsing).
        index = self.__dict__.get("_index")
        if index is None:
            index = {}
            for d in self.block or ():
                index.setdefault(d.name, []).append(d)
            self.__dict__["_index"] = index
        return index

    def children(self, name: str | None = None) -> list[Directive]:
        if name is None:
            return list(self.block or ())
        return list(self._by_name().get(name, ()))

    def first(self, name: str) -> Directive | None:
        found = self._by_name().get(name)
        return found[0] if found else None

    def walk(self) -> Iterator[Directive]:
        for child in self.block or ():
            yield child
            yield from child.walk()

    def ancestors(self) -> Iterator[Directive]:
        node = self.parent
        while node is not None:
            yield node
            node = node.parent

    def text(self) -> str:
        return " ".join([self.name, *(_quote(a) for a in self.args)])

    def unseen_label(self) -> str:
        """How a message names an unseen include: the include, or what a template inserts there."""
        if self.template:
            return f"what the template inserts at {self.file}:{self.line}"
        return f"include {self.arg} ({self.file}:{self.line})"


def _quote(arg: str) -> str:
    return f'"{arg}"' if (not arg or any(c.isspace() or c in ';{}' for c in arg)) else arg


@dataclass(frozen=True)
class Listen:
    address: str | None  # None: all addresses
    port: int | None  # None: a unix socket
    ssl: bool
    default: bool
    directive: Directive

    @property
    def loopback_only(self) -> bool:
        if self.address is None:
            return False
        return self.address.startswith("unix:") or is_loopback(self.address)


@dataclass(frozen=True)
class Server:
    directive: Directive
    listens: tuple[Listen, ...]
    names: tuple[str, ...]

    @property
    def implicit(self) -> bool:
        """The locations of a snippet nothing in the tree includes, read as a server of their own: the
        server that includes them (its listen, TLS and other settings) is not in the tree."""
        return self.directive.implicit

    @property
    def ssl(self) -> bool:
        return any(x.ssl for x in self.listens) or _flag(self.directive.first("ssl"))

    @property
    def plain(self) -> bool:
        return any(not x.ssl for x in self.listens) and not _flag(self.directive.first("ssl"))

    @property
    def label(self) -> str:
        if self.implicit:
            return f"locations of {self.directive.file} (included by a server not in the tree)"
        name = next((n for n in self.names if n not in ("_", '""', "")), None) or "(default)"
        ports = sorted({x.port for x in self.listens if x.port is not None})
        return f"server {name}:{'/'.join(map(str, ports)) or 'unix'}"

    @property
    def location(self) -> Location:
        return self.directive.location


def _flag(d: Directive | None) -> bool:
    return d is not None and d.arg.lower() == "on"


@dataclass(frozen=True)
class Header:
    """A response header nginx puts on the wire (add_header, or headers-more's more_set_headers)."""

    name: str  # as written
    value: str
    always: bool  # add_header ... always; more_set_headers applies to every status unless -s says otherwise
    directive: Directive
    statuses: tuple[str, ...] = ()  # more_set_headers -s: only these statuses
    types: tuple[str, ...] = ()  # more_set_headers -t: only these content types

    @property
    def module(self) -> str:
        return "headers-more" if self.directive.name.startswith("more_") else "add_header"

    @property
    def only(self) -> str | None:
        """The responses a filtered header is limited to, in words; None when it has no filter."""
        parts = []
        if self.statuses:
            parts.append("status " + " ".join(self.statuses))
        if self.types:
            parts.append(" ".join(self.types))
        return " and ".join(parts) or None


@dataclass(frozen=True)
class HeaderOp:
    """One headers-more operation: `set` replaces every field of the name the response has when the
    module's filter runs (the upstream's), `append` (-a) adds one, `clear` removes them (a trailing
    * matches a prefix). add_header's fields come later and are not touched."""

    action: str  # set | append | clear
    name: str
    value: str
    directive: Directive
    statuses: tuple[str, ...] = ()
    types: tuple[str, ...] = ()

    def names(self, name: str) -> bool:
        mine, other = self.name.lower(), name.lower()
        return other.startswith(mine[:-1]) if mine.endswith("*") else mine == other


@dataclass(frozen=True)
class ResolvedHeader:
    """What one header of a response from a location is, once add_header and headers-more have run:
    the fields nginx itself sends (`added`), and what became of the upstream's own field of that
    name (kept, replaced, cleared or hidden by proxy_hide_header)."""

    added: tuple[Header, ...]
    upstream: str  # kept | replaced | cleared | hidden
    by: Directive | None = None  # the directive that replaced, cleared or hid the upstream's field


def more_ops(d: Directive) -> list[HeaderOp]:
    """The operations of a more_set_headers / more_clear_headers line (headers-more's syntax:
    `[-s STATUSES]... [-t TYPES]... [-a] HEADER...`, options repeatable, lists blank-separated)."""
    statuses: list[str] = []
    types: list[str] = []
    append = False
    ops: list[HeaderOp] = []
    args = list(d.args)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-s", "-t") and i + 1 < len(args):
            (statuses if arg == "-s" else types).extend(args[i + 1].split())
            i += 2
            continue
        if arg == "-a":
            append = True
            i += 1
            continue
        i += 1
        name, colon, value = arg.partition(":")
        name, value = name.strip(), value.strip()
        if not name:
            continue
        if d.name == "more_clear_headers" or not colon or not value:
            ops.append(HeaderOp("clear", name, "", d, tuple(statuses), tuple(types)))
        else:
            ops.append(HeaderOp("append" if append else "set", name, value, d, tuple(statuses), tuple(types)))
    return ops


def _applies(statuses: tuple[str, ...], status: int) -> bool:
    return not statuses or str(status) in statuses


@dataclass(frozen=True)
class ProxyTarget:
    """Where proxy_pass sends requests, classified for the checks."""

    raw: str
    scheme: str  # http, https, unix
    host: str  # host, upstream name, or socket path
    port: int | None
    kind: str  # "upstream", "unix", "ip", "localhost", "service" (one-label name), "hostname", "variable"
    directive: Directive
    upstream: Directive | None = None

    @property
    def internal(self) -> bool:
        """Inside the deployment (an upstream, a socket, an IP or container name): the app side."""
        return self.kind in ("upstream", "unix", "ip", "localhost", "service")


# --- the fact ------------------------------------------------------------------------------------


@dataclass
class NginxConfig(ConfigFact):
    """One root file with its includes expanded. `root` is a pseudo-block: "main" for a full
    nginx.conf, "http" for a site file read on its own."""

    root: Directive = field(default_factory=lambda: Directive("main", [], "", None, []))
    files: list[str] = field(default_factory=list)

    @property
    def context(self) -> str:
        return self.root.name

    def secret_values(self) -> tuple[str, ...]:
        """Credentials written into the config (an Authorization header for a backend, a
        secure_link secret): the engine scrubs them from every finding."""
        found = []
        for d in self.root.walk():
            if d.name in ("proxy_set_header", "grpc_set_header", "fastcgi_param") and len(d.args) >= 2:
                if d.arg.lower() in _SECRET_HEADERS and d.args[1] and "$" not in d.args[1]:
                    found.append(d.args[1])
            elif d.name == "secure_link_secret" and d.args:
                found.append(d.arg)
        return tuple(v for v in found if len(v) >= 4)

    def why_nothing(self) -> tuple[SkipReason, str] | None:
        servers = self.server_blocks()
        if not servers:
            return SkipReason.NO_SERVER_BLOCK, f"no server block in {self.path} (a file read on its own)"
        if all(s.implicit for s in servers):
            return SkipReason.NO_SERVER_BLOCK, (f"{self.path} holds locations only: the server that includes it "
                                                "(its listen, TLS and server-wide settings) is not in the tree")
        return None

    # structure
    def http_blocks(self) -> list[Directive]:
        if self.root.name == "http":
            return [self.root]
        return self.root.children("http")

    def server_blocks(self) -> list[Directive]:
        return [s for http in self.http_blocks() for s in http.children("server")]

    def servers(self) -> list[Server]:
        return [parse_server(s) for s in self.server_blocks()]

    def upstreams(self) -> dict[str, Directive]:
        return {u.arg: u for http in self.http_blocks() for u in http.children("upstream") if u.args}

    def all(self, name: str) -> list[Directive]:
        return [d for d in self.root.walk() if d.name == name]

    def locations(self, server: Directive) -> list[Directive]:
        """Every location in a server, nested ones too, named ones included (not those under if)."""
        found: list[Directive] = []

        def visit(node: Directive) -> None:
            for loc in node.children("location"):
                found.append(loc)
                visit(loc)

        visit(server)
        return found

    def named_location(self, server: Directive, name: str) -> Directive | None:
        return next((x for x in server.children("location") if x.arg == name), None)

    # inheritance
    def levels(self, node: Directive) -> list[Directive]:
        """The node and the levels it inherits from, innermost first."""
        chain = [node] + [a for a in node.ancestors() if a.name in _LEVELS]
        return chain

    def effective(self, node: Directive, name: str) -> Directive | None:
        """The directive that sets `name` for `node`: its own, else the nearest enclosing level's."""
        for level in self.levels(node):
            found = level.first(name)
            if found is not None:
                return found  # nginx rejects most duplicates; where it does not, the first counts
        return None

    def effective_all(self, node: Directive, name: str) -> list[Directive]:
        """For array directives (add_header, proxy_set_header, limit_req): the lines of the nearest
        level that has any. A level with one of its own inherits none from above."""
        for level in self.levels(node):
            found = level.children(name)
            if found:
                return found
        return []

    def add_headers(self, node: Directive) -> list[Header]:
        out = []
        for d in self.effective_all(node, "add_header"):
            if len(d.args) >= 2:
                out.append(Header(d.args[0], d.args[1], len(d.args) > 2 and d.args[2] == "always", d))
        return out

    def more_header_ops(self, node: Directive) -> list[HeaderOp]:
        """headers-more's operations for a response from `node`, in the order they run: unlike
        add_header, every level's are inherited, the outer levels' first (the module's README)."""
        ops: list[HeaderOp] = []
        for level in reversed(self.levels(node)):
            for d in level.children():
                if d.name in ("more_set_headers", "more_clear_headers"):
                    ops.extend(more_ops(d))
        return ops

    def resolve_header(self, node: Directive, name: str, status: int = 200) -> ResolvedHeader:
        """The header `name` on a `status` response from `node`. headers-more's filter runs first, on
        the response as the upstream (or nginx) made it: its operations replace, append or clear the
        fields of the name; add_header's filter runs after it and adds its own fields (for 2xx and
        3xx unless `always`), which headers-more therefore never replaces nor clears. (Checked
        against nginx 1.22 with the module: tests/parsers/test_headers_more.py.) Operations limited
        to some content types (-t) are kept as fields with that limit (`Header.types`)."""
        fields: list[Header] = []
        upstream, by = "kept", None
        hidden = [d for d in self.effective_all(node, "proxy_hide_header") if d.arg.lower() == name.lower()]
        if hidden:
            upstream, by = "hidden", hidden[0]
        for op in self.more_header_ops(node):
            if not op.names(name) or not _applies(op.statuses, status):
                continue
            field = Header(op.name, op.value, True, op.directive, op.statuses, op.types)
            if op.types:  # for some content types only: the other fields stay beside it
                if op.action != "clear":
                    fields.append(field)
                continue
            if op.action == "append":
                fields.append(field)
            elif op.action == "set":
                fields = [field]
                if upstream != "hidden":
                    upstream, by = "replaced", op.directive
            else:
                fields = []
                if upstream != "hidden":
                    upstream, by = "cleared", op.directive
        for h in self.add_headers(node):
            if h.name.lower() == name.lower() and (h.always or status in _ADD_HEADER_STATUSES):
                fields.append(h)
        return ResolvedHeader(tuple(fields), upstream, by)

    def header(self, node: Directive, name: str) -> Header | None:
        """The header nginx itself puts on a 200 response from `node` (add_header or headers-more),
        the last one when there are several; None when nginx sends none."""
        added = self.resolve_header(node, name).added
        unfiltered = [h for h in added if not h.types]
        return (unfiltered or added or [None])[-1]

    def proxy_headers(self, node: Directive) -> dict[str, Directive]:
        """proxy_set_header lines in effect (lower-cased header name -> directive)."""
        return {d.arg.lower(): d for d in self.effective_all(node, "proxy_set_header") if len(d.args) >= 2}

    def unseen(self, node: Directive) -> list[Directive]:
        """Includes that could not be read at the node's level or above: what a check cannot see."""
        return [d for level in self.levels(node) for d in level.children("include") if d.unresolved]

    # locations
    def match_location(self, server: Directive, uri: str) -> Directive | None:
        """The location nginx picks for `uri` in this server (None: no location matches)."""
        return _find_location(server, uri)

    def proxy_target(self, location: Directive) -> ProxyTarget | None:
        d = location.first("proxy_pass")
        if d is None or not d.args:
            return None
        found = d.__dict__.get("_target")  # checks ask many times; the tree never changes after parsing
        if found is None:
            found = d.__dict__["_target"] = classify_target(d, self.upstreams())
        return found

    def falls_back_to(self, server: Directive, location: Directive) -> Directive | None:
        """The named location a `try_files ... @name` in this location ends in, if any."""
        tf = location.first("try_files")  # not inherited: each level has its own
        if tf is not None and tf.args and tf.args[-1].startswith("@"):
            return self.named_location(server, tf.args[-1])
        return None


def parse_server(block: Directive) -> Server:
    listens = tuple(_listen(d) for d in block.children("listen") if d.args)
    if block.implicit:
        return Server(block, listens, ())
    if not listens:  # nginx's default: *:80 (8000 when not root; assume the service runs as root)
        listens = (Listen(None, 80, False, False, block),)
    names = tuple(a for d in block.children("server_name") for a in d.args)
    return Server(block, listens, names)


def _listen(d: Directive) -> Listen:
    spec, params = d.args[0], {p.lower() for p in d.args[1:]}
    ssl = "ssl" in params or "quic" in params
    default = "default_server" in params or "default" in params
    if spec.startswith("unix:"):
        return Listen(spec, None, ssl, default, d)
    if spec.isdigit():
        return Listen(None, int(spec), ssl, default, d)
    addr, port = split_host_port(spec, 80, strict=False)
    return Listen(None if addr == "*" else addr, port, ssl, default, d)


def classify_target(d: Directive, upstreams: dict[str, Directive]) -> ProxyTarget:
    raw = d.arg
    scheme, sep, rest = raw.partition("://")
    if not sep:
        scheme, rest = "http", raw
    scheme = scheme.lower()
    if rest.startswith("unix:"):
        return ProxyTarget(raw, "unix", rest[5:].split(":", 1)[0], None, "unix", d)
    hostport = re.split(r"[/?]", rest, maxsplit=1)[0]
    if "$" in hostport:
        return ProxyTarget(raw, scheme, hostport, None, "variable", d)
    if any(c in hostport for c in "{_@<"):  # a template or placeholder may be in it
        host, sep, port_text = hostport.rpartition(":")
        if sep and host and templating.is_templated(port_text, "nginx") and not templating.is_templated(host, "nginx"):
            hostport = host  # 127.0.0.1:__PORT__: the port is filled in later, the host is known
        if templating.is_templated(hostport, "nginx"):
            return ProxyTarget(raw, scheme, hostport, None, "variable", d)
    host, port = split_host_port(hostport, strict=False)
    if host in upstreams:
        return ProxyTarget(raw, scheme, host, port, "upstream", d, upstreams[host])
    return ProxyTarget(raw, scheme, host, port, host_kind(host), d)


def host_kind(host: str) -> str:
    if parse_ip(host) is not None:
        return "ip"
    if host.lower() == "localhost":
        return "localhost"
    return "hostname" if "." in host else "service"


# --- location matching ---------------------------------------------------------------------------


# A templated path prefix at the start of a location (`location __PATH__/`, `location ~ ^{{ path }}/system/`):
# the sub-path an app package is installed under, filled in at install time.
_TEMPLATED_PREFIX = re.compile(r"^(\^?)(?:__[A-Z][A-Z0-9_]*[A-Z0-9]__|\{\{.*?\}\}|\$\{[A-Z_][A-Z0-9_]*\}|<%=.*?%>)")


def site_path(mod: str, path: str) -> str:
    """A location's path for matching: a templated prefix is taken as the site's root (the locations
    of an app package installed at its domain's root; the assumption a check then states)."""
    if mod == "@":
        return path
    stripped = _TEMPLATED_PREFIX.sub(r"\1", path)
    if stripped != path and not stripped.lstrip("^").startswith("/"):
        stripped = stripped[:1] + "/" + stripped[1:] if stripped.startswith("^") else "/" + stripped
    return stripped


def location_spec(loc: Directive) -> tuple[str, str]:
    """(modifier, path) of a location: modifier is "=", "^~", "~", "~*", "@" or "" (prefix)."""
    args = loc.args
    if len(args) >= 2:
        return args[0], args[1]
    name = args[0] if args else ""
    if name.startswith("@"):
        return "@", name
    if name.startswith("="):
        return "=", name[1:]
    if name.startswith("^~"):
        return "^~", name[2:]
    if name.startswith("~*"):
        return "~*", name[2:]
    if name.startswith("~"):
        return "~", name[1:]
    return "", name


def _regex(mod: str, pattern: str) -> re.Pattern[str] | None:
    pattern = re.sub(r"\(\?<(?![=!])", "(?P<", pattern)  # PCRE's (?<name>...) is Python's (?P<name>...)
    try:
        return re.compile(pattern, re.IGNORECASE if mod == "~*" else 0)
    except re.error:
        return None  # PCRE syntax Python lacks: treated as not matching


def _find_location(parent: Directive, uri: str) -> Directive | None:
    """nginx's lookup: exact match wins; else the longest prefix; its nested locations are searched;
    then, unless that prefix was ^~, regex locations in file order (their nested ones too)."""
    locs = [(loc, mod, site_path(mod, path)) for loc in parent.children("location")
            for mod, path in [location_spec(loc)]]
    for loc, mod, path in locs:
        if mod == "=" and uri == path:
            return loc
    best: tuple[Directive, str] | None = None
    for loc, mod, path in locs:
        if mod in ("", "^~") and uri.startswith(path) and (best is None or len(path) > len(best[1])):
            best = (loc, mod)
    found = None
    noregex = False
    if best is not None:
        found = best[0]
        noregex = best[1] == "^~"
        nested = _find_location(best[0], uri)
        if nested is not None:
            found = nested
            if location_spec(nested)[0] in ("=", "~", "~*"):
                return nested  # an exact or regex match below is final
    if not noregex:
        for loc, mod, path in locs:
            if mod in ("~", "~*"):
                rx = _regex(mod, path)
                if rx is not None and rx.search(uri):
                    return _find_location(loc, uri) or loc
    return found


# --- tokenising ----------------------------------------------------------------------------------


@dataclass
class _Raw:
    name: str
    args: list[str]
    line: int
    term: str
    block: list[_Raw] | None = None


def _tokens(text: str, scratch: Path) -> list[tuple[str, int, bool]]:
    # crossplane's lexer reads a file: the provider's bytes go through a scratch file.
    scratch.write_text(text, encoding="utf-8")
    try:
        return list(crossplane.lex(str(scratch)))
    except NgxParserBaseException as exc:  # the lexer's own fixed messages (brace balance)
        raise ParseError(f"{vocabulary(exc.strerror, _LEX_ERRORS, 'a syntax error', quote=False)}",
                         exc.lineno) from None


def _build(tokens: list[tuple[str, int, bool]]) -> list[_Raw]:
    pos = 0

    def block(depth: int) -> list[_Raw]:
        nonlocal pos
        if depth > MAX_BLOCK_DEPTH:
            raise ParseError("blocks nested too deeply", tokens[pos - 1][1] if pos else None)
        out: list[_Raw] = []
        while pos < len(tokens):
            token, line, quoted = tokens[pos]
            pos += 1
            if token == "}" and not quoted:
                return out
            if token.startswith("#") and not quoted:
                continue
            if token in ("{", ";") and not quoted:
                raise ParseError(f"unexpected {vocabulary(token, ('{', ';'))}", line)
            stmt = _Raw(token, [], line, ";")
            while True:
                if pos >= len(tokens):
                    raise ParseError(f'unexpected end of file: {vocabulary(token, DIRECTIVE_NAMES, "a directive")} '
                                     'is not terminated by ";"', line)
                arg, _, aquoted = tokens[pos]
                pos += 1
                if arg in ("{", ";", "}") and not aquoted:
                    break
                if not (arg.startswith("#") and not aquoted):
                    stmt.args.append(arg)
            if arg == "}":
                raise ParseError(f'{vocabulary(token, DIRECTIVE_NAMES, "a directive")} is not terminated by ";"', line)
            stmt.term = arg
            if stmt.name == "if":
                _strip_if_parens(stmt.args)
            if arg == "{":
                stmt.block = block(depth + 1)
            out.append(stmt)
        if depth:
            raise ParseError('unexpected end of file, expecting "}"', tokens[-1][1] if tokens else None)
        return out

    return block(0)


def _strip_if_parens(args: list[str]) -> None:
    if args and args[0].startswith("("):
        args[0] = args[0][1:]
    if args and args[-1].endswith(")"):
        args[-1] = args[-1][:-1]
    args[:] = [a for a in args if a]


# What a template's insertion becomes for the tokenizer: a directive of its own, turned into an
# unseen include when the tree is built.
_INSERT = "__mastoaudit_template_insert__"


class TemplateError(ParseError):
    """A template file whose literal parts do not make an nginx config (its blocks open and close
    inside template conditions): not judged, which is not an error of the input."""


def parse_text(source: SourceFile, scratch: Path) -> list[_Raw]:
    """Tokenise and nest one file (no includes followed). Raises ParseError with a line.

    A template (Jinja/Ansible, Go/Helm, ERB) is read through its literal parts: control statements
    become blank lines, each expression stays one value (and is judged as templated), and what a
    tag inserts (`{{ extra_config }}` alone on a line, `{% include %}`) becomes an include that
    cannot be read, so that checks hedge what it might set."""
    text = source.text
    tpl = templating.neutralise(text, lambda n: f"{_INSERT} {n};")
    try:
        raw = _build(_tokens(tpl.text, scratch))
    except ParseError as exc:
        if tpl.is_template:
            raise TemplateError("a template whose blocks depend on its variables (its literal parts are not a "
                                "whole nginx config): not judged", exc.line) from None
        raise
    if tpl.is_template:
        _restore(raw, tpl)
    return raw


def _restore(stmts: list[_Raw], tpl: templating.Neutralised) -> None:
    for s in stmts:
        if s.name == _INSERT and s.args and s.args[0].isdigit() and int(s.args[0]) < len(tpl.inserted):
            s.args = [tpl.inserted[int(s.args[0])][1]]
        else:
            s.name = tpl.restore(s.name)
            s.args = [tpl.restore(a) for a in s.args]
        if s.block:
            _restore(s.block, tpl)


# --- building facts: roots, includes -------------------------------------------------------------


@dataclass
class _Builder:
    sources: dict[str, SourceFile]
    provider: FileProvider
    facts: FactSet
    scratch: Path
    parsed: dict[str, list[_Raw] | ParseError] = field(default_factory=dict)
    reported: set[tuple[str, int | None, str]] = field(default_factory=set)
    counter: int = 0
    expansions: int = 0  # includes followed for the root being built
    directives: int = 0  # directives attached to it

    def problem(self, message: str, where: Location, status: Status = Status.ERROR,
                reason: SkipReason | None = None) -> None:
        key = (where.file, where.line, message)
        if key not in self.reported:
            self.reported.add(key)
            self.facts.problem(KIND, message, where, status, reason)

    def raw(self, path: str) -> list[_Raw] | ParseError | OSError:
        if path in self.parsed:
            return self.parsed[path]
        source = self.sources.get(path)
        if source is None:
            try:
                source = SourceFile(path, self.provider.read(path))
            except (OSError, ValueError) as exc:
                return OSError(str(getattr(exc, "strerror", None) or exc))
        self.counter += 1
        try:
            result: list[_Raw] | ParseError = parse_text(source, self.scratch / f"{self.counter}.conf")
        except ParseError as exc:
            result = exc
        except RecursionError:
            result = ParseError("nested too deeply", None)
        self.parsed[path] = result
        return result

    def includes_of(self, path: str, prefix: str) -> list[str]:
        """Files a file includes (for finding the roots); unreadable or malformed: none."""
        raw = self.raw(path)
        if not isinstance(raw, list):
            return []
        hits: list[str] = []

        def visit(stmts: list[_Raw]) -> None:
            for s in stmts:
                if s.name == "include" and s.args:
                    hits.extend(self.resolve(s.args[0], path, prefix)[0])
                if s.block:
                    visit(s.block)

        visit(raw)
        return hits

    def resolve(self, pattern: str, includer: str, prefix: str) -> tuple[list[str], bool]:
        """Paths an include names, inside the audited tree only; and whether it was a glob."""
        is_glob = any(c in pattern for c in "*?[")
        tries: list[tuple[str, str | None]] = []
        if pattern.startswith("/"):
            tries.append((pattern.lstrip("/"), None))  # the same path under the audited tree's root
            marker = "/" + posixpath.basename(prefix.rstrip("/")) + "/" if prefix not in ("", ".") else None
            if marker and marker in pattern:  # /etc/nginx/x -> x beside the root nginx.conf
                tries.append((pattern.split(marker, 1)[1], prefix or None))
            if pattern.startswith("/etc/nginx/"):
                tries.append((pattern[len("/etc/nginx/"):], prefix or None))
            if not is_glob:  # as named: files fetched from a host (nginx -T) keep their own paths
                tries.append((pattern, None))
        else:
            tries.append((pattern, prefix or None))
            includer_dir = posixpath.dirname(includer)
            if includer_dir != prefix:
                tries.append((pattern, includer_dir or None))
        for pat, base in tries:
            try:
                hits = self.provider.glob(pat, base)
            except (OSError, ValueError):
                hits = []
            if hits:
                return sorted(dict.fromkeys(posixpath.normpath(h) for h in hits)), is_glob
        return [], is_glob

    def unparsed(self, path: str, exc: ParseError) -> None:
        if isinstance(exc, TemplateError):
            self.problem(f"{path} is {exc.message}", Location(path, exc.line), Status.SKIP)
        else:
            self.problem(f"cannot parse {path}: {exc.message}", Location(path, exc.line))

    def expand(self, path: str, ctx: tuple[str, ...] | None, parent: Directive, prefix: str,
               stack: tuple[str, ...], seen: list[str]) -> None:
        """Append the file's directives to `parent`, following includes."""
        raw = self.raw(path)
        if isinstance(raw, ParseError):
            self.unparsed(path, raw)
            raise _Unreadable
        if isinstance(raw, OSError):
            raise _Unreadable(str(raw))
        if path not in seen:
            seen.append(path)
        self._attach(raw, path, ctx, parent, prefix, stack, seen)

    def _attach(self, stmts: list[_Raw], path: str, ctx: tuple[str, ...] | None, parent: Directive, prefix: str,
                stack: tuple[str, ...], seen: list[str]) -> None:
        assert parent.block is not None
        for s in stmts:
            if s.name == _INSERT:
                parent.block.append(Directive("include", list(s.args), path, s.line, None, parent, unresolved=True,
                                              template=True))
                self.problem(f"the template inserts configuration at {path}:{s.line}: what it sets is not judged",
                             Location(path, s.line), Status.SKIP)
                continue
            if ctx is not None:
                try:
                    analyze(path, {"directive": s.name, "args": s.args, "line": s.line}, s.term, ctx,
                            check_ctx=True, check_args=True)
                except NgxParserDirectiveError as exc:
                    self.problem(f"{path}:{s.line}: {_refusal(exc, s.name)} (nginx would refuse this config); "
                                 "the directive is not audited", Location(path, s.line), Status.WARN)
                    continue
            if s.name == "include" and s.args and s.block is None:
                self._include(s, path, ctx, parent, prefix, stack, seen)
                continue
            self.directives += 1
            if self.directives > MAX_DIRECTIVES_PER_ROOT:
                raise _TooLarge(f"more than {MAX_DIRECTIVES_PER_ROOT} directives once includes are followed", s.line)
            node = Directive(s.name, list(s.args), path, s.line, [] if s.block is not None else None, parent)
            parent.block.append(node)
            if s.block is not None:
                inner = None if ctx is None else tuple(enter_block_ctx({"directive": s.name}, ctx))
                self._attach(s.block, path, inner, node, prefix, stack, seen)

    def _include(self, s: _Raw, path: str, ctx: tuple[str, ...] | None, parent: Directive, prefix: str,
                 stack: tuple[str, ...], seen: list[str]) -> None:
        assert parent.block is not None
        marker = Directive("include", list(s.args), path, s.line, None, parent)
        parent.block.append(marker)
        where = Location(path, s.line)
        hits, is_glob = self.resolve(s.args[0], path, prefix)
        if not hits:
            if not is_glob:  # nginx accepts a glob matching nothing; a named file must exist
                marker.unresolved = True
                self.problem(f"include {s.args[0]} (at {path}:{s.line}) was not found in the audited tree; "
                             "the settings in it are not audited", where, Status.WARN)
            return
        for hit in hits:
            self.expansions += 1
            if self.expansions > MAX_EXPANSIONS:
                raise _TooLarge(f"includes expand to more than {MAX_EXPANSIONS} files (files that include each other "
                                "through a glob?)", s.line)
            if hit in stack:
                marker.unresolved = True
                self.problem(f"include loop: {hit} is already being read; not followed", where, Status.WARN)
                continue
            if len(stack) >= MAX_INCLUDE_DEPTH or len(seen) >= MAX_FILES_PER_ROOT:
                marker.unresolved = True
                self.problem(f"includes nested too deeply at {path}:{s.line}; {hit} not followed", where,
                             Status.WARN)
                continue
            try:
                self.expand(hit, ctx, parent, prefix, (*stack, hit), seen)
            except _Unreadable as exc:
                marker.unresolved = True
                if str(exc) and not any(p.location and p.location.file == hit for p in self.facts.problems):
                    self.problem(f"cannot read {hit} (included at {path}:{s.line}): {exc}; the settings in it "
                                 "are not audited", where, Status.WARN)


class _Unreadable(Exception):
    pass


class _TooLarge(Exception):
    """A root that expands past the bounds: not audited, an input error at its file."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.message, self.line = message, line


def _refusal(exc: NgxParserDirectiveError, name: str) -> str:
    """What crossplane's analyzer found, in words that repeat no argument and no unknown name."""
    if isinstance(exc, NgxParserDirectiveUnknownError):
        return "an unknown directive"
    known = vocabulary(name, DIRECTIVE_NAMES, "a directive")
    if isinstance(exc, NgxParserDirectiveContextError):
        return f"{known} is not allowed here"
    return f"{known} has arguments nginx does not accept"


def _is_main(path: str, raw: list[_Raw] | ParseError | OSError) -> bool:
    """A main config: it has an http or events block, or it is named nginx.conf and is not a site
    file (Mastodon ships its site config as dist/nginx.conf, with server blocks at the top)."""
    if not isinstance(raw, list):
        return posixpath.basename(path) == "nginx.conf"
    names = {s.name for s in raw}
    if names & {"http", "events"}:
        return True
    return posixpath.basename(path) == "nginx.conf" and not names & {"server", "upstream", "location"}


def _prefix(path: str, main: bool) -> str:
    folder = posixpath.dirname(path)
    if not main and posixpath.basename(folder) in _SITE_DIRS:
        return posixpath.dirname(folder)
    return folder


def _root_context(raw: list[_Raw]) -> tuple[str, tuple[str, ...] | None]:
    names = {s.name for s in raw}
    if names & {"http", "events", "worker_processes", "user", "pid", "load_module", "stream"}:
        return "main", ()
    if names & {"server", "upstream", "map", "proxy_cache_path", "limit_req_zone", "geo", "split_clients"}:
        return "http", ("http",)
    if "location" in names and not names & {"listen", "server_name"}:
        return "locations", ("http", "server")  # location blocks: read inside the server that would include them
    if names & {"location", "listen", "server_name"}:
        return "http", None  # a server-level snippet audited alone: no context analysis
    return "http", None


def _inside(path: str, folder: str) -> bool:
    return folder in ("", ".") or path == folder or path.startswith(folder.rstrip("/") + "/")


def build_nginx(sources: list[SourceFile], provider: FileProvider, facts: FactSet) -> None:
    """Parse every nginx file in the group and add one NginxConfig per active root file."""
    by_path = {posixpath.normpath(s.path): SourceFile(posixpath.normpath(s.path), s.data) for s in sources
               if not _NOT_CONFIG.search(posixpath.basename(s.path))}
    with tempfile.TemporaryDirectory(prefix="mastoaudit-nginx-") as tmp:
        b = _Builder(by_path, provider, facts, Path(tmp))
        mains = [p for p in by_path if _is_main(p, b.raw(p))]
        edges = {p: [h for h in b.includes_of(p, _prefix(p, p in mains)) if h != p] for p in by_path}
        included = {h for hits in edges.values() for h in hits}
        roots = [p for p in by_path if p not in included]
        # Files that include each other in a ring, with no file above them: audit the first.
        while unreached := sorted(set(by_path) - _reachable(roots, edges)):
            roots.append(unreached[0])
        main_dirs = [posixpath.dirname(m) for m in mains if m in roots]
        enabled = {posixpath.dirname(posixpath.dirname(p)) for p in by_path if "/sites-enabled/" in f"/{p}"}
        identity = getattr(provider, "identity", lambda _path: None)
        read = {identity(h) for h in included} - {None}
        for path in roots:
            main_dir = next((d for d in main_dirs if path not in mains and _inside(path, d)), None)
            folder = posixpath.dirname(path)
            in_available = posixpath.basename(folder) == "sites-available"
            if main_dir is None and not (not main_dirs and in_available and posixpath.dirname(folder) in enabled):
                _add_root(b, path, path in mains)
                continue
            # Not active: nothing nginx reads includes it (beside an nginx.conf that does not, or in
            # sites-available beside sites-enabled). Said, unless it is an included file under
            # another name (sites-enabled/x -> ../sites-available/x): that one is audited.
            if identity(path) is None or identity(path) not in read:
                why = (f"no file the nginx.conf in {main_dir or '.'} reads includes it" if main_dir is not None
                       else "it is not linked from sites-enabled")
                b.problem(f"{path} is not active ({why}): not judged", Location(path), Status.SKIP,
                          SkipReason.NOT_ACTIVE)


def _reachable(roots: list[str], edges: dict[str, list[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        p = todo.pop()
        if p not in seen:
            seen.add(p)
            todo.extend(edges.get(p, ()))
    return seen


def _add_root(b: _Builder, path: str, main: bool) -> None:
    raw = b.raw(path)
    if isinstance(raw, ParseError):
        b.unparsed(path, raw)
        return
    if isinstance(raw, OSError):
        b.problem(f"cannot read {path}: {raw}", Location(path))
        return
    name, ctx = ("main", ()) if main else _root_context(raw)
    root = Directive("http" if name == "locations" else name, [], path, None, [])
    into = root
    if name == "locations":
        into = Directive("server", [], path, None, [], root, implicit=True)
        assert root.block is not None
        root.block.append(into)
    seen: list[str] = [path]
    b.expansions = b.directives = 0
    try:
        b.expand(path, ctx, into, _prefix(path, main), (path,), seen)
    except _Unreadable:
        return
    except _TooLarge as exc:
        b.problem(f"cannot audit {path}: {exc.message}", Location(path, None), Status.ERROR)
        return
    except RecursionError:
        b.problem(f"cannot parse {path}: nested too deeply", Location(path))
        return
    b.facts.add(KIND, NginxConfig(path, root=root, files=seen))
