"""Which SMTP relays a scan judges (mastoaudit/net/relays.py): decided once, the same for the TLS probe,
the SMTP probe and the SPF coverage; a relay on the app host's loopback is probed at the web host's
address under the web domain's name, a private MX never."""

from __future__ import annotations

import socket
import threading

import pytest

from mastoaudit.model import Status
from mastoaudit.net.dns import Answer
from mastoaudit.net.http import HttpClient
from mastoaudit.net.relays import Relay, mx_hosts, parse_mx, parse_relay, smtp_relays
from mastoaudit.net.runner import ProbeContext, ProbeFact
from mastoaudit.net.target import ScanTarget
from mastoaudit.probes import smtp, tls_endpoints


class FakeDns:
    """Answers from a table: MX records per domain, addresses per name."""

    def __init__(self, mx: dict[str, list[str]] | None = None, hosts: dict[str, list[str]] | None = None):
        self.mx, self.hosts = mx or {}, hosts or {}

    def query(self, name: str, rdtype: str) -> Answer:
        records = tuple(self.mx.get(name, ())) if rdtype == "MX" else ()
        return Answer(name, rdtype, records, "NOERROR" if records else "NXDOMAIN")

    def addresses(self, name: str) -> list[str]:
        return list(self.hosts.get(name, ()))


def target(**kw) -> ScanTarget:
    values = dict(name="web1", local_domain="example.social", web_domain="example.social",
                  addresses=("198.51.100.10",), mail_domains=("example.social",))
    values.update(kw)
    return ScanTarget(**values)


def test_mx_records():
    assert parse_mx("10 mail.example.com.") == "mail.example.com"
    assert parse_mx("0 .") is None  # null MX: the domain takes no mail
    for junk in ("", "mail.example.com", "ten mail.example.com.", "10 a b", "10 $(reboot).example.",
                 "10 " + "a" * 300 + ".com", "10 -bad-.example.", "10 exa mple"):
        with pytest.raises(ValueError):
            parse_mx(junk)
    dns = FakeDns(mx={"e.example": ["20 b.e.example.", "10 a.e.example.", "0 .", "junk"]})
    assert mx_hosts(dns, "e.example") == ["a.e.example", "b.e.example"]


def test_configured_relay_forms():
    assert parse_relay("smtp.example.com") == ("smtp.example.com", None)
    assert parse_relay("smtp.example.com:587") == ("smtp.example.com", 587)
    assert parse_relay("[2001:db8::1]:465") == ("2001:db8::1", 465)
    assert parse_relay("2001:db8::25") == ("2001:db8::25", None)
    assert parse_relay("192.0.2.7") == ("192.0.2.7", None)
    for junk in ("smtp.example.com:99999", "smtp example", "http://x/", "a;b", "[::1]:0", "", "mail.example:smtp"):
        with pytest.raises(ValueError):
            parse_relay(junk)


def test_a_configured_relay_on_the_app_host_is_probed_at_the_web_address():
    for configured in ("localhost", "localhost:587", "127.0.0.1", "[::1]:25"):
        plan = smtp_relays(target(smtp_hosts=(configured,)), FakeDns())
        [relay] = plan.relays
        assert (relay.name, relay.address, relay.on_app_host) == ("example.social", "198.51.100.10",
                                                                  parse_relay(configured)[0])
        assert not plan.problems


def test_configured_relays_elsewhere():
    dns = FakeDns(hosts={"smtp.provider.example": ["203.0.113.5", "203.0.113.6", "203.0.113.7"]})
    plan = smtp_relays(target(smtp_hosts=("smtp.provider.example:587", "10.0.0.25")), dns)
    assert plan.source == "SMTP relay"
    assert [(r.name, r.address, r.port) for r in plan.relays] == [
        ("smtp.provider.example", "203.0.113.5", 587), ("smtp.provider.example", "203.0.113.6", 587),
        ("10.0.0.25", "10.0.0.25", None)]  # at most two addresses a name; a private one configured: probed
    unresolved = smtp_relays(target(smtp_hosts=("postfix",)), dns)  # a compose service name
    assert not unresolved.relays
    assert unresolved.problems == [("SMTP relay postfix does not resolve from here: not probed", "postfix",
                                    Status.WARN)]


def test_mx_relays_never_on_a_private_address():
    dns = FakeDns(mx={"example.social": ["10 mx1.example.social.", "20 mx2.example.social.", "30 bad host."]},
                  hosts={"mx1.example.social": ["93.184.215.14"], "mx2.example.social": ["10.1.2.3"]})
    plan = smtp_relays(target(), dns)
    assert plan.source == "MX"
    assert plan.relays == [Relay("mx1.example.social", "93.184.215.14", None, False)]
    assert any("10.1.2.3: not probed" in n for n in plan.notes)
    assert [m for m, _, _ in plan.problems] == ["MX of example.social: malformed MX record: 30 bad host."]


def test_the_tls_and_smtp_probes_probe_the_same_relay():
    """SMTP_SERVER=localhost: both probes go to the web host's address under the web domain's name
    (before, one probed the web address as "localhost" and the other skipped it)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    port = listener.getsockname()[1]

    def serve() -> None:
        with listener:
            listener.settimeout(10)
            for _ in range(3):
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                with conn:
                    conn.sendall(b"220 mail ESMTP\r\n")
                    conn.recv(1024)
                    conn.sendall(b"250 mail\r\n")
                    conn.recv(1024)

    threading.Thread(target=serve, daemon=True).start()
    t = target(addresses=("127.0.0.1",), smtp_hosts=(f"localhost:{port}",), timeout=2.0)
    ctx = ProbeContext(FakeDns(), HttpClient(t, FakeDns()))  # its gate: the target's own address is allowed
    found = [i.fact for i in smtp.smtp(t, ctx) if isinstance(i, ProbeFact)]
    assert [(ep.host, ep.address, ep.port) for ep in found] == [("example.social", "127.0.0.1", port)]
    [candidate] = tls_endpoints.smtp_candidates(smtp_relays(t, FakeDns()))
    assert (candidate.host, candidate.address, candidate.port, candidate.sni) == \
        ("example.social", "127.0.0.1", port, "example.social")
    assert candidate.may_be_closed  # nothing on the app host's port is the right answer, not an error
