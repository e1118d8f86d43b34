"""docker-compose files: services, published ports, networks and environment, with line numbers.

The YAML is composed into nodes (PyYAML's compose()) so that every value keeps the line it was
written on, then built the way Compose reads it: YAML 1.2 scalars (`yes` and `22:22` are strings),
anchors and aliases, `<<` merge keys (the file's own keys win; of several merged maps the first
wins), and Compose's `!reset` tag. A `docker-compose.override.yml` beside a base file is merged
into it, as `docker compose` does when no -f is given.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from .. import templating, yamlsafe
from ..addresses import reach
from ..facts import FactSet
from ..model import Location, SkipReason, Status
from .base import ConfigFact, FileProvider, ParseError, SourceFile, vocabulary

# --- YAML with locations --------------------------------------------------------------------------


class YMap(dict):
    """A mapping whose entries remember where their key was written."""

    def __init__(self, loc: Location) -> None:
        super().__init__()
        self.loc = loc
        self.locs: dict[str, Location] = {}

    def at(self, key: str) -> Location:
        return self.locs.get(key, self.loc)


class YSeq(list):
    """A sequence whose items remember where they were written."""

    def __init__(self, loc: Location) -> None:
        super().__init__()
        self.loc = loc
        self.locs: list[Location] = []

    def at(self, index: int) -> Location:
        return self.locs[index] if index < len(self.locs) else self.loc


_RESET = object()  # Compose's `!reset`: the key is removed, also from what a merge brought in
COMPOSE_TAGS = ("!reset", "!override")  # Compose's own tags; any other is refused (mastoaudit.yamlsafe)


def _scalar(node: yaml.ScalarNode) -> Any:
    try:
        return _typed(node.value, node.tag)
    except (ValueError, OverflowError):  # more digits than Python reads (4,300): not a real setting
        raise ParseError("a number too long to read", node.start_mark.line + 1) from None


def _typed(value: str, tag: str) -> Any:
    if tag.endswith(":bool"):
        return value.lower() == "true"
    if tag.endswith(":null"):
        return None
    if tag.endswith(":int"):
        if value.startswith("0x"):
            return int(value, 16)
        if value.startswith("0o"):
            return int(value[2:], 8)
        return int(value)
    if tag.endswith(":float"):
        return float(value.replace("Inf", "inf").replace("INF", "inf").replace("NaN", "nan").replace("NAN", "nan"))
    return value  # str, and Compose's !override (yamlsafe refused any other tag)


class _Builder:
    """Nodes to values. Aliases are shared values (yamlsafe bounded how far they expand), and the
    depth is bounded too, so the recursion here is."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.done: dict[int, Any] = {}

    def loc(self, node: yaml.Node) -> Location:
        return Location(self.path, node.start_mark.line + 1)

    def build(self, node: yaml.Node) -> Any:
        key = id(node)
        if key in self.done:
            return self.done[key]  # an alias: the anchored value, shared
        if node.tag == "!reset":
            return _RESET
        if isinstance(node, yaml.MappingNode):
            value: Any = self._mapping(node)
        elif isinstance(node, yaml.SequenceNode):
            value = YSeq(self.loc(node))
            for item in node.value:
                built = self.build(item)
                if built is not _RESET:
                    value.append(built)
                    value.locs.append(self.loc(item))
        else:
            value = _scalar(node)
        self.done[key] = value
        return value

    def _mapping(self, node: yaml.MappingNode) -> YMap:
        result = YMap(self.loc(node))
        merged: list[YMap] = []
        reset: set[str] = set()
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                for source in sources:
                    built = self.build(source)
                    if not isinstance(built, YMap):
                        raise ParseError("a << merge key needs a mapping (or a list of them)", self.loc(source).line)
                    merged.append(built)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise ParseError("a mapping key must be a plain value", self.loc(key_node).line)
            key = str(_scalar(key_node))
            if key in result or key in reset:
                raise ParseError("a key given twice in one mapping", self.loc(key_node).line)
            value = self.build(value_node)
            if value is _RESET:
                reset.add(key)
                continue
            result[key] = value
            result.locs[key] = self.loc(key_node)
        for source in merged:  # the file's own keys win; of several merged maps, the first wins
            for key, value in source.items():
                if key not in result and key not in reset:
                    result[key] = value
                    result.locs[key] = source.at(key)
        return result


def load_located(source: SourceFile) -> Any:
    """The document as plain values in YMap/YSeq containers that know their lines."""
    try:
        node = yamlsafe.compose(source.text, COMPOSE_TAGS, core_schema=True, templates=True)
    except yamlsafe.YamlError as exc:
        raise ParseError(exc.problem, exc.line) from None
    if node is None:
        return None
    return _Builder(source.path).build(node)


# --- Compose's model -------------------------------------------------------------------------------

SECRET_NAME = re.compile(r"PASS|SECRET|TOKEN|PRIVATE|_KEY$|KEY_BASE|CREDENTIAL", re.IGNORECASE)


@dataclass(frozen=True)
class PortPublish:
    raw: str
    host_ip: str | None  # None: every interface
    host_port: str | None  # None: an ephemeral port chosen by Docker
    container_port: str
    protocol: str
    location: Location

    @property
    def templated(self) -> bool:
        return templating.is_templated(self.raw, "compose")

    @property
    def exposure(self) -> str:
        """all | loopback | private | public | templated | unknown"""
        if self.templated:
            return "templated"
        if self.host_ip is None:
            return "all"
        found = reach(self.host_ip)  # documentation ranges stand for public addresses in examples
        return {"any": "all", "name": "unknown"}.get(found, found)

    def describe(self) -> str:
        host = f"{self.host_ip}:" if self.host_ip else ""
        return f"{host}{self.host_port or '(ephemeral)'}->{self.container_port}/{self.protocol}"


@dataclass(frozen=True)
class EnvSetting:
    name: str
    value: str | None  # None: passed through from the shell that runs compose
    location: Location


@dataclass(frozen=True)
class Mount:
    source: str | None
    target: str
    read_only: bool
    location: Location
    kind: str  # bind | volume | tmpfs | ...


@dataclass(frozen=True)
class Item:
    value: str
    location: Location


_MASTODON_IMAGE = re.compile(r"(^|/)(tootsuite|mastodon|linuxserver)/mastodon(-streaming)?$")
_ROLE_BY_NAME = [
    ("elasticsearch", re.compile(r"elasticsearch|opensearch(?!-dashboards)")),
    ("postgresql", re.compile(r"postgres|postgis|timescaledb|pgvector")),
    ("redis", re.compile(r"redis|valkey|keydb|dragonfly")),
]

_SIDECAR = re.compile(r"exporter|commander|insight|backup|admin|dashboards|kibana|pgbouncer|sentinel-proxy")


@dataclass
class ComposeService:
    name: str
    location: Location
    raw: YMap
    image: str | None = None
    image_location: Location | None = None
    command: str = ""
    ports: list[PortPublish] = field(default_factory=list)
    networks: list[Item] = field(default_factory=list)  # empty: the project's default network
    network_mode: Item | None = None
    environment: dict[str, EnvSetting] = field(default_factory=dict)
    env_files: list[Item] = field(default_factory=list)
    mounts: list[Mount] = field(default_factory=list)
    privileged: Item | None = None
    cap_add: list[Item] = field(default_factory=list)
    security_opt: list[Item] = field(default_factory=list)
    pid: Item | None = None

    # image reference parts: registry/repo, tag, digest
    def _image_ref(self) -> tuple[str, str | None]:
        """(registry/repo, tag or None) of the image, the digest left out."""
        ref = (self.image or "").split("@", 1)[0]
        colon = ref.rfind(":")
        return (ref[:colon], ref[colon + 1:]) if colon > ref.rfind("/") else (ref, None)

    @property
    def image_repo(self) -> str | None:
        return self._image_ref()[0] if self.image else None

    @property
    def image_tag(self) -> str | None:
        return self._image_ref()[1] if self.image else None

    @property
    def image_digest(self) -> str | None:
        return self.image.split("@", 1)[1] if self.image and "@" in self.image else None

    @property
    def is_mastodon(self) -> bool:
        repo = (self.image_repo or "").lower()
        if _MASTODON_IMAGE.search(repo):
            return True
        built = "build" in self.raw and not self.image
        return built and bool(re.search(r"\bpuma\b|\bsidekiq\b|streaming", self.command))

    @property
    def role(self) -> str | None:
        """postgresql | redis | elasticsearch | web | streaming | sidekiq | mastodon | None"""
        if self.is_mastodon:
            if "streaming" in (self.image_repo or "") or "streaming" in self.command:
                return "streaming"
            if "sidekiq" in self.command:
                return "sidekiq"
            if "puma" in self.command or "rails s" in self.command:
                return "web"
            return "mastodon"
        base = (self.image_repo or "").lower().rsplit("/", 1)[-1]
        if _SIDECAR.search(base):
            return None  # an exporter or admin UI named after the service it watches
        for role, rx in _ROLE_BY_NAME:
            if rx.search(base):
                return role
        if any(k.startswith("POSTGRES_") for k in self.environment):
            return "postgresql"
        return None

    @property
    def mastodon_version(self) -> str | None:
        """The release an image tag names (v4.3.17, 4.5.0-beta.1): None for latest, nightly, digests."""
        tag = self.image_tag if self.is_mastodon else None
        if not tag or templating.is_templated(tag, "compose"):
            return None
        match = re.fullmatch(r"v?(\d+\.\d+\.\d+(?:[-.][0-9A-Za-z.]+)?)", tag)
        return match.group(1) if match else None

    def env(self, name: str) -> EnvSetting | None:
        return self.environment.get(name)

    @property
    def published(self) -> bool:
        return bool(self.ports)


@dataclass(frozen=True)
class ComposeNetwork:
    name: str
    internal: bool
    external: bool
    location: Location | None


@dataclass
class ComposeFile(ConfigFact):
    services: dict[str, ComposeService] = field(default_factory=dict)
    networks: dict[str, ComposeNetwork] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)  # the base file, then overrides merged into it
    # The .env beside it that docker compose interpolates ${VAR} from (None: none in the tree), its
    # values, and each value it filled in: (where, as written, as interpolated).
    env_path: str | None = None
    variables: dict[str, str] = field(default_factory=dict)
    interpolated: list[tuple[Location, str, str]] = field(default_factory=list)

    def written(self, where: Location | None) -> str | None:
        """How the value at `where` was written before interpolation, when .env filled it in."""
        return next((w for loc, w, _ in self.interpolated if loc == where), None)

    def uses_env_file(self, path: str) -> bool:
        """Whether a service passes `path` to its containers with env_file (then it is their settings too)."""
        folder = self.path.rpartition("/")[0]
        for service in self.services.values():
            for item in service.env_files:
                named = item.value if item.value.startswith("/") or not folder else f"{folder}/{item.value}"
                if posixpath.normpath(named) == posixpath.normpath(path):
                    return True
        return False

    def service_networks(self, service: ComposeService) -> list[ComposeNetwork]:
        """The networks a service is attached to (the default network when it names none)."""
        if service.network_mode is not None:
            return []
        names = [n.value for n in service.networks] or ["default"]
        return [self.networks.get(n) or ComposeNetwork(n, False, False, None) for n in names]

    def by_role(self, *roles: str) -> list[ComposeService]:
        return [s for s in self.services.values() if s.role in roles]

    def mastodon_versions(self) -> list[tuple[str, str, Location]]:
        """(service, version, where) for Mastodon images pinned to a release (advisory checks)."""
        return [(s.name, s.mastodon_version, s.image_location or s.location)
                for s in self.services.values() if s.mastodon_version]

    def secret_values(self) -> tuple[str, ...]:
        found = [v for k, v in self.variables.items() if SECRET_NAME.search(k) and len(v) >= 4]
        for service in self.services.values():
            for setting in service.environment.values():
                value = setting.value
                if value and SECRET_NAME.search(setting.name) and not setting.name.endswith("_FILE") \
                        and not templating.is_templated(value, "compose") and len(value) >= 4:
                    found.append(value)
        return tuple(found)


# --- interpolation (the .env beside the file) ---------------------------------------------------------


def read_dotenv(text: str) -> dict[str, str]:
    """The variables of a compose project's .env, read as docker compose reads it: KEY=VALUE lines,
    `#` comments (after an unquoted value too, when a blank precedes it), single quotes literal,
    double quotes with escapes; `export` before a key is allowed; earlier variables interpolate into
    later unquoted and double-quoted values."""
    found: dict[str, str] = {}
    for raw in text.split("\n"):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", key):
            continue  # compose skips (or refuses) it: no variable either way
        value = value.strip()
        if value[:1] == "'" and value.endswith("'") and len(value) >= 2:
            found[key] = value[1:-1]
            continue
        if value[:1] == '"' and value.endswith('"') and len(value) >= 2:
            value = value[1:-1].replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
        else:
            value = re.split(r"\s+#", value, maxsplit=1)[0].strip()
        done = interpolate(value, found)
        found[key] = done if done is not None else value
    return found


_VAR = re.compile(r"\$(?:\$|\{(?P<braced>[^{}]*(?:\{[^{}]*\}[^{}]*)*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?", re.DOTALL)


class _Unknown(Exception):
    """A variable neither .env nor a default gives: set (or not) by the shell that runs compose."""


def interpolate(value: str, variables: dict[str, str]) -> str | None:
    """`value` with ${VAR}, $VAR, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR?err},
    ${VAR:+alt} and ${VAR+alt} filled in from `variables`, $$ a literal $; None when it names a
    variable `variables` does not have and no default replaces (the shell's environment decides)."""
    if "$" not in value:
        return value

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        if match.group("bare"):
            name = match.group("bare")
            if name not in variables:
                raise _Unknown(name)
            return variables[name]
        spec = _BRACED.fullmatch(match.group("braced") or "")
        if spec is None:
            raise _Unknown(match.group(0))
        name, op, arg = spec.group("name"), spec.group("op"), spec.group("arg") or ""
        present = name in variables
        current = variables.get(name, "")
        empty = not present or (current == "" and op is not None and op.startswith(":"))
        if op in (":-", "-"):
            return current if not empty else _nested(arg, variables)
        if op in (":?", "?"):
            if empty:
                raise _Unknown(name)  # compose stops here unless the shell sets it
            return current
        if op in (":+", "+"):
            return _nested(arg, variables) if not empty else ""
        if not present:
            raise _Unknown(name)
        return current

    try:
        return _VAR.sub(one, value)
    except _Unknown:
        return None


def _nested(text: str, variables: dict[str, str]) -> str:
    out = interpolate(text, variables)
    if out is None:
        raise _Unknown(text)
    return out


def _interpolate_doc(doc: Any, variables: dict[str, str], found: list[tuple[Location, str, str]],
                     seen: set[int] | None = None) -> None:
    """Interpolate every string value of the document in place (keys are not interpolated), each
    change recorded with where it was written."""
    seen = set() if seen is None else seen
    if id(doc) in seen:
        return  # an alias: the anchored value, done once
    seen.add(id(doc))
    items: list[tuple[Any, Any, Location]] = []
    if isinstance(doc, YMap):
        items = [(key, doc[key], doc.at(key)) for key in list(doc)]
    elif isinstance(doc, YSeq):
        items = [(index, value, doc.at(index)) for index, value in enumerate(doc)]
    for key, value, where in items:
        if isinstance(value, str):
            done = interpolate(value, variables)
            if done is not None and done != value:
                doc[key] = done
                if (where, value, done) not in found:  # an anchor's value, merged into several services
                    found.append((where, value, done))
        else:
            _interpolate_doc(value, variables, found, seen)


# --- building the model ----------------------------------------------------------------------------


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _split_short_port(raw: str) -> tuple[str | None, str | None, str]:
    """"[ip:][host:]container" with IPv6 hosts in brackets or bare ("::1:6000:6000")."""
    if raw.startswith("["):
        end = raw.find("]")
        if end < 0 or raw[end + 1:end + 2] != ":":
            raise ValueError("bad bracketed address")
        ip, rest = raw[1:end], raw[end + 2:]
        host, _, container = rest.rpartition(":")
        return ip, host or None, container
    parts = raw.rsplit(":", 2)
    if len(parts) == 1:
        return None, None, parts[0]
    if len(parts) == 2:
        return None, parts[0] or None, parts[1]
    return parts[0] or None, parts[1] or None, parts[2]


_PORT_SPEC = re.compile(r"\d{1,5}(?:-\d{1,5})?")  # 5432, 8000-8010


def _entries(value: Any, where: Location, what: str) -> Iterator[tuple[Any, Location]]:
    """The entries of a list-valued key, each with its own line where the YAML says."""
    if not isinstance(value, list):
        raise ParseError(f"{vocabulary(what, ('ports', 'volumes'), quote=False)} must be a list", where.line)
    for index, item in enumerate(value):
        yield item, value.at(index) if isinstance(value, YSeq) else where


def _ports(value: Any, where: Location) -> list[PortPublish]:
    found = []
    for item, loc in _entries(value, where, "ports"):
        if isinstance(item, dict):
            target = _text(item.get("target"))
            if not target:
                raise ParseError("a long-syntax port needs a target", loc.line)
            published = _text(item.get("published")) or None
            host_ip = _text(item.get("host_ip")) or None
            protocol = _text(item.get("protocol")) or "tcp"
            raw = f"{host_ip + ':' if host_ip else ''}{published or ''}:{target}/{protocol}"
            if _text(item.get("mode")) == "host" and published is None:
                continue  # swarm host mode without a published port publishes nothing
            found.append(PortPublish(raw, host_ip, published, target, protocol, loc))
            continue
        if isinstance(item, bool) or item is None or isinstance(item, float):
            raise ParseError("a port entry Compose cannot read", loc.line)
        raw = _text(item).strip()
        spec, _, protocol = raw.partition("/")
        try:
            host_ip, host_port, container = _split_short_port(spec)
        except ValueError:
            raise ParseError("a port entry Compose cannot read", loc.line) from None
        if not _PORT_SPEC.fullmatch(container) and not templating.is_templated(raw, "compose"):
            raise ParseError("a port entry Compose cannot read", loc.line)
        if host_port and not _PORT_SPEC.fullmatch(host_port) and not templating.is_templated(raw, "compose"):
            raise ParseError("a port entry Compose cannot read", loc.line)
        found.append(PortPublish(raw, host_ip, host_port, container, protocol or "tcp", loc))
    return found


def _environment(value: Any, where: Location) -> dict[str, EnvSetting]:
    env: dict[str, EnvSetting] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            loc = value.at(key) if isinstance(value, YMap) else where
            env[key] = EnvSetting(key, None if item is None else _text(item), loc)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            loc = value.at(index) if isinstance(value, YSeq) else where
            text = _text(item)
            key, sep, val = text.partition("=")
            env[key.strip()] = EnvSetting(key.strip(), val if sep else None, loc)
    elif value is not None:
        raise ParseError("environment must be a list or a mapping", where.line)
    return env


def _items(value: Any, where: Location) -> list[Item]:
    if value is None:
        return []
    if isinstance(value, list):
        return [Item(_text(v) if not isinstance(v, dict) else _text(v.get("path")),
                     value.at(i) if isinstance(value, YSeq) else where) for i, v in enumerate(value)]
    if isinstance(value, dict):  # networks as a mapping of name -> options
        return [Item(k, value.at(k) if isinstance(value, YMap) else where) for k in value]
    return [Item(_text(value), where)]


def _mounts(value: Any, where: Location) -> list[Mount]:
    found = []
    for item, loc in _entries(value, where, "volumes"):
        if isinstance(item, dict):
            target = _text(item.get("target"))
            source = _text(item.get("source")) or None
            found.append(Mount(source, target, item.get("read_only") is True, loc, _text(item.get("type")) or "volume"))
            continue
        text = _text(item)
        parts = text.split(":")
        if len(parts) == 1:
            found.append(Mount(None, parts[0], False, loc, "volume"))
            continue
        source, target = parts[0], parts[1]
        options = parts[2].split(",") if len(parts) > 2 else []
        kind = "bind" if source.startswith(("/", ".", "~", "$")) else "volume"
        found.append(Mount(source, target, "ro" in options, loc, kind))
    return found


def _command(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(shlex.quote(_text(v)) if " " in _text(v) else _text(v) for v in value)
    return _text(value)


def _service(name: str, body: Any, where: Location) -> ComposeService:
    if body is None:
        body = YMap(where)
    if not isinstance(body, YMap):
        raise ParseError("a service must be a mapping", where.line)
    svc = ComposeService(name, where, body)
    if "image" in body:
        svc.image = _text(body["image"]) or None
        svc.image_location = body.at("image")
    svc.command = " ".join(filter(None, [_command(body.get("entrypoint")), _command(body.get("command"))]))
    if "ports" in body and body["ports"] is not None:
        svc.ports = _ports(body["ports"], body.at("ports"))
    svc.networks = _items(body.get("networks"), body.at("networks"))
    if body.get("network_mode") is not None:
        svc.network_mode = Item(_text(body["network_mode"]), body.at("network_mode"))
    svc.environment = _environment(body.get("environment"), body.at("environment"))
    svc.env_files = _items(body.get("env_file"), body.at("env_file"))
    if body.get("volumes") is not None:
        svc.mounts = _mounts(body["volumes"], body.at("volumes"))
    if body.get("privileged") is not None:
        svc.privileged = Item(_text(body["privileged"]).lower(), body.at("privileged"))
    svc.cap_add = _items(body.get("cap_add"), body.at("cap_add"))
    svc.security_opt = _items(body.get("security_opt"), body.at("security_opt"))
    if body.get("pid") is not None:
        svc.pid = Item(_text(body["pid"]), body.at("pid"))
    return svc


def _check_top(doc: Any, source: SourceFile) -> YMap:
    if doc is None:
        raise ParseError("empty compose file", 1)
    if not isinstance(doc, YMap):
        raise ParseError("a compose file must be a mapping at the top", 1)
    for key in ("services", "networks"):
        if doc.get(key) is not None and not isinstance(doc[key], YMap):
            raise ParseError(f"{vocabulary(key, ('services', 'networks'))} must be a mapping", doc.at(key).line)
    return doc


def _extended(services: YMap, name: str, seen: tuple[str, ...] = ()) -> Any:
    """A service with `extends:` of a service in the same file, merged as Compose merges it."""
    body = services[name]
    spec = body.get("extends") if isinstance(body, YMap) else None
    if spec is None:
        return body
    base_name = spec if isinstance(spec, str) else spec.get("service") if isinstance(spec, dict) else None
    if isinstance(spec, dict) and spec.get("file"):
        return body  # another file: not followed (what it adds is not seen)
    if not isinstance(base_name, str) or base_name not in services:
        raise ParseError("a service extends a service that is not in the file", body.at("extends").line)
    if base_name in seen or len(seen) > 16:
        raise ParseError("a service extends itself (circular extends)", body.at("extends").line)
    return _merge(_extended(services, base_name, (*seen, name)), body)


def _model(doc: YMap, path: str, files: list[str]) -> ComposeFile:
    compose = ComposeFile(path, files=files)
    services = doc.get("services") or YMap(doc.loc)
    for name in services:
        compose.services[name] = _service(name, _extended(services, name), services.at(name))
    networks = doc.get("networks") or {}
    for name, body in networks.items():
        opts = body if isinstance(body, dict) else {}
        compose.networks[name] = ComposeNetwork(
            name, opts.get("internal") is True, bool(opts.get("external")), networks.at(name))
    return compose


def parse_compose(source: SourceFile) -> ComposeFile:
    doc = _check_top(load_located(source), source)
    return _model(doc, source.path, [source.path])


# --- override files --------------------------------------------------------------------------------

_APPEND_KEYS = {"ports", "expose", "volumes", "cap_add", "cap_drop", "security_opt", "devices", "dns",
                "dns_search", "tmpfs", "extra_hosts", "env_file", "external_links", "links", "secrets",
                "configs"}
_BY_KEY_LISTS = {"environment", "labels", "networks"}


def _as_map(value: Any) -> YMap:
    """A list form ("K=V" or names) as a mapping, so an override merges into it by key."""
    if isinstance(value, YMap):
        return value
    result = YMap(getattr(value, "loc", Location("", None)))
    for index, item in enumerate(value or []):
        key, sep, val = _text(item).partition("=")
        result[key] = val if sep else None
        result.locs[key] = value.at(index) if isinstance(value, YSeq) else result.loc
    return result


def _merge(base: Any, over: Any, key: str | None = None) -> Any:
    if key in _BY_KEY_LISTS and base is not None and over is not None:
        base, over = _as_map(base), _as_map(over)
    if isinstance(base, YMap) and isinstance(over, YMap):
        result = YMap(base.loc)
        for k, v in base.items():
            result[k], result.locs[k] = v, base.at(k)
        for k, v in over.items():
            result[k] = _merge(base[k], v, k) if k in base else v
            result.locs[k] = over.at(k)
        return result
    if key in _APPEND_KEYS and isinstance(base, YSeq) and isinstance(over, YSeq):
        result = YSeq(base.loc)
        result.extend(base)
        result.extend(over)
        result.locs = list(base.locs) + list(over.locs)
        return result
    return over


_BASE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")


def _override_of(path: str, paths: set[str]) -> str | None:
    folder, _, name = path.rpartition("/")
    if name.lower() not in _BASE_NAMES:
        return None
    stem, _, ext = name.rpartition(".")
    for candidate_ext in (ext, "yaml" if ext == "yml" else "yml"):
        candidate = f"{folder}/{stem}.override.{candidate_ext}" if folder else f"{stem}.override.{candidate_ext}"
        if candidate in paths:
            return candidate
    return None


def build_compose(sources: list[SourceFile], provider: FileProvider, facts: FactSet) -> None:
    """Each compose file is a fact; an override file beside a base file is merged into it."""
    by_path = {s.path: s for s in sources}
    docs: dict[str, YMap] = {}
    for source in sources:
        try:
            doc = _check_top(load_located(source), source)
            _model(doc, source.path, [source.path])  # each file on its own first: errors at its own path
            docs[source.path] = doc
        except ParseError as exc:
            facts.problem("compose", f"cannot parse {source.path}: {exc.message}", Location(source.path, exc.line))
        except RecursionError:
            facts.problem("compose", f"cannot parse {source.path}: nested too deeply", Location(source.path))
    merged_into: dict[str, str] = {}
    for path in by_path:
        over = _override_of(path, set(by_path))
        if over and path in docs and over in docs:
            merged_into[over] = path
    for path, doc in docs.items():
        if path in merged_into:
            continue  # judged as part of its base file
        files = [path]
        over = next((o for o, b in merged_into.items() if b == path), None)
        if over:
            doc = _merge(doc, docs[over])
            files.append(over)
        env_path, variables = _project_env(path, provider)
        interpolated: list[tuple[Location, str, str]] = []
        if variables:
            _interpolate_doc(doc, variables, interpolated)
        try:
            compose = _model(doc, path, files)
        except ParseError as exc:  # the merge (or .env's values) made something Compose would refuse
            what = " and ".join(files) + (f" with {env_path}" if interpolated else "")
            facts.problem("compose", f"cannot merge {what}: {exc.message}", Location(path))
            continue
        compose.env_path, compose.variables, compose.interpolated = env_path, variables, interpolated
        facts.add("compose", compose)


def _project_env(path: str, provider: FileProvider | None) -> tuple[str | None, dict[str, str]]:
    """The .env in the compose file's folder (the project directory when no --project-directory is
    given), which docker compose interpolates the file's ${VAR} from; (None, {}) when there is none."""
    folder = posixpath.dirname(path)
    env = f"{folder}/.env" if folder else ".env"
    if provider is None:
        return None, {}
    try:
        data = provider.read(env)
    except (OSError, ValueError):
        return None, {}
    return env, read_dotenv(data.decode("utf-8", "replace"))


def settle_project_env(facts: FactSet) -> None:
    """A compose project's .env holds docker compose's variables for the file's ${VAR}, not
    Mastodon's settings (those come with env_file): unless a service passes it with env_file, it is
    no .env.production, and Mastodon's checks do not judge it (recognised by name, it was read as
    one). Said as a note, so that nothing is left out in silence."""
    for compose in facts.all("compose"):
        path = compose.env_path
        if path is None or compose.uses_env_file(path):
            continue
        if facts.discard("mastodon_env", lambda env, path=path: env.path == path):
            facts.problem("mastodon_env", f"{path} holds docker compose's variables for {compose.path} (no service "
                          "passes it with env_file): read for that file's ${VAR}, not judged as Mastodon's settings",
                          Location(path), Status.SKIP, SkipReason.NOT_APPLICABLE)
