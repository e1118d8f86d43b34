"""Compliance over time, as one step between a run and its reports: the run's scope, its shard,
the waivers, the baseline and the history, applied to the run's document.

    prepared = Compliance.prepare(...)    # before the run: every input read and checked (exit 2)
    doc = prepared.finish(build_document(result))
    write_reports(doc, ...)
    prepared.record(doc)                  # keep the run in --history
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from . import baseline as baselines
from . import waivers as waiver_rules
from .diff import ReportError, load_report
from .history import DEFAULT_KEEP, History, HistoryError
from .shard import Shard
from .verdict import finding_order, summarize

TODAY_ENV = "MASTOAUDIT_TODAY"  # YYYY-MM-DD: the date waivers are judged on (tests, "what expires next week")


class ComplianceError(Exception):
    """A waivers file, baseline, history folder or shard that cannot be used (exit code 2)."""


def add_options(parser: argparse.ArgumentParser, shard: bool = False) -> None:
    g = parser.add_argument_group("compliance over time")
    g.add_argument("--waivers", action="append", type=Path, default=[], metavar="FILE",
                   help=f"accepted risks (YAML; repeatable). Also read: {waiver_rules.WAIVERS_FILE} at a lint "
                        "PATH's root or beside the inventory")
    g.add_argument("--baseline", type=Path, metavar="PREVIOUS.json",
                   help="an earlier JSON report of the same scope: only new failures count for --fail-on")
    g.add_argument("--history", type=Path, metavar="DIR",
                   help="keep this run's JSON report in DIR (per scope) and draw the trend in the HTML report")
    g.add_argument("--history-keep", type=int, default=DEFAULT_KEEP, metavar="N",
                   help=f"runs kept per scope in --history (default: {DEFAULT_KEEP})")
    if shard:
        g.add_argument("--shard", metavar="I/N",
                       help="audit only the I-th of N parts of the hosts (or PATHs); join the parts with "
                            "`mastoaudit merge`")


def parse_shard(text: str | None) -> Shard | None:
    if not text:
        return None
    try:
        return Shard.parse(text)
    except ValueError as exc:
        raise ComplianceError(str(exc)) from None


def today() -> date:
    fixed = os.environ.get(TODAY_ENV)
    if fixed:
        try:
            return date.fromisoformat(fixed)
        except ValueError:
            raise ComplianceError(f"{TODAY_ENV}={fixed!r}: expected YYYY-MM-DD") from None
    return date.today()


@dataclass
class Compliance:
    scope: dict
    shard: Shard | None = None
    shard_info: dict | None = None
    waivers: list[waiver_rules.Waiver] = field(default_factory=list)
    baseline: tuple[str, dict] | None = None
    history: History | None = None
    today: date = field(default_factory=date.today)

    @classmethod
    def prepare(cls, args: argparse.Namespace, scope: dict, discovered: list[tuple[Path, str | None]] = (),
                shard: Shard | None = None, shard_info: dict | None = None, clock: date | None = None) -> Compliance:
        """Read every input now, before any work: a bad waivers file or baseline is exit 2."""
        loaded: list[waiver_rules.Waiver] = []
        try:
            for path, root in [*discovered, *((p, None) for p in getattr(args, "waivers", []) or [])]:
                loaded.extend(waiver_rules.load_waivers(path, root))
        except waiver_rules.WaiverError as exc:
            raise ComplianceError(str(exc)) from None
        previous = None
        if getattr(args, "baseline", None):
            try:
                previous = (str(args.baseline), load_report(args.baseline))
            except ReportError as exc:
                raise ComplianceError(f"--baseline {exc}") from None
        history = None
        if getattr(args, "history", None):
            if args.history.exists() and not args.history.is_dir():
                raise ComplianceError(f"--history {args.history}: not a directory")
            try:
                history = History(args.history, scope, args.history_keep)
            except HistoryError as exc:
                raise ComplianceError(str(exc)) from None
        return cls(scope=scope, shard=shard, shard_info=shard_info, waivers=loaded, baseline=previous,
                   history=history, today=clock or today())

    def finish(self, doc: dict) -> dict:
        """The run's document with scope, shard, waivers, baseline and trend applied."""
        doc["run"]["scope"] = self.scope
        if self.shard_info is not None:
            doc["run"]["shard"] = self.shard_info
        if self.waivers:
            waiver_rules.apply(doc, self.waivers, self.today)
            waiver_rules.add_findings(doc)
        if self.baseline is not None:
            file, previous = self.baseline
            baselines.annotate(doc, previous, file, self.shard.owns if self.shard else None)
        doc["findings"].sort(key=finding_order)
        doc["run"]["complete"] = not any(f["status"] == "error" for f in doc["findings"])
        doc["summary"] = summarize(doc["findings"], doc["summary"]["checks_run"])
        if self.history is not None:
            self.history.attach(doc)
        return doc

    def record(self, doc: dict) -> Path | None:
        if self.history is None:
            return None
        try:
            return self.history.save(doc)
        except (HistoryError, OSError) as exc:
            raise ComplianceError(f"--history: cannot keep the run: {exc}") from None


def finish_merged(doc: dict, args: argparse.Namespace) -> Compliance:
    """A merged report's own --baseline and --history (its scope is the unsharded run's)."""
    prepared = Compliance.prepare(args, doc["run"]["scope"])
    if prepared.baseline is not None:
        file, previous = prepared.baseline
        baselines.annotate(doc, previous, file)
        doc["findings"].sort(key=finding_order)
        doc["summary"] = summarize(doc["findings"], doc["summary"]["checks_run"])
    if prepared.history is not None:
        prepared.history.attach(doc)
    return prepared
