"""HTTP probe: what the instance's web and media hosts answer (status, headers, redirects) on a few
representative URLs, and a score in the manner of Mozilla's HTTP Observatory.

Facts:
- `http_site` (HttpSite): every observation, labelled (home, about, instance, webfinger, http,
  media, media-preflight, http-media), and the media hosts found;
- `http_grade` (dict): the score, the grade and the test-by-test breakdown (plain data, for reports).

Everything here is read from the network: header values are bounded and shown escaped; cookie
values are never kept.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote, urlsplit

from ..facts.http import (
    ONE_YEAR,
    PRIVATE_REFERRER,
    PROBE_ORIGIN,
    SIX_MONTHS,
    UNSAFE_REFERRER,
    HttpSite,
    Observation,
    cors_verdict,
    frame_options,
    is_session_cookie,
    nosniff,
    parse_cookies,
    parse_hsts,
    redirect_verdict,
    referrer_policy,
)
from ..grade import letter
from ..net import csp
from ..net.csp import escape
from ..net.http import HttpClient, HttpError
from ..net.runner import ProbeContext, ProbeFact, ProbeProblem, probe
from ..net.target import ScanTarget

PAGE_BYTES = 256 * 1024
MEDIA_BYTES = 16 * 1024
MAX_HEADER_CHARS = 8192  # one header value as kept in the fact
MAX_MEDIA_URLS = 4
POOL = 6


# --- observations ---------------------------------------------------------------------------------


def _clean_headers(pairs: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    kept = []
    for name, value in list(pairs)[:200]:
        value = value if len(value) <= MAX_HEADER_CHARS else value[:MAX_HEADER_CHARS]
        if name == "set-cookie":  # the value may be a session: keep the name and the attributes only
            first, _, attrs = value.partition(";")
            value = f"{first.split('=', 1)[0].strip()}=…" + (f";{attrs}" if attrs else "")
        kept.append((name, value))
    return tuple(kept)


def observe(http: HttpClient, label: str, url: str, *, method: str = "GET", headers: dict[str, str] | None = None,
            follow: bool = False, max_body: int = PAGE_BYTES, address: str | None = None,
            source: str = "") -> tuple[Observation, bytes]:
    """One request; never raises. Returns the observation and the (bounded) body."""
    try:
        r = http.get(url, method=method, headers=headers, follow=follow, max_body=max_body, address=address)
    except HttpError as exc:
        text = str(exc)
        return Observation(label, url, method, error=escape(text, 300), source=source,
                           refused="refused" in text.lower()), b""
    excerpt = escape(r.body[:200].decode("utf-8", "replace"), 200)
    return Observation(label, url, method, r.status, _clean_headers(r.headers), r.url, tuple(r.redirects), None,
                       excerpt, r.cert_verified, source), r.body


def run_all(http: HttpClient, requests: list[dict], pool: int = POOL) -> list[tuple[Observation, bytes]]:
    """Run requests (keyword arguments of `observe`) concurrently, results in the same order."""
    if not requests:
        return []
    with ThreadPoolExecutor(max_workers=min(pool, len(requests)), thread_name_prefix="http") as ex:
        return list(ex.map(lambda kw: observe(http, **kw), requests))


def load_json(body: bytes) -> object | None:
    """JSON from the network: None when it is not JSON (or nested too deep to read)."""
    try:
        return json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError, UnicodeDecodeError):
        return None


# --- media discovery ------------------------------------------------------------------------------


def media_hosts_from_csp(policies: list[csp.Policy], web_domain: str) -> list[str]:
    """Hosts the app's CSP allows images and media from, other than itself: the media host. Before
    4.2 img-src was `https:`; connect-src (https sources only, not the wss streaming URL) names it."""
    found: list[str] = []
    for p in policies:
        sources = [*(p.get("img-src") or ()), *(p.get("media-src") or ()),
                   *(s for s in p.get("connect-src") or () if s.startswith("https://"))]
        for host in csp.host_sources(tuple(sources)):
            if host != web_domain and "*" not in host and host not in found:
                found.append(host)
    return found


def _strings(doc: object, *path: str) -> list[str]:
    """Strings at a path of keys in JSON (lists are walked); wrong types are ignored."""
    items = [doc]
    for key in path:
        nxt = []
        for item in items:
            for one in item if isinstance(item, list) else [item]:
                if isinstance(one, dict) and key in one:
                    nxt.append(one[key])
        items = nxt
    return [s for s in items if isinstance(s, str) and len(s) < 2048]


def media_from_instance(doc: object, web_domain: str, media_hosts: Iterable[str]) -> list[tuple[str, str]]:
    """User-uploaded files the instance document links to (thumbnail, contact's avatar), kept only
    when served by the instance: /system/ on the web domain, or a media host."""
    hosts = set(media_hosts)
    found = []
    for path, what in ((("thumbnail", "url"), "the instance thumbnail"),
                       (("contact", "account", "avatar"), "the contact account's avatar"),
                       (("contact", "account", "header"), "the contact account's header")):
        for url in _strings(doc, *path):
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
            if parts.scheme != "https" or "missing.png" in parts.path:
                continue
            if (host == web_domain and parts.path.startswith("/system/")) or host in hosts:
                found.append((url, what))
    return found


# --- header judgements shared by the checks and the grade ----------------------------------------


# --- the Observatory-style grade ------------------------------------------------------------------

# The bands (GRADES, letter) live in mastoaudit/grade.py, shared with the report's grades.


def _test(name: str, result: str, points: int, detail: str) -> dict:
    return {"test": name, "result": result, "points": points, "detail": detail}


def _grade_csp(home: Observation) -> dict:
    policies = csp.parse_header_values(home.header_all("content-security-policy"))
    if not policies:
        only_report = bool(home.header_all("content-security-policy-report-only"))
        return _test("content-security-policy", "report-only" if only_report else "not-implemented", -25,
                     "only Content-Security-Policy-Report-Only (not enforced)" if only_report
                     else "no Content-Security-Policy header")
    if all(p.empty for p in policies):
        return _test("content-security-policy", "header-invalid", -25, "no directive could be read")

    def all_have(pred) -> bool:
        return all(pred(p) for p in policies)

    if all_have(lambda p: p.effective("script-src") is None or csp.allows_inline(p.effective("script-src"))
                or bool(csp.broad_sources(p.effective("script-src") or ()))):
        return _test("content-security-policy", "unsafe-inline", -20,
                     "script-src allows inline script or any source (or is missing)")
    if all_have(lambda p: bool(csp.insecure_hosts(p.effective("script-src") or ())
                               or csp.insecure_hosts(p.effective("object-src") or ()))):
        return _test("content-security-policy", "insecure-scheme", -20, "scripts or objects over plain http")
    if all_have(lambda p: "'unsafe-eval'" in (p.effective("script-src") or ())):
        return _test("content-security-policy", "unsafe-eval", -10, "script-src allows 'unsafe-eval'")
    if all_have(lambda p: any(csp.insecure_hosts(p.effective(d) or ()) for d in ("img-src", "media-src"))):
        return _test("content-security-policy", "insecure-scheme-passive", -10, "images or media over plain http")
    if all_have(lambda p: csp.allows_inline(p.effective("style-src"))):
        return _test("content-security-policy", "unsafe-inline-style-only", 0,
                     "no unsafe script sources; style-src allows 'unsafe-inline'")
    if any(csp.is_none(p.get("default-src")) for p in policies):
        return _test("content-security-policy", "default-none", 10, "default-src 'none' and no unsafe sources")
    return _test("content-security-policy", "implemented", 0, "no unsafe sources")


def _grade_hsts(home: Observation) -> dict:
    values = home.header_all("strict-transport-security")
    if home.cert_verified is False:
        return _test("strict-transport-security", "invalid-cert", -20,
                     "the certificate does not verify: browsers ignore HSTS")
    if not values:
        return _test("strict-transport-security", "not-implemented", -20, "no Strict-Transport-Security header")
    hsts = parse_hsts(values[0])
    if not hsts.valid:
        return _test("strict-transport-security", "header-invalid", -20, "; ".join(hsts.problems))
    if hsts.max_age is not None and hsts.max_age < SIX_MONTHS:
        return _test("strict-transport-security", "max-age-under-six-months", -10, f"max-age={hsts.max_age}")
    if hsts.preload and hsts.include_subdomains and (hsts.max_age or 0) >= ONE_YEAR:
        return _test("strict-transport-security", "preload-ready", 5, "max-age ≥ 1 year, includeSubDomains, preload")
    return _test("strict-transport-security", "implemented", 0, f"max-age={hsts.max_age}")


def _grade_cookies(pages: list[Observation], hsts_ok: bool) -> dict:
    cookies = [c for o in pages for c in parse_cookies(o.header_all("set-cookie"))]
    if not cookies:
        return _test("cookies", "not-found", 0, "no cookies set")
    bad_samesite = [c.name for c in cookies if c.samesite not in (None, "strict", "lax", "none")]
    if bad_samesite:
        return _test("cookies", "samesite-invalid", -20, f"invalid SameSite on {', '.join(bad_samesite)}")
    insecure = [c for c in cookies if not c.secure]
    insecure_session = [c.name for c in insecure if is_session_cookie(c.name)]
    if insecure_session:
        points = -10 if hsts_ok else -40
        return _test("cookies", "session-without-secure", points, f"session cookies without Secure: "
                     f"{', '.join(insecure_session)}" + (" (HSTS protects them)" if hsts_ok else ""))
    if insecure:
        points = -5 if hsts_ok else -20
        return _test("cookies", "without-secure", points, f"cookies without Secure: "
                     f"{', '.join(c.name for c in insecure)}")
    no_httponly = [c.name for c in cookies if is_session_cookie(c.name) and not c.httponly]
    if no_httponly:
        return _test("cookies", "session-without-httponly", -10, f"session cookies without HttpOnly: "
                     f"{', '.join(no_httponly)}")
    if all(c.samesite in ("strict", "lax") for c in cookies if is_session_cookie(c.name)):
        return _test("cookies", "secure-httponly-samesite", 5, "Secure, HttpOnly sessions, SameSite")
    return _test("cookies", "secure-httponly", 0, "Secure, HttpOnly sessions")


def observatory_grade(site: HttpSite) -> dict:
    """A score out of 100 (bonuses may take it above) with the tests that moved it. The rubric is
    mastoaudit's own, modelled on the HTTP Observatory's published tests; SRI is not tested."""
    home = site.first("home")
    if home is None or not home.answered:
        return {"score": None, "grade": None, "url": f"https://{site.web_domain}/", "tests": [],
                "note": "the home page did not answer"}
    tests = [_grade_csp(home)]
    hsts = _grade_hsts(home)
    cookies = _grade_cookies(site.pages(), hsts["points"] >= 0)
    tests.append(cookies)
    result, detail = cors_verdict(home)
    tests.append(_test("cross-origin-resource-sharing",
                       "universal-access" if result == "fail" else "public-or-none",
                       -50 if result == "fail" else 0, detail))
    result, points, detail = redirect_verdict(site.first("http"), site.web_domain)
    tests.append(_test("redirection", result, points, detail))
    ref_values = home.header_all("referrer-policy")
    policy = referrer_policy(ref_values)
    if policy in PRIVATE_REFERRER:
        tests.append(_test("referrer-policy", "private", 5, policy))
    elif policy == "no-referrer-when-downgrade":
        tests.append(_test("referrer-policy", policy, 0, policy))
    elif policy in UNSAFE_REFERRER:
        tests.append(_test("referrer-policy", "unsafe", -5, policy))
    elif ref_values:
        tests.append(_test("referrer-policy", "header-invalid", -5, escape(ref_values[0], 80)))
    else:
        tests.append(_test("referrer-policy", "not-implemented", 0, "no Referrer-Policy (browser default)"))
    tests.append(hsts)
    tests.append(_test("subresource-integrity", "not-tested", 0, "not tested"))
    xcto = home.header_all("x-content-type-options")
    tests.append(_test("x-content-type-options", "nosniff", 0, "nosniff") if nosniff(xcto) else
                 _test("x-content-type-options", "header-invalid" if xcto else "not-implemented", -5,
                       escape(xcto[0], 60) if xcto else "no X-Content-Type-Options"))
    policies = csp.parse_header_values(home.header_all("content-security-policy"))
    ancestors = [p.get("frame-ancestors") for p in policies if p.get("frame-ancestors") is not None]
    xfo = frame_options(home.header_all("x-frame-options"))
    if ancestors and not all(csp.broad_sources(a or ()) for a in ancestors):
        tests.append(_test("x-frame-options", "implemented-via-csp", 5, "CSP frame-ancestors"))
    elif xfo in ("DENY", "SAMEORIGIN"):
        tests.append(_test("x-frame-options", "sameorigin-or-deny", 0, xfo))
    else:
        tests.append(_test("x-frame-options", "header-invalid" if xfo else "not-implemented", -20,
                           xfo or "no X-Frame-Options and no CSP frame-ancestors"))
    corp = (home.header("cross-origin-resource-policy") or "").strip().lower()
    if corp and corp not in ("same-origin", "same-site", "cross-origin"):
        tests.append(_test("cross-origin-resource-policy", "header-invalid", -5, escape(corp, 60)))
    else:
        tests.append(_test("cross-origin-resource-policy", corp or "not-implemented", 0,
                           corp or "no Cross-Origin-Resource-Policy"))
    penalties = sum(t["points"] for t in tests if t["points"] < 0)
    bonuses = sum(t["points"] for t in tests if t["points"] > 0)
    score = max(0, 100 + penalties)
    if score >= 90:  # extra credit only for sites that lose little (as the Observatory does)
        score += bonuses
    return {"score": score, "grade": letter(score), "url": home.where, "tests": tests,
            "bonuses_applied": score >= 90 and bonuses > 0}


# --- the probe ------------------------------------------------------------------------------------


def media_host_name(alias: str) -> str:
    """The host name in an S3_ALIAS_HOST, which may carry a scheme or a path (files.example/bucket)."""
    return alias.split("://", 1)[-1].split("/", 1)[0].lower()


def configured_media(target: ScanTarget) -> list[str]:
    """S3_ALIAS_HOST (or --media-host) without scheme and trailing slash, path kept; not the web domain."""
    found = [a for a in (target.media_host, target.s3.alias_host if target.s3 else None) if a]
    found = [a.split("://", 1)[-1].strip().rstrip("/") for a in found]
    return list(dict.fromkeys(a for a in found if a and media_host_name(a) != target.web_domain))


def _media_candidates(target: ScanTarget, media_hosts: Iterable[str]) -> list[dict]:
    key = target.s3.public_object.lstrip("/") if target.s3 and target.s3.public_object else None
    if not key:
        return []
    path = quote(key, safe="/")
    found = [{"label": "media", "url": f"https://{target.web_domain}/system/{path}", "max_body": MEDIA_BYTES,
              "source": "the public object under /system/ (local storage)", "headers": {"Origin": PROBE_ORIGIN}}]
    for host in media_hosts:
        found.append({"label": "media", "url": f"https://{host}/{path}", "max_body": MEDIA_BYTES,
                      "source": "the public object on the media host", "headers": {"Origin": PROBE_ORIGIN}})
    return found


@probe("http-headers", timeout=60,
       description="Status, headers and redirects of the web and media hosts; an Observatory-style grade")
def http_headers(target: ScanTarget, ctx: ProbeContext) -> Iterable[ProbeFact | ProbeProblem]:
    web, local = target.web_domain, target.local_domain
    aliases = configured_media(target)
    configured = list(dict.fromkeys(media_host_name(a) for a in aliases))
    first = [
        {"label": "home", "url": f"https://{web}/", "follow": True, "headers": {"Origin": PROBE_ORIGIN}},
        {"label": "about", "url": f"https://{web}/about", "follow": True},
        {"label": "instance", "url": f"https://{web}/api/v2/instance", "headers": {"Accept": "application/json"}},
        {"label": "webfinger", "url": f"https://{web}/.well-known/webfinger?resource=acct:mastodon.internal@{local}",
         "headers": {"Accept": "application/jrd+json"}},
        {"label": "http", "url": f"http://{web}/"},
        *_media_candidates(target, aliases),
    ]
    results = run_all(ctx.http, first)
    site = HttpSite(web, local, [o for o, _ in results])
    home = site.first("home")
    if home is not None and not home.answered:
        yield ProbeProblem("http_site", f"https://{web}/ did not answer: {home.error}", f"https://{web}/")

    policies = csp.parse_header_values(home.header_all("content-security-policy")) if home else []
    site.csp_media_hosts = tuple(media_hosts_from_csp(policies, web))
    site.media_hosts = tuple(dict.fromkeys([*configured, *site.csp_media_hosts]))
    instance_body = next((b for o, b in results if o.label == "instance" and o.status == 200), b"")
    probed = {o.url for o in site.observations}
    second: list[dict] = [{"label": "http-media", "url": f"http://{h}/"} for h in site.media_hosts]
    second += _media_candidates(target, [h for h in site.media_hosts if h not in configured])
    for url, what in media_from_instance(load_json(instance_body), web, site.media_hosts):
        if url not in probed:
            second.append({"label": "media", "url": url, "max_body": MEDIA_BYTES, "source": what,
                           "headers": {"Origin": PROBE_ORIGIN}})
    room = MAX_MEDIA_URLS - len(site.labelled("media"))
    extra_media = list({r["url"]: r for r in second if r["label"] == "media" and r["url"] not in probed}.values())
    extra_media = extra_media[:max(0, room)]
    second = [r for r in second if r["label"] != "media"] + extra_media
    site.observations += [o for o, _ in run_all(ctx.http, second)]

    # A CORS preflight for a write, on each media URL that was served: read-only, nothing is written.
    preflights = [{"label": "media-preflight", "url": o.url, "method": "OPTIONS", "max_body": MEDIA_BYTES,
                   "source": o.source, "headers": {"Origin": PROBE_ORIGIN, "Access-Control-Request-Method": "PUT"}}
                  for o in site.media()]
    site.observations += [o for o, _ in run_all(ctx.http, preflights)]
    yield ProbeFact("http_site", site)
    yield ProbeFact("http_grade", observatory_grade(site))
