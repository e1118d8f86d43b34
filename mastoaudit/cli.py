"""The mastoaudit command line.

Exit codes: 0 clean, 1 failures at or above --fail-on, 2 usage or input error, 3 incomplete run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from . import compliance as compliance_step
from . import scope as scopes
from .compliance import Compliance, ComplianceError
from .diff import ReportError, load_report
from .engine import EXIT_CLEAN, EXIT_INCOMPLETE, EXIT_USAGE, RunResult, run
from .fixplan import plan, unchecked
from .model import Severity
from .registry import CheckLoadError, Registry, default_registry
from .reporting import FORMATS
from .reporting.document import build_document
from .reporting.output import write_reports
from .reporting.progress import Progress
from .selection import SELECTOR_HELP, Selection
from .sources.local import InputError, collect_tree
from .targets import ScanOptions, TargetError, scan_target, select_probes, with_addresses
from .textsafe import SafeWriter
from .verdict import exit_code


class UsageError(Exception):
    pass


def _add_report_options(g, *, formats: str = "(default: terminal, html and json)", output: str = " (default: reports/)",
                        fail_on: str = "a failed finding is at or above this severity",
                        show_passed: bool = True) -> None:
    """--format, -o and --fail-on (and --show-passed) of every command that writes reports."""
    g.add_argument("--format", "-f", dest="formats", action="append", choices=FORMATS,
                   help=f"output format, repeatable {formats}")
    g.add_argument("-o", "--output", dest="output", metavar="PATH",
                   help=f"a file for one format, a folder for several, - for standard output{output}")
    g.add_argument("--fail-on", default="low", metavar="SEVERITY", help=f"exit 1 when {fail_on} (default: low)")
    if show_passed:
        g.add_argument("--show-passed", action="store_true", help="list passed results on the terminal too")
        if "--quiet" not in g._option_string_actions:  # `federation peers` has its own (its progress bar)
            g.add_argument("--quiet", "-q", action="store_true",
                           help="for CI: no progress, and the terminal report is the verdict and one line per "
                                "failing check")


def _add_run_options(p: argparse.ArgumentParser, shard: bool = False) -> None:
    _add_report_options(p.add_argument_group("reports and exit code"),
                        fail_on="a failed finding is at or above this severity: "
                                "info, low, medium, high, critical, or never")
    s = p.add_argument_group("which checks")
    s.add_argument("--select", action="append", metavar="SELECTOR", help=f"run only these checks: {SELECTOR_HELP}")
    s.add_argument("--exclude", action="append", metavar="SELECTOR", help="skip these checks (same forms)")
    _add_check_sources(s)
    compliance_step.add_options(p, shard=shard)


def _add_network_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("network")
    g.add_argument("--web-domain", metavar="DOMAIN", help="WEB_DOMAIN, when it differs from the domain")
    g.add_argument("--address", action="append", default=[], metavar="IP",
                   help="reach the web domain at this address instead of resolving it (repeatable)")
    g.add_argument("--resolve", action="append", default=[], metavar="NAME=IP",
                   help="reach NAME at IP, like curl --resolve (the media or mail host)")
    g.add_argument("--resolver", metavar="IP[:PORT]", help="ask this DNS server (default: the system's)")
    g.add_argument("--allow-private", action="append", default=[], metavar="NET",
                   help="also let connections go to this private address or network (repeatable). The "
                        "scanned site's addresses, --resolve and the hosts named with --media-host, --s3-endpoint "
                        "and --smtp-host are allowed anyway; no other private, loopback, link-local or metadata "
                        "address is, whatever DNS, a redirect or a document says")
    g.add_argument("--ca-bundle", metavar="FILE", help="trust these CA certificates (internal CAs, the lab)")
    g.add_argument("--ports", metavar="LIST", help="more ports to scan, e.g. 8080,9100")
    g.add_argument("--smtp-host", action="append", default=[], metavar="HOST", help="SMTP relay to probe")
    g.add_argument("--mail-domain", action="append", default=[], metavar="DOMAIN",
                   help="a sending domain to check (SMTP_FROM_ADDRESS's); LOCAL_DOMAIN always is")
    g.add_argument("--dkim-selector", action="append", default=[], metavar="NAME", help="DKIM selector to look up")
    g.add_argument("--media-host", metavar="HOST", help="S3_ALIAS_HOST, the media host in front of the bucket")
    g.add_argument("--s3-endpoint", metavar="URL", help="the bucket's S3 endpoint")
    g.add_argument("--s3-bucket", metavar="NAME")
    g.add_argument("--s3-region", default="us-east-1", metavar="REGION")
    g.add_argument("--s3-permission", default="public-read", metavar="ACL", help="S3_PERMISSION as configured")
    g.add_argument("--s3-public-object", metavar="KEY", help="a key that exists, to prove media are readable")
    g.add_argument("--s3-signed", action="store_true",
                   help="also sign S3 requests with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY from the environment "
                        "(reads the bucket's ACL, policy and Block Public Access)")
    g.add_argument("--tls-profile", choices=["intermediate", "modern"], default="intermediate",
                   help="Mozilla's TLS profile to hold endpoints to (default: intermediate)")
    g.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS", help="per connection and answer")
    g.add_argument("--probe", action="append", metavar="NAME", help="run only these probes (see checks list)")


def _scan_options(args: argparse.Namespace) -> ScanOptions:
    return ScanOptions(
        domain=args.domain, web_domain=args.web_domain, addresses=args.address, resolve=args.resolve,
        resolver=args.resolver, ca_bundle=args.ca_bundle, ports=args.ports, smtp_hosts=args.smtp_host,
        mail_domains=args.mail_domain, dkim_selectors=args.dkim_selector, media_host=args.media_host,
        s3_endpoint=args.s3_endpoint, s3_bucket=args.s3_bucket, s3_region=args.s3_region,
        s3_permission=args.s3_permission, s3_public_object=args.s3_public_object, s3_signed=args.s3_signed,
        tls_profile=args.tls_profile, timeout=args.timeout, probes=args.probe or (),
        allow_private=args.allow_private,
    )


def _add_check_sources(g) -> None:
    g.add_argument("--checks-dir", action="append", type=Path, default=[], metavar="DIR",
                   help="also load checks from the .py files in DIR")
    g.add_argument("--no-plugins", action="store_true", help="do not load checks from installed plugins")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mastoaudit",
        description="Security hardening checker for Mastodon deployments.",
        epilog="Exit codes: 0 clean, 1 failures at or above --fail-on, 2 usage or input error, 3 incomplete run.",
    )
    parser.add_argument("--version", action="version", version=f"mastoaudit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    lint = sub.add_parser("lint", help="audit configuration files under PATHs (no live host)")
    lint.add_argument("paths", nargs="+", metavar="PATH", help="a config tree or file; each PATH is one target")
    _add_run_options(lint, shard=True)

    audit = sub.add_parser("audit", help="audit live hosts over SSH (read-only)")
    audit.add_argument("-i", "--inventory", required=True, type=Path, metavar="INVENTORY",
                       help="YAML inventory (see inventories/) or a pyinfra inventory .py file")
    audit.add_argument("--limit", action="append", metavar="HOST", help="audit only these inventory hosts")
    audit.add_argument("--trust-on-first-use", action="store_true",
                       help="accept and remember host keys not yet in known_hosts (default: refuse them)")
    audit.add_argument("--command-log", type=Path, metavar="FILE",
                       help="append every command sent to the hosts to FILE (JSON lines)")
    audit.add_argument("--no-network", action="store_true",
                       help="skip the network probes (TLS, headers, ports, mail DNS, SMTP, S3) of the web hosts")
    _add_run_options(audit, shard=True)

    scan = sub.add_parser("scan", help="what an outsider sees of an instance: TLS, headers, exposure, ports, "
                                       "mail DNS, SMTP, media bucket (network only, no credentials)")
    scan.add_argument("domain", metavar="DOMAIN", help="the instance's LOCAL_DOMAIN")
    _add_network_options(scan)
    _add_run_options(scan)

    diff = sub.add_parser("diff", help="what changed between two JSON reports (compliance runs)")
    diff.add_argument("before", type=Path, metavar="OLD.json")
    diff.add_argument("after", type=Path, metavar="NEW.json")
    _add_report_options(diff, formats="(default: terminal); sarif is NEW with baselineState", output="",
                        fail_on="a NEW failed finding (or one that got worse) is at or above this severity",
                        show_passed=False)

    merge = sub.add_parser("merge", help="join the reports of a split run (--shard I/N) into one report")
    merge.add_argument("reports", nargs="+", type=Path, metavar="REPORT.json", help="the shards' JSON reports")
    merge.add_argument("--shards", type=int, metavar="N",
                       help="how many shards the run was split in (default: as the reports say)")
    _add_report_options(merge.add_argument_group("reports and exit code (as if the shards were one run)"))
    mc = merge.add_argument_group("compliance over time")
    mc.add_argument("--baseline", type=Path, metavar="PREVIOUS.json",
                    help="compare the merged run with an earlier report (the shards' own baselines are replaced)")
    mc.add_argument("--history", type=Path, metavar="DIR", help="keep the merged run in DIR and draw the trend")
    mc.add_argument("--history-keep", type=int, default=compliance_step.DEFAULT_KEEP, metavar="N")

    fix = sub.add_parser("fix", help="a remediation plan for the failed findings (changes nothing)")
    fix.add_argument("--plan", action="store_true", required=True,
                     help="write the plan (changes nothing): text, or a pyinfra deploy you read and then run")
    fix.add_argument("--report", type=Path, metavar="REPORT.json", help="plan from an existing JSON report")
    fix.add_argument("-o", "--output", metavar="PATH",
                     help="write the plan to PATH (a .py PATH gets the pyinfra deploy) instead of standard output")
    fix.add_argument("--format", "-f", dest="plan_format", choices=["terminal", "pyinfra"],
                     help="terminal: the text plan; pyinfra: a deploy for `pyinfra INVENTORY deploy.py` "
                          "(default: pyinfra when -o ends in .py, else terminal)")
    fix.add_argument("--waivers", action="append", type=Path, default=[], metavar="FILE",
                     help="accepted risks: waived findings are listed, never fixed (repeatable)")
    fix.add_argument("paths", nargs="*", metavar="PATH", help="or lint these config trees and plan from that")
    fix.add_argument("--checks-dir", action="append", type=Path, default=[], metavar="DIR")
    fix.add_argument("--no-plugins", action="store_true")

    from .federation.cli import add_parser as add_federation_parser
    add_federation_parser(sub, _add_run_options)

    checks = sub.add_parser("checks", help="the check catalogue")
    checks_sub = checks.add_subparsers(dest="checks_command", metavar="list|show|threats")
    lst = checks_sub.add_parser("list", help="list the checks")
    lst.add_argument("--format", choices=["terminal", "json"], default="terminal")
    lst.add_argument("--select", action="append", metavar="SELECTOR", help=SELECTOR_HELP)
    lst.add_argument("--exclude", action="append", metavar="SELECTOR")
    _add_check_sources(lst)
    show = checks_sub.add_parser("show", help="everything about one check")
    show.add_argument("check_id", metavar="ID")
    show.add_argument("--format", choices=["terminal", "json"], default="terminal")
    _add_check_sources(show)
    thr = checks_sub.add_parser("threats", help="the threat catalogue and which checks verify each threat")
    thr.add_argument("--format", choices=["terminal", "json"], default="terminal")
    _add_check_sources(thr)
    return parser


def _registry(args: argparse.Namespace) -> Registry:
    return default_registry(args.checks_dir, plugins=not args.no_plugins)


def _fail_on(text: str) -> Severity | None:
    if text.lower() == "never":
        return None
    try:
        return Severity.parse(text)
    except ValueError as exc:
        raise UsageError(f"--fail-on: {exc}") from None


def _finish(args: argparse.Namespace, result: RunResult, stem: str) -> int:
    prepared: Compliance = args.compliance
    return _report(args, prepared.finish(build_document(result)), stem, prepared)


def _report(args: argparse.Namespace, doc: dict, stem: str, prepared: Compliance | None) -> int:
    fail_on = _fail_on(args.fail_on)
    quiet = getattr(args, "quiet", False)
    try:
        written = write_reports(doc, args.formats, args.output, stem, show_passed=args.show_passed, quiet=quiet)
    except (ValueError, OSError) as exc:
        raise UsageError(f"cannot write reports: {exc}") from None
    for path in written if not quiet else ():
        print(f"wrote {path}", file=sys.stderr)
    kept = prepared.record(doc) if prepared else None
    if kept and not quiet:
        print(f"kept {kept} (history of {doc['run']['scope']['description']})", file=sys.stderr)
    return exit_code(doc, fail_on)


def _prepare(args: argparse.Namespace, command: str, targets: list[str], discovered=(), shard=None,
             shard_info: dict | None = None) -> None:
    """Scope, waivers, baseline and history: read and checked before the run does any work."""
    scope = scopes.make_scope(command, targets, args.select, args.exclude, [str(d) for d in args.checks_dir],
                              shard=str(shard) if shard else None)
    args.compliance = Compliance.prepare(args, scope, list(discovered), shard, shard_info)


def cmd_lint(args: argparse.Namespace) -> int:
    from .shard import describe
    from .waivers import discover_for_lint

    _fail_on(args.fail_on)  # a bad threshold is a usage error before any work
    selection = _selection(args)
    shard = compliance_step.parse_shard(args.shard)
    names = list(dict.fromkeys(str(Path(raw)) for raw in args.paths))
    paths = shard.select(names) if shard else names
    _prepare(args, "lint", scopes.lint_targets(args.paths), discover_for_lint(paths), shard,
             describe(shard, "path", paths, names) if shard else None)
    registry = _registry(args)
    targets = []
    for raw in paths:
        try:
            targets.append(collect_tree(Path(raw)))
        except InputError as exc:
            raise UsageError(str(exc)) from None
    result = run("lint", registry, selection, targets, args.began)
    return _finish(args, result, "mastoaudit-lint")


def _selection(args: argparse.Namespace) -> Selection:
    try:
        return Selection.parse(args.select, args.exclude)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def cmd_checks(args: argparse.Namespace) -> int:
    registry = _registry(args)
    sub = args.checks_command or "list"
    fmt = getattr(args, "format", "terminal")
    if sub == "list":
        selection = _selection(args) if hasattr(args, "select") else Selection()
        metas = [c.meta for c in registry if selection.wants(c.meta)]
        if fmt == "json":
            print(json.dumps([m.to_dict() for m in metas], indent=2))
        else:
            for m in metas:
                print(f"{m.id:40} {m.severity.value:8} {m.component:14} {m.title}")
            print(f"\n{len(metas)} checks", file=sys.stderr)
        return EXIT_CLEAN
    if sub == "show":
        found = registry.get(args.check_id)
        if found is None:
            raise UsageError(f"no check with id {args.check_id!r} (see `mastoaudit checks list`)")
        meta = found.meta
        if fmt == "json":
            print(json.dumps(meta.to_dict(), indent=2))
            return EXIT_CLEAN
        catalogue = registry.catalogue
        print(f"{meta.id}: {meta.title}")
        print(f"  component: {meta.component}   severity: {meta.severity.value}   "
              f"tags: {', '.join(meta.tags) or '-'}   origin: {found.origin}")
        print(f"  needs: {', '.join(meta.needs) or '-'}")
        print("  threats:")
        for tid in meta.threats:
            print(f"    {tid}  {catalogue.threats[tid].title}")
        print(f"\n  Why: {meta.rationale}\n\n  Fix: {meta.remediation.text}")
        if meta.remediation.snippet:
            print("\n" + "\n".join("    " + line for line in meta.remediation.snippet.splitlines()))
        if meta.references:
            print("\n  References:\n" + "\n".join(f"    {r}" for r in meta.references))
        return EXIT_CLEAN
    rows = registry.catalogue.coverage([c.meta for c in registry])
    if fmt == "json":
        print(json.dumps(rows, indent=2))
        return EXIT_CLEAN
    for row in rows:
        print(f"{row['id']:28} {row['title']}  [{row['source']}]")
        print(f"    checks: {', '.join(row['checks']) or '(none: left to people)'}")
        for item in row["people"]:
            print(f"    people: {item}")
    return EXIT_CLEAN


def cmd_audit(args: argparse.Namespace) -> int:
    from dataclasses import replace
    from time import perf_counter

    from .inventory import InventoryError, load_inventory
    from .shard import describe
    from .sources.ssh import SshCollection
    from .waivers import discover_for_inventory

    _fail_on(args.fail_on)
    selection = _selection(args)
    shard = compliance_step.parse_shard(args.shard)
    try:
        inventory = load_inventory(args.inventory)
    except InventoryError as exc:
        raise UsageError(str(exc)) from None
    if args.trust_on_first_use:
        inventory.hosts = [replace(h, ssh=replace(h.ssh, trust_on_first_use=True)) for h in inventory.hosts]
    chosen = inventory.hosts  # --limit, then --shard: the inventory itself stays whole (jump hosts)
    if args.limit:
        unknown = [name for name in args.limit if inventory.host(name) is None]
        if unknown:
            raise UsageError(f"--limit: no host named {', '.join(unknown)} in {args.inventory}")
        chosen = [h for h in chosen if h.name in args.limit]
    mine = shard.select(chosen, name=lambda h: h.name) if shard else chosen
    beside = discover_for_inventory(args.inventory)
    _prepare(args, "audit", scopes.audit_targets(str(args.inventory), args.limit),
             [(beside, None)] if beside else [], shard,
             describe(shard, "host", [h.name for h in mine], [h.name for h in chosen]) if shard else None)
    if not mine:  # an empty shard: a complete run of nothing, so that the merge finds every part
        return _finish(args, run("audit", _registry(args), selection, [], args.began), "mastoaudit-audit")
    # The SSH worker starts first: the network half and the checks load while it imports pyinfra
    # and connects (what the network half waits for, .env.production, comes from it: every tenth of
    # a second it starts earlier is one the relay's and the media host's TLS scans start earlier;
    # the TLS worker, started by the network half a moment later, gives the SSH worker's imports a
    # head start on the two cores). The network half starts as soon as the web host's
    # .env.production is in (sources/overlap.py).
    clock = args.began[1]
    with Progress.for_stream(sys.stderr, quiet=args.quiet) as progress:
        ssh_started = perf_counter()
        collection = SshCollection(inventory, str(args.command_log) if args.command_log else None,
                                   hosts=mine).start()
        try:
            network = _network_half(args, inventory, chosen, mine, clock, progress)
        except UsageError:
            collection.stop()  # nothing of this run will be used
            raise
        try:
            registry = _registry(args)
        except CheckLoadError:
            collection.stop()  # a usage error: nothing the worker reads will be used
            raise
        part = f" (shard {shard} of {len(chosen)})" if shard else ""
        progress.stage(f"auditing {len(mine)} host{'s' if len(mine) != 1 else ''}{part} of {inventory.web_domain} "
                       "over SSH", total=len(mine))

        def on_host(host: str, event: str) -> None:
            if event.startswith("connected"):
                progress.update(f"{host} connected")
            elif event.startswith("failed"):
                progress.note(f"  {host}: {event}")
                progress.advance(f"{host} failed")
            else:
                progress.advance(f"{host} {event}")
            if network is not None:
                network.on_host(host, event)

        targets = collection.finish(on_host, network.on_result if network is not None else None)
        ssh_ended = perf_counter()
        network_timings = network.finish(targets) if network is not None else None
    checks_started = perf_counter()
    result = run("audit", registry, selection, targets, args.began)
    result.extra["timings"] = {
        "ssh": {"start_s": round(ssh_started - clock, 3), "end_s": round(ssh_ended - clock, 3)},
        **({"network": network_timings} if network_timings else {}),
        "checks": {"start_s": round(checks_started - clock, 3), "end_s": round(perf_counter() - clock, 3)},
    }
    return _finish(args, result, "mastoaudit-audit")


def _network_half(args: argparse.Namespace, inventory, chosen: list, mine: list, clock: float, progress: Progress):
    """The network half of the audit (sources/overlap.py), or None (--no-network, no network section,
    no web host in this run). The target comes from mastoaudit/targets.py."""
    from .sources.overlap import NetworkHalf
    from .targets import audit_network_base, with_env

    if args.no_network or not inventory.network.enabled:
        return None
    try:
        found = audit_network_base(inventory, mine, chosen)
    except TargetError as exc:
        raise UsageError(str(exc)) from None
    if found is None:
        return None
    home, base = found
    return NetworkHalf(inventory, mine, home, lambda env: with_env(base, env), clock, progress)


def cmd_scan(args: argparse.Namespace) -> int:
    from .sources.network import collect_network

    _fail_on(args.fail_on)
    selection = _selection(args)
    options = _scan_options(args)
    try:
        target = scan_target(options)
        probes = select_probes(options.probes)
    except TargetError as exc:
        raise UsageError(str(exc)) from None
    _prepare(args, "scan", [target.name])
    if any(p.name == "tls" for p in probes):
        from .net import workers

        workers.warm()  # the TLS worker imports sslyze while the checks load and the name resolves
    registry = _registry(args)
    try:
        target = with_addresses(target)
    except TargetError as exc:
        raise UsageError(str(exc)) from None
    with Progress.for_stream(sys.stderr, quiet=args.quiet) as progress:
        progress.stage(f"probing {target.web_domain} from the network", total=len(probes))
        facts = collect_network(target, probes=probes, on_done=lambda name: progress.advance(f"{name} done"))
    result = run("scan", registry, selection, [facts], args.began)
    return _finish(args, result, "mastoaudit-scan")


def cmd_diff(args: argparse.Namespace) -> int:
    from .diff import compare_reports, render
    from .diff import exit_code as diff_exit_code

    fail_on = _fail_on(args.fail_on)
    try:
        before, after = load_report(args.before), load_report(args.after)
    except ReportError as exc:
        raise UsageError(str(exc)) from None
    annotated, diff = compare_reports(before, after, str(args.before), str(args.after))
    formats = args.formats or ["terminal"]
    if args.output is None and formats != ["terminal"]:
        args.output = "-" if len(formats) == 1 else None
    try:
        written = write_reports(diff, formats, args.output, "mastoaudit-diff",
                                render=lambda fmt, doc, colour: render(fmt, doc, annotated, colour))
    except (ValueError, OSError) as exc:
        raise UsageError(f"cannot write the diff: {exc}") from None
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return diff_exit_code(annotated, fail_on)


def cmd_merge(args: argparse.Namespace) -> int:
    from .merge import MergeError, merge_documents

    _fail_on(args.fail_on)
    reports = []
    for path in args.reports:
        try:
            reports.append((str(path), load_report(path)))
        except ReportError as exc:
            raise UsageError(str(exc)) from None
    try:
        doc = merge_documents(reports)
    except MergeError as exc:
        raise UsageError(str(exc)) from None
    if args.shards is not None and args.shards != doc["run"]["merged"]["count"]:
        raise UsageError(f"--shards {args.shards}: the reports are shards of a run split in "
                         f"{doc['run']['merged']['count']}")
    prepared = compliance_step.finish_merged(doc, args)
    return _report(args, doc, f"mastoaudit-{doc['run']['command']}", prepared)


def cmd_fix(args: argparse.Namespace) -> int:
    if args.report:
        try:
            document = load_report(args.report)
        except ReportError as exc:
            raise UsageError(str(exc)) from None
    elif args.paths:
        registry = _registry(args)
        try:
            targets = [collect_tree(Path(p)) for p in args.paths]
        except InputError as exc:
            raise UsageError(str(exc)) from None
        document = build_document(run("lint", registry, Selection(), targets))
    else:
        raise UsageError("fix --plan needs --report REPORT.json or config PATHs")
    from .remediation.cli import write_plan

    code = write_plan(args, document, plan, UsageError)
    # A plan from a run that could not check everything is not the whole plan: exit 3, like the run.
    return EXIT_INCOMPLETE if code == EXIT_CLEAN and unchecked(document) else code


def cmd_federation(args: argparse.Namespace) -> int:
    from .federation.cli import FederationUsage, print_text, run_impact, run_peers
    from .federation.database import describe_dsn_loose

    if args.federation_command not in ("impact", "peers"):
        raise UsageError("federation: give a subcommand (peers or impact)")
    _fail_on(args.fail_on)
    selection = _selection(args)
    try:
        if args.federation_command == "impact":
            # The scope names the database without its password (the DSN may carry one).
            where = str(args.inventory) if args.inventory else describe_dsn_loose(args.db or "")
            _prepare(args, "federation", [where, *args.domains])
            result, text = run_impact(args, _registry(args), selection)
        else:
            shard = compliance_step.parse_shard(args.shard)

            def prepare(targets: list[str], shard_info: dict | None) -> None:
                _prepare(args, "federation peers", targets, shard=shard, shard_info=shard_info)

            result, text = run_peers(args, _registry(args), selection, shard, prepare)
    except FederationUsage as exc:
        raise UsageError(str(exc)) from None
    if result is None:  # --list-only
        print_text(text)
        return EXIT_CLEAN
    if not args.output or args.output != "-":
        print_text(text)
    return _finish(args, result, "mastoaudit-federation")


COMMANDS = {"lint": cmd_lint, "audit": cmd_audit, "scan": cmd_scan, "checks": cmd_checks, "diff": cmd_diff,
            "merge": cmd_merge, "fix": cmd_fix, "federation": cmd_federation}


def main(argv: list[str] | None = None) -> int:
    from datetime import UTC, datetime
    from time import perf_counter

    began = (datetime.now(UTC), perf_counter())  # reports time the whole command, collection included
    # Everything printed goes through the one sanitizer: a hostile file name or value cannot move
    # the cursor, recolour, or rewrite a line of what the admin reads (mastoaudit.textsafe).
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = SafeWriter(out), SafeWriter(err)
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        args.began = began
        if not args.command:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        try:
            return COMMANDS[args.command](args)
        except (UsageError, CheckLoadError, ComplianceError) as exc:
            print(f"mastoaudit: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt:
            print("mastoaudit: interrupted", file=sys.stderr)
            return 130
    finally:
        sys.stdout, sys.stderr = out, err

