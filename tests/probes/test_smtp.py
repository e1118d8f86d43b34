"""The SMTP probe's reply reader and parsers on hostile bytes (a socket pair fed by the test, or a
listener that answers junk: hostile input, not a stand-in for Postfix), its refusal to ever send a
message, and the verdicts of the smtp.* network checks on endpoint facts. The real dialogue with
Postfix is proven in tests/lab/test_net_mail.py."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from mastoaudit_checks.smtp import software_named

from mastoaudit.addresses import AddressPolicy
from mastoaudit.facts import FactSet
from mastoaudit.net.sockets import TcpGate
from mastoaudit.net.target import ScanTarget
from mastoaudit.probes.smtp import (
    FORBIDDEN_VERBS,
    MAX_LINE,
    RelayTest,
    Session,
    SmtpEndpoint,
    SmtpProtocolError,
    TlsInfo,
    auth_mechanisms,
    capabilities,
    has_capability,
    parse_reply,
    probe_endpoint,
)

# --- replies ------------------------------------------------------------------------------------------

def test_multiline_reply():
    reply = parse_reply([b"250-mail.example.com\r\n", b"250-STARTTLS\r\n", b"250-AUTH PLAIN LOGIN\r\n",
                         b"250 8BITMIME\r\n"])
    assert reply.code == 250
    assert capabilities(reply) == ["STARTTLS", "AUTH PLAIN LOGIN", "8BITMIME"]


@pytest.mark.parametrize("lines, message", [
    ([], "empty"),
    ([b"hello\r\n"], "not an SMTP reply"),
    ([b"\x00\xff\xfe binary\r\n"], "not an SMTP reply"),
    ([b"250-a\r\n", b"354 b\r\n"], "differ"),
    ([b"250-a\r\n", b"250-b\r\n"], "continuation"),
    ([b"250 a\r\n", b"250 b\r\n"], "continuation"),
    ([b"600 out of range\r\n"], "not an SMTP reply"),
    ([b"25 short\r\n"], "not an SMTP reply"),
])
def test_malformed_replies(lines, message):
    with pytest.raises(SmtpProtocolError, match=message):
        parse_reply(lines)


def test_reply_text_is_made_printable():
    reply = parse_reply([b"220 mail \x1b[31mred\x07 ESMTP\r\n"])
    assert "\x1b" not in reply.text and "\x07" not in reply.text


def test_auth_and_capabilities():
    caps = ["PIPELINING", "AUTH PLAIN LOGIN", "AUTH=LOGIN", "STARTTLS", "auth cram-md5 <script>"]
    assert auth_mechanisms(caps) == ["PLAIN", "LOGIN", "CRAM-MD5"]
    assert has_capability(caps, "STARTTLS") and not has_capability(caps, "VRFY")
    assert auth_mechanisms(["PIPELINING"]) == []


@pytest.mark.parametrize("banner, named", [
    ("220 mail.example.com ESMTP", []),
    ("220 mail.example.com ESMTP Postfix (Debian/GNU)", ["Postfix", "Debian", "GNU"]),
    ("220 mx.example.com ESMTP Exim 4.96 Tue, 01 Jan 2026", ["Exim", "4.96"]),
    ("220 smtp.example.com Microsoft ESMTP MAIL Service ready", ["Microsoft"]),
    ("220 postfix.example.com ESMTP", []),  # the server's own name is not a disclosure
    ("220 [192.0.2.1] ESMTP", []),
])
def test_banner_disclosure(banner, named):
    assert software_named(banner, "mail.example.com") == named


# --- the bounded reader -------------------------------------------------------------------------------

def session_fed(data: bytes, seconds: float = 2.0) -> tuple[Session, socket.socket]:
    ours, theirs = socket.socketpair()
    theirs.sendall(data)
    return Session(ours, time.monotonic() + seconds, TcpGate(AddressPolicy())), theirs


def test_session_reads_split_replies():
    session, peer = session_fed(b"220-first\r\n220 sec")
    threading.Timer(0.05, lambda: peer.sendall(b"ond\r\n")).start()
    assert str(session.reply()) == "220 first / second"


def test_oversized_line_is_refused():
    session, _ = session_fed(b"220 " + b"x" * (MAX_LINE + 100))
    with pytest.raises(SmtpProtocolError, match="longer than"):
        session.reply()


def test_endless_continuation_is_refused():
    session, peer = session_fed(b"")
    threading.Thread(target=lambda: peer.sendall(b"250-more\r\n" * 5000), daemon=True).start()
    with pytest.raises(SmtpProtocolError, match="longer than"):
        session.reply()
    session.close()  # the writer's sendall ends with an error instead of waiting


def test_silence_ends_at_the_deadline():
    session, _ = session_fed(b"220-partial\r\n", seconds=0.3)
    with pytest.raises(SmtpProtocolError, match="deadline"):
        session.reply()


def test_closed_connection():
    session, peer = session_fed(b"220-partial\r\n")
    peer.close()
    with pytest.raises(SmtpProtocolError, match="closed"):
        session.reply()


@pytest.mark.parametrize("verb", [*FORBIDDEN_VERBS, "data", "Bdat 100 LAST"])
def test_the_probe_never_sends_a_message(verb):
    session, peer = session_fed(b"")
    with pytest.raises(ValueError, match="never sends"):
        session.command(verb)
    peer.setblocking(False)
    with pytest.raises(BlockingIOError):
        peer.recv(10)  # nothing went out


def test_commands_are_one_line():
    session, _ = session_fed(b"")
    with pytest.raises(ValueError, match="one line"):
        session.command("RSET\r\nDATA")


# --- a hostile server: the probe reports, never raises -----------------------------------------------

def hostile_server(script: list[bytes]) -> tuple[int, threading.Thread]:
    """Listen on 127.0.0.1, answer each line the client sends with the next chunk of `script`.
    Every connection the probe makes (it may retry without TLS) gets the same script, for a few
    seconds; a single-shot server would turn a retry into a reset, which is not what is tested."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(3)
    port = listener.getsockname()[1]

    def one(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(2)
            try:
                conn.sendall(script[0])
                for chunk in script[1:]:
                    if not conn.recv(4096):
                        return
                    conn.sendall(chunk)
                conn.recv(4096)
            except OSError:
                return

    def serve() -> None:
        with listener:
            for _ in range(3):
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                one(conn)
                listener.settimeout(0.5)  # a retry comes at once, or not at all

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return port, thread


@pytest.mark.parametrize("script, error", [
    ([b"HTTP/1.1 400 Bad Request\r\n\r\n"], "not an SMTP reply"),
    ([b"220 ok\r\n", b"\x00" * 5000], "longer than"),
    ([b"554 go away\r\n"], "refused the session"),
    ([b"220 ok\r\n", b"250-x\r\n250 STARTTLS\r\n", b"220 go ahead\r\n250 injected\r\n"], "injection"),
    ([b"220 ok\r\n", b"250-x\r\n250 STARTTLS\r\n", b"220 go ahead\r\n", b"this is not TLS\r\n" * 3], "SSL"),
])
def test_hostile_servers_become_errors(script, error):
    port, thread = hostile_server(script)
    target = ScanTarget("t", "t.example", "t.example", timeout=1.0, smtp_hosts=("127.0.0.1",))  # named: allowed
    ep = probe_endpoint(SmtpEndpoint("127.0.0.1", "127.0.0.1", port, "starttls", "SMTP relay"), target)
    thread.join(10)
    assert ep.open
    text = (ep.error or "") + " " + ((ep.tls.error or "") if ep.tls else "")
    assert error in text, (ep.error, ep.tls)
    assert ep.relay is None or ep.relay.rcpt is None or ep.relay.open is not True


# --- check verdicts -----------------------------------------------------------------------------------

def endpoint(**kw) -> SmtpEndpoint:
    ep = SmtpEndpoint("mail.e.example", "192.0.2.25", 25, "starttls", "MX", open=True,
                      banner="220 mail.e.example ESMTP", ehlo=["STARTTLS"], starttls_offered=True,
                      tls=TlsInfo(True, True, None, "TLSv1.3", "TLS_AES_256_GCM_SHA384"),
                      vrfy="502 5.5.1 VRFY command is disabled", vrfy_enabled=False,
                      relay=RelayTest("250 2.1.0 Ok", "554 5.7.1 Relay access denied", False))
    for key, value in kw.items():
        setattr(ep, key, value)
    return ep


def judge(registry, check_id: str, ep: SmtpEndpoint) -> list:
    facts = FactSet("t")
    facts.add("smtp_endpoint", ep)
    return list(registry.get(check_id).run(facts))


def verdict(registry, check_id: str, **kw) -> tuple[str, str | None]:
    out = judge(registry, check_id, endpoint(**kw))
    assert len(out) == 1 and out[0].location.file == "mail.e.example:25"
    return out[0].status.value, out[0].observed


SMTP_CHECKS = ("smtp.starttls", "smtp.tls-certificate", "smtp.auth-cleartext", "smtp.open-relay", "smtp.vrfy",
               "smtp.banner")


@pytest.mark.parametrize("check_id", SMTP_CHECKS)
def test_a_good_relay_passes(registry, check_id):
    assert verdict(registry, check_id)[0] == "pass"


def test_smtp_failures(registry):
    assert verdict(registry, "smtp.starttls", starttls_offered=False, tls=None) == ("fail", "no STARTTLS in EHLO")
    assert verdict(registry, "smtp.starttls", tls=TlsInfo(error="TLS handshake failed: x"))[0] == "fail"
    assert verdict(registry, "smtp.starttls", tls=TlsInfo(True, True, protocol="TLSv1"))[0] == "warn"
    status, observed = verdict(registry, "smtp.tls-certificate",
                               tls=TlsInfo(True, False, "Hostname mismatch", "TLSv1.3"))
    assert status == "fail" and "Hostname mismatch" in observed
    assert verdict(registry, "smtp.tls-certificate", tls=None)[0] == "skip"
    assert verdict(registry, "smtp.auth-cleartext", auth_clear=["PLAIN", "LOGIN"]) == \
        ("fail", "AUTH PLAIN LOGIN in clear EHLO")
    status, observed = verdict(registry, "smtp.open-relay", relay=RelayTest("250 Ok", "250 2.1.5 Ok", True))
    assert status == "fail" and "250 2.1.5" in observed
    assert judge(registry, "smtp.open-relay", endpoint(relay=RelayTest("250 Ok", "250 Ok", True)))[0].severity is None
    assert verdict(registry, "smtp.open-relay", relay=RelayTest("250 Ok", "450 try later", None, "temporary"))[0] == \
        "warn"
    assert verdict(registry, "smtp.open-relay", relay=RelayTest("553 sender refused", None, None, "refused"))[0] == \
        "skip"
    assert verdict(registry, "smtp.vrfy", vrfy="252 2.0.0 postmaster", vrfy_enabled=True)[0] == "fail"
    assert verdict(registry, "smtp.banner", banner="220 mail.e.example ESMTP Postfix (Debian/GNU)")[0] == "fail"


def test_implicit_tls_port(registry):
    ep = endpoint(port=465, mode="implicit", ehlo=[], starttls_offered=None, ehlo_tls=["AUTH PLAIN"])
    assert judge(registry, "smtp.starttls", ep)[0].status.value == "pass"
    assert judge(registry, "smtp.auth-cleartext", ep)[0].observed == "implicit TLS"
