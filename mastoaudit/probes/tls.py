"""TLS of every endpoint an outsider reaches, scanned with sslyze's Python API.

The probe in three parts, each a module of its own:
- what to scan (`tls_endpoints`): the web domain on 443 (and the local domain, the media host and
  any other web host the target names), the SMTP relays (STARTTLS on 25 and 587, implicit TLS on
  465; the relays come from `mastoaudit.net.relays`, the one place that says which relay to judge)
  and PostgreSQL on 5432 on the target's own addresses;
- here: a quick TCP connect decides which of them are tried, a plain EHLO (SMTP) or SSLRequest
  (PostgreSQL) tells "no TLS offered" apart from "not this protocol";
- how (`tls_sslyze`): every TLS endpoint goes into ONE sslyze Scanner, which scans them in
  parallel, and the results are read into facts.

Facts (mastoaudit/facts/tls.py): `tls_endpoint` (a TlsEndpoint per host:port, TLS offered or not)
and `tls_scan` (a TlsScanSummary: what was tried and did not answer). sslyze is imported inside the
adapter's functions only.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO

from ..facts.tls import POSTGRES_STARTTLS, SMTP_STARTTLS, SMTPS, TlsEndpoint, TlsScanSummary
from ..model import Status
from ..net.relays import smtp_relays
from ..net.runner import ProbeContext, ProbeFact, ProbeProblem, probe
from ..net.sockets import TcpGate
from ..net.target import ScanTarget
from ..net.text import excerpt
from .tls_endpoints import Candidate, postgres_candidates, smtp_candidates, web_candidates
from .tls_sslyze import EHLO_NAME, endpoint_from_result, error_text, load_profile, run_scanner, scan_request

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
    if to_scan:
        profile = load_profile(target.tls_profile)
        requests = {}
        for c in to_scan:
            try:
                requests[c] = scan_request(target, c)
            except (ValueError, UnicodeError) as exc:
                yield ProbeProblem("tls_endpoint", f"{c.where}: cannot be scanned: {excerpt(str(exc))}", c.where)
        results, trouble = run_scanner(list(requests.values()), deadline) if requests else ({}, None)
        for c, request in requests.items():
            result = results.get(request.uuid)
            if result is None:
                yield ProbeProblem("tls_endpoint", f"{c.where}: {trouble or 'no result'} "
                                   f"({BUDGET_S:.0f} s for the whole TLS scan)", c.where)
            elif result.scan_result is None:
                trace = result.connectivity_error_trace
                kind = getattr(getattr(trace, "exc_type", None), "__name__", "")
                if kind == "ServerRejectedOpportunisticTlsNegotiation":
                    yield ProbeFact("tls_endpoint", TlsEndpoint(
                        c.host, c.port, c.address, c.kind, c.sni, c.where, tls_offered=False,
                        refusal=error_text(trace)))
                else:
                    yield ProbeProblem("tls_endpoint", f"{c.where}: TLS could not be negotiated: {error_text(trace)}",
                                       c.where)
            else:
                try:
                    endpoint = endpoint_from_result(c, result, target, profile)
                except Exception as exc:  # one odd server must not cost the others
                    yield ProbeProblem("tls_endpoint", f"{c.where}: the scan result could not be read: "
                                       f"{type(exc).__name__}: {excerpt(str(exc))}", c.where)
                    continue
                scanned.append(c.where)
                yield ProbeFact("tls_endpoint", endpoint)
    yield ProbeFact("tls_scan", TlsScanSummary(
        profile=target.tls_profile, scanned=tuple(scanned), closed=tuple(c.where for c in closed),
        postgres_tried=tuple(c.where for c in postgres), notes=tuple(notes),
        duration_s=round(time.monotonic() - started, 2)))
