"""The one way mastoaudit reads YAML: bounded, safe, and with the line of every problem.

Every YAML reader (compose files, elasticsearch.yml, inventories, the bundled threat and advisory
data, waivers, OSV files) goes through here, because a YAML file can be made to hurt its reader:

- an alias bomb (anchors that repeat each other) expands a 1 KB file to gigabytes in whoever
  walks it: the nodes and the text a document expands to are counted as it is read, aliases
  included, and refused past MAX_EXPANDED_NODES / MAX_EXPANDED_CHARS;
- deep nesting (20,000 levels of `[`) overflows a recursive reader: refused past MAX_DEPTH levels,
  counted through aliases too, so every reader may recurse over what it gets;
- tags construct arbitrary objects (`!!python/name:...`) or mean something mastoaudit cannot know
  (`!vault`): only YAML's standard tags are read, plus those a caller names (Compose's `!reset`);
  a value whose standard tag it does not fit (`!!int abc`) is an error too;
- a huge file: refused past MAX_BYTES, and past MAX_NODES nodes before they are all in memory;
- recursive anchors (an alias inside the node it names) are refused.

The API (keep it small):

- `compose(text, tags=(), core_schema=False) -> yaml.Node | None`: the document as PyYAML nodes,
  which keep their lines (`node_line(node)`); aliases are shared nodes, never copies.
  `core_schema=True` resolves plain scalars as YAML 1.2's core schema does (`yes` and `22:22` are
  strings), for formats read by YAML 1.2 parsers (Compose).
- `load(text, tags=())`: plain data (dict, list, str, int, float, bool, None, date) for files
  whose lines do not matter.
- `scalar_value(node)`: one scalar node's value as `load` would read it.
- `YamlError(problem, line)`: every problem, with the line (1-based) where known. Its text never
  quotes the file: a wrapped password must not end up in an error message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from .templating import neutralise

MAX_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 64  # levels of nesting, aliases followed
MAX_NODES = 200_000  # nodes written in the file
MAX_EXPANDED_NODES = 200_000  # nodes a reader meets walking the document, aliases followed
MAX_EXPANDED_CHARS = 16 * 1024 * 1024  # scalar text a reader meets the same way

_T = "tag:yaml.org,2002:"
STANDARD_TAGS = frozenset(_T + t for t in ("str", "int", "float", "bool", "null", "timestamp", "seq", "map",
                                           "merge"))
_TYPED = ("int", "float", "bool", "null", "timestamp")

_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when present: the same events


class YamlError(ValueError):
    """A YAML file that cannot be read; `problem` says what, never quoting the file."""

    def __init__(self, problem: str, line: int | None = None) -> None:
        super().__init__(f"line {line}: {problem}" if line else problem)
        self.problem = problem
        self.line = line


class _Loader11(_Base):  # type: ignore[misc, valid-type]
    """YAML 1.1 scalars, as PyYAML's safe loader reads them."""


class _Loader12(_Base):  # type: ignore[misc, valid-type]
    """YAML 1.2 core schema scalars."""


_Loader12.yaml_implicit_resolvers = {}
for _tag, _rx, _first in [
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    ("float",
     r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
     list("-+.0123456789")),
    ("merge", r"^<<$", ["<"]),
]:
    _Loader12.add_implicit_resolver(_T + _tag, re.compile(_rx), list(_first))


def _typed_patterns(loader: type) -> dict[str, list[re.Pattern[str]]]:
    found: dict[str, list[re.Pattern[str]]] = {}
    for entries in loader.yaml_implicit_resolvers.values():
        for tag, rx in entries:
            if rx not in found.setdefault(tag, []):
                found[tag].append(rx)
    return found


_PATTERNS = {_Loader11: _typed_patterns(_Loader11), _Loader12: _typed_patterns(_Loader12)}


def node_line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _line(mark: Any) -> int | None:
    return mark.line + 1 if mark is not None else None


# What PyYAML quotes that is syntax, not the file's content: punctuation, token names, \t.
_SYNTAX = re.compile(r"[^\w\s]{1,3}|<[a-z ]+>|\\[a-z]|\\x[0-9a-f]{2}")


def _problem_text(text: str | None) -> str:
    """PyYAML's own words; of what it quotes, only syntax is kept (a quoted value could be half of
    a password wrapped onto its own line)."""
    def keep(match: re.Match[str]) -> str:
        return match.group() if _SYNTAX.fullmatch(match.group()[1:-1]) else ""

    text = re.sub(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", keep, text or "")
    text = re.sub(r"\s+", " ", text).strip(" ,:")
    return text or "not valid YAML"


def _parser_error(exc: yaml.YAMLError, text: str) -> YamlError:
    mark = getattr(exc, "problem_mark", None)
    context = getattr(exc, "context_mark", None)
    if context is not None and (mark is None or mark.index >= len(text.rstrip())):
        mark = context  # "unexpected end of file": point at what was left open instead
    return YamlError(f"invalid YAML: {_problem_text(getattr(exc, 'problem', None) or str(exc))}", _line(mark))


class _Frame:
    __slots__ = ("anchor", "chars", "height", "node", "nodes")

    def __init__(self, node: yaml.Node, anchor: str | None) -> None:
        self.node, self.anchor = node, anchor
        self.nodes, self.chars, self.height = 1, 0, 1


def compose(text: str, tags: Iterable[str] = (), core_schema: bool = False,
            templates: bool = False) -> yaml.Node | None:
    """The first (and only) document of `text` as nodes, within every bound; None when empty.
    `templates`: a config file that may be a template (an Ansible role's elasticsearch.yml.j2): its
    control statements are blank lines and each expression one scalar, kept as written."""
    if len(text) > MAX_BYTES:
        raise YamlError(f"larger than {MAX_BYTES // (1024 * 1024)} MiB")
    template = neutralise(text) if templates else None
    if template is not None:
        text = template.text
    loader_class = _Loader12 if core_schema else _Loader11
    allowed = STANDARD_TAGS | frozenset(tags)
    patterns = _PATTERNS[loader_class]
    loader = loader_class(text)
    # What each finished node adds to a reader's walk: (nodes, characters, height), aliases included.
    sizes: dict[int, tuple[int, int, int]] = {}
    anchors: dict[str, yaml.Node | None] = {}  # None: still open (an alias to it would be a loop)
    stack: list[_Frame] = []
    root: yaml.Node | None = None
    documents = composed = 0

    def add(node: yaml.Node, size: tuple[int, int, int], line: int) -> None:
        nonlocal root
        if not stack:
            root = node
            return
        frame = stack[-1]
        frame.node.value.append(node)  # a mapping's keys and values alternate until it ends
        frame.nodes += size[0]
        frame.chars += size[1]
        frame.height = max(frame.height, size[2] + 1)
        if frame.nodes > MAX_EXPANDED_NODES or frame.chars > MAX_EXPANDED_CHARS:
            raise YamlError(f"the document expands to more than {MAX_EXPANDED_NODES} nodes or "
                            f"{MAX_EXPANDED_CHARS // (1024 * 1024)} MiB of text (aliases repeating each other)", line)
        if frame.height > MAX_DEPTH:
            raise YamlError(f"nested deeper than {MAX_DEPTH} levels", line)

    def check_tag(tag: str, line: int) -> None:
        if tag not in allowed:
            raise YamlError("a tag mastoaudit does not read (only YAML's standard tags: not !vault, "
                            "!!python/..., or custom tags)", line)

    try:
        while loader.check_event():
            event = loader.get_event()
            line = _line(event.start_mark) or 0
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise YamlError("more than one document in the file", line)
                continue
            if isinstance(event, yaml.StreamStartEvent | yaml.StreamEndEvent | yaml.DocumentEndEvent):
                continue
            if isinstance(event, yaml.AliasEvent):
                if event.anchor not in anchors:
                    raise YamlError("an alias to an anchor that is not defined before it", line)
                target = anchors[event.anchor]
                if target is None:
                    raise YamlError("an alias inside the node it refers to (a recursive anchor)", line)
                add(target, sizes[id(target)], line)
                continue
            if isinstance(event, yaml.ScalarEvent):
                composed += 1
                tag = event.tag
                explicit = tag not in (None, "!")
                if not explicit:
                    tag = loader.resolve(yaml.ScalarNode, event.value, event.implicit)
                check_tag(tag, line)
                typed = tag[len(_T):] in _TYPED
                if explicit and typed and not any(rx.match(event.value) for rx in patterns.get(tag, ())):
                    raise YamlError(f"a value tagged !!{tag[len(_T):]} that is not one", line)
                value = template.restore(event.value) if template is not None else event.value
                node = yaml.ScalarNode(tag, value, event.start_mark, event.end_mark, style=event.style)
                size = (1, len(event.value), 1)
                sizes[id(node)] = size
                if event.anchor is not None:
                    anchors[event.anchor] = node
                add(node, size, line)
            elif isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
                composed += 1
                is_seq = isinstance(event, yaml.SequenceStartEvent)
                kind = yaml.SequenceNode if is_seq else yaml.MappingNode
                tag = event.tag
                if tag is None or tag == "!":
                    tag = loader.resolve(kind, None, event.implicit)
                check_tag(tag, line)
                if len(stack) >= MAX_DEPTH:
                    raise YamlError(f"nested deeper than {MAX_DEPTH} levels", line)
                node = kind(tag, [], event.start_mark, None, flow_style=event.flow_style)
                if event.anchor is not None:
                    anchors[event.anchor] = None
                stack.append(_Frame(node, event.anchor))
            elif isinstance(event, yaml.SequenceEndEvent | yaml.MappingEndEvent):
                frame = stack.pop()
                node = frame.node
                node.end_mark = event.end_mark
                if isinstance(node, yaml.MappingNode):
                    items = node.value
                    node.value = list(zip(items[0::2], items[1::2], strict=True))
                sizes[id(node)] = (frame.nodes, frame.chars, frame.height)
                if frame.anchor is not None:
                    anchors[frame.anchor] = node
                add(node, sizes[id(node)], line)
            if composed > MAX_NODES:
                raise YamlError(f"more than {MAX_NODES} nodes", line)
    except yaml.YAMLError as exc:
        raise _parser_error(exc, text) from None
    finally:
        loader.dispose()
    return root


def scalar_value(node: yaml.ScalarNode) -> Any:
    """A scalar node's value as the safe loader reads it (YAML 1.1 types)."""
    try:
        return SafeConstructor().construct_object(node)
    except (yaml.YAMLError, ValueError, TypeError, OverflowError):
        raise YamlError("a value that cannot be read as its type", node_line(node)) from None


def load(text: str, tags: Iterable[str] = ()) -> Any:
    """Plain data: dicts, lists and scalars; aliases are shared values, `<<` merges applied."""
    root = compose(text, tags)
    if root is None:
        return None
    built: dict[int, Any] = {}

    def build(node: yaml.Node) -> Any:  # recursion is bounded: compose refused anything deeper
        key = id(node)
        if key in built:
            return built[key]
        if isinstance(node, yaml.ScalarNode):
            value = scalar_value(node) if node.tag in STANDARD_TAGS else node.value
        elif isinstance(node, yaml.SequenceNode):
            value = [build(item) for item in node.value]
        else:
            value = {}
            merged: list[dict] = []
            for key_node, value_node in node.value:
                if key_node.tag == _T + "merge":
                    sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                    for source in sources:
                        piece = build(source)
                        if not isinstance(piece, dict):
                            raise YamlError("a << merge key needs a mapping (or a list of them)", node_line(source))
                        merged.append(piece)
                    continue
                if not isinstance(key_node, yaml.ScalarNode):
                    raise YamlError("a mapping key must be a plain value", node_line(key_node))
                name = build(key_node)
                if name in value:
                    raise YamlError("a key given twice in one mapping", node_line(key_node))
                value[name] = build(value_node)
            for piece in merged:
                for name, item in piece.items():
                    value.setdefault(name, item)
        built[key] = value
        return value

    return build(root)
