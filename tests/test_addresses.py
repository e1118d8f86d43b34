"""The one address-scope rule (mastoaudit/addresses.py)."""

from __future__ import annotations

import pytest

from mastoaudit.addresses import (
    AddressPolicy,
    Scope,
    describe,
    is_loopback,
    is_public,
    reach,
    scope,
    split_host_port,
    widest_reach,
)


@pytest.mark.parametrize(("address", "expected"), [
    ("8.8.8.8", Scope.PUBLIC), ("2606:4700::1", Scope.PUBLIC),
    ("127.0.0.2", Scope.LOOPBACK), ("::1", Scope.LOOPBACK), ("[::1]", Scope.LOOPBACK),
    ("0.0.0.0", Scope.UNSPECIFIED), ("::", Scope.UNSPECIFIED),
    ("10.1.2.3", Scope.PRIVATE), ("172.31.0.1", Scope.PRIVATE), ("192.168.1.1", Scope.PRIVATE),
    ("fd12::1", Scope.PRIVATE),
    ("169.254.169.254", Scope.LINK_LOCAL), ("fe80::1%eth0", Scope.LINK_LOCAL),
    ("100.64.0.1", Scope.SHARED),
    ("192.0.2.1", Scope.SPECIAL), ("198.18.0.1", Scope.SPECIAL), ("224.0.0.1", Scope.SPECIAL),
    ("240.0.0.1", Scope.SPECIAL), ("255.255.255.255", Scope.SPECIAL), ("2001:db8::1", Scope.SPECIAL),
    ("ff02::1", Scope.SPECIAL),
    # IPv6 forms that carry an IPv4 address are judged by the address they carry.
    ("::ffff:127.0.0.1", Scope.LOOPBACK), ("::ffff:10.0.0.1", Scope.PRIVATE),
    ("64:ff9b::a9fe:a9fe", Scope.LINK_LOCAL), ("2002:7f00:1::", Scope.LOOPBACK),
    ("::ffff:8.8.8.8", Scope.PUBLIC),
    # Outside 2000::/3 nothing is public: IPv4-compatible and SIIT-translated forms of loopback and
    # metadata addresses were judged public (Python's is_global says True for them).
    ("::127.0.0.1", Scope.SPECIAL), ("::a9fe:a9fe", Scope.SPECIAL), ("::ffff:0:7f00:1", Scope.SPECIAL),
    ("::ffff:0:a9fe:a9fe", Scope.SPECIAL), ("4000::1", Scope.SPECIAL),
])
def test_scope(address, expected):
    assert scope(address) is expected


def test_names_are_not_addresses():
    assert scope("example.social") is None
    assert not is_public("example.social")
    assert not is_public("")


def test_metadata_address_is_named():
    assert describe("169.254.169.254") == "169.254.169.254 (link-local, cloud metadata)"


def test_policy_allows_public_and_what_the_user_named():
    policy = AddressPolicy.allowing(["127.0.0.0/8", "10.0.0.5"], names=["Lab.Test."])
    assert policy.permits("8.8.8.8")
    assert policy.permits("127.0.0.9")
    assert policy.permits("::ffff:127.0.0.9")  # the same loopback network, written in IPv6
    assert policy.permits("10.0.0.5")
    assert not policy.permits("10.0.0.6")
    assert policy.permits("10.0.0.6", name="lab.test")
    assert "169.254.169.254 (link-local, cloud metadata)" in AddressPolicy().refusal("169.254.169.254")
    assert not AddressPolicy().permits("64:ff9b::a9fe:a9fe")
    assert not AddressPolicy().permits("::169.254.169.254") and not AddressPolicy().permits("::ffff:0:127.0.0.1")


def test_policy_rejects_junk_entries():
    with pytest.raises(ValueError, match="not an address or network"):
        AddressPolicy.allowing(["example.social"])


@pytest.mark.parametrize(("text", "expected"), [
    ("mail.example", ("mail.example", 587)), ("mail.example:25", ("mail.example", 25)),
    ("[2001:db8::1]:25", ("2001:db8::1", 25)), ("2001:db8::1", ("2001:db8::1", 587)),
    ("[2001:db8::1]", ("2001:db8::1", 587)), ("10.0.0.1:2525", ("10.0.0.1", 2525)),
])
def test_split_host_port(text, expected):
    assert split_host_port(text, 587) == expected


@pytest.mark.parametrize("text", ["", ":25", "host:0", "host:70000", "host:x", "[::1", "[::1]x"])
def test_split_host_port_refuses(text):
    with pytest.raises(ValueError):
        split_host_port(text)


# --- who can reach a listening address (the one rule the data-store, nginx, compose and live checks use) ---


@pytest.mark.parametrize(("address", "expected"), [
    ("*", "any"), ("0.0.0.0", "any"), ("::", "any"), ("-::*", "any"), ("0.0.0.0/0", "any"), ("all", "any"),
    ("127.0.0.1", "loopback"), ("-::1", "loopback"), ("[::1]", "loopback"), ("localhost", "loopback"),
    ("_local_", "loopback"), ("samehost", "loopback"), ("::ffff:127.0.0.1", "loopback"), ("127.0.0.0/8", "loopback"),
    ("10.1.2.3", "private"), ("192.168.0.10", "private"), ("fd00::5", "private"), ("_site_", "private"),
    ("100.64.0.1", "private"), ("169.254.1.1", "private"), ("fe80::1%eth0", "private"), ("10.0.0.0/8", "private"),
    ("samenet", "private"), ("8.8.8.8", "public"), ("2001:4860::8888", "public"), ("_global_", "public"),
    ("203.0.113.10", "public"),  # documentation ranges stand for public addresses in examples
    ("db.example.org", "name"), ("_eth0_", "name"), ("web", "name"),
])
def test_reach(address, expected):
    assert reach(address) == expected


def test_widest_reach_and_loopback():
    assert widest_reach(["127.0.0.1", "-::1"]) == "loopback"
    assert widest_reach(["127.0.0.1", "10.0.0.5"]) == "private"
    assert widest_reach(["10.0.0.5", "db.internal"]) == "name"  # a name might be anything
    assert widest_reach(["127.0.0.1", "*"]) == "any"
    assert is_loopback("localhost") and is_loopback("::1") and is_loopback("127.1.2.3")
    assert not is_loopback("0.0.0.0") and not is_loopback("*") and not is_loopback("_local_")

