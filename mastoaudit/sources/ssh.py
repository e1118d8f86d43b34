"""The live collector: every inventory host over SSH at once, through the SSH worker process.

Plans which allow-listed commands each host gets (by role), runs the worker, and turns its
results into one FactSet per host. The same parsers as the static audit read the files, so the
static checks run unchanged on what was fetched; live-only facts are added beside them.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..facts import FactSet
from ..facts.mastodon import MastodonVersion
from ..inventory import Host, Inventory
from ..model import Location, Status
from ..parsers import SourceFile, classify
from ..parsers.base import MAX_CONFIG_BYTES, ParseError
from ..parsers.live import (
    FileStat,
    PostgresLive,
    parse_listening,
    parse_mastodon_version,
    parse_packages,
    parse_pg_state,
    parse_processes,
    parse_redis_cli,
)
from .files import group_by_kind, parse_sources

APP_ROLES = {"web", "app", "streaming", "sidekiq"}


@dataclass(frozen=True)
class Planned:
    key: str
    id: str
    params: dict = field(default_factory=dict)


def _p(host: Host, path: str) -> str:
    return f"{host.path_prefix}{path}" if host.path_prefix else path


def plan(inventory: Inventory, host: Host) -> list[Planned]:
    """The commands one host gets, by its roles. Only ids from remote_commands.COMMANDS."""
    roles = set(host.roles)
    s = host.services
    files = [_p(host, "/etc/apt/apt.conf.d/20auto-upgrades"), _p(host, "/etc/apt/apt.conf.d/50unattended-upgrades"),
             _p(host, "/etc/systemd/system/mastodon-*.service"),
             _p(host, "/etc/systemd/system/mastodon-*.service.d/*.conf")]
    root_files: list[str] = []
    steps = [
        Planned("sshd", "sshd-effective", {"config": _p(host, s.sshd_config)}),
        Planned("listening", "listening"),
        Planned("processes", "processes"),
        Planned("packages", "packages"),
        Planned("firewall", "firewall"),
    ]
    if roles & APP_ROLES:
        app = _p(host, inventory.mastodon_path)
        root_files += [f"{app}/.env.production"]
        files += [f"{app}/lib/mastodon/version.rb", f"{app}/docker-compose.yml", f"{app}/compose.yml"]
    if "web" in roles:
        steps.append(Planned("nginx", "nginx-dump", {"config": _p(host, s.nginx_config)}))
    if "db" in roles:
        root_files += [_p(host, f"/etc/postgresql/*/main/{name}")
                       for name in ("postgresql.conf", "pg_hba.conf", "conf.d/*.conf")]
        pg = {"socket_dir": s.postgres_socket_dir, "port": s.postgres_port}
        steps.append(Planned("postgres", "postgres-state", pg))
    if "redis" in roles:
        root_files.append(_p(host, s.redis_config))
        steps.append(Planned("redis", "redis-config", {"config": _p(host, s.redis_config), "port": s.redis_port}))
    if "search" in roles:
        root_files += [_p(host, "/etc/elasticsearch/elasticsearch.yml"), _p(host, "/etc/opensearch/opensearch.yml")]
    steps.insert(0, Planned("files", "files", {"paths": files}))
    if root_files:
        steps.insert(1, Planned("files-root", "files-root", {"paths": root_files}))
    return steps


class MemoryFiles:
    """A FileProvider over files fetched from a host (nginx -T sections), keyed by shown path."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files

    def read(self, path: str) -> bytes:
        if path not in self.files:
            raise FileNotFoundError(path)
        return self.files[path]

    def glob(self, pattern: str, relative_to: str | None = None) -> list[str]:
        host, sep, _ = next(iter(self.files), "").partition(":")
        if not pattern.startswith("/") and relative_to:
            base = relative_to.split(":", 1)[-1]
            pattern = f"{base.rstrip('/')}/{pattern}"
        if sep and not pattern.startswith(f"{host}:"):
            pattern = f"{host}:{pattern}"
        return sorted(p for p in self.files if fnmatch.fnmatchcase(p, pattern))


def split_nginx_dump(host: str, text: str) -> dict[str, bytes]:
    """`nginx -T` prints every file after a '# configuration file PATH:' line."""
    files: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.split("\n"):
        if line.startswith("# configuration file ") and line.endswith(":"):
            current = files.setdefault(f"{host}:{line[len('# configuration file '):-1]}", [])
            continue
        if current is not None:
            current.append(line)
    return {path: "\n".join(lines).encode() for path, lines in files.items()}


def parse_file_records(host: Host, text: str, facts: FactSet) -> tuple[list[SourceFile], list[FileStat]]:
    """The `files` command's output: a header line and a base64 line per file."""
    sources: list[SourceFile] = []
    stats: list[FileStat] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        header = lines[i].split()
        i += 1
        if not header or header[0] != "@@file":
            continue
        body = lines[i] if i < len(lines) else ""
        i += 1
        try:
            path = base64.b64decode(header[1]).decode("utf-8", "replace")
            data = base64.b64decode(body) if header[-1] == "readable" else b""
        except (IndexError, binascii.Error, ValueError):
            facts.problem("file", "unreadable answer from the host's file listing", Location(f"{host.name}:files"))
            continue
        shown_path = path[len(host.path_prefix):] if host.path_prefix and path.startswith(host.path_prefix) else path
        mode = int(header[2], 8) if len(header) >= 7 and header[2].isdigit() else None
        size = int(header[5]) if len(header) >= 7 and header[5].isdigit() else None
        readable = header[-1] == "readable"
        stats.append(FileStat(host.name, shown_path, mode, header[3] if len(header) >= 7 else "",
                              header[4] if len(header) >= 7 else "", size, readable))
        if not readable:
            facts.problem("file", f"permission denied reading {shown_path} (audit user lacks access; try sudo)",
                          Location(f"{host.name}:{shown_path}"))
            continue
        if size is not None and size > MAX_CONFIG_BYTES:
            facts.problem("file", f"{shown_path} is larger than 4 MiB; only its start was read",
                          Location(f"{host.name}:{shown_path}"), Status.WARN)
        sources.append(SourceFile(f"{host.name}:{shown_path}", data))
    return sources, stats


def _decode(result: dict) -> str:
    return base64.b64decode(result.get("stdout_b64", "")).decode("utf-8", "replace")


def build_facts(inventory: Inventory, host: Host, results: dict[str, dict], failure: str | None) -> FactSet:
    facts = FactSet(target=host.name)
    facts.add("host_info", {"name": host.name, "address": host.address, "roles": host.roles,
                            "local_domain": inventory.local_domain, "web_domain": inventory.web_domain})
    if failure is not None:
        facts.problem("ssh", f"{host.name} ({host.address}:{host.ssh.port}): {failure}", Location(host.name))
        facts.reachable = False
        return facts
    classified: list = []
    for key in ("files", "files-root"):
        result = results.get(key)
        if result is None:
            continue
        if "error" in result:
            facts.problem("ssh", f"reading files: {result['error']}", Location(f"{host.name}:files"))
            continue
        sources, stats = parse_file_records(host, _decode(result), facts)
        for stat in stats:
            facts.add("file_stat", stat)
        for source in sources:
            logical = source.path.split(":", 1)[1]
            if logical.endswith("/lib/mastodon/version.rb"):
                try:
                    facts.add("mastodon_version", MastodonVersion(parse_mastodon_version(source.text),
                                                                  Location(source.path), "version.rb"))
                except ParseError as exc:
                    facts.problem("file", f"{source.path}: {exc.message}", Location(source.path))
                continue
            if logical.startswith("/etc/apt/"):
                facts.add("apt_config", source)
                continue
            kind = classify(logical.lstrip("/"), None)
            if kind is not None:
                classified.append((kind, source))
    for key, kind_name, parse in (
        ("sshd", "sshd_config", None),
        ("listening", "listening", parse_listening),
        ("processes", "processes", parse_processes),
        ("packages", "packages", parse_packages),
    ):
        result = results.get(key)
        if result is None:
            continue
        if "error" in result:
            facts.problem("ssh", f"{key}: {result['error']}", Location(f"{host.name}:{key}"))
            continue
        text = _decode(result)
        if key == "sshd":
            if result.get("ok"):
                from ..parsers.sshd import parse_sshd_config
                try:
                    facts.add("sshd_config", parse_sshd_config(SourceFile(f"{host.name}:sshd -T", text.encode())))
                except ParseError as exc:
                    facts.problem("sshd_config", f"sshd -T: {exc.message}", Location(f"{host.name}:sshd -T", exc.line))
            else:
                facts.problem("sshd_config", f"sshd -T failed: {text.strip()[:200]}", Location(f"{host.name}:sshd -T"))
            continue
        try:
            facts.add(kind_name, parse(host.name, text))  # type: ignore[misc]
        except ParseError as exc:
            facts.problem("ssh", f"{key}: {exc.message}", Location(f"{host.name}:{key}", exc.line))
    firewall = results.get("firewall")
    if firewall is not None and "error" not in firewall:
        facts.add("firewall", {"host": host.name, "rules": _decode(firewall)})
    nginx = results.get("nginx")
    if nginx is not None:
        text = _decode(nginx)
        if "error" in nginx or not nginx.get("ok"):
            facts.problem("nginx", f"nginx -T failed: {nginx.get('error') or text.strip()[:300]}",
                          Location(f"{host.name}:nginx -T"))
        else:
            dump = split_nginx_dump(host.name, text)
            if dump:
                from .files import parse_sources as _parse
                _parse({"nginx": [SourceFile(p, d) for p, d in dump.items()]}, MemoryFiles(dump), facts)
    _postgres(host, results, facts)
    redis = results.get("redis")
    if redis is not None:
        if "error" in redis:
            facts.problem("redis", f"Redis: {redis['error']}", Location(f"{host.name}:redis-cli"))
        else:
            try:
                facts.add("redis_live", parse_redis_cli(host.name, _decode(redis)))
            except ParseError as exc:
                facts.problem("redis", f"Redis: {exc.message}", Location(f"{host.name}:redis-cli"))
    parse_sources(group_by_kind(classified), MemoryFiles({s.path: s.data for _, s in classified}), facts)
    return facts


def _postgres(host: Host, results: dict[str, dict], facts: FactSet) -> None:
    result = results.get("postgres")
    if result is None:
        return
    where = Location(f"{host.name}:psql")
    if "error" in result:
        facts.problem("postgresql_conf", f"PostgreSQL: {result['error']}", where)
        return
    text = _decode(result)
    if not result.get("ok"):
        facts.problem("postgresql_conf", f"PostgreSQL could not be asked: {text.strip()[:300]}", where)
        return
    try:
        settings, roles = parse_pg_state(text)
    except ParseError as exc:
        facts.problem("postgresql_conf", f"PostgreSQL: {exc.message}", Location(where.file, exc.line))
        return
    facts.add("postgres_live", PostgresLive(host.name, settings, roles))


ProgressFn = Callable[[str, str], None]


class SshCollection:
    """One audit's SSH work: `start()` launches the worker at once (it spends half a second
    importing pyinfra, time the caller can use to load its checks), `finish()` gathers the facts."""

    def __init__(self, inventory: Inventory, command_log: str | None = None) -> None:
        self.inventory = inventory
        self.command_log = command_log
        self.proc: subprocess.Popen | None = None
        self.started = 0.0

    def start(self) -> SshCollection:
        job: dict = {"hosts": [], "command_log": self.command_log}
        for host in self.inventory.hosts:
            ssh = host.ssh
            job["hosts"].append({
                "name": host.name, "address": host.address, "port": ssh.port, "user": ssh.user, "key": ssh.key,
                "known_hosts": ssh.known_hosts, "tofu": ssh.trust_on_first_use, "sudo": ssh.sudo,
                "jump": _jump(self.inventory, ssh.jump), "connect_timeout": ssh.connect_timeout,
                "command_timeout": ssh.command_timeout, "host_timeout": ssh.host_timeout,
                "commands": [{"key": p.key, "id": p.id, "params": p.params} for p in plan(self.inventory, host)],
            })
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.started = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "mastoaudit.sources.ssh_worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(job).encode())
        self.proc.stdin.close()
        return self

    def finish(self, progress: ProgressFn | None = None) -> list[FactSet]:
        """Audit every host concurrently; an unreachable host ends as an error, never an abort."""
        proc = self.proc
        assert proc is not None and proc.stdout is not None and proc.stderr is not None
        hosts = self.inventory.hosts
        limit = max(h.ssh.host_timeout + h.ssh.connect_timeout for h in hosts) + 15
        results: dict[str, dict[str, dict]] = {h.name: {} for h in hosts}
        failures: dict[str, str] = {}
        done: set[str] = set()
        stderr_chunks: list[bytes] = []
        drain = threading.Thread(target=lambda: stderr_chunks.append(proc.stderr.read(65536)), daemon=True)
        drain.start()
        timer = threading.Timer(max(1.0, limit - (time.monotonic() - self.started)), proc.kill)
        timer.start()
        try:
            for raw in proc.stdout:
                try:
                    event = json.loads(raw)
                except ValueError:
                    continue
                name = event.get("host")
                if name not in results:
                    continue
                kind = event.get("event")
                if kind == "result":
                    results[name][event["key"]] = event
                elif kind == "failed":
                    failures[name] = event.get("error", "failed")
                elif kind == "done":
                    done.add(name)
                if progress and kind in ("connected", "failed", "done"):
                    label = f"failed: {failures[name]}" if kind == "failed" else kind
                    progress(name, f"{label} ({event.get('t', 0):.1f} s)")
        finally:
            timer.cancel()
            proc.wait(timeout=10)
        if len(done) < len(results):
            tail = b"".join(stderr_chunks).decode("utf-8", "replace").strip().splitlines()[-1:] or ["no detail"]
            elapsed = time.monotonic() - self.started
            for name in results:
                if name not in done:
                    failures.setdefault(name, f"SSH worker stopped ({tail[0][:200]}) after {elapsed:.0f} s")
        return [build_facts(self.inventory, h, results[h.name], failures.get(h.name)) for h in hosts]


def collect_hosts(inventory: Inventory, progress: ProgressFn | None = None,
                  command_log: str | None = None) -> list[FactSet]:
    return SshCollection(inventory, command_log).start().finish(progress)


def _jump(inventory: Inventory, jump: str | None) -> dict | None:
    """The jump host's connection settings: another inventory host, or user@host[:port] (then with
    the target's own key and known_hosts)."""
    if not jump:
        return None
    other = inventory.host(jump)
    if other is not None:
        return {"address": other.address, "port": other.ssh.port, "user": other.ssh.user, "key": other.ssh.key,
                "known_hosts": other.ssh.known_hosts, "tofu": other.ssh.trust_on_first_use}
    user, _, hostport = jump.rpartition("@")
    host, _, port = hostport.partition(":")
    return {"address": host, "port": int(port) if port.isdigit() else 22, "user": user or None, "key": None,
            "known_hosts": None, "tofu": False}
