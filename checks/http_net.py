"""What browsers get from the instance over the network: HSTS, the redirect from http, the app's and
the media's Content-Security-Policy, the other security headers, version leaks, CORS on media, and
an Observatory-style grade. Facts from mastoaudit/probes/http_headers.py."""

from __future__ import annotations

import re
from collections.abc import Iterator

from mastoaudit.checkdef import Remediation, check, failed, passed, skipped, warned
from mastoaudit.facts import FactSet
from mastoaudit.facts.http import (
    ONE_YEAR,
    PRIVATE_REFERRER,
    SIX_MONTHS,
    HttpSite,
    Observation,
    cors_verdict,
    frame_options,
    nosniff,
    parse_hsts,
    redirect_verdict,
    referrer_policy,
)
from mastoaudit.model import Location, Outcome
from mastoaudit.net import csp
from mastoaudit.net.csp import escape

HSTS_HINT = 'add_header Strict-Transport-Security "max-age=63072000; includeSubDomains" always;'


def _sites(facts: FactSet) -> list[HttpSite]:
    return facts.all("http_site")


def _hosts(site: HttpSite) -> list[str]:
    return [site.web_domain, *site.media_hosts]


def _served(site: HttpSite, host: str) -> list[Observation]:
    """GET responses over HTTPS from `host` that were served (2xx/3xx: nginx adds its headers to
    those only, unless `always`)."""
    return [o for o in site.observations if o.method == "GET" and o.scheme == "https" and o.host == host
            and o.status is not None and o.status < 400]


def _at(obs: Observation) -> Location:
    return Location(obs.where)


def _urls(observations: list[Observation], limit: int = 3) -> str:
    shown = ", ".join(o.where for o in observations[:limit])
    return shown + (f" and {len(observations) - limit} more" if len(observations) > limit else "")


@check(
    id="http.hsts",
    title="HTTPS responses carry HSTS for at least a year",
    component="nginx",
    severity="medium",
    threats=["T-TRANSPORT-MITM"],
    needs=["http_site"],
    rationale="""Strict-Transport-Security makes browsers refuse plain http to the instance after the
        first visit, so a man in the middle cannot strip TLS from later visits (session cookies,
        OAuth tokens). A year is the usual minimum; includeSubDomains covers the media and mail hosts.""",
    remediation=Remediation("Send HSTS on every HTTPS server block of the web and media hosts.", HSTS_HINT),
    references=["https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/Strict-Transport-Security",
                "https://hstspreload.org/"],
    tags=["network", "headers", "tls"],
    modes=("network",),
)
def hsts(facts: FactSet) -> Iterator[Outcome]:
    for site in _sites(facts):
        for host in _hosts(site):
            served = _served(site, host)
            if not served:
                continue
            main = served[0]
            values = main.header_all("strict-transport-security")
            subject = f"HSTS on {host}"
            expected = "max-age >= 31536000 (includeSubDomains)"
            if not values:
                yield failed(f"no Strict-Transport-Security on {host}", at=_at(main), subject=subject,
                             observed="no header", expected=expected)
                continue
            parsed = parse_hsts(values[0])
            shown = escape(values[0], 200)
            if not parsed.valid:
                yield failed(f"the HSTS header cannot be read ({'; '.join(parsed.problems)}): browsers ignore it",
                             at=_at(main), subject=subject, observed=shown, expected=expected)
                continue
            age = parsed.max_age or 0
            subs = "with includeSubDomains" if parsed.include_subdomains else "without includeSubDomains"
            lacking = [o for o in served[1:] if not o.header_all("strict-transport-security")]
            if age < SIX_MONTHS:
                yield failed(f"HSTS max-age is {age} s (under six months)", at=_at(main), subject=subject,
                             observed=shown, expected=expected)
            elif age < ONE_YEAR:
                yield warned(f"HSTS max-age is {age} s (under a year), {subs}", at=_at(main), subject=subject,
                             observed=shown, expected=expected)
            elif lacking:
                yield warned(f"HSTS is sent, but not on {_urls(lacking)}", at=_at(lacking[0]), subject=subject,
                             observed=f"{shown}; missing on {len(lacking)} of {len(served)} responses",
                             expected="on every HTTPS response")
            else:
                yield passed(f"HSTS for {age // 86400} days, {subs}", at=_at(main), subject=subject, observed=shown,
                             expected=expected)
            if host == site.web_domain:
                yield _preload(site, parsed, main)


def _preload(site: HttpSite, parsed, main: Observation) -> Outcome:
    missing = []
    if (parsed.max_age or 0) < ONE_YEAR:
        missing.append("max-age >= 31536000")
    if not parsed.include_subdomains:
        missing.append("includeSubDomains")
    if not parsed.preload:
        missing.append("the preload token")
    result, _, detail = redirect_verdict(site.first("http"), site.web_domain)
    if result != "to-https":
        missing.append(f"a redirect from http on the same host ({detail})")
    observed = "eligible" if not missing else "not eligible: " + ", ".join(missing)
    message = ("eligible for the HSTS preload list (hstspreload.org checks the rest)" if not missing
               else f"not eligible for the HSTS preload list (optional): missing {', '.join(missing)}")
    return passed(message, at=_at(main), subject="HSTS preload", observed=observed,
                  expected="optional: max-age >= 31536000; includeSubDomains; preload", severity="info")


@check(
    id="http.redirect",
    title="Plain http redirects permanently to https on the same host",
    component="nginx",
    severity="medium",
    threats=["T-TRANSPORT-MITM"],
    needs=["http_site"],
    rationale="""A visitor who types the domain arrives over plain http. The server must send them
        to https at once (301 or 308, which browsers remember) and serve nothing in clear: a page
        or API answer over http can be read and rewritten on the way.""",
    remediation=Remediation("Make the port-80 server block only redirect.",
                            "server {\n  listen 80;\n  server_name example.social;\n"
                            "  location / { return 301 https://$host$request_uri; }\n}"),
    references=["https://docs.joinmastodon.org/admin/install/#setting-up-nginx"],
    tags=["network", "tls"],
    modes=("network",),
)
def redirect(facts: FactSet) -> Iterator[Outcome]:
    for site in _sites(facts):
        pairs = [(site.web_domain, site.first("http"))]
        pairs += [(o.host, o) for o in site.labelled("http-media")]
        for host, obs in pairs:
            if obs is None:
                continue
            result, _, detail = redirect_verdict(obs, host)
            at, subject = Location(obs.url), f"http://{host}/"
            expected = f"301 or 308 to https://{host}/"
            observed = detail if obs.status is None else f"{obs.status}" + (
                f" to {escape(obs.location, 200)}" if obs.location else "")
            if result == "to-https" and obs.status in (301, 308):
                yield passed(f"plain http redirects permanently to https ({obs.status})", at=at, subject=subject,
                             observed=observed, expected=expected)
            elif result == "to-https":
                yield warned(f"the redirect to https is temporary ({obs.status}): browsers do not remember it",
                             at=at, subject=subject, observed=observed, expected=expected)
            elif result in ("no-http", "no-answer"):
                yield passed(f"nothing is served over plain http ({detail})", at=at, subject=subject,
                             observed=detail, expected=expected)
            elif result == "off-host":
                yield warned("plain http redirects to another host first (HSTS preload needs the same host)",
                             at=at, subject=subject, observed=observed, expected=expected)
            elif result == "not-to-https":
                yield failed("plain http redirects, but not to https", at=at, subject=subject, observed=observed,
                             expected=expected)
            elif result == "missing":
                yield failed(f"plain http serves content without redirecting ({obs.status})", at=at,
                             subject=subject, observed=observed, expected=expected)
            else:
                yield warned(f"plain http answers {obs.status} without redirecting to https", at=at,
                             subject=subject, observed=observed, expected=expected)


@check(
    id="http.csp",
    title="The app's Content-Security-Policy is as strict as Mastodon's own",
    component="app",
    severity="high",
    threats=["T-APP-XSS"],
    needs=["http_site"],
    rationale="""Mastodon sends a policy that allows scripts only from itself (no inline script, no
        eval: 'wasm-unsafe-eval' is for WebAssembly and is fine), forbids framing, <base> tags and
        plugins. A policy that allows 'unsafe-inline' or 'unsafe-eval' scripts turns any HTML
        injection into account takeover. Versions before 4.2 allowed inline styles (a warning).""",
    remediation=Remediation("Let Mastodon's own CSP through (no proxy_hide_header or add_header "
                            "Content-Security-Policy for the app) and upgrade Mastodon.",
                            "# nginx: nothing to add; remove\nproxy_hide_header Content-Security-Policy;"),
    references=["https://developer.mozilla.org/en-US/docs/Web/HTTP/CSP",
                "https://github.com/mastodon/mastodon/blob/main/config/initializers/content_security_policy.rb"],
    tags=["network", "headers", "xss"],
    modes=("network",),
)
def app_csp(facts: FactSet) -> Iterator[Outcome]:
    for site in _sites(facts):
        pages = site.pages()
        if not pages:
            yield skipped("the home page did not answer", at=Location(f"https://{site.web_domain}/"))
            continue
        home = pages[0]
        values = home.header_all("content-security-policy")
        policies = csp.parse_header_values(values)
        if not policies and home.header_all("content-security-policy-report-only"):
            yield failed("the CSP is only reported, not enforced (Content-Security-Policy-Report-Only)",
                         at=_at(home), subject="CSP", observed=escape(home.header_all(
                             "content-security-policy-report-only")[0], 300), expected="Content-Security-Policy")
            continue
        issues = csp.compare_with_mastodon(policies)
        for issue in issues:
            verdict = failed if issue.level == "fail" else warned
            yield verdict(issue.message, at=_at(home), subject=f"CSP {issue.directive}",
                          observed=escape(issue.observed, 300), expected=issue.expected)
        if not issues:
            yield passed("the CSP is as strict as Mastodon's (no unsafe script sources, framing, base or plugins)",
                         at=_at(home), subject="CSP", observed=escape(" | ".join(values), 300),
                         expected="script-src without 'unsafe-inline'/'unsafe-eval'; frame-ancestors, base-uri, "
                                  "default-src 'none'")


@check(
    id="http.media-headers",
    title="Uploaded media are served with a CSP that blocks scripts and with nosniff",
    component="nginx",
    severity="high",
    threats=["T-MEDIA-XSS"],
    needs=["http_site"],
    rationale="""Anyone can upload a file that a browser would run as HTML or script if it were
        sniffed or opened directly. Mastodon's nginx configuration (and its object-storage proxy)
        serves /system/ and the media host with Content-Security-Policy "default-src 'none';
        form-action 'none'" and X-Content-Type-Options: nosniff so that nothing in a file runs.""",
    remediation=Remediation("Add the headers to the media locations (local /system/ and the media host's proxy).",
                            "add_header X-Content-Type-Options nosniff;\n"
                            "add_header Content-Security-Policy \"default-src 'none'; form-action 'none'\";"),
    references=["https://docs.joinmastodon.org/admin/optional/object-storage-proxy/"],
    tags=["network", "headers", "media"],
    modes=("network",),
)
def media_headers(facts: FactSet) -> Iterator[Outcome]:
    for site in _sites(facts):
        media = site.media()
        if not media:
            tried = site.labelled("media")
            why = ("no media URL answered: " + "; ".join(
                f"{o.url} ({o.status or o.error})" for o in tried[:3])) if tried else (
                "no media URL known (give a public object with --s3-public-object, or the instance links none)")
            yield skipped(why, at=Location(f"https://{site.web_domain}/"))
            continue
        for obs in media:
            policy = obs.header_all("content-security-policy")
            issues = csp.media_issues(csp.parse_header_values(policy))
            problems = [(i.level, i.message) for i in issues]
            if not nosniff(obs.header_all("x-content-type-options")):
                problems.append(("fail", "no X-Content-Type-Options: nosniff"))
            observed = (f"Content-Security-Policy: {escape(' | '.join(policy), 200) if policy else 'none'}; "
                        f"X-Content-Type-Options: {escape(obs.header('x-content-type-options') or 'none', 40)}")
            expected = f'Content-Security-Policy: {csp.MEDIA_POLICY}; X-Content-Type-Options: nosniff'
            subject = f"media on {obs.host} ({obs.source})" if obs.source else f"media on {obs.host}"
            fails = [m for lvl, m in problems if lvl == "fail"]
            if fails:
                yield failed("uploaded files could run in the browser: " + "; ".join(m for _, m in problems),
                             at=_at(obs), subject=subject, observed=observed, expected=expected)
            elif problems:
                yield warned("media headers are weaker than Mastodon's: " + "; ".join(m for _, m in problems),
                             at=_at(obs), subject=subject, observed=observed, expected=expected)
            else:
                yield passed("media are served with a script-blocking CSP and nosniff", at=_at(obs), subject=subject,
                             observed=observed, expected=expected)


@check(
    id="http.nosniff",
    title="Responses carry X-Content-Type-Options: nosniff",
    component="nginx",
    severity="low",
    threats=["T-MEDIA-XSS", "T-APP-XSS"],
    needs=["http_site"],
    rationale="""Without nosniff a browser may guess a response's type from its content and run a
        text or image file as HTML or script. Mastodon sends it on the app's responses; nginx must
        add it wherever it serves files itself.""",
    remediation=Remediation("Add the header in every location nginx serves files from.",
                            "add_header X-Content-Type-Options nosniff;"),
    references=["https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/X-Content-Type-Options"],
    tags=["network", "headers"],
    modes=("network",),
)
def nosniff_header(facts: FactSet) -> Iterator[Outcome]:
    for site in _sites(facts):
        for host in _hosts(site):
            served = [o for o in _served(site, host) if o.status is not None and o.status < 300]
            if not served:
                continue
            lacking = [o for o in served if not nosniff(o.header_all("x-content-type-options"))]
            subject = f"nosniff on {host}"
            if lacking:
                shown = lacking[0].header("x-content-type-options")
                yield failed(f"{len(lacking)} of {len(served)} responses lack nosniff: {_urls(lacking)}",
                             at=_at(lacking[0]), subject=subject,
                             observed=escape(shown, 60) if shown else "no X-Content-Type-Options",
                             expected="X-Content-Type-Options: nosniff")
            else:
                yield passed(f"all {len(served)} responses carry nosniff", at=_at(served[0]), subject=subject,
                             observed="nosniff", expected="X-Content-Type-Options: nosniff")


def _frame_protection(obs: Observation) -> tuple[bool, str]:
    policies = csp.parse_header_values(obs.header_all("content-security-policy"))
    ancestors = [p.text("frame-ancestors") for p in policies if p.has("frame-ancestors")
                 and not csp.broad_sources(p.get("frame-ancestors") or ())]
    xfo = frame_options(obs.header_all("x-frame-options"))
    shown = "; ".join([f"X-Frame-Options: {xfo}" if xfo else "no X-Frame-Options",
                       *(ancestors or ["no CSP frame-ancestors"])])
    return bool(ancestors) or xfo in ("DENY", "SAMEORIGIN"), shown


@check(
    id="http.frame-options",
    title="The app cannot be framed by other sites",
    component="app",
    severity="medium",
    threats=["T-APP-XSS"],
    needs=["http_site"],
    rationale="""A page that other sites may frame can be overlaid with a decoy (clickjacking) so that
        a logged-in user follows, boosts or changes settings without knowing. Mastodon sends
        X-Frame-Options: DENY and CSP frame-ancestors 'none'.""",
    remediation=Remediation("Let the app's headers through (no proxy_hide_header X-Frame-Options).",
                            "add_header X-Frame-Options DENY;  # only where nginx serves pages itself"),
    references=["https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/X-Frame-Options"],
    tags=["network", "headers"],
    modes=("network",),
)
def frame_options_header(facts: FactSet) -> Iterator[Outcome]:
    for site in _sites(facts):
        pages = site.pages()
        if not pages:
            yield skipped("no page of the app answered", at=Location(f"https://{site.web_domain}/"))
            continue
        verdicts = [(o, *_frame_protection(o)) for o in pages]
        open_pages = [(o, shown) for o, ok, shown in verdicts if not ok]
        if open_pages:
            obs, shown = open_pages[0]
            yield failed(f"other sites may frame {_urls([o for o, _ in open_pages])}", at=_at(obs),
                         subject="framing", observed=shown,
                         expected="X-Frame-Options: DENY or CSP frame-ancestors 'none'")
        else:
            obs, _, shown = verdicts[0]
            yield passed("framing is refused", at=_at(obs), subject="framing", observed=shown,
                         expected="X-Frame-Options: DENY or CSP frame-ancestors 'none'")


@check(
    id="http.referrer-policy",
    title="Pages send a Referrer-Policy that keeps URLs private",
    component="app",
    severity="low",
    threats=["T-APP-INFO-LEAK"],
    needs=["http_site"],
    rationale="""Links followed from the web app tell the destination which page they came from.
        Mastodon sends Referrer-Policy: same-origin so that other sites learn nothing; unsafe-url or
        no-referrer-when-downgrade leak full URLs (profile and status pages, search terms).""",
    remediation=Remediation("Let the app's header through, or set a private policy where nginx serves pages.",
                            "add_header Referrer-Policy same-origin;"),
    references=["https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/Referrer-Policy"],
    tags=["network", "headers", "privacy"],
    modes=("network",),
)
def referrer(facts: FactSet) -> Iterator[Outcome]:
    for site in _sites(facts):
        pages = site.pages()
        if not pages:
            yield skipped("no page of the app answered", at=Location(f"https://{site.web_domain}/"))
            continue
        expected = "same-origin (or no-referrer, strict-origin, strict-origin-when-cross-origin)"
        for obs in pages[:1]:
            values = obs.header_all("referrer-policy")
            policy = referrer_policy(values)
            shown = escape(", ".join(values), 120) if values else "no Referrer-Policy"
            if policy in PRIVATE_REFERRER:
                yield passed(f"Referrer-Policy {policy}", at=_at(obs), subject="Referrer-Policy", observed=shown,
                             expected=expected)
            elif policy == "unsafe-url":
                yield failed("full URLs are sent to every site, even over http", at=_at(obs),
                             subject="Referrer-Policy", observed=shown, expected=expected)
            elif policy is not None:
                yield warned(f"Referrer-Policy {policy} sends page URLs or origins to other sites", at=_at(obs),
                             subject="Referrer-Policy", observed=shown, expected=expected)
            elif values:
                yield warned("the Referrer-Policy cannot be read: the browser default applies", at=_at(obs),
                             subject="Referrer-Policy", observed=shown, expected=expected)
            else:
                yield warned("no Referrer-Policy: the browser default (strict-origin-when-cross-origin) applies",
                             at=_at(obs), subject="Referrer-Policy", observed=shown, expected=expected,
                             severity="info")


_POWERFUL = ("camera", "microphone", "geolocation", "payment", "usb", "serial", "bluetooth", "hid",
             "display-capture")


@check(
    id="http.permissions-policy",
    title="A Permissions-Policy, when sent, does not open powerful features to everyone",
    component="app",
    severity="info",
    threats=["T-APP-XSS"],
    needs=["http_site"],
    rationale="""A Permissions-Policy can switch off browser features (camera, microphone, location)
        that the web app never uses, so that injected or framed content cannot ask for them. Mastodon
        sends none; it is optional hardening, but a policy granting them to every origin is a mistake.""",
    remediation=Remediation("Optionally deny the features the app does not use.",
                            'add_header Permissions-Policy "camera=(), microphone=(), geolocation=(), payment=()";'),
    references=["https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/Permissions-Policy"],
    tags=["network", "headers"],
    modes=("network",),
)
def permissions_policy(facts: FactSet) -> Iterator[Outcome]:
    for site in _sites(facts):
        pages = site.pages()
        if not pages:
            yield skipped("no page of the app answered", at=Location(f"https://{site.web_domain}/"))
            continue
        obs = pages[0]
        values = obs.header_all("permissions-policy")
        if not values:
            yield passed("no Permissions-Policy (optional; Mastodon sends none)", at=_at(obs),
                         subject="Permissions-Policy", observed="none", expected="optional", severity="info")
            continue
        text = ", ".join(values)
        opened = [f for f in _POWERFUL if re.search(rf"(^|[,\s]){f}\s*=\s*\*", text, re.IGNORECASE)]
        if opened:
            yield warned(f"powerful features are allowed to every origin: {', '.join(opened)}", at=_at(obs),
                         subject="Permissions-Policy", observed=escape(text, 200), expected="feature=() or (self)",
                         severity="low")
        else:
            yield passed("a Permissions-Policy is sent", at=_at(obs), subject="Permissions-Policy",
                         observed=escape(text, 200), expected="no feature open to *")


_VERSION = re.compile(r"\d+\.\d+|/\s*\d")
_VIA_PRODUCT = re.compile(r"[a-z]/\d|\(\S+/\d", re.IGNORECASE)  # Via: 1.1 varnish (Varnish/6.0)
_ALWAYS_LEAKS = ("x-powered-by", "x-aspnet-version", "x-aspnetmvc-version", "x-generator")


@check(
    id="http.server-leak",
    title="Responses do not announce software versions",
    component="nginx",
    severity="low",
    threats=["T-APP-INFO-LEAK"],
    needs=["http_site"],
    rationale="""A Server header with a version number (nginx/1.22.1), X-Powered-By, or a Via header
        naming proxy software tells an attacker which published vulnerabilities to try, without any
        probing. X-Runtime gives away timings that help enumeration.""",
    remediation=Remediation("Hide versions in nginx and drop framework headers.",
                            "server_tokens off;\nproxy_hide_header X-Powered-By;\nproxy_hide_header X-Runtime;"),
    references=["https://nginx.org/en/docs/http/ngx_http_core_module.html#server_tokens"],
    tags=["network", "headers"],
    modes=("network",),
)
def server_leak(facts: FactSet) -> Iterator[Outcome]:
    for site in _sites(facts):
        by_host: dict[str, list[Observation]] = {}
        for obs in site.observations:
            if obs.answered:
                by_host.setdefault(obs.host, []).append(obs)
        for host, seen in by_host.items():
            leaks: dict[str, tuple[str, Observation]] = {}
            minor: dict[str, tuple[str, Observation]] = {}
            for obs in seen:
                for name, value in obs.headers:
                    if (name == "server" and _VERSION.search(value)) or name in _ALWAYS_LEAKS:
                        leaks.setdefault(f"{name}: {escape(value, 80)}", (name, obs))
                    elif name == "x-runtime":
                        minor.setdefault(name, (name, obs))
                    elif name == "via" and _VIA_PRODUCT.search(value):
                        minor.setdefault(f"{name}: {escape(value, 80)}", (name, obs))
            subject = f"headers of {host}"
            if leaks:
                first = next(iter(leaks.values()))[1]
                yield failed(f"{host} announces its software: {'; '.join(leaks)}", at=_at(first), subject=subject,
                             observed="; ".join([*leaks, *minor]), expected="Server without a version, no X-Powered-By")
            elif minor:
                first = next(iter(minor.values()))[1]
                yield warned(f"{host} gives away internals: {'; '.join(minor)}", at=_at(first), subject=subject,
                             observed="; ".join(minor), expected="no X-Runtime, Via without versions")
            else:
                server = next((o.header("server") for o in seen if o.header("server")), None)
                yield passed(f"no version in the headers of {host}", at=_at(seen[0]), subject=subject,
                             observed=f"Server: {escape(server, 80)}" if server else "no Server header",
                             expected="Server without a version, no X-Powered-By")


@check(
    id="http.media-cors",
    title="Media allow cross-origin reads only, never writes or credentials",
    component="s3",
    severity="medium",
    threats=["T-MEDIA-ACCESS"],
    needs=["http_site"],
    rationale="""Mastodon serves public media with Access-Control-Allow-Origin: * so that other sites
        can display them. A media host (or the bucket behind it) that also allows PUT, POST or DELETE
        from any origin, or reflects the caller's origin with credentials, lets any web page write to
        or read privately through the visitor's browser.""",
    remediation=Remediation("Let the media host answer GET only and set CORS for reads.",
                            "limit_except GET { deny all; }\nproxy_hide_header Access-Control-Allow-Origin;\n"
                            "proxy_hide_header Access-Control-Allow-Methods;\n"
                            "add_header Access-Control-Allow-Origin '*';"),
    references=["https://docs.joinmastodon.org/admin/optional/object-storage-proxy/",
                "https://developer.mozilla.org/en-US/docs/Web/HTTP/CORS"],
    tags=["network", "media", "cors"],
    modes=("network",),
)
def media_cors(facts: FactSet) -> Iterator[Outcome]:
    for site in _sites(facts):
        media = site.media()
        if not media:
            yield skipped("no media URL answered (see http.media-headers)", at=Location(f"https://{site.web_domain}/"))
            continue
        preflights = {o.url: o for o in site.labelled("media-preflight")}
        for obs in media:
            checks = [("GET", obs)] + ([("OPTIONS preflight for PUT", preflights[obs.url])]
                                       if obs.url in preflights and preflights[obs.url].answered else [])
            subject = f"CORS on {obs.host}"
            worst = [(how, detail) for how, o in checks for verdict, detail in [cors_verdict(o)] if verdict == "fail"]
            shown = "; ".join(f"{how}: {cors_verdict(o)[1]}" for how, o in checks)
            if worst:
                what = ("read media with the visitor's credentials" if "credentials" in worst[0][1]
                        else "write to the media store")
                yield failed(f"any web page may {what} ({worst[0][0]})", at=_at(obs), subject=subject, observed=shown,
                             expected="Access-Control-Allow-Origin: * for GET only, no credentials")
            else:
                yield passed("cross-origin reads only", at=_at(obs), subject=subject, observed=shown,
                             expected="Access-Control-Allow-Origin: * for GET only, no credentials")


@check(
    id="http.observatory-grade",
    title="The site scores B or better on an Observatory-style grade",
    component="nginx",
    severity="info",
    threats=["T-TRANSPORT-MITM", "T-APP-XSS"],
    needs=["http_grade"],
    rationale="""A single score, in the manner of Mozilla's HTTP Observatory (its published tests:
        CSP, cookies, CORS, redirection, Referrer-Policy, HSTS, X-Content-Type-Options,
        X-Frame-Options, Cross-Origin-Resource-Policy; subresource integrity is not tested), to
        compare instances and follow progress. The rubric is mastoaudit's own: 100 points minus
        penalties, bonuses only above 90. The findings of the other http.* checks say what to fix.""",
    remediation=Remediation("Fix the deductions listed (the other http.* findings give the details)."),
    references=["https://developer.mozilla.org/en-US/observatory/docs/tests_and_scoring"],
    tags=["network", "headers", "grade"],
    modes=("network",),
)
def observatory_grade(facts: FactSet) -> Iterator[Outcome]:
    for grade in facts.all("http_grade"):
        at = Location(grade.get("url") or "")
        if grade.get("score") is None:
            yield skipped(f"no grade: {grade.get('note', 'the home page did not answer')}", at=at)
            continue
        score, letter = grade["score"], grade["grade"]
        moved = [f"{t['test']} {t['points']:+d} ({t['result']})" for t in grade["tests"] if t["points"]]
        if grade["score"] < 90:
            moved = [m for m in moved if " -" in m]  # bonuses do not count below 90
        message = f"grade {letter} ({score}/100)" + (": " + "; ".join(moved) if moved else ": no deductions")
        observed, expected = f"{letter} {score}/100", "B or better (70/100)"
        if score >= 70:
            yield passed(message, at=at, subject="grade", observed=observed, expected=expected)
        elif score >= 50:
            yield warned(message, at=at, subject="grade", observed=observed, expected=expected)
        else:
            yield failed(message, at=at, subject="grade", observed=observed, expected=expected)
