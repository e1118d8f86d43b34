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
from .queries import QUERIES, DatabaseFacts, collect, parse_psql

DEFAULT_DATABASE = "mastodon_production"


class NoDatabaseHost(Exception):
    pass


def _db_host(inventory: Inventory) -> Host:
    host = next((h for h in inventory.hosts if "db" in h.roles), None)
    if host is None:
        raise NoDatabaseHost(f"{inventory.source}: no host with the db role")
    return host


def read_over_ssh(inventory: Inventory, domains: list[str], database: str = DEFAULT_DATABASE,
                  timeout_s: float = 30.0, command_log: str | None = None,
                  progress=None) -> tuple[DatabaseFacts | None, str | None, FactSet | None]:
    """(facts, why they could not be read, the app host's facts with its .env.production)."""
    db_host = _db_host(inventory)
    app_host = next((h for h in inventory.hosts if set(h.roles) & APP_ROLES), None)
    per_query = max(1, int(timeout_s * 1000))
    # Each statement has its own limit; the command as a whole may take all of them.
    budget = timeout_s * len(QUERIES) + 10

    def planner(inv: Inventory, host: Host) -> list[Planned]:
        steps = []
        if host.name == db_host.name:
            steps.append(Planned("federation-db", "mastodon-db-federation", {
                "socket_dir": host.services.postgres_socket_dir, "port": host.services.postgres_port,
                "database": database, "domains": sorted(set(domains)), "timeout_ms": per_query}))
        if app_host is not None and host.name == app_host.name:
            steps.append(Planned("files-root", "files-root",
                                 {"paths": [f"{_p(host, inv.mastodon_path)}/.env.production"]}))
        return steps

    hosts = [db_host] + ([app_host] if app_host is not None and app_host.name != db_host.name else [])
    hosts = [replace(h, ssh=replace(h.ssh, command_timeout=max(h.ssh.command_timeout, budget),
                                    host_timeout=max(h.ssh.host_timeout, budget + 30))) for h in hosts]
    subset = replace(inventory, hosts=hosts)
    collection = SshCollection(subset, command_log, planner=planner).start()
    results, failures = collection.gather(progress)
    source = f"{db_host.name}:psql/{database}"
    env_facts = None
    if app_host is not None:
        app = next(h for h in hosts if h.name == app_host.name)
        app_results = {k: v for k, v in results.get(app.name, {}).items() if k == "files-root"}
        env_facts = build_facts(subset, app, app_results, failures.get(app.name))
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
        first = next((line for line in text.splitlines() if line.strip()), "no output")
        return None, f"{db_host.name}: psql could not read {database}: {first[:300]}", env_facts
    expected = [q.name for q in QUERIES if domains or not q.needs_domains]
    return collect(source, parsed, expected), None, env_facts
