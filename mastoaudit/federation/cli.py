"""`mastoaudit federation peers` and `federation impact`.

`peers`: the peer list (the database's, the instance API's or a file's), the NodeInfo sweep of every
peer through the one outbound client, the advisories each version matches, the follow counts across
every peer of an affected software (one pass), the domain-block CSV, the refederation list and,
when asked, the admin contacts of the peers to block. `impact`: the follow counts across named
domains (and, given peer results from a file, the same decisions). Both judge the instance's
posture from the database. The two share one tail: facts -> breakdown -> decisions -> checks ->
the federation section of the report.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import stat
import sys
import time
from pathlib import Path

from ..facts import FactSet
from ..model import Location, Status

IMPACT_HELP = """Count the follows across each DOMAIN (and each vulnerable peer of --peers) in Mastodon's
database: distinct accounts each way (seed 000's four counts) and the admin dashboard's follow rows,
for the domain alone and with its subdomains. Also judges the instance's posture from the database."""

PEERS_HELP = """Sweep every peer's NodeInfo (software and version) through one bounded, SSRF-safe client,
match the versions against the OSV advisories, count the follows across every peer of an affected
software in the database (one pass), and write the domain-block CSV and the refederation list.
The peers come from the database (--db or -i: every accounts.domain, with Mastodon's
unavailable_domains), from the instance's /api/v1/instance/peers (--from-instance) or from a file."""


class FederationUsage(Exception):
    pass


def _database_options(p: argparse.ArgumentParser, required: bool) -> None:
    title = " (one of)" if required else " (for impact counts, blocks, posture)"
    where = p.add_argument_group("the database" + title)
    where.add_argument("--db", metavar="DSN", help="a PostgreSQL connection string (libpq form or URL); put the "
                       "password in PGPASSWORD or ~/.pgpass rather than here")
    where.add_argument("-i", "--inventory", type=Path, metavar="INVENTORY",
                       help="run the same queries with psql on the inventory's db host over SSH")
    where.add_argument("--db-name", default="mastodon_production", metavar="NAME",
                       help="the database on the db host, for -i (default: mastodon_production)")
    where.add_argument("--statement-timeout", type=float, default=30.0, metavar="SECONDS",
                       help="time limit of each query (default: 30); with --db, 4 s more closes a stalled connection")
    where.add_argument("--command-log", type=Path, metavar="FILE", help="with -i: record every command sent")


def _advisory_options(g) -> None:
    g.add_argument("--advisories", action="append", type=Path, default=[], metavar="FILE|DIR",
                   help="OSV advisory files to add (a record with a bundled id replaces it); repeatable")
    g.add_argument("--no-builtin-advisories", action="store_true", help="use only --advisories")
    g.add_argument("--env", type=Path, metavar=".env.production",
                   help="the instance's .env.production (AUTHORIZED_FETCH, LIMITED_FEDERATION_MODE)")


def _decision_options(p: argparse.ArgumentParser) -> None:
    decide = p.add_argument_group("decisions")
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


def add_parser(sub, add_run_options) -> None:
    fed = sub.add_parser("federation", help="federation posture: the peers' software, defederation impact, blocks")
    fed_sub = fed.add_subparsers(dest="federation_command", metavar="peers|impact")

    peers = fed_sub.add_parser("peers", help="sweep every peer's NodeInfo, match advisories, count the impact, "
                               "write the blocks", description=PEERS_HELP)
    _database_options(peers, required=False)
    listing = peers.add_argument_group("which peers (the database's when none of these is given)")
    listing.add_argument("--from-file", type=Path, action="append", default=[], metavar="FILE",
                         help="a peer list: one domain a line, a JSON list, or a report/section with peers")
    listing.add_argument("--from-instance", action="append", default=[], metavar="DOMAIN",
                         help="the peers an instance lists at /api/v1/instance/peers (repeatable)")
    listing.add_argument("--list-only", action="store_true",
                         help="print the peer list (one domain a line, this shard's with --shard) and stop")
    net = peers.add_argument_group("the sweep")
    net.add_argument("--resolve", action="append", default=[], metavar="NAME=IP",
                     help="reach NAME at IP (NAME may be *.SUFFIX), like curl --resolve; repeatable")
    net.add_argument("--resolve-file", type=Path, metavar="FILE", help="a hosts-format map: 'IP NAME [NAME...]'")
    net.add_argument("--resolver", metavar="IP[:PORT]", help="ask this DNS server (default: the system's resolvers)")
    net.add_argument("--no-dns", action="store_true",
                     help="resolve only from --resolve/--resolve-file: other names do not resolve (labs, tests)")
    net.add_argument("--allow-private", action="append", default=[], metavar="NET",
                     help="also let connections go to this private address or network (repeatable); no other "
                          "loopback, private, link-local, CGNAT or metadata address is ever contacted, whatever "
                          "DNS, a redirect or a NodeInfo link says")
    net.add_argument("--ca-bundle", metavar="FILE", help="trust these CA certificates (labs, internal CAs)")
    net.add_argument("--peer-timeout", type=float, default=10.0, metavar="SECONDS",
                     help="time limit of each peer, every request included (default: 10)")
    net.add_argument("--dns-timeout", type=float, default=5.0, metavar="SECONDS", help="per look-up (default: 5)")
    net.add_argument("--max-time", type=float, default=1800.0, metavar="SECONDS",
                     help="time limit of the whole sweep; peers not reached by then are reported not swept and the "
                          "run is incomplete (default: 1800)")
    net.add_argument("--in-flight", type=int, default=256, metavar="N", help="peers swept at once (default: 256)")
    net.add_argument("--per-address", type=int, default=4, metavar="N",
                     help="peers swept at once on one IP address (default: 4)")
    net.add_argument("--workers", type=int, metavar="N",
                     help="processes sweeping side by side (default: one per core, at most 4, for 2,000 peers "
                          "or more; limits hold per process)")
    net.add_argument("--quiet", "-q", action="store_true", help="no progress bar on stderr")
    adv = peers.add_argument_group("advisories and counts")
    _advisory_options(adv)
    adv.add_argument("--impact", action="append", default=[], metavar="DOMAIN",
                     help="also count the follows across DOMAIN (e.g. threads.net); repeatable")
    _decision_options(peers)
    peers.add_argument("--contacts", type=Path, metavar="FILE.csv",
                       help="look up the admin contact of each peer to block (NodeInfo metadata, /api/v2/instance) "
                            "and write them to FILE.csv only (never to a report): for the letter to its admins")
    add_run_options(peers, shard=True)

    impact = fed_sub.add_parser("impact", help="follows across domains, posture from the database, decisions",
                                description=IMPACT_HELP)
    impact.add_argument("domains", nargs="*", metavar="DOMAIN", help="a peer's domain (as Mastodon stores it)")
    _database_options(impact, required=True)
    peer_group = impact.add_argument_group("peers and advisories")
    peer_group.add_argument("--domains-file", type=Path, metavar="FILE",
                            help="more domains, one a line (normalised: case, IDN, trailing dots; junk is reported)")
    peer_group.add_argument("--peers", type=Path, metavar="RESULTS.json",
                            help="peer results (software and version per peer) from a sweep or a previous run's JSON")
    _advisory_options(peer_group)
    _decision_options(impact)
    add_run_options(impact)


# --- inputs ---------------------------------------------------------------------------------------


def _read_json(path: Path, what: str) -> dict | list:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FederationUsage(f"{what} {path}: no such file") from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise FederationUsage(f"{what} {path}: cannot be read as JSON ({type(exc).__name__})") from None


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


def _advisory_db(args: argparse.Namespace, needed: bool):
    from .osv import AdvisoryError, database

    try:
        db = database(args.advisories, include_builtin=not args.no_builtin_advisories)
    except AdvisoryError as exc:
        raise FederationUsage(f"--advisories: {exc}") from None
    if not db.advisories and needed:
        raise FederationUsage("no advisories to match peers against (--no-builtin-advisories without --advisories)")
    return db


def _check_common(args: argparse.Namespace) -> None:
    if args.db and args.inventory:
        raise FederationUsage("give the database as --db DSN or -i INVENTORY, not both")
    if not 0 < args.statement_timeout <= 3600:
        raise FederationUsage("--statement-timeout: between 0 and 3600 seconds")
    if args.costly_follows < 0:
        raise FederationUsage("--costly-follows: a number of accounts, 0 or more")
    if args.db:
        from .database import BadDsn, describe_dsn

        try:
            describe_dsn(args.db)
        except BadDsn as exc:  # an input error (exit 2), not an unreachable database (exit 3)
            raise FederationUsage(f"--db: {exc}") from None


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


def _read_impact(args: argparse.Namespace, facts, domains: list[str]) -> None:
    """Count the follows across `domains` (one pass) into `facts`."""
    if not domains:
        return
    if facts.stalled:  # a second session would wait as long again for the same database
        facts.errors["impact"] = "not read: the database stopped answering an earlier query"
        return
    if args.db:
        from .database import DatabaseUnreachable, read_database

        try:
            counted = read_database(args.db, domains, names=["impact"], timeout_s=args.statement_timeout)
        except DatabaseUnreachable as exc:
            facts.errors["impact"] = f"database unreachable: {exc}"
            return
    else:
        counted, failure, _ = _read(args, domains)
        if counted is None:
            facts.errors["impact"] = failure or "no answer"
            return
    facts.impact.update(counted.impact)
    if "impact" in counted.errors:
        facts.errors["impact"] = counted.errors["impact"]


def _add_database(facts_set: FactSet, facts, failure: str | None, env_facts, args) -> None:
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


def _counted_domains(results, db, named: list[str]) -> list[str]:
    """The named domains, then every peer of a software that has a vulnerable peer (the seed's
    "93 of 96" counts every Pixelfed peer, fixed or not)."""
    from .breakdown import build

    provisional = build(list(results), db) if results else None
    affected = {v.result.software for v in provisional.verdicts if v.vulnerable} if provisional else set()
    related = sorted(v.result.domain for v in provisional.verdicts if v.result.software in affected) \
        if provisional else []
    return list(dict.fromkeys([*named, *related]))


def _conclude(args, registry, selection, command: str, facts, facts_set: FactSet, results, db, named: list[str],
              counted: list[str], previous_rows: list[dict], sweep_report=None, contacts=None):
    """The shared tail: breakdown, decisions (CSV), checks, the report's section and terminal text."""
    from ..engine import run
    from . import breakdown as breakdown_mod
    from . import decisions as decisions_mod
    from . import report

    breakdown = breakdown_mod.build(results, db, facts) if results else None
    if breakdown is not None:
        facts_set.add("federation_peers", breakdown)
    scope = "subdomains" if args.with_subdomains else "domain"
    decisions = None
    lines: list[str] = []
    if breakdown is not None:
        decisions = decisions_mod.decide(breakdown, db, facts, args.block_for, args.severity, args.costly_follows,
                                         previous_rows, scope)
        if args.blocklist:
            _write_private(args.blocklist, decisions.csv_text(), "--blocklist", mode=0o644)
            lines.append(f"  wrote {args.blocklist} ({len(decisions.rows)} domain blocks)")
        if contacts is not None:
            lines += contacts(decisions)
    elif args.blocklist:
        raise FederationUsage("--blocklist needs peer results (the sweep, or --peers)")
    result = run(command, registry, selection, [facts_set], args.began)
    sweep = sweep_report.to_dict() if sweep_report is not None else None
    result.extra["federation"] = report.section(facts, counted, breakdown, decisions, db, [], sweep)
    text = report.terminal(result.extra["federation"], named, scope)
    return result, text + "".join(f"{line}\n" for line in lines)


def _write_private(path: Path, text: str, what: str, mode: int = 0o600) -> None:
    """Write `text` to `path` with `mode`. A private file (no bits for group or others: people's
    addresses) is never written through a symbolic link nor into a file another user owns or that
    has another name (a hard link), and its mode is set before anything is written to it: an
    existing file that others can read is truncated and closed to them first."""
    private = not mode & 0o077
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | (os.O_NOFOLLOW if private else 0), mode)
    except OSError as exc:
        if private and exc.errno == errno.ELOOP:
            raise FederationUsage(f"{what} {path}: is a symbolic link; give the file itself") from None
        raise FederationUsage(f"{what} {path}: {exc.strerror or exc}") from None
    try:
        if private:
            found = os.fstat(fd)
            if not stat.S_ISREG(found.st_mode):
                raise FederationUsage(f"{what} {path}: not a regular file")
            if found.st_uid != os.geteuid() or found.st_nlink != 1:
                why = "belongs to another user" if found.st_uid != os.geteuid() else "has other names (hard links)"
                raise FederationUsage(f"{what} {path}: {why}; refusing to write people's addresses into it")
        os.fchmod(fd, mode)
        os.ftruncate(fd, 0)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fd = -1
            fh.write(text)
    except OSError as exc:
        raise FederationUsage(f"{what} {path}: {exc.strerror or exc}") from None
    finally:
        if fd >= 0:
            os.close(fd)


# --- federation impact ----------------------------------------------------------------------------


def run_impact(args: argparse.Namespace, registry, selection):
    """Collect, judge, and return (RunResult, terminal text)."""
    from . import decisions as decisions_mod
    from .peers import BadPeerName, normalise_domain, read_peer_file

    if not (args.db or args.inventory):
        raise FederationUsage("give the database as --db DSN or -i INVENTORY (one of them)")
    _check_common(args)
    db = _advisory_db(args, needed=bool(args.peers or args.blocklist))
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
    counted = _counted_domains(results, db, domains)
    facts, failure, env_facts = _read(args, counted)
    _add_database(facts_set, facts, failure, env_facts, args)
    return _conclude(args, registry, selection, "federation impact", facts, facts_set, results, db, domains, counted,
                     previous_rows)


# --- federation peers -----------------------------------------------------------------------------


def _sweep_settings(args: argparse.Namespace):
    from ..addresses import AddressPolicy
    from ..net.target import parse_resolver
    from .sweep import PeerResolver, SweepLimits, read_hosts_file, read_resolve_entries

    for name, value, low, high in (("--peer-timeout", args.peer_timeout, 0.1, 300),
                                   ("--dns-timeout", args.dns_timeout, 0.1, 60),
                                   ("--max-time", args.max_time, 1, 7 * 24 * 3600)):
        if not low <= value <= high:
            raise FederationUsage(f"{name}: between {low:g} and {high:g} seconds")
    for name, value, high in (("--in-flight", args.in_flight, 10_000), ("--per-address", args.per_address, 1000),
                              ("--workers", 1 if args.workers is None else args.workers, 64)):
        if not 1 <= value <= high:
            raise FederationUsage(f"{name}: between 1 and {high}")
    try:
        fixed = read_resolve_entries(args.resolve)
    except ValueError as exc:
        raise FederationUsage(f"--resolve {exc}") from None
    if args.resolve_file:
        try:
            text = args.resolve_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise FederationUsage(f"--resolve-file {args.resolve_file}: {getattr(exc, 'strerror', None) or exc}") \
                from None
        try:
            for name, addresses in read_hosts_file(text, str(args.resolve_file)).items():
                fixed.setdefault(name, []).extend(addresses)
        except ValueError as exc:
            raise FederationUsage(f"--resolve-file {exc}") from None
    server: tuple[str, int] | str | None = "system"
    if args.no_dns:
        server = None
    elif args.resolver:
        try:
            server = parse_resolver(args.resolver)
        except ValueError as exc:
            raise FederationUsage(f"--resolver {args.resolver!r}: expected IP or IP:PORT ({exc})") from None
    try:
        policy = AddressPolicy.allowing(args.allow_private)
    except ValueError as exc:
        raise FederationUsage(f"--allow-private: {exc}") from None
    if args.ca_bundle and not Path(args.ca_bundle).is_file():
        raise FederationUsage(f"--ca-bundle {args.ca_bundle}: no such file")
    limits = SweepLimits(peer_time=args.peer_timeout, dns_time=args.dns_timeout, run_time=args.max_time,
                         in_flight=args.in_flight, per_address=args.per_address)
    return policy, PeerResolver(fixed, server, args.dns_timeout), limits


def _peers_in_json(document: object) -> list[str] | None:
    """Domains in a JSON peer list: a list of strings, {"peers": [...]} (strings or peer objects),
    or a report whose extra.federation has peers."""
    if isinstance(document, dict):
        document = document.get("extra", {}).get("federation", document) if isinstance(
            document.get("extra"), dict) else document
        document = document.get("peers") if isinstance(document, dict) else None
    if not isinstance(document, list):
        return None
    return [item if isinstance(item, str) else str(item.get("domain", "")) for item in document
            if isinstance(item, str) or (isinstance(item, dict) and isinstance(item.get("domain"), str))]


def _peer_list(args: argparse.Namespace, facts, failure: str | None, policy, resolver, facts_set: FactSet):
    """The peers to sweep (normalised, merged), and a description of where they came from."""
    from ..net.client import Client, FetchError, Limits
    from .peers import MAX_PEER_FILE_BYTES, BadPeerName, Peer, peers_from_rows, read_peer_lines
    from .sweep import instance_peers, run_async

    found: dict[str, Peer] = {}
    sources: list[str] = []

    def take(lines, source: str, where: str) -> None:
        listed = read_peer_lines(lines, source)
        for peer in listed.peers:
            found.setdefault(peer.domain, peer)
        for line, excerpt, why in listed.problems[:1000]:
            facts_set.problem("peer_list", f"{where}:{line}: {excerpt!r} skipped: {why}", Location(where, line),
                              Status.WARN)
        if len(listed.problems) > 1000:
            facts_set.problem("peer_list", f"{where}: {len(listed.problems) - 1000} more lines skipped",
                              Location(where), Status.WARN)

    for path in args.from_file:
        try:
            if path.stat().st_size > MAX_PEER_FILE_BYTES:
                raise FederationUsage(f"--from-file {path}: larger than {MAX_PEER_FILE_BYTES // (1024 * 1024)} MiB")
            text = path.read_bytes().decode("utf-8", "replace")
        except OSError as exc:
            raise FederationUsage(f"--from-file {path}: {exc.strerror or exc}") from None
        lines = text.splitlines()
        if text.lstrip()[:1] in ("[", "{"):
            try:
                lines = _peers_in_json(json.loads(text))
            except (ValueError, RecursionError):
                lines = None
            if lines is None:
                raise FederationUsage(f"--from-file {path}: JSON, but not a list of peers")
        take(lines, "file", str(path))
        sources.append(f"file {path}")
    for name in args.from_instance:
        try:
            from .peers import normalise_domain

            domain = normalise_domain(name)
        except BadPeerName as exc:
            raise FederationUsage(f"--from-instance {name!r}: {exc}") from None

        async def fetch(domain=domain) -> list[str]:
            client = Client(policy, resolve=resolver, limits=Limits(total=60, read=20), ca_bundle=args.ca_bundle)
            try:
                return await instance_peers(client, domain, 60)
            finally:
                await client.close()

        try:
            take(run_async(fetch()), "api", f"https://{domain}/api/v1/instance/peers")
            sources.append(f"peers of {domain}")
        except FetchError as exc:
            facts_set.problem("peer_list", f"the peer list of {domain} could not be read: {exc}",
                              Location(f"https://{domain}/api/v1/instance/peers"))
    if not args.from_file and not args.from_instance:
        if facts is None and failure is None:
            raise FederationUsage("which peers? --db DSN or -i INVENTORY (the database's), --from-instance DOMAIN "
                                  "or --from-file FILE")
        if facts is not None and facts.peers is not None:
            for peer in peers_from_rows(facts.peers):
                found.setdefault(peer.domain, peer)
            sources.append(f"the database ({facts.source})")
        else:
            sources.append("the database (unreadable)")
    if facts is not None and facts.peers is not None:  # Mastodon's own verdict on who is offline
        unavailable = facts.unavailable()
        found = {d: (Peer(d, True, p.source) if d in unavailable else p) for d, p in found.items()}
    return list(found.values()), sources


class SweepProgress:
    """One line on standard error, redrawn at most ten times a second, only on a terminal."""

    def __init__(self, stream, enabled: bool) -> None:
        self.stream = getattr(stream, "raw", stream)  # our own escapes; the text is ASCII we build
        self.enabled = enabled
        self.total = 0
        self.done = 0
        self.started = time.monotonic()
        self.drawn = 0.0

    @classmethod
    def for_stream(cls, stream, quiet: bool = False) -> SweepProgress:
        isatty = getattr(stream, "isatty", None)
        return cls(stream, enabled=not quiet and bool(isatty and isatty()))

    def start(self, total: int) -> None:
        self.total, self.done, self.started = total, 0, time.monotonic()
        self._draw(force=True)

    def advance(self, by: int = 1) -> None:
        self.done += by
        self._draw(force=self.done >= self.total)

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self.drawn < 0.1:
            return
        self.drawn = now
        share = self.done / self.total if self.total else 1.0
        bar = "#" * int(share * 24)
        rate = self.done / max(now - self.started, 1e-6)
        self.stream.write(f"\r\033[2Ksweeping peers [{bar:<24}] {self.done}/{self.total} "
                          f"{share:4.0%}  {rate:.0f} peers/s")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r\033[2K")
            self.stream.flush()


class PeersOnly:
    """The selection of a shard after the first: the checks of its peers only. The instance's
    posture (the database, .env.production) is judged once, by shard 1, so that the merged report
    holds each of those findings once."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def wants(self, meta) -> bool:
        return self.inner.wants(meta) and not {"mastodon_db", "mastodon_env"} & set(meta.needs)


def run_peers(args: argparse.Namespace, registry, selection, shard, prepare):
    """Collect, sweep, judge; (RunResult, terminal text), or (None, text) for --list-only.
    `prepare(targets, shard_info)` applies scope, waivers, baseline and history before the sweep."""
    from ..shard import describe
    from . import decisions as decisions_mod
    from .report import NO_NAME_RESOLVED, no_name_resolved
    from .sweep import Sweep, SweepFailed, sweep_peers, workers_for

    _check_common(args)
    db = _advisory_db(args, needed=True)
    policy, resolver, limits = _sweep_settings(args)
    previous_rows = decisions_mod.previous_blocks(_read_json(args.previous, "--previous")) if args.previous else []
    named = []
    for text in args.impact:
        from .peers import BadPeerName, normalise_domain

        try:
            named.append(normalise_domain(text))
        except BadPeerName as exc:
            raise FederationUsage(f"--impact {text!r}: {exc}") from None
    facts_set = FactSet(target="")
    facts, failure, env_facts = (None, None, None)
    if args.db or args.inventory:
        facts, failure, env_facts = _read(args, [])
    peers, sources = _peer_list(args, facts, failure, policy, resolver, facts_set)
    population = [p.domain for p in peers]
    mine = shard.select(peers, name=lambda p: p.domain) if shard else peers
    where = facts.source if facts is not None else "; ".join(sources)
    prepare([where], describe(shard, "peer", [p.domain for p in mine], population) if shard else None)
    if args.list_only:
        return None, "".join(f"{p.domain}\n" for p in mine)

    progress = SweepProgress.for_stream(sys.stderr, quiet=args.quiet)
    progress.start(len(mine))
    try:
        results, swept = sweep_peers(mine, policy, resolver, limits, args.ca_bundle,
                                     workers_for(len(mine), args.workers), progress.advance)
    except SweepFailed as exc:
        raise FederationUsage(str(exc)) from None
    finally:
        progress.close()
    swept.shard = str(shard) if shard else None
    if no_name_resolved(swept.to_dict()):
        hint = " (--no-dns: only the names in --resolve/--resolve-file resolve)" if args.no_dns else ""
        facts_set.problem("sweep", f"{NO_NAME_RESOLVED}{hint}", Location("sweep"))
        if not args.quiet:
            print(f"warning: {NO_NAME_RESOLVED}{hint}", file=sys.stderr)
    if swept.not_swept:
        facts_set.problem("sweep", f"{swept.not_swept} of {len(mine)} peers were not swept: the run's time "
                          f"limit ({limits.run_time:g} s) ended first", Location("sweep"))
    counted = _counted_domains(results, db, named) if facts is not None else []
    if facts is not None:
        _read_impact(args, facts, [d for d in counted])
    _add_database(facts_set, facts, failure, env_facts, args)
    if shard is not None and shard.index != 1:
        selection = PeersOnly(selection)
    if shard is not None and not mine:  # judged: nothing here, which the check says in those words
        from .breakdown import Breakdown

        facts_set.add("federation_peers", Breakdown(shard=(shard.index, shard.count, len(population))))
    if facts is None:
        facts_set.target = "; ".join(sources) or "peers"

    def contacts(decisions) -> list[str]:
        if not args.contacts:
            return []
        looker = Sweep(policy, resolver, limits, ca_bundle=args.ca_bundle)
        lines = _contacts(args, looker, results, decisions)
        swept.contacts_looked_up = looker.report.contacts_looked_up
        swept.requests += looker.report.requests
        return lines

    return _conclude(args, registry, selection, "federation peers", facts, facts_set, results, db, named, counted,
                     previous_rows, swept, contacts)


def _contacts(args: argparse.Namespace, sweep, results, decisions) -> list[str]:
    """Look up the contacts of the peers to block; write them to --contacts only."""
    import csv
    import io

    wanted = {row.domain: row for row in decisions.rows}
    subset = [r for r in results if r.domain in wanted]
    from .sweep import run_async

    run_async(sweep.contacts(subset))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["domain", "software", "version", "advisories", "email", "account", "source", "public_comment"])
    found = 0
    for r in subset:
        c = r.contact
        found += c is not None
        row = wanted[r.domain]
        writer.writerow([r.domain, r.software or "", r.version or "", " ".join(row.advisories),
                         c.email if c and c.email else "", c.account if c and c.account else "",
                         c.source if c else r.extra.get("contact_problem", "none published"), row.public_comment])
    _write_private(args.contacts, buffer.getvalue(), "--contacts")
    lines = [f"  wrote {args.contacts} (admin contacts of {found} of {len(subset)} peers to block; mode 600)"]
    output = getattr(args, "output", None) or "reports"
    try:
        inside = output != "-" and Path(args.contacts).resolve().is_relative_to(Path(output).resolve())
    except (OSError, ValueError):
        inside = False
    if inside:
        lines.append(f"  ! {args.contacts} is inside the reports folder {output}: it holds people's addresses, "
                     "keep it out of CI artefacts")
    return lines


def print_text(text: str) -> None:
    from ..reporting.document import visible_text

    sys.stdout.write(visible_text(text))
