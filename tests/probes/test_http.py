"""The HTTP and Mastodon-exposure probes' parsing and the checks' judgements, with small inputs, and
hostile answers from a throw-away socket server on loopback (malformed status lines, oversized headers,
huge or malformed JSON) that must end as a clear error or problem, never an exception."""

from __future__ import annotations

import json
import socket
import threading
from contextlib import contextmanager

import pytest

from mastoaudit.facts import FactSet
from mastoaudit.facts import http as fh
from mastoaudit.facts import mastodon as fm
from mastoaudit.model import Status
from mastoaudit.net.http import HttpClient
from mastoaudit.net.target import ScanTarget
from mastoaudit.probes import http_headers as hh
from mastoaudit.probes import mastodon_api as ma
from tests.conftest import check_fn
from tests.net.test_csp import MASTODON, MASTODON_41

WEB = "example.social"
BASE = (("x-frame-options", "DENY"), ("x-content-type-options", "nosniff"), ("referrer-policy", "same-origin"),
        ("content-security-policy", MASTODON), ("strict-transport-security", "max-age=63072000; includeSubDomains"),
        ("server", "nginx"))


def obs(label: str, url: str, status: int | None = 200, headers=BASE, **kw) -> fh.Observation:
    return fh.Observation(label, url, kw.pop("method", "GET"), status, tuple(headers), url, **kw)


def site(*observations: fh.Observation, media_hosts=()) -> fh.HttpSite:
    return fh.HttpSite(WEB, WEB, list(observations), tuple(media_hosts))


def hardened_site() -> fh.HttpSite:
    media = (("content-security-policy", "default-src 'none'; form-action 'none'"),
             ("x-content-type-options", "nosniff"), ("access-control-allow-origin", "*"),
             ("strict-transport-security", "max-age=63072000; includeSubDomains"))
    return site(obs("home", f"https://{WEB}/"), obs("about", f"https://{WEB}/about"),
                obs("http", f"http://{WEB}/", 301, (("location", f"https://{WEB}/"),)),
                obs("media", "https://files.example.social/a/b.png", headers=media, source="test"),
                obs("media-preflight", "https://files.example.social/a/b.png", 403, (), method="OPTIONS"),
                media_hosts=("files.example.social",))


def run(check_id: str, *facts_items) -> list:
    facts = FactSet(WEB)
    for kind, fact in facts_items:
        facts.add(kind, fact)
    return list(check_fn(check_id)(facts))


def statuses(outcomes) -> list[str]:
    return [o.status.value for o in outcomes]


# --- header parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value,age,subs,preload,valid", [
    ("max-age=63072000; includeSubDomains; preload", 63072000, True, True, True),
    ('MAX-AGE="31536000"', 31536000, False, False, True),
    ("includeSubDomains", None, True, False, False),
    ("max-age=abc", None, False, False, False),
    ("max-age=1; max-age=2", 2, False, False, False),
    ("max-age=" + "9" * 50, None, False, False, False),
    ("\x00\xff;;;", None, False, False, False),
])
def test_parse_hsts(value, age, subs, preload, valid):
    h = fh.parse_hsts(value)
    assert (h.max_age, h.include_subdomains, h.preload, h.valid) == (age, subs, preload, valid)


def test_referrer_policy_last_recognised_token_wins():
    assert fh.referrer_policy(["no-referrer, strict-origin-when-cross-origin"]) == "strict-origin-when-cross-origin"
    assert fh.referrer_policy(["unsafe-url", "bogus"]) == "unsafe-url"
    assert fh.referrer_policy(["\x00junk"]) is None


def test_frame_options_values():
    assert fh.frame_options(["deny"]) == "DENY"
    assert fh.frame_options([]) is None
    assert fh.frame_options(["DENY, SAMEORIGIN"]).startswith("invalid:")
    assert fh.frame_options(["ALLOW-FROM https://x"]).startswith("invalid:")


def test_cookie_values_are_never_kept():
    kept = hh._clean_headers([("set-cookie", "_mastodon_session=SECRETVALUE; path=/; secure; HttpOnly; SameSite=Lax")])
    assert kept == (("set-cookie", "_mastodon_session=…; path=/; secure; HttpOnly; SameSite=Lax"),)
    cookie = fh.parse_cookies([kept[0][1]])[0]
    assert (cookie.name, cookie.secure, cookie.httponly, cookie.samesite) == ("_mastodon_session", True, True, "lax")


def test_oversized_and_numerous_headers_are_bounded():
    kept = hh._clean_headers([("x-junk", "A" * 100_000)] * 500)
    assert len(kept) == 200 and len(kept[0][1]) == hh.MAX_HEADER_CHARS


def test_cors_verdicts():
    star = obs("media", "https://m/x", headers=(("access-control-allow-origin", "*"),))
    assert fh.cors_verdict(star)[0] == "ok"
    reflected = obs("media", "https://m/x", headers=(("access-control-allow-origin", fh.PROBE_ORIGIN),
                                                     ("access-control-allow-credentials", "true")))
    assert fh.cors_verdict(reflected)[0] == "fail"
    writes = obs("media", "https://m/x", headers=(("access-control-allow-origin", "*"),
                                                  ("access-control-allow-methods", "GET, PUT")))
    verdict, seen = fh.cors_verdict(writes)
    assert verdict == "fail" and "PUT" in seen


@pytest.mark.parametrize("status,location,result", [
    (301, f"https://{WEB}/", "to-https"), (302, f"https://{WEB}/", "to-https"),
    (301, "https://www.example.social/", "off-host"), (301, f"http://{WEB}/x", "not-to-https"),
    (200, None, "missing"), (403, None, "no-redirect"),
])
def test_redirect_verdict(status, location, result):
    headers = (("location", location),) if location else ()
    assert fh.redirect_verdict(obs("http", f"http://{WEB}/", status, headers), WEB)[0] == result


def test_redirect_verdict_without_an_answer():
    refused = fh.Observation("http", f"http://{WEB}/", error="connection refused", refused=True)
    assert fh.redirect_verdict(refused, WEB)[0] == "no-http"


# --- grade -----------------------------------------------------------------------------------------------


def test_grade_of_mastodon_headers_is_a_plus():
    grade = hh.observatory_grade(hardened_site())
    assert grade["grade"] == "A+" and grade["score"] == 120
    assert {t["test"] for t in grade["tests"]} >= {"content-security-policy", "cookies", "redirection",
                                                   "strict-transport-security", "x-frame-options"}


def test_grade_without_hsts_and_redirect_is_c_plus_and_bonuses_drop():
    headers = [h for h in BASE if h[0] != "strict-transport-security"]
    headers = [(k, MASTODON_41 if k == "content-security-policy" else v) for k, v in headers]
    s = site(obs("home", f"https://{WEB}/", headers=headers), obs("http", f"http://{WEB}/", 200, headers))
    grade = hh.observatory_grade(s)
    assert (grade["score"], grade["grade"], grade["bonuses_applied"]) == (60, "C+", False)
    outcome = run("http.observatory-grade", ("http_grade", grade))[0]
    assert outcome.status is Status.WARN
    assert "redirection -20" in outcome.message and "strict-transport-security -20" in outcome.message
    assert "+5" not in outcome.message


def test_grade_of_a_bare_site_fails_and_never_goes_negative():
    s = site(obs("home", f"https://{WEB}/", headers=(("set-cookie", "sessionid=…"),
                                                     ("access-control-allow-origin", fh.PROBE_ORIGIN),
                                                     ("access-control-allow-credentials", "true"))),
             obs("http", f"http://{WEB}/", 200, ()))
    grade = hh.observatory_grade(s)
    assert grade["score"] == 0 and grade["grade"] == "F"
    assert run("http.observatory-grade", ("http_grade", grade))[0].status is Status.FAIL


def test_no_home_page_no_grade():
    grade = hh.observatory_grade(site(fh.Observation("home", f"https://{WEB}/", error="timed out")))
    assert grade["score"] is None
    assert statuses(run("http.observatory-grade", ("http_grade", grade))) == ["skip"]


# --- media discovery ---------------------------------------------------------------------------------


def test_media_hosts_from_csp():
    from mastoaudit.net import csp
    assert hh.media_hosts_from_csp(csp.parse_header_values([MASTODON]), WEB) == ["files.example.social"]
    old = "img-src 'self' https: data:; connect-src 'self' https://files.example.social wss://example.social"
    assert hh.media_hosts_from_csp(csp.parse_header_values([old]), WEB) == ["files.example.social"]


def test_media_from_instance_keeps_own_uploads_only_and_survives_wrong_types():
    doc = {"thumbnail": {"url": f"https://{WEB}/system/site_uploads/files/1/x.png"},
           "contact": {"account": {"avatar": "https://files.example.social/accounts/avatars/1.png",
                                   "header": "https://evil.example/x.png"}}}
    assert [u for u, _ in hh.media_from_instance(doc, WEB, ["files.example.social"])] == [
        f"https://{WEB}/system/site_uploads/files/1/x.png", "https://files.example.social/accounts/avatars/1.png"]
    for hostile in (None, [], "x", {"thumbnail": ["a"]}, {"thumbnail": {"url": 5}}, {"contact": {"account": []}},
                    {"thumbnail": {"url": "javascript:alert(1)"}}, {"thumbnail": {"url": "https://" + "a" * 5000}}):
        assert hh.media_from_instance(hostile, WEB, []) == []


def test_load_json_refuses_junk_and_deep_nesting():
    assert hh.load_json(b"\xff\xfe\x00junk") is None
    assert hh.load_json(b"[" * 200_000) is None
    assert hh.load_json(b'{"a": 1}') == {"a": 1}


# --- the http checks' judgements -----------------------------------------------------------------


def test_hardened_site_passes_every_http_check():
    s = hardened_site()
    for check in ("http.hsts", "http.redirect", "http.csp", "http.media-headers", "http.nosniff", "http.frame-options",
                  "http.referrer-policy", "http.permissions-policy", "http.server-leak", "http.media-cors"):
        found = run(check, ("http_site", s))
        assert found and all(o.status is Status.PASS for o in found), (check, found)


def test_frame_options_both_ways():
    framed = [(k, v) for k, v in BASE if k not in ("x-frame-options", "content-security-policy")]
    assert statuses(run("http.frame-options", ("http_site", site(obs("home", f"https://{WEB}/",
                                                                                 headers=framed))))) == ["fail"]
    only_csp = [(k, v) for k, v in BASE if k != "x-frame-options"]
    assert statuses(run("http.frame-options", ("http_site", site(obs("home", f"https://{WEB}/",
                                                                                 headers=only_csp))))) == ["pass"]


@pytest.mark.parametrize("value,status", [("same-origin", "pass"), ("unsafe-url", "fail"),
                                          ("no-referrer-when-downgrade", "warn"), ("bogus", "warn"), (None, "warn")])
def test_referrer_policy_judgement(value, status):
    headers = [(k, v) for k, v in BASE if k != "referrer-policy"] + ([("referrer-policy", value)] if value else [])
    found = run("http.referrer-policy", ("http_site", site(obs("home", f"https://{WEB}/", headers=headers))))
    assert statuses(found) == [status]


def test_permissions_policy_judgement():
    for value, status in (("camera=(), microphone=()", "pass"), ("camera=*, geolocation=(self)", "warn")):
        headers = [*BASE, ("permissions-policy", value)]
        assert statuses(run("http.permissions-policy",
                            ("http_site", site(obs("home", f"https://{WEB}/", headers=headers))))) == [status]


def test_hsts_short_max_age_and_partial_coverage():
    short = [(k, "max-age=86400" if k == "strict-transport-security" else v) for k, v in BASE]
    found = run("http.hsts", ("http_site", site(obs("home", f"https://{WEB}/", headers=short))))
    assert found[0].status is Status.FAIL and "86400" in found[0].observed
    no_hsts = [h for h in BASE if h[0] != "strict-transport-security"]
    partial = site(obs("home", f"https://{WEB}/"), obs("instance", f"https://{WEB}/api/v2/instance", headers=no_hsts))
    assert run("http.hsts", ("http_site", partial))[0].status is Status.WARN
    preload = run("http.hsts", ("http_site", hardened_site()))[1]
    assert preload.subject == "HSTS preload" and "preload token" in preload.observed


def test_temporary_redirect_warns_and_plain_content_fails():
    temp = site(obs("http", f"http://{WEB}/", 302, (("location", f"https://{WEB}/"),)))
    assert statuses(run("http.redirect", ("http_site", temp))) == ["warn"]
    plain = site(obs("http", f"http://{WEB}/", 200, BASE))
    assert statuses(run("http.redirect", ("http_site", plain))) == ["fail"]


def test_server_leaks():
    leaky = site(obs("home", f"https://{WEB}/", headers=[*BASE, ("x-powered-by", "Phusion Passenger 6.0")]))
    assert run("http.server-leak", ("http_site", leaky))[0].status is Status.FAIL
    runtime = site(obs("home", f"https://{WEB}/", headers=[*BASE, ("x-runtime", "0.012")]))
    assert run("http.server-leak", ("http_site", runtime))[0].status is Status.WARN


def test_media_checks_skip_without_media():
    assert statuses(run("http.media-headers", ("http_site", site()))) == ["skip"]
    assert statuses(run("http.media-cors", ("http_site", site()))) == ["skip"]


# --- NodeInfo ----------------------------------------------------------------------------------------------


def index(*links) -> bytes:
    return json.dumps({"links": list(links)}).encode()


def link(version: str, href: str = "https://example.social/nodeinfo/x") -> dict:
    return {"rel": f"http://nodeinfo.diaspora.software/ns/schema/{version}", "href": href}


def test_nodeinfo_index_picks_the_highest_2x():
    href, schema, problem = ma.parse_nodeinfo_index(index(link("2.0", "https://a/2.0"), link("2.1", "https://a/2.1"),
                                                          link("1.0", "https://a/1.0")))
    assert (href, schema, problem) == ("https://a/2.1", "2.1", None)


def test_nodeinfo_index_links_as_a_single_object():
    body = json.dumps({"links": link("2.0")}).encode()
    assert ma.parse_nodeinfo_index(body)[1] == "2.0"


@pytest.mark.parametrize("body", [b"", b"\x00\xff", b"[]", b'{"links": "x"}', b'{"links": [1, null, "a"]}',
                                  index({"rel": 5, "href": "https://a"}), index(link("2.0", "javascript:alert(1)")),
                                  index(link("3.0")), index(link("1.1")), b"[" * 100_000,
                                  json.dumps({"links": [link("2.0")] * 10, "pad": "x" * 70_000}).encode()])
def test_nodeinfo_index_hostile(body):
    href, _, problem = ma.parse_nodeinfo_index(body)
    assert href is None and problem
    assert "\x00" not in problem and len(problem) < 400


def test_nodeinfo_document():
    doc = {"version": "2.1", "software": {"name": "mastodon", "version": "4.5.11"}, "protocols": ["activitypub"],
           "openRegistrations": False, "usage": {"users": {"total": 3}}}
    parsed = ma.parse_nodeinfo_document(json.dumps(doc).encode())
    assert parsed == {"software_name": "mastodon", "software_version": "4.5.11", "protocols": ("activitypub",),
                      "open_registrations": False, "users_total": 3, "problem": None}


@pytest.mark.parametrize("doc", [
    {"software": {"name": "mastodon", "version": 4.5}},
    {"software": {"name": ["x"], "version": "1"}},
    {"software": "mastodon"},
    {"software": {"name": "mast\x1bodon", "version": "4.5.11"}},
    {"software": {"name": "mastodon", "version": "9" * 500}},
    {"software": {"name": "mastodon\u202e", "version": "4.5.11"}},
])
def test_nodeinfo_document_wrong_types(doc):
    parsed = ma.parse_nodeinfo_document(json.dumps(doc).encode())
    assert parsed["problem"]
    assert "\x1b" not in parsed["problem"]


def test_nodeinfo_document_oddities_do_not_crash():
    odd = {"software": {"name": "x", "version": "1"}, "protocols": {"inbound": ["activitypub"], "outbound": 3},
           "usage": {"users": {"total": True}}, "openRegistrations": "yes"}
    parsed = ma.parse_nodeinfo_document(json.dumps(odd).encode())
    assert parsed["protocols"] == ("activitypub",) and parsed["users_total"] is None
    assert parsed["open_registrations"] is None
    assert ma.parse_nodeinfo_document(b"x" * (ma.NODEINFO_BYTES + 1))["problem"].startswith("document larger")


# --- exposure parsing and judgements -----------------------------------------------------------------


def test_actor_from_webfinger_stays_on_the_instance():
    jrd = {"links": [{"rel": "self", "type": "application/activity+json", "href": "https://evil.example/users/a"},
                     {"rel": "self", "type": "application/activity+json", "href": f"https://{WEB}/users/a"}]}
    assert ma.actor_from_webfinger(json.dumps(jrd).encode(), {WEB}) == f"https://{WEB}/users/a"
    for hostile in (b"", b"[]", b'{"links": {}}', b'{"links": [{"rel": "self", "href": 3, "type": []}]}'):
        assert ma.actor_from_webfinger(hostile, {WEB}) is None


def test_local_usernames_from_api_answers():
    docs = [{"contact": {"account": {"username": "admin", "acct": "admin"}}},
            [{"account": {"username": "remote", "acct": "remote@elsewhere"}}, {"username": "bob"}],
            [{"account": {"username": "<script>"}}], None, "x"]
    assert ma._local_usernames(docs) == ["admin", "bob"]


def test_recognise_bodies():
    assert ma._recognise("sidekiq", 200, b"<title>Sidekiq</title>") == (True, None)
    assert ma._recognise("sidekiq", 302, b"Sidekiq") == (False, None)
    assert ma._recognise("metrics", 200, b"# HELP x y\nx 1\n") == (True, None)
    assert ma._recognise("peers", 200, b'["a", "b"]') == (True, 2)
    assert ma._recognise("peers", 200, b"[" * 100_000) == (False, None)
    assert ma._recognise("actor", 200, b'{"id": "https://x", "type": "Person"}') == (True, None)


def exposure(*endpoints: fm.Endpoint, web=WEB, local=WEB, **expects) -> fm.MastodonExposure:
    return fm.MastodonExposure(web, local, expects, list(endpoints))


def ep(name: str, status: int | None, recognised=False, **kw) -> fm.Endpoint:
    return fm.Endpoint(name, kw.pop("vhost", f"https://{WEB}"), kw.pop("url", f"https://{WEB}/x"),
                       status=status, recognised=recognised, **kw)


@pytest.mark.parametrize("expects,status,severity", [({"AUTHORIZED_FETCH": True}, "fail", "medium"),
                                                     ({"AUTHORIZED_FETCH": False}, "warn", "low"),
                                                     ({}, "warn", "info")])
def test_unsigned_actor_fetch_follows_the_expectation(expects, status, severity):
    found = run("exposure.unsigned-actor-fetch", ("mastodon_exposure", exposure(ep("actor", 200, True), **expects)))
    assert (found[0].status.value, found[0].severity.value) == (status, severity)
    refused = run("exposure.unsigned-actor-fetch", ("mastodon_exposure", exposure(ep("actor", 401), **expects)))
    assert statuses(refused) == ["pass"]


def test_public_timeline_follows_the_expectation():
    found = run("exposure.public-timeline", ("mastodon_exposure", exposure(
        ep("timeline", 200, True, count=1), DISALLOW_UNAUTHENTICATED_API_ACCESS=True)))
    assert statuses(found) == ["fail"]
    assert statuses(run("exposure.public-timeline", ("mastodon_exposure", exposure(ep("timeline", 422))))) == ["pass"]


def test_dashboards():
    found = run("exposure.sidekiq-dashboard", ("mastodon_exposure", exposure(
        ep("sidekiq", 200, True), ep("sidekiq", 302, location=f"https://{WEB}/auth/sign_in"), ep("sidekiq", 404),
        ep("sidekiq", 200, excerpt="<html>catch-all"), ep("sidekiq", None, refused=True, error="refused"))))
    assert statuses(found) == ["fail", "pass", "pass", "warn"]
    assert found[0].severity is None  # the check's own: critical
    assert statuses(run("exposure.pghero-dashboard", ("mastodon_exposure", exposure()))) == ["skip"]


def test_local_domain_webfinger_both_ways():
    web, local = "social.example.org", "example.org"
    ok = ep("webfinger-local", 301, url=f"https://{local}/.well-known/webfinger?resource=acct%3Aa%40{local}",
            location=f"https://{web}/.well-known/webfinger?resource=acct%3Aa%40{local}")
    assert statuses(run("exposure.local-domain-webfinger",
                        ("mastodon_exposure", exposure(ok, web=web, local=local)))) == ["pass"]
    bad = ep("webfinger-local", 404, url=f"https://{local}/.well-known/webfinger")
    assert statuses(run("exposure.local-domain-webfinger",
                        ("mastodon_exposure", exposure(bad, web=web, local=local)))) == ["warn"]
    assert statuses(run("exposure.local-domain-webfinger", ("mastodon_exposure", exposure()))) == ["skip"]


def test_streaming_metrics_and_lists():
    found = run("exposure.streaming-metrics", ("mastodon_exposure", exposure(
        ep("metrics", 200, True, excerpt="# HELP x"), ep("metrics", 401), ep("metrics", None, refused=True))))
    assert statuses(found) == ["fail", "pass"]
    assert statuses(run("exposure.peers-list", ("mastodon_exposure", exposure(ep("peers", 200, True, count=9))))) \
        == ["warn"]
    assert statuses(run("exposure.domain-blocks", ("mastodon_exposure", exposure(ep("domain-blocks", 404))))) \
        == ["pass"]


# --- hostile answers over a real socket --------------------------------------------------------------


@contextmanager
def hostile_server(answers):
    """Answers each request with the raw bytes for its path (the first line's path), then closes.
    `answers` is a dict, or a function of the server's port giving one."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv.settimeout(0.2)
    port = srv.getsockname()[1]
    table = answers(port) if callable(answers) else answers
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    request = conn.recv(65536).decode("latin-1")
                    path = request.split(" ", 2)[1] if request.count(" ") >= 2 else "/"
                    conn.sendall(table.get(path, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"))
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        thread.join(2)
        srv.close()


def client() -> HttpClient:
    return HttpClient(ScanTarget(name="hostile.test", local_domain="hostile.test", web_domain="hostile.test",
                                 addresses=("127.0.0.1",), timeout=2))


def ok(body: bytes, ctype: bytes = b"application/json") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: " + ctype + b"\r\nContent-Length: " + str(len(body)).encode() + \
        b"\r\nConnection: close\r\n\r\n" + body


def test_hostile_http_answers_become_errors_not_exceptions():
    answers = {
        "/junk": b"\x00\xff\xfe garbage \x1b[31m\r\n\r\n",
        "/huge-header": b"HTTP/1.1 200 OK\r\nX-Big: " + b"A" * 200_000 + b"\r\n\r\n",
        "/many-headers": b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * 500 + b"\r\n",
        "/big-body": ok(b"x" * (hh.PAGE_BYTES * 3), b"text/html"),
    }
    with hostile_server(answers) as port:
        base = f"http://hostile.test:{port}"
        results = hh.run_all(client(), [{"label": p.strip("/"), "url": base + p} for p in answers])
    by = {o.label: o for o, _ in results}
    for name in ("junk", "huge-header", "many-headers"):
        assert by[name].status is None and by[name].error, by[name]
        assert "\x1b" not in by[name].error and "\x00" not in by[name].error
    assert by["big-body"].status == 200
    assert len(results[3][1]) == hh.PAGE_BYTES


def fetch(answers) -> fm.NodeInfo:
    with hostile_server(answers) as port:
        return ma.fetch_nodeinfo(client(), "hostile.test", base_url=f"http://hostile.test:{port}")


def test_nodeinfo_over_a_socket():
    doc = {"software": {"name": "mastodon", "version": "4.5.11"}, "protocols": ["activitypub"]}

    def answers(port):
        idx = {"links": {"rel": "http://nodeinfo.diaspora.software/ns/schema/2.1",
                         "href": f"http://hostile.test:{port}/nodeinfo/2.1"}}
        return {"/.well-known/nodeinfo": ok(json.dumps(idx).encode()), "/nodeinfo/2.1": ok(json.dumps(doc).encode())}

    info = fetch(answers)
    assert info.ok and (info.software_name, info.software_version, info.schema) == ("mastodon", "4.5.11", "2.1")


def test_hostile_nodeinfo_over_a_socket():
    huge = ok(b'{"links": [' + b'{"rel": "x", "href": "y"},' * 10_000 + b"{}]}")
    info = fetch({"/.well-known/nodeinfo": huge})
    assert not info.ok and "larger than" in info.problem and not info.missing
    info = fetch({"/.well-known/nodeinfo": ok(b"\x00\x01not json\xff")})
    assert "not a JSON object" in info.problem and "\x00" not in info.problem
    info = fetch({})
    assert info.missing and "404" in info.problem

    def huge_doc(port):
        idx = {"links": [{"rel": "http://nodeinfo.diaspora.software/ns/schema/2.0",
                          "href": f"http://hostile.test:{port}/nodeinfo/2.0"}]}
        return {"/.well-known/nodeinfo": ok(json.dumps(idx).encode()),
                "/nodeinfo/2.0": ok(b'{"software": {"name": "' + b"m" * 100_000 + b'"}}')}

    info = fetch(huge_doc)
    assert "document larger than" in info.problem


def test_configured_media_host_may_carry_a_scheme_and_a_path():
    from mastoaudit.net.target import S3Settings
    target = ScanTarget(name=WEB, local_domain=WEB, web_domain=WEB, media_host="https://Files.Example.Social/bucket/",
                        s3=S3Settings("https://s3.example", "bucket", alias_host=WEB, public_object="a b/c.png"))
    assert hh.configured_media(target) == ["Files.Example.Social/bucket"]  # the web domain is not a media host
    assert hh.media_host_name("Files.Example.Social/bucket") == "files.example.social"
    urls = [c["url"] for c in hh._media_candidates(target, hh.configured_media(target))]
    assert urls == [f"https://{WEB}/system/a%20b/c.png", "https://Files.Example.Social/bucket/a%20b/c.png"]
