"""Run probes concurrently, each within a time limit, and put what they learn into facts.

A probe is a function `run(target, ctx) -> Iterable[ProbeFact | ProbeProblem]`, registered with
the `@probe` decorator in a module of `mastoaudit.probes`. Probes never raise: an exception is
turned into an error problem naming the probe; a probe still running at its deadline is reported
and left behind. It does not linger: each probe gets a view of the scan's one outbound client
(`ProbeContext.http`) bounded by the probe's deadline (and the run's), so every request it makes
is cancelled and every socket it opened is shut down by then.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from queue import Empty, Queue
from typing import Any

from ..facts import FactSet
from ..kinds import UnknownKind
from ..model import Location, Status
from .dns import Resolver
from .http import HttpClient
from .target import ScanTarget


@dataclass(frozen=True)
class ProbeFact:
    kind: str
    fact: Any


@dataclass(frozen=True)
class ProbeProblem:
    kind: str  # a fact kind or "network"
    message: str
    where: str | None = None  # a URL, host:port or DNS name
    status: Status = Status.ERROR


@dataclass
class ProbeContext:
    """What probes share within one scan: one resolver and the outbound client, the only way out
    (HTTP requests, raw TCP connections, the verdict on addresses handed to sslyze)."""

    resolver: Resolver
    http: HttpClient


ProbeFn = Callable[[ScanTarget, ProbeContext], Iterable[ProbeFact | ProbeProblem]]


@dataclass(frozen=True)
class Probe:
    name: str
    run: ProbeFn
    timeout: float  # seconds for the whole probe
    description: str


_PROBES: dict[str, Probe] = {}


def probe(name: str, *, timeout: float = 20.0, description: str = "") -> Callable[[ProbeFn], ProbeFn]:
    def register(fn: ProbeFn) -> ProbeFn:
        _PROBES[name] = Probe(name, fn, timeout, description or (fn.__doc__ or "").strip().split("\n")[0])
        return fn

    return register


def all_probes() -> list[Probe]:
    import mastoaudit.probes as package

    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"mastoaudit.probes.{info.name}")
    return sorted(_PROBES.values(), key=lambda p: p.name)


def run_probes(target: ScanTarget, facts: FactSet, probes: list[Probe] | None = None,
               max_workers: int = 16, run_timeout: float | None = None,
               on_done: Callable[[str], None] | None = None) -> dict[str, float]:
    """Run the probes at once (bounded by max_workers); returns each probe's duration. With
    `run_timeout`, no probe runs past that many seconds from now either. `on_done(name)` is
    called as each probe ends (a progress display)."""
    probes = probes if probes is not None else all_probes()
    resolver = Resolver(target)
    client = HttpClient(target, resolver, deadline=None if run_timeout is None else time.monotonic() + run_timeout)
    try:
        return _run(target, facts, probes, max_workers, resolver, client, on_done)
    finally:
        client.close()


def _run(target: ScanTarget, facts: FactSet, probes: list[Probe], max_workers: int, resolver: Resolver,
         client: HttpClient, on_done: Callable[[str], None] | None = None) -> dict[str, float]:
    results: Queue = Queue()
    pending = list(probes)
    running: dict[str, tuple[float, Probe, float]] = {}  # name -> (started, probe, seconds it may take)
    durations: dict[str, float] = {}

    def work(p: Probe, ctx: ProbeContext) -> None:
        started = time.monotonic()
        try:
            items = list(p.run(target, ctx))
        except Exception as exc:  # a broken probe is an error finding, never a crash of the scan
            where = traceback.extract_tb(exc.__traceback__)[-1]
            items = [ProbeProblem("network", f"probe {p.name} failed: {type(exc).__name__}: {exc} "
                                  f"({where.filename.rsplit('/', 1)[-1]}:{where.lineno})")]
        results.put((p.name, items, time.monotonic() - started))

    def start_more() -> None:
        while pending and len(running) < max_workers:
            p = pending.pop(0)
            started = time.monotonic()
            limit = p.timeout if client.deadline is None else max(0.0, min(p.timeout, client.deadline - started))
            running[p.name] = (started, p, limit)
            ctx = ProbeContext(resolver, client.bounded(started + limit))
            threading.Thread(target=work, args=(p, ctx), name=f"probe-{p.name}", daemon=True).start()

    start_more()
    while running:
        now = time.monotonic()
        deadline = min(start + limit for start, _, limit in running.values())
        try:
            name, items, took = results.get(timeout=max(0.01, deadline - now))
        except Empty:
            now = time.monotonic()
            for name, (start, _, limit) in list(running.items()):
                if now - start >= limit:
                    running.pop(name)
                    durations[name] = limit
                    facts.problem("network", f"probe {name} did not finish within {limit:.0f} s",
                                  Location(f"{target.name}:{name}"))
                    if on_done is not None:
                        on_done(name)
            start_more()
            continue
        if name not in running:
            continue  # finished after being given up on
        running.pop(name)
        durations[name] = round(took, 3)
        if on_done is not None:
            on_done(name)
        for item in items:
            if isinstance(item, ProbeFact):
                try:
                    facts.add(item.kind, item.fact)
                except (UnknownKind, TypeError) as exc:  # a probe's bug: reported, the scan goes on
                    facts.problem("network", f"probe {name}: {exc}", Location(f"{target.name}:{name}"))
            else:
                facts.problem(item.kind, item.message, Location(item.where or f"{target.name}:{name}"), item.status)
        start_more()
    return durations
