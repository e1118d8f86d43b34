"""HTTP facts: what the web and media hosts answered (mastoaudit/probes/http_headers.py), and the
header judgements the checks and the Observatory-style grade share. Plain data: no sockets.

Everything here was read from the network: header values are bounded and shown escaped; cookie
values are never kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..model import Location
from ..net.csp import escape

# Sent as Origin to see how CORS answers a foreign site (a name that cannot exist, RFC 2606).
PROBE_ORIGIN = "https://mastoaudit-origin-probe.invalid"
ONE_YEAR = 31536000
SIX_MONTHS = 15768000


@dataclass(frozen=True)
class Observation:
    """One request and what came back (or why nothing did)."""

    label: str
    url: str  # the URL asked for
    method: str = "GET"
    status: int | None = None
    headers: tuple[tuple[str, str], ...] = ()  # lower-cased names; cookie values replaced
    final_url: str = ""  # after redirects followed
    redirects: tuple[str, ...] = ()
    error: str | None = None
    body_excerpt: str = ""  # escaped, truncated
    cert_verified: bool | None = None
    source: str = ""  # why this URL was probed (media)
    refused: bool = False  # nothing listens there

    def header_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k == name]

    def header(self, name: str) -> str | None:
        """The first value of a header, or None."""
        values = self.header_all(name)
        return values[0] if values else None

    @property
    def answered(self) -> bool:
        return self.status is not None

    @property
    def host(self) -> str:
        return (urlsplit(self.final_url or self.url).hostname or "").lower()

    @property
    def scheme(self) -> str:
        return urlsplit(self.final_url or self.url).scheme

    @property
    def where(self) -> str:
        return self.final_url or self.url

    def at(self) -> Location:
        return Location(self.where)

    @property
    def content_type(self) -> str:
        return (self.header("content-type") or "").split(";", 1)[0].strip().lower()

    @property
    def location(self) -> str | None:
        return self.header("location")


@dataclass
class HttpSite:
    web_domain: str
    local_domain: str
    observations: list[Observation] = field(default_factory=list)
    media_hosts: tuple[str, ...] = ()  # configured (S3_ALIAS_HOST) and found in the app's CSP
    csp_media_hosts: tuple[str, ...] = ()

    def labelled(self, *labels: str) -> list[Observation]:
        return [o for o in self.observations if o.label in labels]

    def first(self, label: str) -> Observation | None:
        return next((o for o in self.observations if o.label == label), None)

    def web_https(self) -> list[Observation]:
        """Answered HTTPS responses from the web domain."""
        return [o for o in self.observations if o.answered and o.scheme == "https" and o.host == self.web_domain
                and o.method == "GET"]

    def pages(self) -> list[Observation]:
        """The app's HTML pages that answered (home, about)."""
        return [o for o in self.labelled("home", "about") if o.answered and o.status and o.status < 400]

    def media(self) -> list[Observation]:
        """Media responses that were served (2xx)."""
        return [o for o in self.labelled("media") if o.status is not None and 200 <= o.status < 300]


@dataclass(frozen=True)
class Hsts:
    max_age: int | None
    include_subdomains: bool
    preload: bool
    problems: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return self.max_age is not None and not self.problems


def parse_hsts(value: str) -> Hsts:
    """RFC 6797 §6.1: max-age required once, includeSubDomains and preload optional."""
    max_age: int | None = None
    seen: set[str] = set()
    problems: list[str] = []
    flags = {"includesubdomains": False, "preload": False}
    for part in value.split(";"):
        name, _, arg = part.strip().partition("=")
        name = name.strip().lower()
        if not name:
            continue
        if name in seen:
            problems.append(f"{name} repeated")
        seen.add(name)
        if name == "max-age":
            arg = arg.strip().strip('"')
            if not arg.isdigit() or len(arg) > 12:
                problems.append(f"max-age is not a number: {escape(arg, 40)}")
            else:
                max_age = int(arg)
        elif name in flags:
            flags[name] = True
    if max_age is None and not any(p.startswith("max-age") for p in problems):
        problems.append("no max-age")
    return Hsts(max_age, flags["includesubdomains"], flags["preload"], tuple(problems))


PRIVATE_REFERRER = {"no-referrer", "same-origin", "strict-origin", "strict-origin-when-cross-origin"}
UNSAFE_REFERRER = {"unsafe-url", "origin", "origin-when-cross-origin", "no-referrer-when-downgrade"}


def referrer_policy(values: list[str]) -> str | None:
    """The policy a browser applies: the last recognised token of the comma-separated list(s)."""
    chosen = None
    for value in values:
        for token in value.split(","):
            token = token.strip().lower()
            if token in PRIVATE_REFERRER or token in UNSAFE_REFERRER:
                chosen = token
    return chosen


def frame_options(values: list[str]) -> str | None:
    """DENY or SAMEORIGIN when the header is valid; None when absent; 'invalid:<value>' otherwise."""
    if not values:
        return None
    tokens = {t.strip().upper() for v in values for t in v.split(",") if t.strip()}
    if len(tokens) == 1 and tokens <= {"DENY", "SAMEORIGIN"}:
        return tokens.pop()
    return "invalid:" + escape(", ".join(values), 80)


def nosniff(values: list[str]) -> bool:
    return bool(values) and values[0].strip().lower() == "nosniff"


@dataclass(frozen=True)
class Cookie:
    name: str
    secure: bool
    httponly: bool
    samesite: str | None  # as given, lower-cased


def parse_cookies(values: list[str]) -> list[Cookie]:
    cookies = []
    for value in values[:50]:
        first, *attrs = value.split(";")
        name = first.split("=", 1)[0].strip()
        flags = {a.strip().split("=", 1)[0].strip().lower(): a.strip().partition("=")[2].strip().lower()
                 for a in attrs if a.strip()}
        cookies.append(Cookie(escape(name, 60), "secure" in flags, "httponly" in flags, flags.get("samesite")))
    return cookies


_SESSION = re.compile(r"sess|_mastodon|remember|auth|token|login|sid|csrf", re.IGNORECASE)


def is_session_cookie(name: str) -> bool:
    return bool(_SESSION.search(name))


def cors_verdict(obs: Observation, origin: str = PROBE_ORIGIN) -> tuple[str, str]:
    """('fail' or 'ok', what was seen) for one response's CORS headers. `*` or a reflected origin
    without credentials lets any site read what is public anyway; credentials with a reflected origin,
    or cross-origin writes, let any site act with the visitor's rights."""
    allow = (obs.header("access-control-allow-origin") or "").strip()
    creds = (obs.header("access-control-allow-credentials") or "").strip().lower() == "true"
    methods = {m.strip().upper() for v in obs.header_all("access-control-allow-methods") for m in v.split(",")}
    writes = sorted(methods & {"PUT", "POST", "DELETE", "PATCH"})
    seen = "; ".join(f"{k}: {escape(v, 120)}" for k, v in obs.headers if k.startswith("access-control-")) or \
        "no CORS headers"
    if allow == origin and creds:
        return "fail", seen + " (a foreign origin is reflected with credentials)"
    if writes and allow in (origin, "*"):
        return "fail", seen + f" (cross-origin {', '.join(writes)} allowed)"
    return "ok", seen


def redirect_verdict(obs: Observation | None, https_host: str) -> tuple[str, int, str]:
    """(result, points, detail) for the plain-http URL of a host."""
    if obs is None:
        return "not-tested", 0, "plain http was not probed"
    if obs.status is None:
        if obs.refused:
            return "no-http", 0, "nothing listens on port 80"
        return "no-answer", 0, f"no answer on port 80 ({obs.error})"
    if obs.status in (301, 302, 303, 307, 308) and obs.location:
        target = urlsplit(obs.location)
        if target.scheme != "https":
            return "not-to-https", -20, f"{obs.status} to {escape(obs.location, 120)}"
        if (target.hostname or "").lower() != https_host:
            return "off-host", -5, f"{obs.status} to another host: {escape(obs.location, 120)}"
        return "to-https", 0, f"{obs.status} to {escape(obs.location, 120)}"
    if 200 <= obs.status < 300:
        return "missing", -20, f"plain http serves content ({obs.status}) without a redirect"
    return "no-redirect", -20, f"plain http answers {obs.status} without a redirect"
