"""`mastoaudit federation impact`: the follow counts across each domain, the instance's posture
from Mastodon's database, and (given the sweep's peer results) the vulnerable peers, the
domain-block CSV and the refederation list. `federation peers` (the NodeInfo sweep) plugs in here.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..facts import FactSet
from ..model import Location, Status

IMPACT_HELP = """Count the follows across each DOMAIN (and each vulnerable peer of --peers) in Mastodon's
database: distinct accounts each way (seed 000's four counts) and the admin dashboard's follow rows,
for the domain alone and with its subdomains. Also judges the instance's posture from the database."""


class FederationUsage(Exception):
    pass


def add_parser(sub, add_run_options) -> None:
    fed = sub.add_parser("federation", help="federation posture: defederation impact, vulnerable peers, blocks")
    fed_sub = fed.add_subparsers(dest="federation_command", metavar="impact")
    impact = fed_sub.add_parser("impact", help="follows across domains, posture from the database, decisions",
                                description=IMPACT_HELP)
    impact.add_argument("domains", nargs="*", metavar="DOMAIN", help="a peer's domain (as Mastodon stores it)")
    where = impact.add_argument_group("the database (one of)")
    where.add_argument("--db", metavar="DSN", help="a PostgreSQL connection string (libpq form or URL); put the "
                       "password in PGPASSWORD or ~/.pgpass rather than here")
    where.add_argument("-i", "--inventory", type=Path, metavar="INVENTORY",
                       help="run the same queries with psql on the inventory's db host over SSH")
    where.add_argument("--db-name", default="mastodon_production", metavar="NAME",
                       help="the database on the db host, for -i (default: mastodon_production)")
    where.add_argument("--statement-timeout", type=float, default=30.0, metavar="SECONDS",
                       help="time limit of each query (default: 30)")
    where.add_argument("--command-log", type=Path, metavar="FILE", help="with -i: record every command sent")
    peers = impact.add_argument_group("peers and advisories")
    peers.add_argument("--domains-file", type=Path, metavar="FILE",
                       help="more domains, one a line (normalised: case, IDN, trailing dots; junk is reported)")
    peers.add_argument("--peers", type=Path, metavar="RESULTS.json",
                       help="peer results (software and version per peer) from a sweep or a previous run's JSON")
    peers.add_argument("--advisories", action="append", type=Path, default=[], metavar="FILE|DIR",
                       help="OSV advisory files to add (a record with a bundled id replaces it); repeatable")
    peers.add_argument("--no-builtin-advisories", action="store_true", help="use only --advisories")
    peers.add_argument("--env", type=Path, metavar=".env.production",
                       help="the instance's .env.production (AUTHORIZED_FETCH, LIMITED_FEDERATION_MODE)")
    decide = impact.add_argument_group("decisions")
    decide.add_argument("--blocklist", type=Path, metavar="FILE.csv",
                        help="write the domain-block CSV for Mastodon's import (Moderation > Federation > Import)")
    decide.add_argument("--block-for", action="append", metavar="ADVISORY",
                        help="block peers affected by this advisory id or alias (default: every one matched)")
    decide.add_argument("--severity", choices=["suspend", "silence"], default="suspend",
                        help="the block's severity (default: suspend)")
    decide.add_argument("--costly-follows", type=int, default=10, metavar="N",
                        help="flag a block whose peer has more than N accounts following across (default: 10)")
    decide.add_argument("--previous", type=Path, metavar="REPORT.json",
                        help="a previous run's JSON: its blocks are refederation candidates once fixed")
    decide.add_argument("--with-subdomains", action="store_true",
                        help="judge costs with subdomains counted (both readings are always in the JSON)")
    add_run_options(impact)


def _read_json(path: Path, what: str) -> dict | list:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FederationUsage(f"{what} {path}: no such file") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise FederationUsage(f"{what} {path}: cannot be read as JSON ({exc})") from None


def _env_facts(path: Path, facts: FactSet) -> None:
    from ..parsers.base import ParseError, SourceFile
    from ..parsers.env import parse_mastodon_env

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FederationUsage(f"--env {path}: {exc.strerror or exc}") from None
    try:
        facts.add("mastodon_env", parse_mastodon_env(SourceFile(str(path), data)))
    except ParseError as exc:
        facts.problem("mastodon_env", f"{path}: {exc.message}", Location(str(path), exc.line))


def run_impact(args: argparse.Namespace, registry, selection):
    """Collect, judge, and return (RunResult, terminal text)."""
    from ..engine import run
    from . import breakdown as breakdown_mod
    from . import decisions as decisions_mod
    from . import report
    from .osv import AdvisoryError, database
    from .peers import BadPeerName, normalise_domain, read_peer_file

    if bool(args.db) == bool(args.inventory):
        raise FederationUsage("give the database as --db DSN or -i INVENTORY (one of them)")
    if not 0 < args.statement_timeout <= 3600:
        raise FederationUsage("--statement-timeout: between 0 and 3600 seconds")
    try:
        db = database(args.advisories, include_builtin=not args.no_builtin_advisories)
    except AdvisoryError as exc:
        raise FederationUsage(f"--advisories: {exc}") from None
    if not db.advisories and (args.peers or args.blocklist):
        raise FederationUsage("no advisories to match peers against (--no-builtin-advisories without --advisories)")
    problems: list[str] = []
    domains: list[str] = []
    for text in args.domains:
        try:
            domains.append(normalise_domain(text))
        except BadPeerName as exc:
            raise FederationUsage(f"{text!r} is not a peer domain: {exc}") from None
    facts_set = FactSet(target="")
    if args.domains_file:
        try:
            listed = read_peer_file(args.domains_file)
        except (OSError, BadPeerName) as exc:
            raise FederationUsage(f"--domains-file {args.domains_file}: {exc}") from None
        domains += [p.domain for p in listed.peers]
        for line, excerpt, why in listed.problems:
            facts_set.problem("peer_list", f"{args.domains_file}:{line}: {excerpt!r} skipped: {why}",
                              Location(str(args.domains_file), line), Status.WARN)
    results = []
    previous_rows: list[dict] = []
    if args.peers:
        results = decisions_mod.previous_peers(_read_json(args.peers, "--peers"))
        if not results:
            raise FederationUsage(f"--peers {args.peers}: no peer results in it")
    if args.previous:
        previous_rows = decisions_mod.previous_blocks(_read_json(args.previous, "--previous"))
    # Which domains to count: the named ones, then every vulnerable peer of the results.
    provisional = breakdown_mod.build([r for r in results], db) if results else None
    # Every peer of a software with a vulnerable peer is counted too (the seed's "93 of 96" shape).
    affected = {v.result.software for v in provisional.verdicts if v.vulnerable} if provisional else set()
    related = sorted(v.result.domain for v in provisional.verdicts if v.result.software in affected) \
        if provisional else []
    count_domains = list(dict.fromkeys([*domains, *related]))
    facts, failure, env_facts = _read(args, count_domains)
    facts_set.target = facts.source if facts is not None else (failure or "database").split(":")[0]
    if failure is not None:
        facts_set.problem("database", failure, Location(facts_set.target))
    if facts is not None:
        facts_set.add("mastodon_db", facts)
        # The posture checks report their own queries' failures; these two feed no check.
        for name in ("peers", "impact"):
            if name in facts.errors:
                facts_set.problem("database", f"{facts.source}: {name}: {facts.errors[name]}",
                                  Location(f"{facts.source}#{name}"))
    if args.env:
        _env_facts(args.env, facts_set)
    elif env_facts is not None:
        for env in env_facts.all("mastodon_env"):
            facts_set.add("mastodon_env", env)
        for p in env_facts.problems:
            facts_set.problems.append(p)
    breakdown = breakdown_mod.build(results, db, facts) if results else None
    if breakdown is not None:
        facts_set.add("federation_peers", breakdown)
    scope = "subdomains" if args.with_subdomains else "domain"
    decisions = None
    if breakdown is not None:
        decisions = decisions_mod.decide(breakdown, db, facts, args.block_for, args.severity, args.costly_follows,
                                         previous_rows, scope)
        if args.blocklist:
            try:
                args.blocklist.parent.mkdir(parents=True, exist_ok=True)
                args.blocklist.write_text(decisions.csv_text(), encoding="utf-8")
            except OSError as exc:
                raise FederationUsage(f"--blocklist {args.blocklist}: {exc.strerror or exc}") from None
    elif args.blocklist:
        raise FederationUsage("--blocklist needs --peers (which peers run what)")
    impact_domains = domains
    result = run("federation impact", registry, selection, [facts_set], args.began)
    result.extra["federation"] = report.section(facts, count_domains, breakdown, decisions, db, problems)
    text = report.terminal(facts, impact_domains, breakdown, decisions, db, scope)
    if args.blocklist and decisions is not None:
        text += f"  wrote {args.blocklist} ({len(decisions.rows)} domain blocks)\n"
    return result, text


def _read(args: argparse.Namespace, domains: list[str]):
    """(DatabaseFacts or None, why not, the app host's facts over SSH or None)."""
    if args.db:
        from .database import DatabaseUnreachable, read_database

        try:
            return read_database(args.db, domains, timeout_s=args.statement_timeout), None, None
        except DatabaseUnreachable as exc:
            return None, f"database unreachable: {exc}", None
    from ..inventory import InventoryError, load_inventory
    from .remote import NoDatabaseHost, read_over_ssh

    try:
        inventory = load_inventory(args.inventory)
    except InventoryError as exc:
        raise FederationUsage(str(exc)) from None
    try:
        return read_over_ssh(inventory, domains, args.db_name, args.statement_timeout,
                             str(args.command_log) if args.command_log else None)
    except NoDatabaseHost as exc:
        raise FederationUsage(str(exc)) from None


def print_text(text: str) -> None:
    from ..reporting.document import visible_text

    sys.stdout.write(visible_text(text))
