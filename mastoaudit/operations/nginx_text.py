"""nginx configuration text, edited the way a person would: one directive's value replaced in place,
or a line inserted at the top of a block, with every other byte (comments, layout) kept.

The scanner follows nginx's own tokenising rules closely enough to find statements and blocks with
their offsets (quotes, backslash escapes, `#` comments, `${var}` inside words); it never rewrites
what it does not change, and `nginx -t` on the host is the judge of the result.

Where a change goes is found from what the finding says: its subject ("server NAME:PORTS",
"... location ARGS", or several servers for a setting they share), its file line as audited, and
the value it observed. A second run finds the fixed value and changes nothing, even where the
first run's insertions moved the lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MARK = "# mastoaudit"


class NginxEditError(ValueError):
    """The file does not have the shape the plan expects (changed since the audit, or unparsable)."""


@dataclass(eq=False)
class Stmt:
    name: str
    args: list[str]
    start: int  # offset of the name
    end: int  # offset just past `;` or the closing `}`
    line: int
    open_brace: int | None = None  # offset of `{` for blocks
    children: list[Stmt] = field(default_factory=list)
    parent: Stmt | None = field(default=None, repr=False)

    @property
    def is_block(self) -> bool:
        return self.open_brace is not None

    def own(self, name: str) -> list[Stmt]:
        return [c for c in self.children if c.name == name]

    def ancestors(self) -> list[Stmt]:
        out, node = [], self.parent
        while node is not None:
            out.append(node)
            node = node.parent
        return out


def _words(text: str, pos: int):
    """Yield (word, start, end, quoted, line) and the single characters ; { } as words."""
    n = len(text)
    line = 1 + text.count("\n", 0, pos)
    while pos < n:
        c = text[pos]
        if c == "\n":
            line += 1
            pos += 1
            continue
        if c in " \t\r":
            pos += 1
            continue
        if c == "#":
            nl = text.find("\n", pos)
            pos = n if nl < 0 else nl
            continue
        if c in ";{}":
            yield c, pos, pos + 1, False, line
            pos += 1
            continue
        start, start_line = pos, line
        if c in "\"'":
            quote, pos, buf = c, pos + 1, []
            while pos < n and text[pos] != quote:
                if text[pos] == "\\" and pos + 1 < n:
                    buf.append(text[pos:pos + 2] if text[pos + 1] not in "\"'\\" else text[pos + 1])
                    pos += 2
                    continue
                if text[pos] == "\n":
                    line += 1
                buf.append(text[pos])
                pos += 1
            if pos >= n:
                raise NginxEditError(f"line {start_line}: unterminated quote")
            pos += 1
            yield "".join(buf), start, pos, True, start_line
            continue
        buf = []
        while pos < n:
            c = text[pos]
            if c in " \t\r\n;":
                break
            if c == "{" and not (buf and buf[-1] == "$"):
                break
            if c == "}" and "${" not in "".join(buf):
                break
            if c == "\\" and pos + 1 < n:
                buf.append(text[pos:pos + 2])
                pos += 2
                continue
            buf.append(c)
            pos += 1
            if c == "}" and "${" in "".join(buf):
                continue
        yield "".join(buf), start, pos, False, start_line


def parse(text: str) -> Stmt:
    """The file as a tree of statements under a pseudo-block named "" (offsets into `text`)."""
    root = Stmt("", [], 0, len(text), 0, open_brace=-1)
    stack = [root]
    current: list = []  # words of the statement being read
    for word, start, end, quoted, line in _words(text, 0):
        if not quoted and word == ";":
            if not current:
                continue  # a stray `;` is allowed by nginx
            s = Stmt(current[0][0], [w for w, *_ in current[1:]], current[0][1], end, current[0][4], parent=stack[-1])
            stack[-1].children.append(s)
            current = []
        elif not quoted and word == "{":
            if not current:
                raise NginxEditError(f"line {line}: a block without a name")
            s = Stmt(current[0][0], [w for w, *_ in current[1:]], current[0][1], end, current[0][4],
                     open_brace=start, parent=stack[-1])
            stack[-1].children.append(s)
            stack.append(s)
            current = []
            if s.name.endswith("_by_lua_block"):
                raise NginxEditError(f"line {line}: Lua blocks are not edited here")
        elif not quoted and word == "}":
            if current or len(stack) == 1:
                raise NginxEditError(f"line {line}: unexpected }}")
            stack[-1].end = end
            stack.pop()
        else:
            current.append((word, start, end, quoted, line))
    if current or len(stack) != 1:
        raise NginxEditError("unbalanced braces or an unterminated statement at the end of the file")
    return root


def walk(node: Stmt):
    for c in node.children:
        yield c
        yield from walk(c)


def quote(arg: str) -> str:
    if arg and not re.search(r"[\s;{}\"'\\#]", arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(name: str, args: list[str]) -> str:
    return " ".join([name, *(quote(a) for a in args)]) + ";"


# --- where: the block a finding names -------------------------------------------------------------

def _listen_port(spec: str) -> int | None:
    if spec.startswith("unix:"):
        return None
    if spec.startswith("["):
        rest = spec[1:].partition("]")[2].lstrip(":")
        return int(rest) if rest.isdigit() else 80
    if spec.isdigit():
        return int(spec)
    port = spec.rpartition(":")[2] if ":" in spec else ""
    return int(port) if port.isdigit() else 80


def server_label(server: Stmt) -> str:
    """As the checks name a server: its first real server_name and its ports."""
    names = [a for d in server.own("server_name") for a in d.args]
    name = next((n for n in names if n not in ("_", '""', "")), None) or "(default)"
    listens = [d.args[0] for d in server.own("listen") if d.args]
    ports = sorted({p for p in (_listen_port(s) for s in listens) if p is not None}) if listens else [80]
    return f"server {name}:{'/'.join(map(str, ports)) or 'unix'}"


_SCOPE = re.compile(r"^(server \S+?:[0-9/]+|server \(default\):[0-9/]+|server \S+:unix)(?: location (.+))?$")


def find_scope(root: Stmt, scope: str | None) -> Stmt | None:
    """The one block a finding's subject names, or None (several servers, unknown, or ambiguous)."""
    if not scope or ", server " in scope:
        return None
    m = _SCOPE.match(scope)
    if not m:
        return None
    servers = [s for s in walk(root) if s.name == "server" and s.is_block and server_label(s) == m.group(1)]
    if len(servers) != 1:
        return None
    if not m.group(2):
        return servers[0]
    locs = [s for s in walk(servers[0]) if s.name == "location" and " ".join(s.args) == m.group(2)]
    return locs[0] if len(locs) == 1 else None


def _at_line(root: Stmt, line: int | None) -> Stmt | None:
    if not line:
        return None
    return next((s for s in walk(root) if s.line == line), None)


def _http_or_top(root: Stmt) -> Stmt | None:
    """The block that settings shared by several servers belong to: the one http block, or the file
    itself when it is a site file (read inside http)."""
    https = [s for s in walk(root) if s.name == "http" and s.is_block]
    if len(https) == 1:
        return https[0]
    if not https and any(s.name == "server" for s in root.children):
        return root
    return None


# --- edits ----------------------------------------------------------------------------------------

def _indent_for(text: str, block: Stmt) -> str:
    if block.children:
        first = block.children[0]
        line_start = text.rfind("\n", 0, first.start) + 1
        return text[line_start:first.start] if text[line_start:first.start].strip() == "" else "    "
    if block.open_brace is None or block.open_brace < 0:
        return ""
    line_start = text.rfind("\n", 0, block.start) + 1
    return text[line_start:block.start].replace("\t", "    ") + "    "


def insert_into(text: str, block: Stmt, lines: list[str]) -> str:
    """`lines` (without indentation) at the top of `block`, each on a line of its own."""
    indent = _indent_for(text, block)
    if block.open_brace is None or block.open_brace < 0:  # the file itself: at the end
        sep = "" if text.endswith("\n") or not text else "\n"
        return text + sep + "".join(f"{line}\n" for line in lines)
    eol = text.find("\n", block.open_brace)
    head_end = len(text) if eol < 0 else eol
    if block.end <= head_end:  # `{ ... }` on one line: the new statements go right after the brace
        plain = " ".join(line.split(f"  {MARK}")[0] for line in lines)
        return text[:block.open_brace + 1] + " " + plain + text[block.open_brace + 1:]
    # Whatever follows `{` on its line (a comment, or statements written on one line) stays there.
    before, after = text[:head_end], text[head_end:]
    return before + "".join(f"\n{indent}{line}" for line in lines) + (after if after else "\n")


def replace_stmt(text: str, stmt: Stmt, new: str) -> str:
    return text[:stmt.start] + new + text[stmt.end:]


@dataclass(frozen=True)
class Outcome:
    text: str
    changed: bool
    note: str


def set_directive(text: str, name: str, value: list[str], *, scope: str | None, line: int | None,
                  was: list[str] | None, check: str) -> Outcome:
    """Make `name` have `value` where the finding points (idempotent)."""
    root = parse(text)
    mark = f"  {MARK}: {check}"
    at = _at_line(root, line)
    # 1. The file as audited: the directive is at the line, with the value that was seen.
    if at is not None and at.name == name and not at.is_block and (was is None or at.args in (was, value)):
        if at.args == value:
            return Outcome(text, False, f"{name} already {' '.join(value)}")
        return Outcome(replace_stmt(text, at, render(name, value) + mark), True, f"{name} at line {at.line}")
    # 2. The one block the finding names: its own directive, or the value it inherits.
    block = find_scope(root, scope)
    if block is not None:
        for level in [block, *block.ancestors()]:
            found = level.own(name)
            if found:
                if found[0].args == value:
                    return Outcome(text, False, f"{name} already {' '.join(value)}")
                if level is block or (was is not None and found[0].args == was):
                    return Outcome(replace_stmt(text, found[0], render(name, value) + mark), True,
                                   f"{name} at line {found[0].line}")
                break  # set above with another value: set it here, for this block only
        return Outcome(insert_into(text, block, [render(name, value) + mark]), True,
                       f"{name} added at line {block.line}")
    # 3. A setting several servers share, or a finding that names no block: the directive wherever
    #    it is in the file with the value that was seen (lines may have moved since the audit).
    same = [d for d in walk(root) if d.name == name and not d.is_block]
    bad = [d for d in same if was is not None and d.args == was]
    if bad:
        for d in sorted(bad, key=lambda d: d.start, reverse=True):
            text = replace_stmt(text, d, render(name, value) + mark)
        return Outcome(text, True, f"{name} at line{'s' * (len(bad) > 1)} {', '.join(str(d.line) for d in bad)}")
    if any(d.args == value for d in same):
        return Outcome(text, False, f"{name} already {' '.join(value)}")
    if same:
        raise NginxEditError(f"{name} has a value the audit did not see: the file changed since the audit")
    if at is not None and at.is_block and at.name in ("http", "server", "location"):
        block = at
    elif scope is None or ", server " in scope:
        block = _http_or_top(root)
    if block is None:
        raise NginxEditError(f"cannot find {scope or f'line {line}'} in the file: it changed since the audit")
    return Outcome(insert_into(text, block, [render(name, value) + mark]), True, f"{name} added at line {block.line}")


def add_header(text: str, header: str, value: str, *, scope: str | None, line: int | None, check: str,
               inherited: list[tuple[str, str, bool]] = ()) -> Outcome:
    """Make the block the finding names send `header: value` (always). A block that had no
    add_header of its own inherited its parents' lines: they are copied in too, since nginx stops
    inheriting them once the block has one. `inherited`: add_header lines from levels above this
    file (the http block of nginx.conf for a site file)."""
    root = parse(text)
    block = find_scope(root, scope)
    if block is None:
        at = _at_line(root, line)
        if at is not None and at.is_block and at.name in ("http", "server", "location"):
            block = at
        elif at is not None and at.name == "add_header" and at.parent is not None:
            block = at.parent
    if block is None:
        raise NginxEditError(f"cannot find {scope or f'line {line}'} in the file: it changed since the audit")
    mark = f"  {MARK}: {check}"
    own = block.own("add_header")
    same = [d for d in own if d.args and d.args[0].lower() == header.lower()]
    wanted = [header, value, "always"]
    if same:
        if len(same[0].args) >= 2 and same[0].args[1] == value:
            return Outcome(text, False, f"{header} already sent")
        return Outcome(replace_stmt(text, same[0], render("add_header", wanted) + mark), True,
                       f"{header} replaced at line {same[0].line}")
    lines = []
    if not own:
        for level in block.ancestors():
            above = level.own("add_header")
            if above:
                lines = [render("add_header", d.args) + f"  {MARK}: inherited, kept" for d in above
                         if d.args and d.args[0].lower() != header.lower()]
                break
        else:
            lines = [render("add_header", [n, v, *(["always"] if a else [])]) + f"  {MARK}: inherited, kept"
                     for n, v, a in inherited if n.lower() != header.lower()]
    return Outcome(insert_into(text, block, [*lines, render("add_header", wanted) + mark]), True,
                   f"{header} added at line {block.line}")


def http_add_headers(text: str) -> list[tuple[str, str, bool]]:
    """add_header lines of the http block of a main nginx.conf (what a site file's servers inherit)."""
    try:
        root = parse(text)
    except NginxEditError:
        return []
    http = _http_or_top(root)
    if http is None:
        return []
    return [(d.args[0], d.args[1], len(d.args) > 2 and d.args[2] == "always")
            for d in http.own("add_header") if len(d.args) >= 2]
