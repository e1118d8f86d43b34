"""The kinds of config file mastoaudit recognises, how to recognise them, and how to parse them.

Each is a fact kind as well (declared with its type and component in mastoaudit/kinds.py): a check
that `needs=[kinds.REDIS_CONF]` receives the parsed `redis.conf` files. Recognition is by name
first, then by content for files whose name says nothing (a `.conf` in a repository, say).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from ..templating import template_name
from .base import ConfigFact, ParseError, SourceFile

__all__ = ["KINDS", "ConfigFact", "Kind", "ParseError", "SourceFile", "classify"]


@dataclass(frozen=True)
class Kind:
    name: str  # the fact kind its files become (mastoaudit/kinds.py)
    # mastoaudit.parsers.<module> provides parse_<name>(source) -> fact, or, for kinds whose files
    # refer to each other, build_<name>(sources, provider, facts).
    module: str
    names: tuple[str, ...]  # fnmatch patterns on the lower-cased posix path (relative)
    sniff: re.Pattern[str] | None = None  # content that marks a file whose name says nothing
    sniff_suffixes: tuple[str, ...] = ()  # only files with these endings are sniffed


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.MULTILINE)


KINDS: dict[str, Kind] = {
    k.name: k
    for k in [
        Kind(
            "nginx", "nginx",
            names=("nginx.conf", "*/nginx.conf", "*/nginx/*", "nginx/*", "*/sites-available/*",
                   "*/sites-enabled/*", "sites-available/*", "sites-enabled/*", "*.nginx", "*.nginx.conf"),
            sniff=_rx(r"^\s*(server|http|upstream)\s*\{|^\s*location\s+[^\n{;]+\{"),  # a file of locations too
            sniff_suffixes=(".conf", ".vhost", ""),
        ),
        Kind(
            "mastodon_env", "env",
            names=(".env.production", "*/.env.production", "env.production", "*/env.production",
                   "*.env.production", ".env.*", "*/.env.*"),
            sniff=_rx(r"^\s*(export\s+)?(LOCAL_DOMAIN|SECRET_KEY_BASE|WEB_DOMAIN)\s*="),
            sniff_suffixes=(".env", ".production", ""),
        ),
        Kind(
            "pg_hba", "postgres",
            names=("pg_hba.conf", "*/pg_hba.conf"),
            sniff=_rx(r"^\s*(local|host|hostssl|hostnossl|hostgssenc)\s+\S+\s+\S+.*\b(trust|md5|scram-sha-256|password|peer|reject|ident|cert)\s*$"),
            sniff_suffixes=(".conf", ".hba"),
        ),
        Kind(
            "postgresql_conf", "postgres",
            names=("postgresql.conf", "*/postgresql.conf", "postgresql.auto.conf", "*/postgresql.auto.conf",
                   "*/postgresql/*/conf.d/*.conf", "*/postgresql/conf.d/*.conf"),
            sniff=_rx(r"^\s*(listen_addresses|password_encryption|shared_buffers|max_connections)\s*=?"),
            sniff_suffixes=(".conf",),
        ),
        Kind(
            "redis_conf", "redis",
            # A folder named redis is only a config folder under etc/ (a jail or a role named redis
            # holds other files); elsewhere the content says whether a .conf is Redis's.
            names=("redis.conf", "*/redis.conf", "redis-*.conf", "*/redis-*.conf", "etc/redis/*.conf",
                   "*/etc/redis/*.conf"),
            sniff=_rx(r"^\s*(requirepass|protected-mode|rename-command|appendonly|maxmemory-policy)\s+\S"),
            sniff_suffixes=(".conf",),
        ),
        Kind(
            "elasticsearch_yml", "elasticsearch",
            names=("elasticsearch.yml", "*/elasticsearch.yml", "opensearch.yml", "*/opensearch.yml"),
        ),
        Kind(
            "compose", "compose",
            names=("docker-compose.yml", "docker-compose.yaml", "*/docker-compose.yml", "*/docker-compose.yaml",
                   "docker-compose.*.yml", "*/docker-compose.*.yml", "compose.yml", "compose.yaml",
                   "*/compose.yml", "*/compose.yaml"),
        ),
        Kind(
            "systemd_unit", "systemd",
            # Units, and their drop-ins (`<unit>.service.d/*.conf`), applied to them by build_systemd_unit.
            names=("*.service", "*/*.service", "*.service.d/*.conf", "*/*.service.d/*.conf"),
        ),
        Kind(
            "sshd_config", "sshd",
            names=("sshd_config", "*/sshd_config", "*/sshd_config.d/*.conf", "sshd_config.d/*.conf"),
        ),
    ]
}

# When both match by content, the first listed wins (pg_hba lines also look like nothing else).
_SNIFF_ORDER = ["nginx", "mastodon_env", "pg_hba", "postgresql_conf", "redis_conf"]


def classify(relpath: str, head: str | None) -> Kind | None:
    """Recognise a file by its path, else by the first kilobytes of its content. A template file
    (`templates/nginx.conf.j2`, `env.production.template`) is recognised by the name it renders to."""
    lowered = relpath.replace("\\", "/").lower()
    lowered = template_name(lowered) or lowered
    for kind in KINDS.values():
        if any(fnmatch.fnmatchcase(lowered, pattern) for pattern in kind.names):
            return kind
    if head is None:
        return None
    base = lowered.rsplit("/", 1)[-1]
    suffix = "." + base.rsplit(".", 1)[-1] if "." in base.lstrip(".") else ""
    for name in _SNIFF_ORDER:
        kind = KINDS[name]
        if kind.sniff and suffix in kind.sniff_suffixes and kind.sniff.search(head):
            return kind
    return None
