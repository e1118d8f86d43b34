"""Mastodon's web application (Rails and Puma): the release it runs, how its container is published,
what its pages tell browsers (CSP, framing, referrer, permissions), and what it answers anonymous
outsiders (PgHero, the public timeline).

The release is judged whatever the source: version.rb (live), the instance API (network) or a
pinned image tag (compose). What Mastodon documents as required (it sets its own CSP, its
dashboards redirect to the sign-in page) never fails.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from mastoaudit import kinds, templating
from mastoaudit.advisories import affecting, supported_lines, version_tuple
from mastoaudit.checkdef import Remediation, check, failed, passed, skipped, warned
from mastoaudit.facts import FactSet
from mastoaudit.facts.http import PRIVATE_REFERRER, Observation, frame_options, referrer_policy
from mastoaudit.judgments.compose import (
    APP_LOOPBACK,
    PUBLISHED_PORT_REFERENCES,
    publish_outcomes,
    service_subject,
)
from mastoaudit.judgments.exposure import dashboard, expectation, open_by_config, seen
from mastoaudit.judgments.http import urls
from mastoaudit.model import Location, Outcome, Severity
from mastoaudit.net import csp
from mastoaudit.net.csp import escape

# --- the release --------------------------------------------------------------------------------------


_SEVERITY_ORDER = [s.value for s in Severity]


@check(
    id="app.mastodon-version",
    title="The installed Mastodon release has no known vulnerabilities and is supported",
    component="app",
    severity="high",
    threats=["T-APP-VULNERABLE-VERSION", "T-FED-PROTOCOL-EXPLOIT", "T-FED-FORGED-ACTIVITY"],
    needs=[],  # any of: the release from version.rb (live), /api/v2/instance (network), an image tag (compose)
    reads=[kinds.MASTODON_VERSION, kinds.COMPOSE],
    rationale="""Mastodon's advisories (TootRoot, origin validation, signature bypasses, SSRF) are
        public and exploited; every release line gets fixes only while it is supported.""",
    remediation=Remediation("Upgrade to the latest patch release of a supported line.",
                            "git fetch --tags && git checkout v4.5.11  # then bundle, yarn, migrate, restart"),
    references=["https://github.com/mastodon/mastodon/security/advisories",
                "https://github.com/mastodon/mastodon/releases"],
    tags=["live", "network", "advisories"],
)
def mastodon_version(facts: FactSet) -> Iterator[Outcome]:
    found_versions = [(f.version, f.location, "") for f in facts.all(kinds.MASTODON_VERSION)]
    for compose in facts.all(kinds.COMPOSE):
        for _service, version, where in compose.mastodon_versions():
            written = compose.written(where)
            how = f" (the image tag, written {written}, interpolated from {compose.env_path})" if written else ""
            if (version, where, how) not in found_versions:
                found_versions.append((version, where, how))
    if not found_versions and not facts.has(kinds.MASTODON_VERSION):
        yield skipped("no Mastodon release found (version.rb, the instance API or a pinned image tag)")
    for version, where, how in found_versions:
        advisories = affecting("mastodon", version)
        if advisories is None:
            yield failed(f"the version {version!r} cannot be read", at=where, observed=version,
                         expected="a release number", severity="info")
            continue
        if advisories:
            worst = max((a.severity for a in advisories), key=_SEVERITY_ORDER.index)
            ids = ", ".join(a.id for a in advisories)
            upgrade = max((a.fixed_in for a in advisories if a.fixed_in), key=lambda v: version_tuple(v) or ())
            yield failed(f"Mastodon {version}{how} is affected by {len(advisories)} known advisories: {ids}", at=where,
                         subject="advisories", observed=version, expected=f">= {upgrade}", severity=worst)
        else:
            yield passed(f"no known advisory affects Mastodon {version}", at=where, subject="advisories",
                         observed=version, expected="no advisories")
        lines = supported_lines("mastodon")
        have = version_tuple(version) or ()
        line = ".".join(map(str, have[:2]))
        newest = max((version_tuple(v) or () for v in lines), default=())
        if line in lines or have[:2] > newest:
            yield passed(f"the {line} line is supported", at=where, subject="support", observed=line,
                         expected=" or ".join(lines))
        else:
            yield failed(f"the {line} line no longer receives security fixes", at=where, subject="support",
                         observed=line, expected=" or ".join(lines), severity="high")


# --- docker-compose -----------------------------------------------------------------------------------


@check(
    id="app.compose-published-port",
    title="The web container is published on 127.0.0.1 only",
    component="app",
    severity="high",
    threats=["T-PROXY-MISCONFIG", "T-TRANSPORT-MITM"],
    needs=[kinds.COMPOSE],
    rationale="""Puma speaks plain HTTP and trusts the proxy for TLS, HSTS, client addresses and
        limits. Mastodon's compose file publishes it on 127.0.0.1:3000 for the proxy on the host;
        `3000:3000` publishes it on every interface, around the proxy and ahead of the firewall.""",
    remediation=Remediation("Publish the web port on loopback only.", "    ports:\n      - '127.0.0.1:3000:3000'"),
    references=PUBLISHED_PORT_REFERENCES,
    tags=["docker", "network"],
)
def web_published(facts: FactSet) -> Iterator[Outcome]:
    for compose in facts.all(kinds.COMPOSE):
        for service in compose.by_role("web", "mastodon"):
            yield from publish_outcomes(compose, service, "the web (Puma) port", APP_LOOPBACK)


@check(
    id="app.compose-image-pinned",
    title="Mastodon's images are pinned to a release",
    component="app",
    severity="low",
    threats=["T-APP-VULNERABLE-VERSION"],
    needs=[kinds.COMPOSE],
    rationale="""With `latest`, `nightly` or no tag, what runs depends on when the image was last pulled:
        a restart can bring an unreleased build (nightly), and nobody can tell from the file which
        release, and so which advisories, apply. A release tag (v4.5.x) says both, and upgrades become a
        reviewed edit of the file.""",
    remediation=Remediation("Name the release in the image tag, and raise it with each security release.",
                            "    image: ghcr.io/mastodon/mastodon:v4.5.11"),
    references=["https://github.com/mastodon/mastodon/releases", "https://docs.joinmastodon.org/admin/upgrading/"],
    tags=["docker", "version"],
)
def image_pinned(facts: FactSet) -> Iterator[Outcome]:
    for compose in facts.all(kinds.COMPOSE):
        for service in compose.services.values():
            if not service.is_mastodon:
                continue
            subject = service_subject(service)
            at = service.image_location or service.location
            if not service.image:
                yield skipped("built from source (build:): the version is the checkout's", at=at, subject=subject)
                continue
            tag = service.image_tag
            if service.image_digest:
                yield passed("pinned by digest", at=at, subject=subject, observed=service.image,
                             expected="a release tag or digest")
            elif tag and templating.is_templated(tag, "compose"):
                yield skipped(f"the tag is set by a variable ({tag}): cannot tell the version", at=at,
                              subject=subject, observed="templated", expected="a release tag")
            elif service.mastodon_version:
                yield passed(f"pinned to release {service.mastodon_version}", at=at, subject=subject,
                             observed=service.image, expected="a release tag")
            else:
                shown = tag or "no tag (latest)"
                yield warned(f"the image is not pinned to a release ({shown})", at=at, subject=subject,
                             observed=service.image, expected="a release tag such as v4.5.11")


# --- what browsers are told (probe: http-headers) -----------------------------------------------------


def _pages(facts: FactSet, none: str) -> tuple[list[list[Observation]], list[Outcome]]:
    """The app's pages that answered, home first, per site; a skip (saying `none`) for a site without any."""
    found, skips = [], []
    for site in facts.all(kinds.HTTP_SITE):
        pages = site.pages()
        if pages:
            found.append(pages)
        else:
            skips.append(skipped(none, at=Location(f"https://{site.web_domain}/")))
    return found, skips


@check(
    id="http.csp",
    title="The app's Content-Security-Policy is as strict as Mastodon's own",
    component="app",
    severity="high",
    threats=["T-APP-XSS"],
    needs=[kinds.HTTP_SITE],
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
)
def app_csp(facts: FactSet) -> Iterator[Outcome]:
    found, skips = _pages(facts, "the home page did not answer")
    yield from skips
    for home, *_others in found:
        values = home.header_all("content-security-policy")
        policies = csp.parse_header_values(values)
        if not policies and home.header_all("content-security-policy-report-only"):
            yield failed("the CSP is only reported, not enforced (Content-Security-Policy-Report-Only)",
                         at=home.at(), subject="CSP", observed=escape(home.header_all(
                             "content-security-policy-report-only")[0], 300), expected="Content-Security-Policy")
            continue
        issues = csp.compare_with_mastodon(policies)
        for issue in issues:
            verdict = failed if issue.level == "fail" else warned
            yield verdict(issue.message, at=home.at(), subject=f"CSP {issue.directive}",
                          observed=escape(issue.observed, 300), expected=issue.expected)
        if not issues:
            yield passed("the CSP is as strict as Mastodon's (no unsafe script sources, framing, base or plugins)",
                         at=home.at(), subject="CSP", observed=escape(" | ".join(values), 300),
                         expected="script-src without 'unsafe-inline'/'unsafe-eval'; frame-ancestors, base-uri, "
                                  "default-src 'none'")


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
    needs=[kinds.HTTP_SITE],
    rationale="""A page that other sites may frame can be overlaid with a decoy (clickjacking) so that
        a logged-in user follows, boosts or changes settings without knowing. Mastodon sends
        X-Frame-Options: DENY and CSP frame-ancestors 'none'.""",
    remediation=Remediation("Let the app's headers through (no proxy_hide_header X-Frame-Options).",
                            "add_header X-Frame-Options DENY;  # only where nginx serves pages itself"),
    references=["https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/X-Frame-Options"],
    tags=["network", "headers"],
)
def frame_options_header(facts: FactSet) -> Iterator[Outcome]:
    found, skips = _pages(facts, "no page of the app answered")
    yield from skips
    for pages in found:
        verdicts = [(o, *_frame_protection(o)) for o in pages]
        open_pages = [(o, shown) for o, ok, shown in verdicts if not ok]
        if open_pages:
            obs, shown = open_pages[0]
            yield failed(f"other sites may frame {urls([o for o, _ in open_pages])}", at=obs.at(),
                         subject="framing", observed=shown,
                         expected="X-Frame-Options: DENY or CSP frame-ancestors 'none'")
        else:
            obs, _, shown = verdicts[0]
            yield passed("framing is refused", at=obs.at(), subject="framing", observed=shown,
                         expected="X-Frame-Options: DENY or CSP frame-ancestors 'none'")


@check(
    id="http.referrer-policy",
    title="Pages send a Referrer-Policy that keeps URLs private",
    component="app",
    severity="low",
    threats=["T-APP-INFO-LEAK"],
    needs=[kinds.HTTP_SITE],
    rationale="""Links followed from the web app tell the destination which page they came from.
        Mastodon sends Referrer-Policy: same-origin so that other sites learn nothing; unsafe-url or
        no-referrer-when-downgrade leak full URLs (profile and status pages, search terms).""",
    remediation=Remediation("Let the app's header through, or set a private policy where nginx serves pages.",
                            "add_header Referrer-Policy same-origin;"),
    references=["https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/Referrer-Policy"],
    tags=["network", "headers", "privacy"],
)
def referrer(facts: FactSet) -> Iterator[Outcome]:
    found, skips = _pages(facts, "no page of the app answered")
    yield from skips
    for pages in found:
        expected = "same-origin (or no-referrer, strict-origin, strict-origin-when-cross-origin)"
        for obs in pages[:1]:
            values = obs.header_all("referrer-policy")
            policy = referrer_policy(values)
            shown = escape(", ".join(values), 120) if values else "no Referrer-Policy"
            if policy in PRIVATE_REFERRER:
                yield passed(f"Referrer-Policy {policy}", at=obs.at(), subject="Referrer-Policy", observed=shown,
                             expected=expected)
            elif policy == "unsafe-url":
                yield failed("full URLs are sent to every site, even over http", at=obs.at(),
                             subject="Referrer-Policy", observed=shown, expected=expected)
            elif policy is not None:
                yield warned(f"Referrer-Policy {policy} sends page URLs or origins to other sites", at=obs.at(),
                             subject="Referrer-Policy", observed=shown, expected=expected)
            elif values:
                yield warned("the Referrer-Policy cannot be read: the browser default applies", at=obs.at(),
                             subject="Referrer-Policy", observed=shown, expected=expected)
            else:
                yield warned("no Referrer-Policy: the browser default (strict-origin-when-cross-origin) applies",
                             at=obs.at(), subject="Referrer-Policy", observed=shown, expected=expected,
                             severity="info")


_POWERFUL = ("camera", "microphone", "geolocation", "payment", "usb", "serial", "bluetooth", "hid",
             "display-capture")


@check(
    id="http.permissions-policy",
    title="A Permissions-Policy, when sent, does not open powerful features to everyone",
    component="app",
    severity="info",
    threats=["T-APP-XSS"],
    needs=[kinds.HTTP_SITE],
    rationale="""A Permissions-Policy can switch off browser features (camera, microphone, location)
        that the web app never uses, so that injected or framed content cannot ask for them. Mastodon
        sends none; it is optional hardening, but a policy granting them to every origin is a mistake.""",
    remediation=Remediation("Optionally deny the features the app does not use.",
                            'add_header Permissions-Policy "camera=(), microphone=(), geolocation=(), payment=()";'),
    references=["https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/Permissions-Policy"],
    tags=["network", "headers"],
)
def permissions_policy(facts: FactSet) -> Iterator[Outcome]:
    found, skips = _pages(facts, "no page of the app answered")
    yield from skips
    for obs, *_others in found:
        values = obs.header_all("permissions-policy")
        if not values:
            yield passed("no Permissions-Policy (optional; Mastodon sends none)", at=obs.at(),
                         subject="Permissions-Policy", observed="none", expected="optional", severity="info")
            continue
        text = ", ".join(values)
        opened = [f for f in _POWERFUL if re.search(rf"(^|[,\s]){f}\s*=\s*\*", text, re.IGNORECASE)]
        if opened:
            yield warned(f"powerful features are allowed to every origin: {', '.join(opened)}", at=obs.at(),
                         subject="Permissions-Policy", observed=escape(text, 200), expected="feature=() or (self)",
                         severity="low")
        else:
            yield passed("a Permissions-Policy is sent", at=obs.at(), subject="Permissions-Policy",
                         observed=escape(text, 200), expected="no feature open to *")


# --- what anonymous outsiders reach (probe: mastodon-exposure) ----------------------------------------


@check(
    id="exposure.pghero-dashboard",
    title="The PgHero dashboard is not reachable anonymously on any vhost or port",
    component="app",
    severity="critical",
    threats=["T-ADMIN-ACCESS", "T-DB-EXPOSED"],
    needs=[kinds.MASTODON_EXPOSURE],
    rationale="""PgHero shows the database's queries (with their parameters), tables and settings and
        can kill queries. Mastodon mounts it at /pghero for admins only.""",
    remediation=Remediation("Route /pghero only through Mastodon (its admin check) and keep Puma on loopback.",
                            "# .env.production\nBIND=127.0.0.1"),
    references=["https://github.com/ankane/pghero"],
    tags=["network", "admin"],
)
def pghero_dashboard(facts: FactSet) -> Iterator[Outcome]:
    yield from dashboard(facts, "pghero", "PgHero")


@check(
    id="exposure.public-timeline",
    title="The public timeline API refuses anonymous requests when the instance says so",
    component="app",
    severity="medium",
    threats=["T-APP-INFO-LEAK"],
    needs=[kinds.MASTODON_EXPOSURE],
    rationale="""With DISALLOW_UNAUTHENTICATED_API_ACCESS=true Mastodon answers 401 to anonymous API
        requests, so scrapers cannot harvest the public timeline, profiles and hashtags. When the
        configuration asks for it the network must show it; otherwise what the API does is reported
        for information.""",
    remediation=Remediation("Set the variable and restart Mastodon (or decide it is wanted open).",
                            "DISALLOW_UNAUTHENTICATED_API_ACCESS=true"),
    references=["https://docs.joinmastodon.org/admin/config/#disallow_unauthenticated_api_access"],
    tags=["network", "api", "privacy"],
)
def public_timeline(facts: FactSet) -> Iterator[Outcome]:
    for exposure in facts.all(kinds.MASTODON_EXPOSURE):
        for e in exposure.of("timeline"):
            expected = expectation(exposure, "DISALLOW_UNAUTHENTICATED_API_ACCESS")
            if not e.answered:
                yield skipped(f"the public timeline did not answer: {e.error}", at=e.at(), subject=e.url)
            elif e.status in (401, 403, 422):
                yield passed(f"anonymous requests are refused ({e.status})", at=e.at(), subject=e.url,
                             observed=seen(e), expected="401")
            elif e.status == 200 and e.recognised:
                yield open_by_config(e, expected, "DISALLOW_UNAUTHENTICATED_API_ACCESS",
                                     "the public timeline is readable anonymously",
                                     unset="DISALLOW_UNAUTHENTICATED_API_ACCESS" in exposure.unset)
            else:
                yield warned(f"the public timeline answers {e.status}: not judged", at=e.at(), subject=e.url,
                             observed=f"{seen(e)}: {e.excerpt[:100]}", expected="401 or a JSON list",
                             severity="info")
