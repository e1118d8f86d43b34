"""The live collector: every inventory host over SSH at once, through the SSH worker process.

Plans which allow-listed commands each host gets (the live fact declarations in mastoaudit/kinds.py,
by role), runs the worker, and turns its results into one FactSet per host. The same parsers as the
static audit read the files, so the static checks run unchanged on what was fetched; live-only facts
are added beside them.
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

from .. import kinds
from ..addresses import split_host_port
from ..facts import FactSet, HostInfo
from ..facts.mastodon import MastodonVersion
from ..inventory import Host, Inventory
from ..kinds import LIVE_FACTS, LiveFact, load
from ..model import Location, Status
from ..parsers import SourceFile, classify
from ..parsers.base import MAX_CONFIG_BYTES, ParseError
from ..parsers.live import FileStat, parse_mastodon_version
from ..parsers.sshd import parse_sshd_config
from .files import group_by_kind, parse_sources


@dataclass(frozen=True)
class Planned:
    key: str
    id: str
    params: dict = field(default_factory=dict)


# Read before everything else, in a round trip of its own: what the network half of an audit needs
# from the host (.env.production: the media bucket, the mail relay, secure mode), so that the
# network probes can start while the other commands still run (sources/overlap.py).
EARLY_KEYS = ("env-file",)
# Then the rest, in two round trips at once on two channels of the same connection: the reads that
# wait on a database server (psql's start and its queries, redis-cli: about a third of the host's
# time on the lab) beside everything else, so that neither waits for the other.
BESIDE_KEYS = ("postgres-state", "postgres-password-hashes", "redis-config")


def plan(inventory: Inventory, host: Host) -> list[Planned]:
    """The commands one host gets: each live fact declared for its roles, in declaration order."""
    found = []
    for fact in LIVE_FACTS:
        params = fact.plan(inventory, host)
        if params is not None:
            found.append(Planned(fact.id, fact.id, params))
    return found


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


# --- collectors: commands whose output is several facts (LiveFact.collect) ---------------------------

Fetched = list  # config files read on the host, parsed once every command's output is in


def collect_files(host: Host, text: str, facts: FactSet, fetched: Fetched) -> None:
    """Files read on the host: their modes, then by path the release, apt's settings, or a config kind."""
    sources, stats = parse_file_records(host, text, facts)
    for stat in stats:
        facts.add(kinds.FILE_STAT, stat)
    for source in sources:
        logical = source.path.split(":", 1)[1]
        if logical.endswith("/lib/mastodon/version.rb"):
            try:
                facts.add(kinds.MASTODON_VERSION, MastodonVersion(parse_mastodon_version(source.text),
                                                                  Location(source.path), "version.rb"))
            except ParseError as exc:
                facts.problem("file", f"{source.path}: {exc.message}", Location(source.path))
            continue
        if logical.startswith("/etc/apt/"):
            facts.add(kinds.APT_CONFIG, source)
            continue
        kind = classify(logical.lstrip("/"), None)
        if kind is not None:
            fetched.append((kind, source))


def collect_sshd(host: Host, text: str, facts: FactSet, fetched: Fetched) -> None:
    """`sshd -T`: the effective settings, parsed like an sshd_config."""
    facts.add(kinds.SSHD_CONFIG, parse_sshd_config(SourceFile(f"{host.name}:sshd -T", text.encode())))


def collect_nginx_dump(host: Host, text: str, facts: FactSet, fetched: Fetched) -> None:
    """`nginx -T`: every file nginx read, after a '# configuration file PATH:' line, parsed as a tree."""
    dump = split_nginx_dump(host.name, text)
    if dump:
        parse_sources({"nginx": [SourceFile(p, d) for p, d in dump.items()]}, MemoryFiles(dump), facts)


def _collect(fact: LiveFact, host: Host, result: dict, facts: FactSet, fetched: Fetched) -> None:
    """One command's result into facts; a failure, a non-zero exit or bad output into a problem."""
    where = f"{host.name}:{fact.where}"
    if "error" in result:
        facts.problem(fact.problem, f"{fact.label}: {result['error']}", Location(where))
        return
    text = _decode(result)
    if fact.failure is not None and not result.get("ok"):
        facts.problem(fact.problem, f"{fact.failure}: {text.strip()[:300]}", Location(where))
        return
    try:
        if fact.collect is not None:
            load(fact.collect)(host, text, facts, fetched)
        else:
            facts.add(fact.produces[0], load(fact.parse)(host.name, text))
    except ParseError as exc:
        facts.problem(fact.problem, f"{fact.label}: {exc.message}", Location(where, exc.line))


def build_facts(inventory: Inventory, host: Host, results: dict[str, dict], failure: str | None) -> FactSet:
    facts = FactSet(target=host.name)
    facts.add(kinds.HOST_INFO, HostInfo(host.name, host.address, tuple(host.roles), inventory.local_domain,
                                        inventory.web_domain))
    if failure is not None:
        facts.problem("ssh", f"{host.name} ({host.address}:{host.ssh.port}): {failure}", Location(host.name))
        facts.reachable = False
        return facts
    fetched: Fetched = []
    for fact in LIVE_FACTS:
        result = results.get(fact.id) if fact.planned_by == "audit" else None
        if result is not None:
            _collect(fact, host, result, facts, fetched)
    parse_sources(group_by_kind(fetched), MemoryFiles({s.path: s.data for _, s in fetched}), facts)
    return facts


ProgressFn = Callable[[str, str], None]
ResultFn = Callable[[str, str, dict], None]
STDERR_TAIL = 64 * 1024  # of the SSH worker's stderr, kept for the message when it stops early


class SshCollection:
    """One audit's SSH work: `start()` launches the worker at once (it spends half a second
    importing pyinfra, time the caller can use to load its checks), `finish()` gathers the facts."""

    def __init__(self, inventory: Inventory, command_log: str | None = None, hosts: list | None = None,
                 planner: Callable[[Inventory, Host], list[Planned]] | None = None) -> None:
        self.inventory = inventory
        # The hosts to audit (--limit, --shard); the whole inventory still names the jump hosts.
        self.hosts = inventory.hosts if hosts is None else hosts
        self.command_log = command_log
        self.planner = planner or plan  # which commands each host gets (the federation reads plan their own)
        self.proc: subprocess.Popen | None = None
        self.started = 0.0
        self.stderr_tail = b""

    def start(self) -> SshCollection:
        job: dict = {"hosts": [], "command_log": self.command_log}
        for host in self.hosts:
            ssh = host.ssh
            job["hosts"].append({
                "name": host.name, "address": host.address, "port": ssh.port, "user": ssh.user, "key": ssh.key,
                "known_hosts": ssh.known_hosts, "tofu": ssh.trust_on_first_use, "sudo": ssh.sudo,
                "jump": _jump(self.inventory, ssh.jump), "connect_timeout": ssh.connect_timeout,
                "command_timeout": ssh.command_timeout, "host_timeout": ssh.host_timeout,
                "commands": [{"key": p.key, "id": p.id, "params": p.params}
                             for p in self.planner(self.inventory, host)],
                "early": list(EARLY_KEYS), "beside": list(BESIDE_KEYS),
            })
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.started = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "mastoaudit.sources.ssh_worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(job).encode())
        self.proc.stdin.close()
        return self

    def stop(self) -> None:
        """End the worker without waiting for its results (the run stops before it needs them)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def finish(self, progress: ProgressFn | None = None, on_result: ResultFn | None = None) -> list[FactSet]:
        """Audit every host concurrently; an unreachable host ends as an error, never an abort.
        `on_result(host, key, result)` sees each command's result as it arrives."""
        results, failures = self.gather(progress, on_result)
        return [build_facts(self.inventory, h, results[h.name], failures.get(h.name)) for h in self.hosts]

    def gather(self, progress: ProgressFn | None = None, on_result: ResultFn | None = None,
               ) -> tuple[dict[str, dict[str, dict]], dict[str, str]]:
        """The worker's raw results per host and command key, and the hosts that failed (why)."""
        proc = self.proc
        assert proc is not None and proc.stdout is not None and proc.stderr is not None
        hosts = self.hosts
        limit = max(h.ssh.host_timeout + h.ssh.connect_timeout for h in hosts) + 15
        results: dict[str, dict[str, dict]] = {h.name: {} for h in hosts}
        failures: dict[str, str] = {}
        done: set[str] = set()
        drain = threading.Thread(target=self._drain_stderr, args=(proc.stderr,), daemon=True)
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
                    if on_result is not None:
                        on_result(name, event["key"], event)
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
            drain.join(timeout=10)
        if len(done) < len(results):
            tail = self.stderr_tail.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no detail"]
            elapsed = time.monotonic() - self.started
            for name in results:
                if name not in done:
                    failures.setdefault(name, f"SSH worker stopped ({tail[0][:200]}) after {elapsed:.0f} s")
        return results, failures

    def _drain_stderr(self, stream) -> None:
        """Read the worker's stderr to its end (a worker blocked on a full pipe never finishes),
        keeping only the last STDERR_TAIL bytes for the failure message."""
        tail = bytearray()
        for chunk in iter(lambda: stream.read1(65536), b""):
            tail += chunk
            del tail[:-STDERR_TAIL]
        self.stderr_tail = bytes(tail)


def phases(steps: list[Planned]) -> list[list[Planned]]:
    """The round trips a host's commands travel in, as the SSH worker runs them: the early ones
    (EARLY_KEYS), then the database reads (BESIDE_KEYS) and the rest at once; an empty one is skipped."""
    early = [p for p in steps if p.key in EARLY_KEYS]
    beside = [p for p in steps if p.key in BESIDE_KEYS and p.key not in EARLY_KEYS]
    rest = [p for p in steps if p not in early and p not in beside]
    return [group for group in (early, rest, beside) if group]


def env_from_result(inventory: Inventory, host: Host, result: dict):
    """The host's .env.production (a MastodonEnv) from its early `env-file` result, or None."""
    return build_facts(inventory, host, {EARLY_KEYS[0]: result}, None).first(kinds.MASTODON_ENV)


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
    host, port = split_host_port(hostport, 22, strict=False)
    return {"address": host, "port": port, "user": user or None, "key": None, "known_hosts": None, "tofu": False}
