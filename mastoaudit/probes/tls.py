"""TLS of every endpoint an outsider reaches, scanned with sslyze's Python API.

The probe in three parts, each a module of its own:
- what to scan (`tls_endpoints`): the web domain on 443 (and the local domain, the media host and
  any other web host the target names), the SMTP relays (STARTTLS on 25 and 587, implicit TLS on
  465; the relays come from `mastoaudit.net.relays`, the one place that says which relay to judge)
  and PostgreSQL on 5432 on the target's own addresses;
- here: a quick TCP connect decides which of them are tried, a plain EHLO (SMTP) or SSLRequest
  (PostgreSQL) tells "no TLS offered" apart from "not this protocol";
- how (`tls_sslyze`): each TLS endpoint is scanned by sslyze in a process of its own, forked from
  the TLS worker (net/workers.py), so the scans run side by side on every core and come back as
  facts; without the worker (MASTOAUDIT_WORKERS=0) they all go into one sslyze Scanner here. An
  audit starts the web domain's scans before anything is read (`prefetch`); the probe takes them.

Facts (mastoaudit/facts/tls.py): `tls_endpoint` (a TlsEndpoint per host:port, TLS offered or not)
and `tls_scan` (a TlsScanSummary: what was tried and did not answer). sslyze is imported inside the
adapter's functions only.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import BinaryIO

from ..facts.tls import POSTGRES_STARTTLS, SMTP_STARTTLS, SMTPS, TlsEndpoint, TlsScanSummary
from ..model import Status
from ..net import workers
from ..net.relays import smtp_relays
from ..net.runner import ProbeContext, ProbeFact, ProbeProblem, probe
from ..net.sockets import TcpGate
from ..net.target import ScanTarget
from ..net.text import excerpt
from .tls_endpoints import Candidate, postgres_candidates, smtp_candidates, web_candidates, web_domain_candidates
from .tls_sslyze import EHLO_NAME, PARTS, joined, load_profile, run_scanner, scan_endpoint, scan_request, splits
from .tls_sslyze import outcome as scan_outcome

BUDGET_S = 30.0  # the whole probe; the runner's limit is a little longer
MAX_REPLY_LINES = 64
MAX_LINE_BYTES = 1024


# --- small protocol exchanges (hostile input: bounded, never raising past their callers) ----------


class ExchangeError(Exception):
    """The peer's answer was not what the protocol says (the message holds an escaped excerpt)."""


def read_smtp_reply(stream: BinaryIO) -> tuple[int, list[str]]:
    """One SMTP reply (RFC 5321 4.2): lines "ddd-text" then "ddd text"; bounded in lines and bytes."""
    lines: list[str] = []
    code: int | None = None
    for _ in range(MAX_REPLY_LINES):
        raw = stream.readline(MAX_LINE_BYTES + 1)
        if not raw:
            raise ExchangeError(f"connection closed after {len(lines)} reply lines")
        if len(raw) > MAX_LINE_BYTES:
            raise ExchangeError(f"reply line longer than {MAX_LINE_BYTES} bytes: {excerpt(raw[:80])}")
        line = raw.rstrip(b"\r\n")
        if len(line) < 3 or not line[:3].isdigit() or (len(line) > 3 and line[3:4] not in (b" ", b"-")):
            raise ExchangeError(f"not an SMTP reply: {excerpt(raw)}")
        this = int(line[:3])
        if code is not None and this != code:
            raise ExchangeError(f"reply code changed within a reply: {excerpt(raw)}")
        code = this
        lines.append(line[4:].decode("ascii", "replace"))
        if line[3:4] != b"-":
            return code, lines
    raise ExchangeError(f"reply longer than {MAX_REPLY_LINES} lines")


def smtp_extensions(ehlo_lines: list[str]) -> tuple[str, ...]:
    """EHLO keywords (the first line is the greeting name)."""
    words = []
    for line in ehlo_lines[1:]:
        keyword = line.split(" ", 1)[0].upper()
        if keyword and keyword.replace("-", "").isalnum():
            words.append(keyword)
    return tuple(words)


def smtp_probe(gate: TcpGate, address: str, port: int, timeout: float) -> tuple[str, tuple[str, ...]]:
    """Greeting and EHLO in clear: (greeting excerpt, EHLO keywords)."""
    with gate.connect(address, port, timeout) as sock:
        sock.settimeout(timeout)
        stream = sock.makefile("rb")
        code, greeting = read_smtp_reply(stream)
        if code != 220:
            raise ExchangeError(f"greeting {code} {excerpt(' '.join(greeting))}")
        sock.sendall(f"EHLO {EHLO_NAME}\r\n".encode())
        code, ehlo = read_smtp_reply(stream)
        if code != 250:
            raise ExchangeError(f"EHLO answered {code} {excerpt(' '.join(ehlo))}")
        with contextlib.suppress(OSError):
            sock.sendall(b"QUIT\r\n")
        return excerpt(" ".join(greeting), 120), smtp_extensions(ehlo)


SSL_REQUEST = b"\x00\x00\x00\x08\x04\xd2\x16\x2f"  # length 8, code 80877103


def interpret_ssl_response(data: bytes) -> bool:
    """PostgreSQL's one-byte answer to SSLRequest: True for S, False for N; anything else raises."""
    if data == b"S":
        return True
    if data == b"N":
        return False
    if data[:1] == b"E":
        raise ExchangeError(f"PostgreSQL answered SSLRequest with an error: {excerpt(data)}")
    raise ExchangeError(f"not a PostgreSQL answer to SSLRequest: {excerpt(data)}")


def postgres_probe(gate: TcpGate, address: str, port: int, timeout: float) -> bool:
    with gate.connect(address, port, timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(SSL_REQUEST)
        data = sock.recv(1)
        if data in (b"S", b"N"):
            return interpret_ssl_response(data)
        with contextlib.suppress(OSError):  # read a little more to show what answered
            data += sock.recv(255)
        return interpret_ssl_response(data)


def tcp_open(gate: TcpGate, address: str, port: int, timeout: float) -> bool:
    try:
        with gate.connect(address, port, timeout):
            return True
    except OSError:
        return False


# --- the probe ------------------------------------------------------------------------------------------------


def _pre_check(gate: TcpGate, c: Candidate, timeout: float) -> TlsEndpoint | ProbeProblem | None:
    """None: go on with sslyze. A TlsEndpoint: the service answers but offers no TLS."""
    try:
        if c.kind == SMTP_STARTTLS:
            _, extensions = smtp_probe(gate, c.address, c.port, timeout)
            if "STARTTLS" not in extensions:
                return TlsEndpoint(c.host, c.port, c.address, c.kind, c.sni, c.where, tls_offered=False,
                                   refusal=f"EHLO lists {', '.join(extensions) or 'nothing'} (no STARTTLS)",
                                   smtp_extensions=extensions)
        elif c.kind == POSTGRES_STARTTLS and not postgres_probe(gate, c.address, c.port, timeout):
            return TlsEndpoint(c.host, c.port, c.address, c.kind, c.sni, c.where, tls_offered=False,
                               refusal="PostgreSQL answered N to SSLRequest (no TLS)")
    except ExchangeError as exc:
        what = "SMTP" if c.kind == SMTP_STARTTLS else "PostgreSQL"
        return ProbeProblem("tls_endpoint", f"{c.where} answers, but not as {what}: {exc}", c.where, Status.WARN)
    except OSError as exc:
        return ProbeProblem("tls_endpoint", f"{c.where}: {excerpt(str(exc) or type(exc).__name__)}", c.where)
    return None


def _scan_key(target: ScanTarget, c: Candidate) -> tuple:
    """What a scan's result depends on: the endpoint and the target's scan settings."""
    return (c, target.ca_bundle, target.timeout, target.tls_profile)


def prefetch(target: ScanTarget) -> None:
    """Start the scans of the web domain now, in the TLS worker (the scan's address policy judges
    them first, as in the probe); the probe takes their results when it gets there. An audit calls
    this before its SSH collection is done: these scans need nothing from the hosts."""
    scanner = workers.scanner()
    if scanner is None:
        return
    policy = target.address_policy()
    deadline = time.monotonic() + BUDGET_S
    for c in web_domain_candidates(target):
        if policy.refusal(c.address, c.host) is None:
            workers.prefetch(_scan_key(target, c), scanner.submit(target, c, deadline))


def _scan_all(target: ScanTarget, to_scan: list[Candidate], deadline: float) -> list[ProbeFact | ProbeProblem]:
    """Every endpoint's scan, in the order given: side by side in processes of the TLS worker when it
    can be used (an endpoint it cannot serve is scanned here), else all in one sslyze Scanner here.
    The deadline holds either way."""
    if not to_scan:
        return []
    scanner = workers.scanner()
    if scanner is not None:
        # An endpoint that `splits` is scanned in two parts, each in a process of its own.
        futures = [[scanner.submit(target, c, deadline, part) for part in PARTS] if splits(c)
                   else [workers.take_prefetched(_scan_key(target, c)) or scanner.submit(target, c, deadline)]
                   for c in to_scan]
        found: list[ProbeFact | ProbeProblem] = []
        for c, parts in zip(to_scan, futures, strict=True):
            outcomes = []
            for part, future in zip(PARTS if len(parts) > 1 else [None], parts, strict=True):
                try:
                    outcomes.append(future.result(timeout=max(0.1, deadline - time.monotonic() + 1)))
                except FutureTimeout:
                    outcomes.append(scan_outcome(c, None, "the TLS scan did not finish in time", target,
                                                 load_profile(target.tls_profile), BUDGET_S, part))
                except workers.WorkerGone:
                    outcomes.append(scan_endpoint(target, c, deadline, BUDGET_S, part))
            found.append(joined(c, **dict(zip(PARTS, outcomes, strict=True))) if len(outcomes) > 1 else outcomes[0])
        return found
    profile = load_profile(target.tls_profile)
    requests, problems = {}, {}
    for c in to_scan:
        try:
            requests[c] = scan_request(target, c)
        except (ValueError, UnicodeError) as exc:
            problems[c] = ProbeProblem("tls_endpoint", f"{c.where}: cannot be scanned: {excerpt(str(exc))}", c.where)
    results, trouble = run_scanner(list(requests.values()), deadline) if requests else ({}, None)
    return [problems[c] if c in problems else scan_outcome(c, results.get(requests[c].uuid), trouble, target,
                                                           profile, BUDGET_S)
            for c in to_scan]


@probe("tls", timeout=BUDGET_S + 5, description="TLS of the web, media, mail relay and database endpoints (sslyze)")
def tls_probe(target: ScanTarget, ctx: ProbeContext) -> Iterator[ProbeFact | ProbeProblem]:
    started = time.monotonic()
    deadline = started + BUDGET_S
    problems: list[ProbeProblem] = []
    notes: list[str] = []
    relays = smtp_relays(target, ctx.resolver)
    notes += relays.notes + [message for message, _, _ in relays.problems]  # the smtp probe reports them
    candidates = web_candidates(target, ctx, set(relays.names()), problems, notes)
    candidates += smtp_candidates(relays)
    postgres = postgres_candidates(target)
    candidates += postgres
    yield from problems
    # sslyze connects to the addresses handed to it: the scan's policy judges them first.
    gate = ctx.http.gate
    for c in [c for c in candidates if gate.refusal(c.address, c.host) is not None]:
        candidates.remove(c)
        notes.append(f"{c.where} not probed: {gate.refusal(c.address, c.host)}")

    quick = min(target.timeout, 3.0)
    with ThreadPoolExecutor(max_workers=16) as pool:
        open_flags = list(pool.map(lambda c: tcp_open(gate, c.address, c.port, quick), candidates))
        reachable = [c for c, ok in zip(candidates, open_flags, strict=True) if ok]
        closed = [c for c, ok in zip(candidates, open_flags, strict=True) if not ok]
        pre = list(pool.map(lambda c: _pre_check(gate, c, target.timeout), reachable))
    for c in closed:
        if c.required:
            yield ProbeProblem("tls_endpoint", f"{c.where} does not answer (TCP connect to {c.address} failed)",
                               c.where)
    smtp_answered = {c.host for c in reachable if c.kind in (SMTP_STARTTLS, SMTPS)}
    for c in {c.host: c for c in closed if c.kind in (SMTP_STARTTLS, SMTPS)}.values():
        if c.host in smtp_answered:
            continue
        if c.may_be_closed:
            notes.append(f"the app host's own SMTP relay answers on none of 25, 587, 465 at {c.address}: "
                         "not reachable from outside")
        else:
            yield ProbeProblem("tls_endpoint", f"SMTP relay {c.host} answers on none of 25, 587, 465", c.host)
    to_scan: list[Candidate] = []
    for c, outcome in zip(reachable, pre, strict=True):
        if outcome is None:
            to_scan.append(c)
        elif isinstance(outcome, TlsEndpoint):
            yield ProbeFact("tls_endpoint", outcome)
        else:
            yield outcome

    scanned: list[str] = []
    for result in _scan_all(target, to_scan, deadline):
        if isinstance(result, ProbeFact) and result.fact.tls_offered:
            scanned.append(result.fact.where)
        yield result
    yield ProbeFact("tls_scan", TlsScanSummary(
        profile=target.tls_profile, scanned=tuple(scanned), closed=tuple(c.where for c in closed),
        postgres_tried=tuple(c.where for c in postgres), notes=tuple(notes),
        duration_s=round(time.monotonic() - started, 2)))
