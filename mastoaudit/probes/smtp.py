"""The SMTP relay from outside: banner, EHLO capabilities, STARTTLS and its certificate, AUTH offered
in clear, VRFY, and an open-relay test that stops at RCPT.

The relay test is MAIL FROM:<probe@mastoaudit.invalid> (RFC 2606: `.invalid` can never receive or
be the source of real mail) and RCPT TO:<probe@example.net>, then RSET and QUIT. The session refuses
to send DATA or BDAT, so no message can ever be queued. Replies are read with a bounded line length,
line count and total size, within one deadline per session.
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..facts.smtp import RelayTest, SmtpEndpoint, TlsInfo
from ..model import Status
from ..net.relays import smtp_relays
from ..net.runner import ProbeContext, ProbeFact, ProbeProblem, probe
from ..net.sockets import NotPermitted, TcpGate
from ..net.target import ScanTarget
from ..net.text import excerpt
from ..textsafe import safe_text

PORTS = ((25, "starttls"), (587, "starttls"), (465, "implicit"))
EHLO_NAME = "mastoaudit.invalid"
PROBE_SENDER = "probe@mastoaudit.invalid"
PROBE_RECIPIENT = "probe@example.net"
MAX_LINE = 2048  # RFC 5321 allows 512 per reply line; be tolerant, but bounded
MAX_LINES = 100
MAX_REPLY = 32 * 1024
FORBIDDEN_VERBS = ("DATA", "BDAT")  # this probe never transfers a message


class SmtpProtocolError(Exception):
    """The server's answer is not an SMTP reply (or came too late, or too big)."""


@dataclass(frozen=True)
class Reply:
    code: int
    lines: tuple[str, ...]  # the text after the code, one per line

    @property
    def text(self) -> str:
        return " / ".join(self.lines)

    def __str__(self) -> str:
        return f"{self.code} {self.text}".strip()[:300]


def parse_reply(raw_lines: list[bytes]) -> Reply:
    """RFC 5321 §4.2: `NNN-text` continuation lines, then `NNN text`, all with the same code."""
    if not raw_lines:
        raise SmtpProtocolError("empty reply")
    code: int | None = None
    texts: list[str] = []
    for i, raw in enumerate(raw_lines):
        line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
        if not re.match(r"^[2-5][0-9]{2}([ -]|$)", line):
            raise SmtpProtocolError(f"not an SMTP reply line: {excerpt(raw)}")
        this = int(line[:3])
        if code is not None and this != code:
            raise SmtpProtocolError(f"reply codes differ within one reply: {excerpt(raw)}")
        code = this
        last = i == len(raw_lines) - 1
        if (line[3:4] == "-") == last:
            raise SmtpProtocolError(f"bad continuation in reply: {excerpt(raw)}")
        texts.append(safe_text(line[4:]))
    assert code is not None
    return Reply(code, tuple(texts))


class Session:
    """One SMTP dialogue over a socket, bounded in time and size."""

    def __init__(self, sock: socket.socket, deadline: float, gate: TcpGate) -> None:
        self.sock = sock
        self.deadline = deadline
        self.gate = gate  # the socket's gate: TLS keeps its deadline
        self.buffer = b""
        self.transcript: list[str] = []

    def _recv(self) -> bytes:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise SmtpProtocolError("no complete reply before the deadline")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(4096)
        except TimeoutError:
            raise SmtpProtocolError("no complete reply before the deadline") from None
        if not data:
            raise SmtpProtocolError("the server closed the connection")
        return data

    def _line(self) -> bytes:
        while b"\n" not in self.buffer:
            if len(self.buffer) > MAX_LINE:
                raise SmtpProtocolError(f"reply line longer than {MAX_LINE} bytes: {excerpt(self.buffer[:80])}")
            self.buffer += self._recv()
        line, _, self.buffer = self.buffer.partition(b"\n")
        if len(line) > MAX_LINE:
            raise SmtpProtocolError(f"reply line longer than {MAX_LINE} bytes: {excerpt(line[:80])}")
        return line

    def reply(self) -> Reply:
        lines: list[bytes] = []
        size = 0
        while True:
            line = self._line()
            lines.append(line)
            size += len(line)
            if len(lines) > MAX_LINES or size > MAX_REPLY:
                raise SmtpProtocolError(f"reply longer than {MAX_LINES} lines or {MAX_REPLY} bytes")
            if line[3:4] != b"-":
                break
        reply = parse_reply(lines)
        self.transcript.append(f"S: {reply}")
        return reply

    def command(self, line: str) -> Reply:
        verb = line.split(" ", 1)[0].upper()
        if verb in FORBIDDEN_VERBS:
            raise ValueError(f"this probe never sends {verb}")
        if any(c in line for c in "\r\n"):
            raise ValueError("a command is one line")
        self.transcript.append(f"C: {line}")
        self.sock.settimeout(max(0.1, self.deadline - time.monotonic()))
        self.sock.sendall(line.encode("ascii") + b"\r\n")
        return self.reply()

    def starttls(self, context: ssl.SSLContext, server_hostname: str | None) -> None:
        if self.buffer:  # RFC 3207 §5: data after the 220 would be injected before TLS
            raise SmtpProtocolError("the server sent data after its STARTTLS reply (command injection risk)")
        self.sock.settimeout(max(0.1, self.deadline - time.monotonic()))
        self.sock = self.gate.tls(self.sock, context, server_hostname)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def capabilities(reply: Reply) -> list[str]:
    """EHLO keywords (the first line is the server's greeting)."""
    return [line.strip() for line in reply.lines[1:] if line.strip()][:MAX_LINES]


def auth_mechanisms(caps: list[str]) -> list[str]:
    found: list[str] = []
    for cap in caps:
        m = re.match(r"^AUTH[ =](.*)$", cap, re.IGNORECASE)
        if m:
            found += [w.upper() for w in m.group(1).split() if re.fullmatch(r"[A-Za-z0-9_\-]{1,40}", w)]
    return list(dict.fromkeys(found))


def has_capability(caps: list[str], name: str) -> bool:
    return any(c.split(" ", 1)[0].upper() == name for c in caps)


# --- what one endpoint showed -------------------------------------------------------------------------


# --- the dialogue -------------------------------------------------------------------------------------

def _connect(ep: SmtpEndpoint, gate: TcpGate, timeout: float, budget: float) -> socket.socket | None:
    if timeout <= 0:
        ep.error = ep.error or "no time left for another connection"
        return None
    try:
        sock = gate.connect(ep.address, ep.port, timeout, name=ep.host, budget=budget)
    except ConnectionRefusedError:
        return None
    except NotPermitted as exc:  # an MX on a private address nobody named: never contacted
        ep.error = f"not probed: {exc.strerror}"
        return None
    except OSError as exc:  # reported only when no port of the relay answers
        ep.error = f"cannot connect to port {ep.port}: {exc.strerror or exc}"
        return None
    ep.open = True
    return sock


def _tls_context(verify: bool, ca_bundle: str | None) -> ssl.SSLContext:
    if verify:
        return ssl.create_default_context(cafile=ca_bundle)
    return ssl._create_unverified_context()  # only to learn the protocol after verification failed


def _greet(session: Session, ep: SmtpEndpoint) -> list[str] | None:
    banner = session.reply()
    ep.banner = ep.banner or str(banner)
    if banner.code != 220:
        ep.error = f"the server refused the session: {banner}"
        return None
    ehlo = session.command(f"EHLO {EHLO_NAME}")
    if ehlo.code != 250:
        helo = session.command(f"HELO {EHLO_NAME}")
        if helo.code != 250:
            ep.error = f"EHLO and HELO refused: {ehlo}; {helo}"
            return None
        return []
    return capabilities(ehlo)


def _open_session(ep: SmtpEndpoint, target: ScanTarget, gate: TcpGate, verify: bool, deadline: float,
                  tls: bool = True) -> tuple[Session | None, list[str]]:
    """Connect, greet and (unless tls=False) secure the session: STARTTLS when offered, or implicit TLS.

    Returns the session (None when it could not be set up) and the capabilities in force; ep.tls
    records the handshake. A certificate that does not verify raises SSLCertVerificationError."""
    now = time.monotonic()
    ends = min(now + 4 * target.timeout, deadline)
    sock = _connect(ep, gate, min(target.timeout, deadline - now), ends - now)
    if sock is None:
        return None, []
    session = Session(sock, ends, gate)
    try:
        if ep.mode == "implicit":
            _handshake(session, ep, target, verify)
            caps = _greet(session, ep)
            ep.ehlo_tls = caps or []
            if caps is None:
                session.close()
                return None, []
            return session, caps
        caps = _greet(session, ep)
        if caps is None:
            session.close()
            return None, []
        if ep.starttls_offered is None:
            ep.ehlo = caps
            ep.starttls_offered = has_capability(caps, "STARTTLS")
            ep.auth_clear = auth_mechanisms(caps)
        if not tls or not has_capability(caps, "STARTTLS"):
            return session, caps
        reply = session.command("STARTTLS")
        if reply.code != 220:
            ep.tls = TlsInfo(error=f"STARTTLS refused: {reply}")
            return session, caps
        _handshake(session, ep, target, verify)
        ehlo = session.command(f"EHLO {EHLO_NAME}")
        caps = capabilities(ehlo) if ehlo.code == 250 else []
        ep.ehlo_tls = caps
        return session, caps
    except ssl.SSLCertVerificationError:
        session.close()
        raise
    except (OSError, ssl.SSLError, SmtpProtocolError) as exc:
        ep.error = ep.error or f"{type(exc).__name__}: {excerpt(str(exc))}"
        session.transcript.append(f"!: {ep.error}")
        ep.transcript = session.transcript[-40:]
        session.close()
        return None, []


def _handshake(session: Session, ep: SmtpEndpoint, target: ScanTarget, verify: bool) -> None:
    info = ep.tls or TlsInfo()
    ep.tls = info
    try:
        # Verified against the relay's name as configured (SMTP_SERVER) or published (MX).
        session.starttls(_tls_context(verify, target.ca_bundle), ep.host)
    except ssl.SSLCertVerificationError as exc:
        info.verified = False
        # OpenSSL's own words (with the name we asked for): printable, bounded, not repr-quoted
        info.verify_error = safe_text(exc.verify_message or str(exc))[:200]
        raise
    except (OSError, ssl.SSLError) as exc:
        info.error = f"TLS handshake failed: {excerpt(str(exc))}"
        raise
    info.established = True
    if verify:
        info.verified = True
    tls_sock = session.sock
    assert isinstance(tls_sock, ssl.SSLSocket)
    info.protocol = tls_sock.version()
    cipher = tls_sock.cipher()
    info.cipher = cipher[0] if cipher else None


def _relay_test(session: Session, ep: SmtpEndpoint) -> None:
    test = RelayTest(over_tls=bool(ep.tls and ep.tls.established))
    ep.relay = test
    mail = session.command(f"MAIL FROM:<{PROBE_SENDER}>")
    test.mail_from = str(mail)
    if mail.code // 100 != 2:
        test.note = "the probe's sender was refused, so relaying could not be tried"
    else:
        rcpt = session.command(f"RCPT TO:<{PROBE_RECIPIENT}>")
        test.rcpt = str(rcpt)
        if rcpt.code in (250, 251):
            test.open = True
        elif rcpt.code // 100 == 5:
            test.open = False
        else:
            test.note = "temporary refusal: relaying might be accepted later"
    session.command("RSET")


def probe_endpoint(ep: SmtpEndpoint, target: ScanTarget, gate: TcpGate | None = None) -> SmtpEndpoint:
    """Probe one relay port through `gate` (by default one with the target's address policy)."""
    gate = gate or TcpGate(target.address_policy())
    # At most three sessions (verified TLS, unverified TLS, clear), all within one deadline.
    deadline = time.monotonic() + 6 * target.timeout
    try:
        session, caps = _open_session(ep, target, gate, True, deadline)
    except ssl.SSLCertVerificationError:
        # The certificate does not verify: noted; go on over TLS without verification so the
        # protocol, AUTH and relay behaviour after TLS are still seen.
        session, caps = _open_session(ep, target, gate, False, deadline)
    if session is None and ep.open and ep.mode == "starttls" and ep.tls and not ep.tls.established:
        session, caps = _open_session(ep, target, gate, False, deadline, tls=False)  # TLS broken: relay test in clear
    if session is None:
        return ep
    try:
        vrfy = session.command("VRFY postmaster")
        ep.vrfy = str(vrfy)
        ep.vrfy_enabled = vrfy.code in (250, 251) or (vrfy.code == 252 and has_capability(ep.ehlo or caps, "VRFY"))
        if vrfy.code // 100 == 5 and vrfy.code not in (500, 502, 504):
            ep.vrfy_enabled = True  # e.g. 550 unknown user: the server answers questions about mailboxes
        _relay_test(session, ep)
        session.command("QUIT")
    except (OSError, ssl.SSLError, SmtpProtocolError) as exc:
        ep.error = ep.error or f"{type(exc).__name__}: {excerpt(str(exc))}"
    finally:
        ep.transcript = session.transcript[-40:]
        session.close()
    return ep


@probe("smtp", timeout=40, description="the SMTP relay: STARTTLS, certificate, AUTH in clear, VRFY, open relay")
def smtp(target: ScanTarget, ctx: ProbeContext) -> Iterable[ProbeFact | ProbeProblem]:
    plan = smtp_relays(target, ctx.resolver)  # which relays: decided once, for every probe
    for message, where, status in plan.problems:
        yield ProbeProblem("smtp_endpoint", message, where=where, status=status)
    relays, source = plan.relays, plan.source
    if not relays:
        if source == "MX":
            yield ProbeProblem("smtp_endpoint", f"no SMTP relay to probe: no --smtp-host and no MX host of "
                               f"{', '.join(target.mail_domains) or target.local_domain} resolves",
                               where=target.local_domain, status=Status.WARN)
        return
    endpoints = [SmtpEndpoint(r.name, r.address, port, mode, source) for r in relays for port, mode in PORTS
                 if r.port in (None, port)]
    endpoints += [SmtpEndpoint(r.name, r.address, r.port, "starttls", source) for r in relays
                  if r.port is not None and r.port not in dict(PORTS)]
    with ThreadPoolExecutor(max_workers=min(12, len(endpoints)), thread_name_prefix="smtp") as pool:
        done = list(pool.map(lambda ep: probe_endpoint(ep, target, ctx.http.gate), endpoints))
    for relay in dict.fromkeys(relays):
        mine = [ep for ep in done if ep.host == relay.name and ep.address == relay.address]
        if not any(ep.open for ep in mine) and relay.on_app_host is None:  # the app host's own: closed is right
            errors = "; ".join(ep.error for ep in mine if ep.error) or "connection refused"
            ports = ", ".join(str(ep.port) for ep in mine)
            yield ProbeProblem("smtp_endpoint", f"no SMTP port ({ports}) answers on {relay.name} ({relay.address}): "
                               f"{errors}", where=f"{relay.name}:{mine[0].port if mine else 25}", status=Status.WARN)
    for ep in done:
        if ep.open:
            yield ProbeFact("smtp_endpoint", ep)
