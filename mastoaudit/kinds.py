"""Every fact kind: what a fact of that kind holds (its type), which component of the stack it is
about, and which sources produce it; and, for what is read on a live host, the one declaration of
how (the allow-listed command, its parameters, the roles it applies to and the parser).

A check names the kinds it needs (`needs=[kinds.REDIS_CONF]`); they are checked against this
catalogue when the check is defined, so a typo is an error at import, not a check that skips
forever. Reading is typed: `facts.all(kinds.REDIS_CONF)` is a `list[RedisConf]`.

Sources:
- static: parsed config files (`lint`, and `audit` on the files it fetches over SSH);
- live: what only a running host shows, read over SSH (`audit`): the `LiveFact` declarations below
  are the one list of what runs on a host (sources/remote_commands.py builds its table from them);
- network: what the probes see from outside (`scan`, and `audit` on its web hosts);
- federation: Mastodon's database and the fediverse peers (`federation impact`: `--db`, or psql over
  SSH through the `mastodon-db-federation` declaration below, which that command plans itself).

A check runs in the commands whose sources produce what it needs (its `modes`, derived by `modes()`).
Plugins declare kinds of their own with `declare()` (docs/architecture.md, "Add a fact").

This module stays light: the SSH worker imports it to build its command table. Fact types and
parsers are named as "module:attribute" and imported on first use; the annotations say the same
for type checkers (tests/test_kinds.py keeps the two in step).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .model import COMPONENTS
from .sources.remote_commands import READ_FILES, RemoteCommand

if TYPE_CHECKING:
    from .facts import HostInfo
    from .facts.http import HttpSite
    from .facts.mail import CaaFact, DkimFact, DmarcFact, DnssecFact, MtaStsFact, SpfFact, TlsRptFact
    from .facts.mastodon import MastodonExposure, MastodonVersion, NodeInfo
    from .facts.ports import PortResult, PortScan
    from .facts.s3 import S3Fact
    from .facts.smtp import SmtpEndpoint
    from .facts.tls import TlsEndpoint, TlsScanSummary
    from .federation.breakdown import Breakdown
    from .federation.queries import DatabaseFacts
    from .inventory import Host, Inventory
    from .net.target import ScanTarget
    from .parsers.base import SourceFile
    from .parsers.compose import ComposeFile
    from .parsers.elasticsearch import ElasticsearchConf
    from .parsers.env import MastodonEnv
    from .parsers.live import (
        FileStat,
        FirewallRules,
        ListeningSockets,
        Packages,
        PasswordHashes,
        PostgresLive,
        Processes,
        RedisLive,
    )
    from .parsers.nginx import NginxConfig
    from .parsers.postgres import PgHba, PostgresConf
    from .parsers.redis import RedisConf
    from .parsers.sshd import SshdConfig
    from .parsers.systemd import SystemdUnit

T = TypeVar("T")

STATIC, LIVE, NETWORK, FEDERATION = "static", "live", "network", "federation"
SOURCES = (STATIC, LIVE, NETWORK, FEDERATION)  # also the order `modes` are listed in
_HOST_SOURCES = (STATIC, LIVE, NETWORK)  # a check that names no fact runs in the host commands
_NAME = re.compile(r"^[a-z][a-z0-9_]{1,39}$")


class UnknownKind(ValueError):
    """A kind name that no one declared."""


@cache
def load(ref: str) -> Any:
    """The object a "package.module:attribute" reference names."""
    module, _, attribute = ref.partition(":")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True, eq=False)
class FactKind(Generic[T]):
    """One kind of fact; kinds compare by name. `facts.all(kind)` returns a list of `kind.type`."""

    name: str
    type_ref: str | type  # the fact type, or "module:Class" (imported on first use)
    component: str  # one of model.COMPONENTS: where problems reading this kind are reported
    sources: tuple[str, ...]  # which of static, live, network produce it
    description: str

    @property
    def type(self) -> type[T]:
        return load(self.type_ref) if isinstance(self.type_ref, str) else self.type_ref

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FactKind) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    def __str__(self) -> str:
        return self.name


_KINDS: dict[str, FactKind[Any]] = {}


def declare(name: str, type_: type[T] | str, component: str, sources: Iterable[str],
            description: str) -> FactKind[T]:
    """Declare a kind (the built-in ones below; a plugin calls it for its own, before its checks).

    Declaring a name again is allowed with the same type name, component and sources (a plugin
    module loaded twice); anything else is an error: it would change what existing checks read."""
    sources = tuple(sources)
    found = tuple(s for s in SOURCES if s in sources)
    if not _NAME.match(name):
        raise ValueError(f"fact kind {name!r}: a name is a lower-case word, or words joined by _")
    if component not in COMPONENTS:
        raise ValueError(f"fact kind {name}: unknown component {component!r} (one of: {', '.join(COMPONENTS)})")
    if not found or len(found) != len(set(sources)):
        raise ValueError(f"fact kind {name}: sources are some of {', '.join(SOURCES)}, not {list(sources)}")
    kind = FactKind(name, type_, component, found, " ".join(description.split()))
    old = _KINDS.get(name)
    if old is not None and (_type_name(old.type_ref), old.component, old.sources) != (
            _type_name(type_), component, found):
        raise ValueError(f"fact kind {name} is already declared as {_type_name(old.type_ref)} "
                         f"({old.component}; {', '.join(old.sources)})")
    _KINDS[name] = kind
    return kind


def _type_name(ref: str | type) -> str:
    return ref.rpartition(":")[2] if isinstance(ref, str) else ref.__qualname__


def get(name: str) -> FactKind[Any] | None:
    return _KINDS.get(name)


def resolve(kind: FactKind[T] | str) -> FactKind[T]:
    """The declared kind for a FactKind or a name; UnknownKind when no one declared it."""
    name = kind if isinstance(kind, str) else kind.name
    found = _KINDS.get(name)
    if found is None:
        raise UnknownKind(f"unknown fact kind {name!r}")
    return found


def all_kinds() -> list[FactKind[Any]]:
    return sorted(_KINDS.values(), key=lambda k: k.name)


def modes(needs: Iterable[FactKind[Any]], reads: Iterable[FactKind[Any]] = ()) -> tuple[str, ...]:
    """The commands a check belongs to: the sources that produce everything it needs (it runs only
    when all of them are there) or, for a check that needs nothing in particular, whatever it reads
    (and lint, audit and scan, for one that names nothing: it decides for itself)."""
    needs, reads = list(needs), list(reads)
    if not needs and not reads:
        return _HOST_SOURCES
    if needs:
        found = set(SOURCES)
        for kind in needs:
            found &= set(kind.sources)
    else:
        found = {s for kind in reads for s in kind.sources}
    return tuple(s for s in SOURCES if s in found)


# Problems are reported as `input.<kind>` findings under the kind's component; these problem areas
# are not fact kinds (a host that cannot be reached, a file that cannot be read, a probe that failed).
PROBLEM_AREAS = {"ssh": "host", "file": "host", "network": "host", "redis": "redis", "database": "federation",
                 "peer_list": "federation", "advisories": "federation", "sweep": "federation"}


def component_of_problem(kind: str) -> str:
    found = _KINDS.get(kind)
    return found.component if found else PROBLEM_AREAS.get(kind, "host")


# --- live facts: what the audit reads on a host ----------------------------------------------------

Params = Callable[["Inventory", "Host"], "dict[str, object] | None"]


@dataclass(frozen=True)
class LiveFact:
    """One allow-listed command, the hosts it runs on, its parameters, and how its output becomes facts.

    `parse` ("module:function") turns (host name, output) into one fact of `produces[0]`; a command
    whose output holds several facts (the config files) names a `collect` function instead, called
    as collect(host, output, facts, fetched). A transport failure, a non-zero exit (when `failure`
    names it) or a ParseError becomes an `input.<problem>` finding at "host:<where>"."""

    command: RemoteCommand
    produces: tuple[FactKind[Any], ...]
    problem: str
    label: str  # how messages name it: "<label>: <error>"
    where: str
    parse: str | None = None
    collect: str | None = None
    roles: frozenset[str] | None = None  # None: every host
    params: Params | None = None  # None: no parameters; a function returning None: not on this host
    failure: str | None = None  # message prefix for a non-zero exit; None: the exit status is not judged
    # Who plans it and reads its output: "audit" (sources/ssh.py, for every host its roles match) or
    # "federation" (`federation impact -i`, mastoaudit/federation/remote.py: one database host).
    planned_by: str = "audit"

    @property
    def id(self) -> str:
        return self.command.id

    def plan(self, inventory: Inventory, host: Host) -> dict[str, object] | None:
        """The parameters for this host in an audit, or None when it does not run there."""
        if self.planned_by != "audit" or (self.roles is not None and not self.roles & set(host.roles)):
            return None
        return self.params(inventory, host) if self.params is not None else {}


LIVE_FACTS: list[LiveFact] = []


def live(name: str, type_ref: str, component: str, description: str, *, command: RemoteCommand, parse: str,
         roles: Iterable[str] | None = None, params: Params | None = None, problem: str | None = None,
         label: str | None = None, where: str | None = None, failure: str | None = None) -> FactKind[Any]:
    """Declare a live kind together with the command that reads it and the parser of its output."""
    kind = declare(name, type_ref, component, (LIVE,), description)
    LIVE_FACTS.append(LiveFact(command, (kind,), problem or name, label or command.id, where or command.id,
                               parse=parse, roles=frozenset(roles) if roles is not None else None, params=params,
                               failure=failure))
    return kind


def read_live(*produces: FactKind[Any], command: RemoteCommand, collect: str, problem: str, label: str,
              where: str, roles: Iterable[str] | None = None, params: Params | None = None,
              failure: str | None = None) -> None:
    """Declare a command that reads config files (or dumps of them) into kinds declared elsewhere."""
    LIVE_FACTS.append(LiveFact(command, produces, problem, label, where, collect=collect,
                               roles=frozenset(roles) if roles is not None else None, params=params, failure=failure))


_CONFIG = (STATIC, LIVE)

# --- config files (parsers/: one module per format; audit parses the fetched copies the same way) ---

NGINX: FactKind[NginxConfig] = declare(
    "nginx", "mastoaudit.parsers.nginx:NginxConfig", "nginx", _CONFIG,
    "nginx's configuration with its includes (the files, or nginx -T on a live host)")
MASTODON_ENV: FactKind[MastodonEnv] = declare(
    "mastodon_env", "mastoaudit.parsers.env:MastodonEnv", "mastodon-env", _CONFIG, "Mastodon's .env.production")
POSTGRESQL_CONF: FactKind[PostgresConf] = declare(
    "postgresql_conf", "mastoaudit.parsers.postgres:PostgresConf", "postgresql", _CONFIG,
    "postgresql.conf with its includes")
PG_HBA: FactKind[PgHba] = declare("pg_hba", "mastoaudit.parsers.postgres:PgHba", "postgresql", _CONFIG, "pg_hba.conf")
REDIS_CONF: FactKind[RedisConf] = declare("redis_conf", "mastoaudit.parsers.redis:RedisConf", "redis", _CONFIG,
                                          "redis.conf")
ELASTICSEARCH_YML: FactKind[ElasticsearchConf] = declare(
    "elasticsearch_yml", "mastoaudit.parsers.elasticsearch:ElasticsearchConf", "elasticsearch", _CONFIG,
    "elasticsearch.yml or opensearch.yml")
COMPOSE: FactKind[ComposeFile] = declare("compose", "mastoaudit.parsers.compose:ComposeFile", "host", _CONFIG,
                                         "docker-compose.yml or compose.yml")
SYSTEMD_UNIT: FactKind[SystemdUnit] = declare("systemd_unit", "mastoaudit.parsers.systemd:SystemdUnit", "host",
                                              _CONFIG, "a systemd unit with its drop-ins")
SSHD_CONFIG: FactKind[SshdConfig] = declare("sshd_config", "mastoaudit.parsers.sshd:SshdConfig", "host", _CONFIG,
                                            "sshd's settings (sshd_config, or sshd -T on a live host)")

# --- live: what only a running host shows --------------------------------------------------------

HOST_INFO: FactKind[HostInfo] = declare("host_info", "mastoaudit.facts:HostInfo", "host", (LIVE, NETWORK),
                                        "the audited host: name, address, roles, the instance's domains")
FILE_STAT: FactKind[FileStat] = declare("file_stat", "mastoaudit.parsers.live:FileStat", "host", (LIVE,),
                                        "a file read on the host: its mode, owner and size")
APT_CONFIG: FactKind[SourceFile] = declare("apt_config", "mastoaudit.parsers.base:SourceFile", "host", (LIVE,),
                                           "apt's periodic settings (/etc/apt/apt.conf.d)")
MASTODON_VERSION: FactKind[MastodonVersion] = declare(
    "mastodon_version", "mastoaudit.facts.mastodon:MastodonVersion", "app", (LIVE, NETWORK),
    "the installed Mastodon release (version.rb, the instance API or NodeInfo)")


def on_host(host: Host, path: str) -> str:
    """A path on the host, under its path_prefix (the lab's hosts share one file system)."""
    return f"{host.path_prefix}{path}" if host.path_prefix else path


APP_ROLES = frozenset({"web", "app", "streaming", "sidekiq"})  # the hosts with .env.production
_APT = ("/etc/apt/apt.conf.d/20auto-upgrades", "/etc/apt/apt.conf.d/50unattended-upgrades")
_UNITS = ("/etc/systemd/system/mastodon-*.service", "/etc/systemd/system/mastodon-*.service.d/*.conf")


def _files(inventory: Inventory, host: Host) -> dict[str, object]:
    """Files any user may read: apt's settings, the Mastodon units; on app hosts the release and compose."""
    paths = [on_host(host, p) for p in (*_APT, *_UNITS)]
    if APP_ROLES & set(host.roles):
        app = on_host(host, inventory.mastodon_path)
        paths += [f"{app}/lib/mastodon/version.rb", f"{app}/docker-compose.yml", f"{app}/compose.yml"]
    return {"paths": paths}


def _env_file(inventory: Inventory, host: Host) -> dict[str, object] | None:
    """An app host's .env.production: read first, on its own (see read_live below)."""
    if not APP_ROLES & set(host.roles):
        return None
    return {"paths": [f"{on_host(host, inventory.mastodon_path)}/.env.production"]}


def _root_files(inventory: Inventory, host: Host) -> dict[str, object] | None:
    """Files only root may read: the data stores' configs, by role (.env.production: env-file)."""
    roles = set(host.roles)
    paths: list[str] = []
    if "db" in roles:
        paths += [on_host(host, f"/etc/postgresql/*/main/{name}")
                  for name in ("postgresql.conf", "pg_hba.conf", "conf.d/*.conf")]
    if "redis" in roles:
        paths.append(on_host(host, host.services.redis_config))
    if "search" in roles:
        paths += [on_host(host, p) for p in ("/etc/elasticsearch/elasticsearch.yml", "/etc/opensearch/opensearch.yml")]
    return {"paths": paths} if paths else None


# Declared first and read in a round trip of its own (sources/ssh.py EARLY_KEYS): the audit's network
# half needs the web host's .env.production (the bucket, the relay, secure mode) and starts as soon
# as it is in, while the other commands still run (sources/overlap.py).
read_live(FILE_STAT, MASTODON_ENV,
          command=RemoteCommand("env-file", "Mastodon's .env.production (only root may read it)", READ_FILES,
                                ("paths",), needs_root=True),
          collect="mastoaudit.sources.ssh:collect_files", problem="ssh", label="reading files", where="files",
          params=_env_file)
read_live(FILE_STAT, APT_CONFIG, MASTODON_VERSION, COMPOSE, SYSTEMD_UNIT,
          command=RemoteCommand("files", "config files, their modes and owners", READ_FILES, ("paths",)),
          collect="mastoaudit.sources.ssh:collect_files", problem="ssh", label="reading files", where="files",
          params=_files)
read_live(FILE_STAT, MASTODON_ENV, POSTGRESQL_CONF, PG_HBA, REDIS_CONF, ELASTICSEARCH_YML,
          command=RemoteCommand("files-root", "config files only root may read", READ_FILES, ("paths",),
                                needs_root=True),
          collect="mastoaudit.sources.ssh:collect_files", problem="ssh", label="reading files", where="files",
          params=_root_files)
read_live(SSHD_CONFIG,
          command=RemoteCommand("sshd-effective", "sshd's effective settings", "sshd -T -f {config} 2>&1",
                                ("config",), needs_root=True),
          collect="mastoaudit.sources.ssh:collect_sshd", problem="sshd_config", label="sshd -T", where="sshd -T",
          params=lambda _inventory, host: {"config": on_host(host, host.services.sshd_config)},
          failure="sshd -T failed")
LISTENING: FactKind[ListeningSockets] = live(
    "listening", "mastoaudit.parsers.live:ListeningSockets", "host", "sockets listening, with their programs",
    command=RemoteCommand("listening", "TCP and UDP sockets listening, with their processes",
                          "ss -H -ltunp 2>/dev/null || ss -H -ltun", needs_root=True),
    parse="mastoaudit.parsers.live:parse_listening", problem="ssh")
PROCESSES: FactKind[Processes] = live(
    "processes", "mastoaudit.parsers.live:Processes", "host", "which user runs each process",
    command=RemoteCommand("processes", "which user runs each process",
                          "ps -eo user:32=,pid=,comm=,args= | cut -c1-400"),
    parse="mastoaudit.parsers.live:parse_processes", problem="ssh")
PACKAGES: FactKind[Packages] = live(
    "packages", "mastoaudit.parsers.live:Packages", "host", "installed Debian packages and their versions",
    command=RemoteCommand("packages", "installed package versions",
                          "dpkg-query -W -f '${{Package}}\\t${{Version}}\\t${{db:Status-Abbrev}}\\n' 2>/dev/null"),
    parse="mastoaudit.parsers.live:parse_packages", problem="ssh")
FIREWALL: FactKind[FirewallRules] = live(
    "firewall", "mastoaudit.parsers.live:FirewallRules", "host", "the packet filter's rules",
    command=RemoteCommand("firewall", "packet filter rules",
                          "nft list ruleset 2>/dev/null || iptables-save 2>/dev/null", needs_root=True),
    parse="mastoaudit.parsers.live:parse_firewall", problem="ssh")
read_live(NGINX,
          command=RemoteCommand("nginx-dump", "nginx's whole effective configuration", "nginx -T -c {config} 2>&1",
                                ("config",), needs_root=True),
          collect="mastoaudit.sources.ssh:collect_nginx_dump", problem="nginx", label="nginx -T", where="nginx -T",
          roles={"web"}, params=lambda _inventory, host: {"config": on_host(host, host.services.nginx_config)},
          failure="nginx -T failed")

# PostgreSQL is asked through its Unix socket as the postgres user: no password, nothing in a command line.
_PSQL = "cd / && runuser -u postgres -- psql -X -A -t -F '|' -h {socket_dir} -p {port} -d postgres"


def _postgres(_inventory: Inventory, host: Host) -> dict[str, object]:
    return {"socket_dir": host.services.postgres_socket_dir, "port": host.services.postgres_port}


POSTGRES_LIVE: FactKind[PostgresLive] = live(
    "postgres_live", "mastoaudit.parsers.live:PostgresLive", "postgresql",
    "PostgreSQL's running settings and its roles' powers",
    command=RemoteCommand(
        "postgres-state",
        "PostgreSQL's effective settings and its roles' powers (no password hashes: only whether one is set)",
        _PSQL + " -c \"SELECT 'setting', name, setting FROM pg_settings WHERE name IN ('listen_addresses',"
        "'password_encryption','ssl','port','log_connections','ssl_min_protocol_version')\""
        " -c \"SELECT 'role', rolname, rolsuper, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication,"
        " rolbypassrls, (rolpassword IS NULL) FROM pg_authid ORDER BY rolname\" 2>&1",
        ("socket_dir", "port"), needs_root=True),
    parse="mastoaudit.parsers.live:parse_postgres_live", roles={"db"}, params=_postgres, problem="postgresql_conf",
    label="PostgreSQL", where="psql", failure="PostgreSQL could not be asked")
POSTGRES_PASSWORD_HASHES: FactKind[PasswordHashes] = live(
    "postgres_password_hashes", "mastoaudit.parsers.live:PasswordHashes", "postgresql",
    "how each PostgreSQL role that can log in stores its password (the method, never the hash)",
    command=RemoteCommand(
        "postgres-password-hashes",
        "how each login role's password is stored: the method's name only, the hash stays in the database",
        _PSQL + " -c \"SELECT 'hash', rolname, CASE WHEN rolpassword IS NULL THEN 'none'"
        " WHEN rolpassword LIKE 'SCRAM-SHA-256%' THEN 'scram-sha-256' WHEN rolpassword LIKE 'md5%' THEN 'md5'"
        " ELSE 'other' END FROM pg_authid WHERE rolcanlogin ORDER BY rolname\" 2>&1",
        ("socket_dir", "port"), needs_root=True),
    parse="mastoaudit.parsers.live:parse_password_hashes", roles={"db"}, params=_postgres,
    label="PostgreSQL", where="psql pg_authid", failure="PostgreSQL could not be asked")
REDIS_LIVE: FactKind[RedisLive] = live(
    "redis_live", "mastoaudit.parsers.live:RedisLive", "redis", "Redis's running settings and ACL users",
    command=RemoteCommand(
        "redis-config", "Redis's effective settings (the password stays on the host)",
        # requirepass is read from the config on the host and fed to redis-cli on stdin; it never
        # appears in the command text or in the output (AUTH answers OK).
        # The first PING (argument mode) answers at once when nothing listens; fed from a pipe,
        # redis-cli would retry the connection instead.
        "first=$(redis-cli -h 127.0.0.1 -p {port} PING 2>&1); echo \"$first\";"
        " case \"$first\" in *'Could not connect'*) exit 3;; esac;"
        " {{ pw=$(sed -n 's/^[[:space:]]*requirepass[[:space:]]\\+//p' {config} 2>/dev/null | tail -n1);"
        " [ -n \"$pw\" ] && printf 'AUTH %s\\n' \"$pw\";"
        " printf 'PING\\nCONFIG GET bind\\nCONFIG GET protected-mode\\n"
        "CONFIG GET port\\nCONFIG GET enable-debug-command\\nCONFIG GET enable-module-command\\nACL USERS\\n'; }}"
        " | redis-cli -h 127.0.0.1 -p {port} 2>&1",
        ("config", "port"), needs_root=True),
    parse="mastoaudit.parsers.live:parse_redis_cli", roles={"redis"},
    params=lambda _inventory, host: {"config": on_host(host, host.services.redis_config),
                                     "port": host.services.redis_port},
    problem="redis", label="Redis", where="redis-cli")

# --- network: what the probes see from outside (probes/, fact types in facts/) ---------------------

SCAN_TARGET: FactKind[ScanTarget] = declare("scan_target", "mastoaudit.net.target:ScanTarget", "host", (NETWORK,),
                                            "what the network scan looked at")
PROBE_TIMINGS: FactKind[dict] = declare("probe_timings", dict, "host", (NETWORK,), "seconds each probe took")
TLS_ENDPOINT: FactKind[TlsEndpoint] = declare("tls_endpoint", "mastoaudit.facts.tls:TlsEndpoint", "tls", (NETWORK,),
                                              "TLS of one host and port (sslyze)")
TLS_SCAN: FactKind[TlsScanSummary] = declare("tls_scan", "mastoaudit.facts.tls:TlsScanSummary", "tls", (NETWORK,),
                                             "what the TLS probe tried and what did not answer")
HTTP_SITE: FactKind[HttpSite] = declare("http_site", "mastoaudit.facts.http:HttpSite", "nginx", (NETWORK,),
                                        "what the web and media hosts answered: status, headers, redirects")
HTTP_GRADE: FactKind[dict] = declare("http_grade", dict, "nginx", (NETWORK,),
                                     "an Observatory-style grade of the headers, test by test")
MASTODON_EXPOSURE: FactKind[MastodonExposure] = declare(
    "mastodon_exposure", "mastoaudit.facts.mastodon:MastodonExposure", "app", (NETWORK,),
    "what Mastodon's admin, API and ActivityPub endpoints answer anonymously")
NODEINFO: FactKind[NodeInfo] = declare("nodeinfo", "mastoaudit.facts.mastodon:NodeInfo", "federation", (NETWORK,),
                                       "the instance's NodeInfo")
PORT: FactKind[PortResult] = declare("port", "mastoaudit.facts.ports:PortResult", "host", (NETWORK,),
                                     "one address and port as the auditor saw it")
PORT_SCAN: FactKind[PortScan] = declare("port_scan", "mastoaudit.facts.ports:PortScan", "host", (NETWORK,),
                                        "which ports of which addresses were scanned")
S3: FactKind[S3Fact] = declare("s3", "mastoaudit.facts.s3:S3Fact", "s3", (NETWORK,),
                               "the media bucket as strangers see it")
SMTP_ENDPOINT: FactKind[SmtpEndpoint] = declare("smtp_endpoint", "mastoaudit.facts.smtp:SmtpEndpoint", "smtp",
                                                (NETWORK,), "the SMTP relay on one port")
MAIL_SPF: FactKind[SpfFact] = declare("mail_spf", "mastoaudit.facts.mail:SpfFact", "mail-dns", (NETWORK,),
                                      "a mail domain's SPF, evaluated for the relay")
MAIL_DKIM: FactKind[DkimFact] = declare("mail_dkim", "mastoaudit.facts.mail:DkimFact", "mail-dns", (NETWORK,),
                                        "a mail domain's DKIM keys at the selectors tried")
MAIL_DMARC: FactKind[DmarcFact] = declare("mail_dmarc", "mastoaudit.facts.mail:DmarcFact", "mail-dns", (NETWORK,),
                                          "a mail domain's DMARC record")
MAIL_MTA_STS: FactKind[MtaStsFact] = declare("mail_mta_sts", "mastoaudit.facts.mail:MtaStsFact", "mail-dns",
                                             (NETWORK,), "a mail domain's MTA-STS record and policy")
MAIL_TLS_RPT: FactKind[TlsRptFact] = declare("mail_tls_rpt", "mastoaudit.facts.mail:TlsRptFact", "mail-dns",
                                             (NETWORK,), "a mail domain's TLS-RPT record")
DNS_CAA: FactKind[CaaFact] = declare("dns_caa", "mastoaudit.facts.mail:CaaFact", "mail-dns", (NETWORK,),
                                     "the web domain's CAA records")
DNS_DNSSEC: FactKind[DnssecFact] = declare("dns_dnssec", "mastoaudit.facts.mail:DnssecFact", "mail-dns", (NETWORK,),
                                           "whether a domain's answers are signed")

# --- federation: Mastodon's database and its peers (`federation impact`) ---------------------------

MASTODON_DB: FactKind[DatabaseFacts] = declare(
    "mastodon_db", "mastoaudit.federation.queries:DatabaseFacts", "federation", (FEDERATION,),
    "Mastodon's database, read-only: registrations, staff and their 2FA, domain blocks and allows, peers")
FEDERATION_PEERS: FactKind[Breakdown] = declare(
    "federation_peers", "mastoaudit.federation.breakdown:Breakdown", "federation", (FEDERATION,),
    "the peers still federated, by software and version, matched against the OSV advisories")


def _federation_command() -> RemoteCommand:
    """The same fixed SQL `--db` runs with psycopg (mastoaudit/federation/queries.py), as one psql
    script: read-only twice over (default_transaction_read_only and a SELECT-only text), each
    statement with its own timeout, the domains passed as a psql variable, never in the SQL text."""
    from .federation.queries import psql_script

    script = psql_script().replace("{", "{{").replace("}", "}}")
    return RemoteCommand(
        "mastodon-db-federation",
        "Mastodon's database, read-only: peers, follow counts per domain, registrations mode, staff 2FA, "
        "domain blocks and allows (no email addresses, no secrets)",
        "cd / && runuser -u postgres -- env PGOPTIONS='-c default_transaction_read_only=on"
        " -c statement_timeout={timeout_ms}' psql -X -q -A -t -F '|' -h {socket_dir} -p {port} -d {database}"
        " {domains} -f - 2>&1 <<'MASTOAUDIT_SQL'\n" + script + "MASTOAUDIT_SQL",
        ("socket_dir", "port", "database", "domains", "timeout_ms"), needs_root=True,
    )


# Planned and read by `federation impact -i` itself (mastoaudit/federation/remote.py: the database
# host, the database, the domains asked about), never by an audit; listed here with every other
# command that runs on a host.
LIVE_FACTS.append(LiveFact(_federation_command(), (MASTODON_DB,), "database", "psql", "psql", roles=frozenset({"db"}),
                           planned_by="federation"))
