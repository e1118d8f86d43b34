"""The SPF evaluator (mastoaudit/net/spf.py) on small policies given as DNS answers (data, not a
server): RFC 7208's grammar, check_host() results, the lookup and void-lookup limits counted
through nested includes and redirects, macros (the RFC's own examples), and hostile records.
The lab tests (tests/lab/test_net_mail.py) run the same evaluator against the real Knot server."""

from __future__ import annotations

import ipaddress

import pytest

from mastoaudit.net.dns import Answer
from mastoaudit.net.spf import (
    LOOKUP_LIMIT,
    SpfEvaluator,
    SpfSyntaxError,
    expand,
    is_spf,
    parse_record,
)

ERRORS = ("SERVFAIL", "TIMEOUT", "REFUSED")


def answers(data: dict[tuple[str, str], list[str] | str]):
    """A lookup function over a dict of answers: (name, type) -> records, or an rcode in ERRORS.
    Names that appear with another type answer NOERROR with no records; others NXDOMAIN."""
    names = {n for n, _ in data}
    asked: list[tuple[str, str]] = []

    def lookup(name: str, rdtype: str) -> Answer:
        key = (name.rstrip(".").lower(), rdtype)
        asked.append(key)
        value = data.get(key)
        if isinstance(value, str):
            return Answer(name, rdtype, (), value)
        if value is not None:
            return Answer(name, rdtype, tuple(value))
        return Answer(name, rdtype, (), "NOERROR" if key[0] in names else "NXDOMAIN")

    lookup.asked = asked  # type: ignore[attr-defined]
    return lookup


def evaluator(data) -> SpfEvaluator:
    return SpfEvaluator(answers(data))


# --- grammar ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "v=spf1 -all",
    "v=spf1",
    "V=SPF1 MX -ALL",
    "v=spf1 a/24//64 mx:%{d}/30 include:_spf.google.com exists:%{i}._spf.%{d} ip6:2001:db8::/32 foo=bar ~all",
    "v=spf1 ip4:192.0.2.0/24 ip4:198.51.100.7 ?all",
    "v=spf1 redirect=_spf.example.com",
    "v=spf1 a mx  exp=explain._spf.%{d} -all",
    "v=spf1 mx//64 -all",
    "v=spf1 ptr -all",
])
def test_valid_records_parse(text):
    record = parse_record(text)
    assert record.text == text


@pytest.mark.parametrize("text, message", [
    ("v=spf1 foo -all", "unknown mechanism"),
    ("v=spf1 ip4:300.1.1.1 -all", "not an IP address"),
    ("v=spf1 ip4:192.0.2.0/33 -all", "prefix length"),
    ("v=spf1 ip4:192.0.2.0/024 -all", "prefix length"),
    ("v=spf1 ip6:192.0.2.1 -all", "wrong address family"),
    ("v=spf1 ip4:2001:db8::1 -all", "wrong address family"),
    ("v=spf1 include -all", "needs a domain"),
    ("v=spf1 include: -all", "empty domain-spec"),
    ("v=spf1 exists -all", "needs a domain"),
    ("v=spf1 all:foo", "takes no argument"),
    ("v=spf1 a:localhost -all", "not a domain name"),
    ("v=spf1 a:192.0.2.1 -all", "not a domain name"),
    ("v=spf1 include:%{x}.example.com -all", "unknown macro letter"),
    ("v=spf1 include:%{c}.example.com -all", "unknown macro letter"),
    ("v=spf1 include:50%.example.com -all", "bad macro"),
    ("v=spf1 redirect=a.example redirect=b.example", "more than one redirect"),
    ("v=spf1 exp=a.example exp=b.example -all", "more than one exp"),
    ("v=spf1 mx\t-all", "spaces only"),
    ("v=spf1 a:ex\u00e4mple.com -all", "invalid character"),
    ("v=spf1 1foo=bar", "bad modifier name"),
    ("v=spf10 -all", "v=spf1"),
    ("spf1 -all", "v=spf1"),
    ("v=spf1 +redirect=example.com", "unknown mechanism"),
    ("v=spf1 a/abc -all", "bad mechanism"),
])
def test_syntax_errors_are_named(text, message):
    with pytest.raises(SpfSyntaxError, match=message):
        parse_record(text)


def test_spf_record_selection():
    assert is_spf("v=spf1 -all") and is_spf("v=spf1") and is_spf("V=SPF1 mx")
    assert not is_spf("v=spf10 -all") and not is_spf("spf1") and not is_spf("v=DMARC1; p=none")


def test_terms_keep_qualifiers_and_prefixes():
    record = parse_record("v=spf1 -a:mail.example.com/28//48 ~mx ?include:x.example +all")
    a, mx, inc, al = record.mechanisms
    assert (a.qualifier, a.value, a.cidr4, a.cidr6) == ("-", "mail.example.com", 28, 48)
    assert mx.qualifier == "~" and inc.qualifier == "?" and al.qualifier == "+"
    assert record.all_term is al and record.redirect is None


def test_redirect_ignored_when_all_present():
    assert parse_record("v=spf1 redirect=a.example -all").redirect is None
    assert parse_record("v=spf1 mx redirect=a.example").redirect == "a.example"


# --- macros: RFC 7208 §7.4's examples ----------------------------------------------------------------

SENDER = "strong-bad@email.example.com"
IP4 = ipaddress.ip_address("192.0.2.3")
IP6 = ipaddress.ip_address("2001:db8::cb01")


@pytest.mark.parametrize("spec, expected", [
    ("%{s}", "strong-bad@email.example.com"),
    ("%{o}", "email.example.com"),
    ("%{d}", "email.example.com"),
    ("%{d4}", "email.example.com"),
    ("%{d3}", "email.example.com"),
    ("%{d2}", "example.com"),
    ("%{d1}", "com"),
    ("%{dr}", "com.example.email"),
    ("%{d2r}", "example.email"),
    ("%{l}", "strong-bad"),
    ("%{l-}", "strong.bad"),
    ("%{lr}", "strong-bad"),
    ("%{lr-}", "bad.strong"),
    ("%{l1r-}", "strong"),
    ("%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com"),
    ("%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"),
    ("%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "bad.strong.lp.3.2.0.192.in-addr._spf.example.com"),
    ("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "3.2.0.192.in-addr.strong.lp._spf.example.com"),
    ("%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net"),
    ("%%%_%-", "% %20"),
    ("%{S}", "strong-bad%40email.example.com"),
])
def test_macro_examples_from_the_rfc(spec, expected):
    assert expand(spec, IP4, "email.example.com", SENDER, "email.example.com") == expected


def test_ipv6_macro_is_nibbles():
    assert expand("%{ir}.%{v}._spf.%{d2}", IP6, "email.example.com", SENDER, "x") == (
        "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com")


def test_long_expansion_is_cut_from_the_left():
    out = expand("%{s}." + "x" * 60 + "." + "y" * 60 + "." + "z" * 60 + ".example.com", IP4, "d.example",
                 "a" * 60 + "@" + "b" * 60 + ".example", "h")
    assert len(out) <= 253 and out.endswith(".example.com")


# --- check_host ---------------------------------------------------------------------------------------

BASE = {
    ("example.com", "TXT"): ["v=spf1 mx a:web.example.com/29 ip4:198.51.100.0/24 ip6:2001:db8:1::/48 "
                             "include:_spf.partner.example -all", "google-site-verification=abc"],
    ("example.com", "MX"): ["10 mx1.example.com.", "20 mx2.example.com."],
    ("mx1.example.com", "A"): ["192.0.2.10"],
    ("mx2.example.com", "A"): ["192.0.2.20"],
    ("mx2.example.com", "AAAA"): ["2001:db8::20"],
    ("web.example.com", "A"): ["203.0.113.8"],
    ("_spf.partner.example", "TXT"): ["v=spf1 ip4:233.252.0.0/24 ~all"],
}


@pytest.mark.parametrize("ip, result, mechanism", [
    ("192.0.2.10", "pass", "mx"),
    ("2001:db8::20", "pass", "mx"),
    ("::ffff:192.0.2.20", "pass", "mx"),  # IPv4-mapped is evaluated as IPv4
    ("203.0.113.13", "pass", "a:web.example.com/29"),
    ("203.0.113.16", "fail", "-all"),
    ("198.51.100.77", "pass", "ip4:198.51.100.0/24"),
    ("2001:db8:1:ff::1", "pass", "ip6:2001:db8:1::/48"),
    ("233.252.0.9", "pass", "include:_spf.partner.example"),
    ("192.0.2.99", "fail", "-all"),
])
def test_check_host(ip, result, mechanism):
    got = evaluator(BASE).check_host(ip, "example.com")
    assert (got.result, got.mechanism) == (result, mechanism)


def test_check_host_stops_at_the_first_match():
    lookup = answers(BASE)
    got = SpfEvaluator(lookup).check_host("192.0.2.10", "example.com")
    assert got.result == "pass" and got.lookups == 1
    assert ("_spf.partner.example", "TXT") not in lookup.asked  # type: ignore[attr-defined]


@pytest.mark.parametrize("records, result", [
    ({("e.example", "TXT"): ["v=spf1 ~all"]}, "softfail"),
    ({("e.example", "TXT"): ["v=spf1 ?all"]}, "neutral"),
    ({("e.example", "TXT"): ["v=spf1 +all"]}, "pass"),
    ({("e.example", "TXT"): ["v=spf1 ip4:192.0.2.9"]}, "neutral"),  # nothing matched, no all
    ({("e.example", "TXT"): ["some other text"]}, "none"),
    ({("e.example", "A"): ["192.0.2.1"]}, "none"),
    ({("e.example", "TXT"): ["v=spf1 -all", "v=spf1 +all"]}, "permerror"),
    ({("e.example", "TXT"): ["v=spf1 bogus -all"]}, "permerror"),
    ({("e.example", "TXT"): "SERVFAIL"}, "temperror"),
    ({("e.example", "TXT"): ["v=spf1 include:none.example -all"]}, "permerror"),  # include without a record
    ({("e.example", "TXT"): ["v=spf1 include:broken.example -all"],
      ("broken.example", "TXT"): "TIMEOUT"}, "temperror"),
    ({("e.example", "TXT"): ["v=spf1 redirect=r.example"], ("r.example", "TXT"): ["v=spf1 -all"]}, "fail"),
    ({("e.example", "TXT"): ["v=spf1 redirect=r.example"]}, "permerror"),  # redirect target without a record
    ({("e.example", "TXT"): ["v=spf1 include:e.example -all"]}, "permerror"),  # loop
    ({("e.example", "TXT"): ["v=spf1 exists:%{i}.ok.example -all"], ("192.0.2.1.ok.example", "A"): ["127.0.0.2"]},
     "pass"),
    ({("e.example", "TXT"): ["v=spf1 a -all"], ("e.example", "A"): ["192.0.2.0"]}, "fail"),
    ({("e.example", "TXT"): ["v=spf1 a/24 -all"], ("e.example", "A"): ["192.0.2.0"]}, "pass"),
    ({("e.example", "TXT"): ["v=spf1 ip6:2001:db8::/32 -all"]}, "fail"),  # IPv4 never matches ip6
])
def test_check_host_results(records, result):
    assert evaluator(records).check_host("192.0.2.1", "e.example").result == result


def test_eleven_lookups_are_a_permerror():
    data = {("e.example", "TXT"): ["v=spf1 " + " ".join(f"a:h{i}.example" for i in range(11)) + " -all"]}
    data.update({(f"h{i}.example", "A"): ["198.51.100.1"] for i in range(11)})
    got = evaluator(data).check_host("192.0.2.1", "e.example")
    assert got.result == "permerror" and "more than 10" in got.reason and got.lookups == LOOKUP_LIMIT + 1


def test_third_void_lookup_is_a_permerror():
    data = {("e.example", "TXT"): ["v=spf1 a:v1.example a:v2.example a:v3.example -all"]}
    got = evaluator(data).check_host("192.0.2.1", "e.example")
    assert got.result == "permerror" and "void" in got.reason and got.void_lookups == 3
    data[("e.example", "TXT")] = ["v=spf1 a:v1.example a:v2.example -all"]
    assert evaluator(data).check_host("192.0.2.1", "e.example").result == "fail"


def test_more_than_ten_mx_hosts_is_a_permerror():
    data = {("e.example", "TXT"): ["v=spf1 mx -all"],
            ("e.example", "MX"): [f"10 mx{i}.example." for i in range(11)]}
    assert evaluator(data).check_host("192.0.2.1", "e.example").result == "permerror"


def test_ptr_matches_only_validated_names():
    data = {("e.example", "TXT"): ["v=spf1 ptr -all"],
            ("1.2.0.192.in-addr.arpa", "PTR"): ["mail.e.example.", "liar.e.example."],
            ("mail.e.example", "A"): ["192.0.2.1"], ("liar.e.example", "A"): ["198.51.100.1"]}
    assert evaluator(data).check_host("192.0.2.1", "e.example").result == "pass"
    data[("mail.e.example", "A")] = ["198.51.100.2"]
    assert evaluator(data).check_host("192.0.2.1", "e.example").result == "fail"


# --- analyze: the whole tree --------------------------------------------------------------------------

def _tree(includes: int, terms_each: int) -> dict:
    data = {("e.example", "TXT"): ["v=spf1 " + " ".join(f"include:i{n}.example" for n in range(includes)) + " -all"]}
    for n in range(includes):
        data[(f"i{n}.example", "TXT")] = ["v=spf1 " + " ".join(f"a:h{n}-{k}.example" for k in range(terms_each))
                                          + " ~all"]
        data.update({(f"h{n}-{k}.example", "A"): ["198.51.100.1"] for k in range(terms_each)})
    return data


def test_nested_lookups_are_counted_the_rfc_way():
    ok = evaluator(_tree(2, 4)).analyze("e.example")  # 2 includes + 8 a terms = 10
    assert ok.lookups == 10 and not ok.over_limit and not ok.problems
    over = evaluator(_tree(3, 4)).analyze("e.example")  # 3 + 12 = 15
    assert over.lookups == 15 and over.over_limit
    assert any("more than 10" in p for p in over.problems)
    assert over.domains == ["e.example", "i0.example", "i1.example", "i2.example"]


def test_redirect_counts_and_gives_the_effective_all():
    data = {("e.example", "TXT"): ["v=spf1 mx redirect=_spf.e.example"],
            ("e.example", "MX"): ["10 mx.e.example."], ("mx.e.example", "A"): ["192.0.2.5"],
            ("_spf.e.example", "TXT"): ["v=spf1 include:p.example ?all"],
            ("p.example", "TXT"): ["v=spf1 ip4:192.0.2.0/24 -all"]}
    a = evaluator(data).analyze("e.example")
    assert a.lookups == 3  # mx, redirect, include
    assert (a.all_qualifier, a.all_domain) == ("?", "_spf.e.example")


def test_analysis_reports_unusable_records():
    a = evaluator({("e.example", "TXT"): ["v=spf1 -all", "v=spf1 mx -all"]}).analyze("e.example")
    assert a.record is None and a.status == "permerror" and "2 SPF records" in a.error and len(a.records) == 2
    a = evaluator({("e.example", "TXT"): ["v=spf1 ip4:1.2.3.4/40 -all"]}).analyze("e.example")
    assert a.status == "permerror" and "syntax error" in a.error
    a = evaluator({}).analyze("e.example")
    assert a.status == "none" and a.record is None
    a = evaluator({("e.example", "TXT"): "TIMEOUT"}).analyze("e.example")
    assert a.status == "temperror" and "TIMEOUT" in a.error


def test_analysis_notes_broken_includes_and_keeps_going():
    data = {("e.example", "TXT"): ["v=spf1 include:gone.example include:bad.example a:v.example mx -all"],
            ("bad.example", "TXT"): ["v=spf1 ip4:999.1.1.1 -all"]}
    a = evaluator(data).analyze("e.example")
    assert a.lookups == 4 and a.void_lookups == 2
    assert any("gone.example has no SPF record" in p for p in a.problems)
    assert any("syntax error" in p for p in a.problems)


def test_self_including_trees_stop():
    data = {("e.example", "TXT"): ["v=spf1 include:a.example include:b.example -all"],
            ("a.example", "TXT"): ["v=spf1 include:b.example include:e.example -all"],
            ("b.example", "TXT"): ["v=spf1 include:a.example -all"]}
    a = evaluator(data).analyze("e.example")
    assert any("loop" in p for p in a.problems)
    assert a.lookups < 100


def test_huge_fan_out_is_capped():
    data = {("e.example", "TXT"): ["v=spf1 " + " ".join(f"include:i{n}.example" for n in range(40)) + " -all"]}
    for n in range(40):
        data[(f"i{n}.example", "TXT")] = ["v=spf1 " + " ".join(f"a:x{n}-{k}.example" for k in range(40)) + " -all"]
    lookup = answers(data)
    a = SpfEvaluator(lookup).analyze("e.example")
    assert a.over_limit and a.lookups > 60
    assert len(lookup.asked) < 200  # type: ignore[attr-defined]


# --- hostile answers ----------------------------------------------------------------------------------

@pytest.mark.parametrize("txt", [
    "v=spf1 " + "a " * 5000,
    "v=spf1 \x00\x01\x02 -all",
    "v=spf1 include:" + "a." * 200 + "example -all",
    "v=spf1 ip4:" + "9" * 500,
    "v=spf1 %{",
    "v=spf1 exists:%{i}%{i}%{i}%{i}%{i}%{i}%{i}%{i}%{i}%{i}%{i}%{i}.x.example -all",
    "v=spf1 \ufffd\ufffd -all",
])
def test_hostile_records_never_raise(txt):
    ev = evaluator({("e.example", "TXT"): [txt]})
    result = ev.check_host("192.0.2.1", "e.example")
    analysis = ev.analyze("e.example")
    assert result.result in ("pass", "fail", "softfail", "neutral", "none", "permerror", "temperror")
    assert analysis.record is not None or analysis.error


def test_garbled_address_records_are_ignored():
    data = {("e.example", "TXT"): ["v=spf1 a mx -all"], ("e.example", "A"): ["not-an-ip", "192.0.2.1"],
            ("e.example", "MX"): ["garbage", "10", "10 mx.e.example.", "x y z"], ("mx.e.example", "A"): ["\x00"]}
    assert evaluator(data).check_host("192.0.2.1", "e.example").result == "pass"
    assert evaluator(data).check_host("192.0.2.2", "e.example").result == "fail"


def test_bad_inputs_to_check_host():
    assert evaluator({}).check_host("not-an-ip", "e.example").result == "permerror"
    assert evaluator({}).check_host("192.0.2.1", "nodot").result == "none"
    assert evaluator({}).check_host("192.0.2.1", "a..b.example").result == "none"


def test_past_its_dns_budget_the_evaluator_stops_asking():
    lookup = answers(BASE)
    result = SpfEvaluator(lookup, budget=-1).check_host("192.0.2.10", "example.com")
    assert result.result == "temperror" and "TIMEOUT" in result.reason
    assert lookup.asked == []  # type: ignore[attr-defined]
