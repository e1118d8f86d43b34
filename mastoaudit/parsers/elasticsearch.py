"""elasticsearch.yml (and opensearch.yml): YAML settings flattened to dotted names, with lines.

`xpack.security.enabled: false` and `xpack: {security: {enabled: false}}` are the same setting;
the server refuses a setting given twice, and so does this parser. Values stay strings as
written (`true`, `0.0.0.0`); lists stay lists. `${VAR}` values come from the environment at
start-up and cannot be judged here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import yaml

from .. import templating, yamlsafe
from ..model import Location
from .base import ConfigFact, ParseError, SourceFile

MAX_DEPTH = 32
_SECRET_KEY = re.compile(r"password|passphrase|secret", re.IGNORECASE)


@dataclass(frozen=True)
class EsSetting:
    key: str  # flat, dotted
    value: str | tuple[str, ...]  # a scalar as written, or a list of them
    location: Location

    @property
    def values(self) -> tuple[str, ...]:
        return self.value if isinstance(self.value, tuple) else (self.value,)

    @property
    def text(self) -> str:
        return ", ".join(self.values) if isinstance(self.value, tuple) else self.value

    @property
    def templated(self) -> bool:
        return any(templating.is_templated(v, "config") for v in self.values)

    def as_bool(self) -> bool | None:
        text = self.text.strip().lower()
        return {"true": True, "false": False}.get(text)


@dataclass
class ElasticsearchConf(ConfigFact):
    settings: dict[str, EsSetting] = field(default_factory=dict)

    def get(self, *keys: str) -> EsSetting | None:
        """The first of `keys` that is set (more specific settings first)."""
        for key in keys:
            if key in self.settings:
                return self.settings[key]
        return None

    def secret_values(self) -> tuple[str, ...]:
        """Passwords written in the file (keystore passwords belong in the keystore, but appear)."""
        return tuple(v for key, s in self.settings.items() if _SECRET_KEY.search(key.rsplit(".", 1)[-1])
                     for v in s.values if v)

    @property
    def opensearch(self) -> bool:
        return self.path.lower().endswith("opensearch.yml") or any(
            k.startswith(("plugins.security.", "opendistro_security.")) for k in self.settings)


def _scalar(node: yaml.Node) -> str:
    if isinstance(node, yaml.ScalarNode):
        return "" if node.tag.endswith(":null") and node.value in ("", "~", "null", "Null", "NULL") else node.value
    raise ParseError("a list may hold only plain values here", node.start_mark.line + 1)


def _flatten(node: yaml.Node, prefix: str, source: SourceFile, out: dict[str, EsSetting], depth: int) -> None:
    # yamlsafe bounded how far aliases expand and how deep they nest.
    if depth > MAX_DEPTH:
        raise ParseError("nested too deeply", node.start_mark.line + 1)
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise ParseError("a setting name must be plain text", key_node.start_mark.line + 1)
        key = prefix + key_node.value
        line = key_node.start_mark.line + 1
        if isinstance(value_node, yaml.MappingNode):
            _flatten(value_node, key + ".", source, out, depth + 1)
            continue
        if isinstance(value_node, yaml.SequenceNode):
            value: str | tuple[str, ...] = tuple(_scalar(item) for item in value_node.value)
        else:
            value = _scalar(value_node)
        if key in out:
            raise ParseError(f"a setting is set twice (first at line {out[key].location.line})", line)
        out[key] = EsSetting(key, value, source.at(line))


def parse_elasticsearch_yml(source: SourceFile) -> ElasticsearchConf:
    conf = ElasticsearchConf(source.path)
    try:
        root = yamlsafe.compose(source.text, templates=True)
    except yamlsafe.YamlError as exc:
        raise ParseError(exc.problem, exc.line) from None
    if root is None:
        return conf
    if not isinstance(root, yaml.MappingNode):
        raise ParseError("the file must be a mapping of settings", root.start_mark.line + 1)
    _flatten(root, "", source, conf.settings, 0)
    return conf
