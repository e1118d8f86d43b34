"""Inventories: one Mastodon instance, its hosts, their roles and how to reach them over SSH.

The YAML form (see inventories/example.yaml) is validated with line numbers: every error names the
key and the line. A pyinfra inventory file (Python, groups of hosts) is accepted too; its group
names are read as roles.
"""

from __future__ import annotations

import ast
import errno
import ipaddress
import os
import re
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from . import yamlsafe
from .addresses import split_host_port
from .textsafe import excerpt, shown_path

ROLES = ("web", "app", "streaming", "sidekiq", "db", "redis", "search", "mail", "storage")
MAX_INVENTORY_BYTES = 1024 * 1024
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class InventoryError(Exception):
    """A bad inventory: the message names the file, line and key."""


@dataclass(frozen=True)
class SshSettings:
    user: str = "root"
    port: int = 22
    key: str | None = None
    password_env: str | None = None  # name of an environment variable holding the password, never the password
    known_hosts: str = "~/.ssh/known_hosts"
    trust_on_first_use: bool = False
    sudo: bool = False
    jump: str | None = None  # another inventory host's name, or user@host:port
    connect_timeout: float = 5.0
    command_timeout: float = 10.0
    host_timeout: float = 60.0


@dataclass(frozen=True)
class Services:
    """Where the services' own configs and sockets are, when not at Debian's defaults."""

    nginx_config: str = "/etc/nginx/nginx.conf"
    sshd_config: str = "/etc/ssh/sshd_config"
    postgres_port: int = 5432
    postgres_socket_dir: str = "/var/run/postgresql"
    redis_config: str = "/etc/redis/redis.conf"
    redis_port: int = 6379


_SERVICE_FIELDS = {"nginx_config": str, "sshd_config": str, "postgres_port": int, "postgres_socket_dir": str,
                   "redis_config": str, "redis_port": int}


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    roles: tuple[str, ...]
    ssh: SshSettings
    path_prefix: str = ""  # prepended to the absolute paths of files read on the host (labs, chroots)
    services: Services = field(default_factory=Services)


@dataclass(frozen=True)
class NetworkSettings:
    """How `audit` probes the instance from the network (the same options as `scan`)."""

    enabled: bool = True
    resolver: str | None = None  # IP or IP:PORT
    ca_bundle: str | None = None
    resolve: dict[str, str] = field(default_factory=dict)  # name -> IP, like curl --resolve
    dkim_selectors: tuple[str, ...] = ()
    tls_profile: str = "intermediate"
    ports: tuple[int, ...] = ()  # scanned besides the sensitive ones
    timeout: float = 5.0


@dataclass
class Inventory:
    source: str
    local_domain: str
    web_domain: str
    mastodon_path: str = "/home/mastodon/live"
    hosts: list[Host] = field(default_factory=list)
    network: NetworkSettings = field(default_factory=NetworkSettings)

    def host(self, name: str) -> Host | None:
        return next((h for h in self.hosts if h.name == name), None)


_SSH_FIELDS = {
    "user": str, "port": int, "key": str, "password_env": str, "known_hosts": str,
    "trust_on_first_use": bool, "sudo": bool, "jump": str,
    "connect_timeout": (int, float), "command_timeout": (int, float), "host_timeout": (int, float),
}


class _Reader:
    """Walks the composed YAML so that every error can say where it is."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, node: yaml.Node | None, key: str, message: str) -> InventoryError:
        line = f":{node.start_mark.line + 1}" if node is not None else ""
        return InventoryError(f"{self.source}{line}: {key}: {message}")

    def mapping(self, node: yaml.Node, key: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, key, "expected a mapping")
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for k, v in node.value:
            if not isinstance(k, yaml.ScalarNode):
                raise self.fail(k, key, "keys must be plain names")
            if k.value in out:
                raise self.fail(k, f"{key}.{k.value}", "given twice")
            out[k.value] = (k, v)
        return out

    def scalar(self, node: yaml.Node, key: str, kind: type | tuple[type, ...]):
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, key, "expected a single value")
        try:
            value = yamlsafe.scalar_value(node)
        except yamlsafe.YamlError as exc:
            raise self.fail(node, key, exc.problem) from None
        if kind is str and isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, kind) or (kind in (int, (int, float)) and isinstance(value, bool)):
            want = kind.__name__ if isinstance(kind, type) else "a number"
            raise self.fail(node, key, f"expected {want}, got {excerpt(repr(value), 60)}")
        if isinstance(value, str) and _CONTROL.search(value):
            raise self.fail(node, key, "control characters are not allowed")
        return value

    def only(self, mapping: dict, allowed: tuple[str, ...] | dict, key: str) -> None:
        for name, (knode, _) in mapping.items():
            if name not in allowed:
                raise self.fail(knode, f"{key}.{name}" if key else name,
                                f"unknown key (expected one of: {', '.join(allowed)})")


def _ssh(reader: _Reader, node: yaml.Node, key: str, base: SshSettings) -> SshSettings:
    fields = reader.mapping(node, key)
    reader.only(fields, _SSH_FIELDS, key)
    values = {}
    for name, (_, vnode) in fields.items():
        value = reader.scalar(vnode, f"{key}.{name}", _SSH_FIELDS[name])
        if name == "port" and not 0 < value < 65536:
            raise reader.fail(vnode, f"{key}.port", f"not a port number: {value}")
        if name.endswith("_timeout") and not 0 < value <= 3600:
            raise reader.fail(vnode, f"{key}.{name}", "must be between 0 and 3600 seconds")
        values[name] = float(value) if name.endswith("_timeout") else value
    return replace(base, **values)


def _valid_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return bool(_HOSTNAME.fullmatch(text))


def load_yaml_inventory(path: Path, text: str) -> Inventory:
    reader = _Reader(shown_path(path))
    try:
        root = yamlsafe.compose(text)
    except yamlsafe.YamlError as exc:
        where = f":{exc.line}" if exc.line else ""
        raise InventoryError(f"{shown_path(path)}{where}: {exc.problem}") from None
    if root is None:
        raise InventoryError(f"{path}: empty inventory")
    top = reader.mapping(root, "inventory")
    reader.only(top, ("instance", "ssh", "hosts", "network"), "")
    if "instance" not in top:
        raise reader.fail(root, "instance", "missing (local_domain, web_domain)")
    inst = reader.mapping(top["instance"][1], "instance")
    reader.only(inst, ("local_domain", "web_domain", "mastodon_path"), "instance")
    if "local_domain" not in inst:
        raise reader.fail(top["instance"][1], "instance.local_domain", "missing")
    local_domain = reader.scalar(inst["local_domain"][1], "instance.local_domain", str)
    web_domain = (reader.scalar(inst["web_domain"][1], "instance.web_domain", str)
                  if "web_domain" in inst else local_domain)
    for name, value in (("local_domain", local_domain), ("web_domain", web_domain)):
        if not _HOSTNAME.fullmatch(value):
            raise reader.fail(inst.get(name, inst["local_domain"])[1], f"instance.{name}", f"not a domain: {value!r}")
    mastodon_path = (reader.scalar(inst["mastodon_path"][1], "instance.mastodon_path", str)
                     if "mastodon_path" in inst else "/home/mastodon/live")
    defaults = _ssh(reader, top["ssh"][1], "ssh", SshSettings()) if "ssh" in top else SshSettings()
    if "hosts" not in top:
        raise reader.fail(root, "hosts", "missing: name at least one host")
    hosts_map = reader.mapping(top["hosts"][1], "hosts")
    if not hosts_map:
        raise reader.fail(top["hosts"][1], "hosts", "empty: name at least one host")
    hosts = []
    for name, (knode, hnode) in hosts_map.items():
        key = f"hosts.{name}"
        if not _HOSTNAME.fullmatch(name):
            raise reader.fail(knode, key, "host names are letters, digits, dots and dashes")
        fields = reader.mapping(hnode, key)
        reader.only(fields, ("address", "roles", "ssh", "path_prefix", "services"), key)
        address = reader.scalar(fields["address"][1], f"{key}.address", str) if "address" in fields else name
        if not _valid_address(address):
            raise reader.fail(fields["address"][1], f"{key}.address", f"not an address or host name: {address!r}")
        if "roles" not in fields:
            raise reader.fail(hnode, f"{key}.roles", f"missing (any of: {', '.join(ROLES)})")
        rnode = fields["roles"][1]
        if not isinstance(rnode, yaml.SequenceNode) or not rnode.value:
            raise reader.fail(rnode, f"{key}.roles", "expected a non-empty list")
        roles = []
        for item in rnode.value:
            role = reader.scalar(item, f"{key}.roles", str)
            if role not in ROLES:
                raise reader.fail(item, f"{key}.roles", f"unknown role {role!r} (one of: {', '.join(ROLES)})")
            roles.append(role)
        ssh = _ssh(reader, fields["ssh"][1], f"{key}.ssh", defaults) if "ssh" in fields else defaults
        prefix = reader.scalar(fields["path_prefix"][1], f"{key}.path_prefix", str) if "path_prefix" in fields else ""
        services = Services()
        if "services" in fields:
            smap = reader.mapping(fields["services"][1], f"{key}.services")
            reader.only(smap, _SERVICE_FIELDS, f"{key}.services")
            values = {}
            for sname, (_, vnode) in smap.items():
                value = reader.scalar(vnode, f"{key}.services.{sname}", _SERVICE_FIELDS[sname])
                if sname.endswith("_port") and not 0 < value < 65536:
                    raise reader.fail(vnode, f"{key}.services.{sname}", f"not a port number: {value}")
                values[sname] = value
            services = replace(services, **values)
        hosts.append(Host(name, address, tuple(dict.fromkeys(roles)), ssh, prefix.rstrip("/"), services))
    names = {h.name for h in hosts}
    for h in hosts:
        problem = _jump_problem(h.ssh.jump, names)
        if problem:
            raise InventoryError(f"{shown_path(path)}: hosts.{h.name}.ssh.jump: {problem}")
    network = _network(reader, top["network"][1]) if "network" in top else NetworkSettings()
    return Inventory(shown_path(path), local_domain, web_domain, mastodon_path, hosts, network)


def _jump_problem(jump: str | None, names: set[str]) -> str | None:
    """None when `jump` names an inventory host or reads as [user@]host[:port]."""
    if not jump or jump in names:
        return None
    if "@" not in jump and ":" not in jump:
        return f"no host named {excerpt(jump, 60)!r} in the inventory"
    _user, _, hostport = jump.rpartition("@")
    try:
        host, _port = split_host_port(hostport)
    except ValueError:
        return "expected an inventory host or user@host[:port] (a port from 1 to 65535)"
    return None if _valid_address(host) else "not an address or host name"


def _network(reader: _Reader, node: yaml.Node) -> NetworkSettings:
    fields = reader.mapping(node, "network")
    allowed = ("enabled", "resolver", "ca_bundle", "resolve", "dkim_selectors", "tls_profile", "ports", "timeout")
    reader.only(fields, allowed, "network")
    values: dict = {}
    for name, (_, vnode) in fields.items():
        key = f"network.{name}"
        if name == "enabled":
            values[name] = reader.scalar(vnode, key, bool)
        elif name == "ca_bundle":
            values[name] = reader.scalar(vnode, key, str)
        elif name == "resolver":
            value = reader.scalar(vnode, key, str)
            try:
                host, _port = split_host_port(value)
                ipaddress.ip_address(host.strip("[]"))
            except ValueError:
                raise reader.fail(vnode, key, "expected IP or IP:PORT") from None
            values[name] = value
        elif name == "tls_profile":
            value = reader.scalar(vnode, key, str)
            if value not in ("intermediate", "modern"):
                raise reader.fail(vnode, key, "intermediate or modern")
            values[name] = value
        elif name == "timeout":
            value = reader.scalar(vnode, key, (int, float))
            if not 0 < value <= 60:
                raise reader.fail(vnode, key, "between 0 and 60 seconds")
            values[name] = float(value)
        elif name == "resolve":
            pairs = reader.mapping(vnode, key)
            resolved = {}
            for host, (_, v) in pairs.items():
                address = reader.scalar(v, f"{key}.{host}", str)
                try:
                    ipaddress.ip_address(address)
                except ValueError:
                    raise reader.fail(v, f"{key}.{host}", "not an IP address") from None
                resolved[host] = address
            values[name] = resolved
        else:  # lists: dkim_selectors, ports
            if not isinstance(vnode, yaml.SequenceNode):
                raise reader.fail(vnode, key, "expected a list")
            kind = int if name == "ports" else str
            items = tuple(reader.scalar(item, key, kind) for item in vnode.value)
            if name == "ports" and any(not 0 < p < 65536 for p in items):
                raise reader.fail(vnode, key, "port numbers are 1 to 65535")
            values[name] = items
    return NetworkSettings(**values)


def load_pyinfra_inventory(path: Path, text: str, local_domain: str | None) -> Inventory:
    """A pyinfra inventory: module-level lists of hosts (or (host, data) tuples); groups are roles.

    It is read as data (ast.literal_eval of each assignment), never executed. Any other shape is an
    InventoryError at its line: nothing in the file can raise anything else.
    """
    shown = shown_path(path)
    try:
        tree = ast.parse(text, filename="inventory")
    except SyntaxError as exc:
        raise InventoryError(f"{shown}:{exc.lineno}: not valid Python ({exc.msg})") from None
    except (ValueError, RecursionError, MemoryError):
        raise InventoryError(f"{shown}: not Python an inventory could be read from (nested too deeply?)") from None
    by_host: dict[str, tuple[set[str], dict]] = {}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            continue
        group = node.targets[0].id
        where = f"{shown}:{node.lineno}: {group}"
        try:
            value = ast.literal_eval(node.value)
        except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
            raise InventoryError(f"{where}: only literal lists of hosts are read") from None
        if not isinstance(value, list | tuple):
            continue
        for entry in value:
            name, data = _pyinfra_entry(entry, where)
            roles, merged = by_host.setdefault(name, (set(), {}))
            if group in ROLES:
                roles.add(group)
            merged.update(data)
    if not by_host:
        raise InventoryError(f"{shown}: no hosts found (expected lists of hosts, e.g. web = ['host1'])")
    hosts = []
    for name, (roles, data) in by_host.items():
        hosts.append(Host(name, _pyinfra_data(data, "ssh_hostname", str, name, f"{shown}: {name}"),
                          tuple(sorted(roles)) or ROLES, _pyinfra_ssh(data, f"{shown}: {name}")))
    domain = local_domain or hosts[0].address
    return Inventory(shown, domain, domain, hosts=hosts)


def _pyinfra_entry(entry: object, where: str) -> tuple[str, dict]:
    """'host' or ('host', {data}): anything else is an input error."""
    if isinstance(entry, str):
        name, data = entry, {}
    elif isinstance(entry, tuple | list) and len(entry) == 2 and isinstance(entry[0], str) \
            and isinstance(entry[1], dict):
        name, data = entry
    else:
        # The entry's shape, never its text: pyinfra host data holds ssh_password, _sudo_password...
        raise InventoryError(f"{where}: each host is a name or a (name, {{data}}) pair, not {_shape(entry)}")
    if not _valid_address(name):
        raise InventoryError(f"{where}: not an address or host name: {excerpt(repr(name), 60)}")
    if not all(isinstance(key, str) for key in data):
        raise InventoryError(f"{where}: {name}: host data keys are names")
    return name, data


def _shape(value: object) -> str:
    """'a tuple of 3 items (str, dict, int)', 'an int': what an entry is, without its values."""
    kind = type(value).__name__
    article = "an" if kind[:1] in "aeiou" else "a"
    if isinstance(value, tuple | list):
        parts = ", ".join(type(v).__name__ for v in value[:4]) + (", ..." if len(value) > 4 else "")
        return f"{article} {kind} of {len(value)} item{'s' if len(value) != 1 else ''} ({parts})"
    return f"{article} {kind}"


def _pyinfra_data(data: dict, key: str, kind: type, default, where: str):
    value = data.get(key, default)
    if kind is int and isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        want = {str: "a string", int: "a number", bool: "true or false"}[kind]
        raise InventoryError(f"{where}: {key}: expected {want}, got {excerpt(repr(value), 60)}")
    if isinstance(value, str) and _CONTROL.search(value):
        raise InventoryError(f"{where}: {key}: control characters are not allowed")
    if key == "ssh_hostname" and not _valid_address(value):
        raise InventoryError(f"{where}: {key}: not an address or host name: {excerpt(repr(value), 60)}")
    if kind is int and not 0 < value < 65536:
        raise InventoryError(f"{where}: {key}: not a port number: {value}")
    return value


def _pyinfra_ssh(data: dict, where: str) -> SshSettings:
    key = data.get("ssh_key")
    return SshSettings(
        user=_pyinfra_data(data, "ssh_user", str, "root", where),
        port=_pyinfra_data(data, "ssh_port", int, 22, where),
        key=None if key is None else _pyinfra_data(data, "ssh_key", str, None, where),
        known_hosts=_pyinfra_data(data, "ssh_known_hosts_file", str, "~/.ssh/known_hosts", where),
        sudo=_pyinfra_data(data, "_sudo", bool, False, where),
    )


def load_inventory(path: Path, local_domain: str | None = None) -> Inventory:
    shown = shown_path(path)
    try:
        data = _read_regular(path, MAX_INVENTORY_BYTES)
    except OSError as exc:
        raise InventoryError(f"{shown}: {exc.strerror or exc}") from None
    if len(data) > MAX_INVENTORY_BYTES:
        raise InventoryError(f"{shown}: larger than 1 MiB; not an inventory")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InventoryError(f"{shown}:{line}: not UTF-8 text") from None
    if path.suffix == ".py":
        return load_pyinfra_inventory(path, text, local_domain)
    return load_yaml_inventory(path, text)


def _read_regular(path: Path, limit: int) -> bytes:
    """At most limit + 1 bytes of a regular file (a FIFO or a device named as the inventory must not
    block the run)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        os.set_blocking(fd, True)
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
