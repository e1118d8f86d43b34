"""What a network scan looks at (mastoaudit/targets.py), decided apart from the command line: the
scan target from options, the audit's target from the inventory and .env.production, and which
host the network findings join."""

from __future__ import annotations

import pytest

from mastoaudit import kinds
from mastoaudit.facts import FactSet
from mastoaudit.inventory import Host, Inventory, NetworkSettings, SshSettings
from mastoaudit.net.target import SENSITIVE_PORTS
from mastoaudit.parsers.base import SourceFile
from mastoaudit.parsers.env import parse_mastodon_env
from mastoaudit.targets import ScanOptions, TargetError, audit_network, scan_target, select_probes, with_env


def test_scan_target_from_options():
    t = scan_target(ScanOptions("Example.Social.", web_domain="Mastodon.Example.Social", addresses=["203.0.113.10"],
                                resolve=["media.example.social=203.0.113.11"], ports="8080", mail_domains=["mail.test"],
                                smtp_hosts=["smtp.test:587"]))
    assert (t.name, t.local_domain, t.web_domain) == ("example.social", "example.social", "mastodon.example.social")
    assert t.addresses == ("203.0.113.10",) and t.hosts == {"media.example.social": "203.0.113.11"}
    assert t.ports == (*SENSITIVE_PORTS, 8080) and t.mail_domains == ("mail.test", "example.social")
    assert t.smtp_hosts == ("smtp.test:587",) and t.dkim_selectors[0] == "mastodon"


@pytest.mark.parametrize(("options", "message"), [
    ({"domain": "bad domain"}, "not a domain"),
    ({"resolve": ["nohost"]}, "expected NAME=IP"),
    ({"resolver": "dns.example"}, "expected IP or IP:PORT"),
    ({"ports": "0"}, "not a port number"),
    ({"s3_bucket": "b"}, "go together"),
    ({"timeout": 0}, "between 0 and 60"),
    ({"addresses": ["example.social"]}, "--address: not an IP address"),
])
def test_options_that_make_no_target(options, message):
    with pytest.raises(TargetError, match=message):
        scan_target(ScanOptions(**{"domain": "example.social", **options}))
    with pytest.raises(TargetError, match="unknown nope"):
        select_probes(["tls", "nope"])


def _env(text: str):
    return parse_mastodon_env(SourceFile(".env.production", text.encode()))


def test_env_production_fills_what_the_options_left_open():
    env = _env("LOCAL_DOMAIN=example.social\nWEB_DOMAIN=mastodon.example.social\nAUTHORIZED_FETCH=true\n"
               "SMTP_SERVER=localhost\nSMTP_FROM_ADDRESS=Mastodon <notifications@mail.example.social>\n"
               "S3_ENABLED=true\nS3_BUCKET=media\nS3_ALIAS_HOST=files.example.social\n")
    t = with_env(scan_target(ScanOptions("web1", addresses=["203.0.113.10"])), env)
    assert (t.local_domain, t.web_domain) == ("example.social", "mastodon.example.social")
    assert t.expects["AUTHORIZED_FETCH"] is True
    # unset is Mastodon's documented default (false), not "unknown"; a template is unknown
    assert t.expects["DISALLOW_UNAUTHENTICATED_API_ACCESS"] is False
    assert t.unset == {"DISALLOW_UNAUTHENTICATED_API_ACCESS", "LIMITED_FEDERATION_MODE"}
    templated = with_env(scan_target(ScanOptions("web1")), _env("DISALLOW_UNAUTHENTICATED_API_ACCESS={{ x }}\n"))
    assert templated.expects["DISALLOW_UNAUTHENTICATED_API_ACCESS"] is None
    assert t.smtp_hosts == ("localhost",) and "mail.example.social" in t.mail_domains
    assert t.media_host == "files.example.social" and t.s3.bucket == "media"
    assert t.s3.endpoint == "https://s3.us-east-1.amazonaws.com"
    mine = with_env(scan_target(ScanOptions("web1", smtp_hosts=["relay.test"], media_host="m.test")), env)
    assert mine.smtp_hosts == ("relay.test",) and mine.media_host == "m.test"  # the user's options win


def test_audit_network_joins_the_first_web_host():
    hosts = [Host("db1", "10.0.0.5", ("db",), SshSettings()),
             Host("web1", "203.0.113.10", ("web", "app"), SshSettings()),
             Host("web2", "203.0.113.11", ("web",), SshSettings())]
    inventory = Inventory("inv.yaml", "example.social", "example.social", hosts=hosts,
                          network=NetworkSettings(ports=(8080,), resolver="127.0.0.53:5353"))
    facts = [FactSet(h.name) for h in hosts]
    facts[0].add(kinds.MASTODON_ENV, _env("LOCAL_DOMAIN=example.social\nSMTP_SERVER=smtp.provider.test\n"))
    home, t = audit_network(inventory, facts)
    assert home is facts[1] and t.name == "web1"
    assert t.addresses == ("203.0.113.10", "203.0.113.11") and t.scan_addresses == ("10.0.0.5", "203.0.113.10",
                                                                                     "203.0.113.11")
    assert t.resolver == ("127.0.0.53", 5353) and 8080 in t.ports and t.smtp_hosts == ("smtp.provider.test",)
    assert audit_network(Inventory("inv.yaml", "e.test", "e.test", hosts=hosts[:1]), facts[:1]) is None
    bad = Inventory("inv.yaml", "e.test", "e.test", hosts=hosts, network=NetworkSettings(resolver="dns.example"))
    with pytest.raises(TargetError, match=r"network\.resolver"):
        audit_network(bad, facts)
