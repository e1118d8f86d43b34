"""`-i INVENTORY`: the same queries as `--db`, run with psql on the inventory's database host over
the SSH worker (remote_commands' `mastodon-db-federation`), and the app host's .env.production read
as the audit reads it. What runs on the hosts stays the fixed command table."""

from __future__ import annotations

import base64
from dataclasses import replace

from ..facts import FactSet
from ..inventory import Host, Inventory
from ..kinds import APP_ROLES
from ..kinds import on_host as _p
from ..sources.ssh import Planned, SshCollection, build_facts
from .queries import BY_NAME, QUERIES, DatabaseFacts, QueryFailed, collect, parse_psql

DEFAULT_DATABASE = "mastodon_production"
# The domains go to psql in its command line, which reaches the host as ONE argument of `sh -c`:
# Linux refuses an argument over 128 KiB (MAX_ARG_STRLEN; "Argument list too long"), so the
# domains are sent in parts of at most this many characters (the SQL script takes about 5 KB more,
# and sudo's quoting a little), and the parts' counts joined.
DOMAIN_CHARS_PER_COMMAND = 64 * 1024


class NoDatabaseHost(Exception):
    pass


def _db_host(inventory: Inventory) -> Host:
    host = next((h for h in inventory.hosts if "db" in h.roles), None)
    if host is None:
        raise NoDatabaseHost(f"{inventory.source}: no host with the db role")
    return host


def domain_parts(domains: list[str], limit: int = DOMAIN_CHARS_PER_COMMAND) -> list[list[str]]:
    """The domains in parts whose joined length stays within `limit` (one part, maybe empty, at least)."""
    parts: list[list[str]] = [[]]
    size = 0
    for domain in domains:
        if parts[-1] and size + len(domain) + 1 > limit:
            parts.append([])
            size = 0
        parts[-1].append(domain)
        size += len(domain) + 1
    return parts


def _joined(parts: list[dict]) -> dict:
    """psql's answers for each part of the domains as one: the domain queries' rows added up, every
    other query's from the first part (each part ran it alike); a failure in any part wins."""
    joined: dict = {}
    for parsed in parts:
        for name, rows in parsed.items():
            if name not in joined or isinstance(rows, QueryFailed):
                joined[name] = rows
            elif BY_NAME[name].needs_domains and isinstance(joined[name], list):
                joined[name] = joined[name] + rows
    return joined


def read_over_ssh(inventory: Inventory, domains: list[str], database: str = DEFAULT_DATABASE,
                  timeout_s: float = 30.0, command_log: str | None = None,
                  progress=None) -> tuple[DatabaseFacts | None, str | None, FactSet | None]:
    """(facts, why they could not be read, the app host's facts with its .env.production).

    The worker sends a host's commands as one shell command: each part of the domains (see
    DOMAIN_CHARS_PER_COMMAND) is a session of its own, one after the other."""
    db_host = _db_host(inventory)
    app_host = next((h for h in inventory.hosts if set(h.roles) & APP_ROLES), None)
    per_query = max(1, int(timeout_s * 1000))
    parts = domain_parts(sorted(set(domains)))
    # Each statement has its own limit; the command as a whole may take all of them.
    budget = timeout_s * len(QUERIES) + 10
    timed = {h.name: replace(h, ssh=replace(h.ssh, command_timeout=max(h.ssh.command_timeout, budget),
                                            host_timeout=max(h.ssh.host_timeout, budget + 30)))
             for h in (db_host, app_host) if h is not None}
    # The whole inventory goes along: a jump host is named by its inventory name.
    whole = replace(inventory, hosts=[timed.get(h.name, h) for h in inventory.hosts])
    source = f"{db_host.name}:psql/{database}"
    env_facts = None
    answers = []
    for i, part in enumerate(parts):
        def planner(inv: Inventory, host: Host, part=part, first=i == 0) -> list[Planned]:
            steps = []
            if host.name == db_host.name:
                steps.append(Planned("federation-db", "mastodon-db-federation", {
                    "socket_dir": host.services.postgres_socket_dir, "port": host.services.postgres_port,
                    "database": database, "domains": part, "timeout_ms": per_query}))
            if first and app_host is not None and host.name == app_host.name:
                steps.append(Planned("files-root", "files-root",
                                     {"paths": [f"{_p(host, inv.mastodon_path)}/.env.production"]}))
            return steps

        hosts = [timed[db_host.name]] + ([timed[app_host.name]] if i == 0 and app_host is not None
                                         and app_host.name != db_host.name else [])
        results, failures = SshCollection(whole, command_log, hosts=hosts, planner=planner).start().gather(progress)
        if i == 0 and app_host is not None:
            app = timed[app_host.name]
            app_results = {k: v for k, v in results.get(app.name, {}).items() if k == "files-root"}
            env_facts = build_facts(whole, app, app_results, failures.get(app.name))
        if db_host.name in failures:
            return None, f"{db_host.name}: {failures[db_host.name]}", env_facts
        result = results.get(db_host.name, {}).get("federation-db")
        if result is None:
            return None, f"{db_host.name}: no answer from the database command", env_facts
        text = base64.b64decode(result.get("stdout_b64", "")).decode("utf-8", "replace")
        if "error" in result:
            return None, f"{db_host.name}: {result['error']}", env_facts
        parsed = parse_psql(text)
        if not parsed:
            first_line = next((line for line in text.splitlines() if line.strip()), "no output")
            return None, f"{db_host.name}: psql could not read {database}: {first_line[:300]}", env_facts
        answers.append(parsed)
    expected = [q.name for q in QUERIES if domains or not q.needs_domains]
    return collect(source, _joined(answers), expected), None, env_facts
