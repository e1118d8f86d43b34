"""Content-Security-Policy: a bounded parser and the judgements the HTTP checks make with it.

Policies come from the network: they are hostile input. The parser never raises; what it cannot
read is kept in `Policy.invalid` (escaped and truncated) and the rest is still judged.

Several policies (repeated headers, or one header with comma-separated policies) are all enforced
by browsers: a source is allowed only when every policy allows it. So a weakness counts only when
every policy has it (`weakness_in_all`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..textsafe import excerpt

MAX_POLICY_CHARS = 16 * 1024  # Mastodon's own is about 900 characters
MAX_DIRECTIVES = 64
MAX_SOURCES = 256

_NAME = re.compile(r"^[a-z0-9-]{1,64}$")
_TOKEN = re.compile(r"^[\x21-\x7e]{1,2048}$")  # printable ASCII, no space, no control characters

# Where a fetch directive falls back to when it is absent (CSP Level 3, "directive fallback list").
_FALLBACK: dict[str, tuple[str, ...]] = {
    "script-src-elem": ("script-src", "default-src"),
    "script-src-attr": ("script-src", "default-src"),
    "script-src": ("default-src",),
    "style-src-elem": ("style-src", "default-src"),
    "style-src-attr": ("style-src", "default-src"),
    "style-src": ("default-src",),
    "worker-src": ("child-src", "script-src", "default-src"),
    "frame-src": ("child-src", "default-src"),
    "child-src": ("default-src",),
    "img-src": ("default-src",),
    "media-src": ("default-src",),
    "font-src": ("default-src",),
    "connect-src": ("default-src",),
    "object-src": ("default-src",),
    "manifest-src": ("default-src",),
}

# Mastodon's own policy (config/initializers/content_security_policy.rb, 4.2 and later), the
# reference the app's CSP is compared with. ASSETS/MEDIA stand for the instance's hosts.
MASTODON_POLICY = {
    "base-uri": "'none'",
    "default-src": "'none'",
    "frame-ancestors": "'none'",
    "script-src": "'self' ASSETS 'wasm-unsafe-eval'",
    "style-src": "'self' ASSETS 'nonce-…'",
    "object-src": "'none' (from default-src)",
    "form-action": "'self'",
}
MEDIA_POLICY = "default-src 'none'; form-action 'none'"

SAFE_LEVELS = ("ok", "info")


def escape(text: str, limit: int = 200) -> str:
    """A value from the network as it may be shown: escaped (mastoaudit.textsafe) and truncated."""
    return excerpt(text, limit)


@dataclass(frozen=True)
class Policy:
    directives: dict[str, tuple[str, ...]]  # name -> source expressions (keywords and schemes lower-cased)
    raw: str  # the policy as received (bounded)
    duplicates: tuple[str, ...] = ()  # repeated directives (browsers use the first)
    invalid: tuple[str, ...] = ()  # what could not be read, escaped

    def has(self, name: str) -> bool:
        return name in self.directives

    def get(self, name: str) -> tuple[str, ...] | None:
        return self.directives.get(name)

    def effective(self, name: str) -> tuple[str, ...] | None:
        """The sources that govern `name`, following the fallback list; None: unrestricted."""
        if name in self.directives:
            return self.directives[name]
        for other in _FALLBACK.get(name, ()):
            if other in self.directives:
                return self.directives[other]
        return None

    def text(self, name: str) -> str:
        found = self.get(name)
        return f"{name} {' '.join(found)}".strip() if found is not None else f"no {name}"

    def effective_text(self, name: str) -> str:
        if name in self.directives:
            return self.text(name)
        for other in _FALLBACK.get(name, ()):
            if other in self.directives:
                return f"{self.text(other)} (no {name}: {other} applies)"
        return f"no {name} and no fallback"

    @property
    def empty(self) -> bool:
        return not self.directives


def _normalise(token: str) -> str:
    low = token.lower()
    if low.startswith(("'nonce-", "'sha256-", "'sha384-", "'sha512-")):
        prefix = token.index("-") + 1
        return low[:prefix] + token[prefix:]  # the base64 value keeps its case
    return low  # keywords, schemes and hosts are case-insensitive


def parse_policy(text: str) -> Policy:
    """One serialised policy (`directive value; directive value`). Never raises."""
    invalid: list[str] = []
    if not isinstance(text, str):
        return Policy({}, "", invalid=(f"not text: {type(text).__name__}",))
    if len(text) > MAX_POLICY_CHARS:
        invalid.append(f"policy longer than {MAX_POLICY_CHARS} characters: the rest is ignored")
        text = text[:MAX_POLICY_CHARS]
    directives: dict[str, tuple[str, ...]] = {}
    duplicates: list[str] = []
    for part in text.split(";"):
        tokens = part.split()
        if not tokens:
            continue
        name = tokens[0].lower()
        if not _NAME.match(name):
            invalid.append(f"directive name {escape(tokens[0], 60)}")
            continue
        if name in directives:
            duplicates.append(name)
            continue
        if len(directives) >= MAX_DIRECTIVES:
            invalid.append(f"more than {MAX_DIRECTIVES} directives: the rest is ignored")
            break
        sources: list[str] = []
        for token in tokens[1:]:
            if not _TOKEN.match(token):
                invalid.append(f"{name}: source {escape(token, 60)}")
                continue
            if len(sources) < MAX_SOURCES:
                sources.append(_normalise(token))
        directives[name] = tuple(sources)
    return Policy(directives, escape(text, 2000) if _needs_escape(text) else text, tuple(duplicates),
                  tuple(invalid))


def _needs_escape(text: str) -> bool:
    return any(ord(c) < 0x20 or ord(c) == 0x7f for c in text)


def parse_header_values(values: Iterable[str]) -> list[Policy]:
    """Every policy in the Content-Security-Policy headers of one response (a comma separates
    policies within one header)."""
    policies = []
    for value in values:
        for part in str(value).split(","):
            if part.strip():
                policies.append(parse_policy(part))
    return policies


# --- source-list predicates ---------------------------------------------------------------------


def _has_nonce_or_hash(sources: tuple[str, ...]) -> bool:
    return any(s.startswith(("'nonce-", "'sha256-", "'sha384-", "'sha512-")) for s in sources)


def allows_inline(sources: tuple[str, ...] | None) -> bool:
    """'unsafe-inline' that browsers honour (CSP2+ ignore it next to a nonce or hash)."""
    if sources is None:
        return True
    return "'unsafe-inline'" in sources and not _has_nonce_or_hash(sources)


def broad_sources(sources: tuple[str, ...]) -> list[str]:
    """Sources that let any site's content in: *, bare schemes (data:, https:, http:)."""
    if "'strict-dynamic'" in sources and _has_nonce_or_hash(sources):
        return []  # host and scheme sources are ignored under strict-dynamic
    return [s for s in sources if s == "*" or s in ("https:", "http:", "data:", "ws:", "wss:", "filesystem:")]


def insecure_hosts(sources: tuple[str, ...]) -> list[str]:
    return [s for s in sources if s == "http:" or s.startswith("http://") or s == "ws:" or s.startswith("ws://")]


def host_sources(sources: tuple[str, ...] | None) -> list[str]:
    """Host names in host sources (`https://media.example`, `media.example`, `*.cdn.example` kept as is)."""
    hosts = []
    for s in sources or ():
        if s.startswith("'") or s.endswith(":"):
            continue
        host = s.split("://", 1)[-1].split("/", 1)[0]
        host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        if host and host != "*" and re.match(r"^[a-z0-9*.-]+$", host):
            hosts.append(host)
    return hosts


def is_none(sources: tuple[str, ...] | None) -> bool:
    return sources is not None and (sources == ("'none'",) or sources == ())


# --- judgements -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Issue:
    directive: str
    level: str  # "fail", "warn", "info" or "ok"
    message: str
    observed: str
    expected: str


def weakness_in_all(policies: list[Policy], test: Callable[[Policy], Issue | None]) -> Issue | None:
    """A weakness counts when every enforced policy has it (browsers enforce them all)."""
    found = [test(p) for p in policies]
    if not found or any(i is None for i in found):
        return None
    return found[0]


def _script(p: Policy) -> Issue | None:
    sources = p.effective("script-src")
    if sources is None:
        return Issue("script-src", "fail", "no script-src or default-src: any script may run",
                     "no script-src, no default-src", MASTODON_POLICY["script-src"])
    bad = [s for s in ("'unsafe-inline'", "'unsafe-eval'") if s in sources]
    if bad == ["'unsafe-inline'"] and not allows_inline(sources):
        bad = []  # ignored next to a nonce or hash
    broad = broad_sources(sources)
    if bad or broad:
        what = ", ".join(bad + broad)
        return Issue("script-src", "fail", f"scripts are allowed from {what}", p.effective_text("script-src"),
                     MASTODON_POLICY["script-src"] + " ('wasm-unsafe-eval' is fine)")
    insecure = insecure_hosts(sources)
    if insecure:
        return Issue("script-src", "fail", f"scripts may load over plain http ({', '.join(insecure)})",
                     p.effective_text("script-src"), MASTODON_POLICY["script-src"])
    return None


def _object(p: Policy) -> Issue | None:
    if is_none(p.effective("object-src")):
        return None
    return Issue("object-src", "warn", "plugins (object/embed) are not blocked", p.effective_text("object-src"),
                 "object-src 'none' (or default-src 'none')")


def _default(p: Policy) -> Issue | None:
    sources = p.get("default-src")
    if is_none(sources):
        return None
    return Issue("default-src", "warn", "default-src is not 'none': directives not listed are open",
                 p.text("default-src"), "default-src 'none'")


def _frame_ancestors(p: Policy) -> Issue | None:
    sources = p.get("frame-ancestors")
    if sources is None:
        return Issue("frame-ancestors", "warn", "no frame-ancestors: other sites may frame the app",
                     "no frame-ancestors", "frame-ancestors 'none'")
    broad = broad_sources(sources)
    if broad:
        return Issue("frame-ancestors", "fail", f"any site may frame the app ({', '.join(broad)})",
                     p.text("frame-ancestors"), "frame-ancestors 'none'")
    return None


def _base_uri(p: Policy) -> Issue | None:
    sources = p.get("base-uri")
    if sources is None:
        return Issue("base-uri", "warn", "no base-uri: injected <base> tags can redirect relative URLs",
                     "no base-uri", "base-uri 'none'")
    if is_none(sources) or sources == ("'self'",):
        return None
    return Issue("base-uri", "warn", "base-uri allows other origins", p.text("base-uri"), "base-uri 'none'")


def _style(p: Policy) -> Issue | None:
    if allows_inline(p.effective("style-src")) and p.effective("style-src") is not None:
        return Issue("style-src", "warn", "inline styles allowed (as Mastodon before 4.2): CSS injection possible",
                     p.effective_text("style-src"), "style-src 'self' with a nonce, no 'unsafe-inline'")
    if p.effective("style-src") is None:
        return Issue("style-src", "warn", "styles are unrestricted", "no style-src and no default-src",
                     MASTODON_POLICY["style-src"])
    return None


APP_TESTS: tuple[Callable[[Policy], Issue | None], ...] = (_script, _object, _default, _frame_ancestors,
                                                           _base_uri, _style)


def compare_with_mastodon(policies: list[Policy]) -> list[Issue]:
    """The app's enforced policies against Mastodon's own: the weaknesses that every policy shares."""
    if not policies or all(p.empty for p in policies):
        return [Issue("content-security-policy", "fail", "no Content-Security-Policy", "none",
                      "Mastodon's policy (script-src 'self' …, default-src 'none')")]
    issues = [i for test in APP_TESTS if (i := weakness_in_all(policies, test)) is not None]
    for p in policies:
        for bad in p.invalid[:3]:
            issues.append(Issue("content-security-policy", "warn", f"unreadable part of the policy: {bad}",
                                bad, "a well-formed policy"))
    return issues


def _sandboxed(p: Policy, token: str) -> bool:
    sources = p.get("sandbox")
    return sources is not None and token not in sources


def _media_weakness(policies: list[Policy], directive: str, level: str, message: str, ok: Callable[[Policy], bool],
                    shown: Callable[[Policy], str] | None = None) -> Issue | None:
    """The issue every policy shares when none of them is `ok` for a directive of the media policy."""
    return weakness_in_all(policies, lambda p: None if ok(p) else Issue(
        directive, level, message, shown(p) if shown else p.text(directive), MEDIA_POLICY))


def media_issues(policies: list[Policy]) -> list[Issue]:
    """A media response's policy against `default-src 'none'; form-action 'none'` (or stricter)."""
    if not policies or all(p.empty for p in policies):
        return [Issue("content-security-policy", "fail", "no Content-Security-Policy on media", "none", MEDIA_POLICY)]
    scripts = _media_weakness(policies, "script-src", "fail", "an uploaded file could run scripts",
                              lambda p: is_none(p.effective("script-src")) or _sandboxed(p, "allow-scripts"),
                              lambda p: p.effective_text("script-src"))
    default = _media_weakness(policies, "default-src", "warn", "default-src is not 'none'",
                              lambda p: is_none(p.get("default-src")) or p.has("sandbox"))
    forms = _media_weakness(policies, "form-action", "warn", "an uploaded HTML file could submit forms",
                            lambda p: is_none(p.get("form-action")) or _sandboxed(p, "allow-forms"))
    # default-src is only worth a word when scripts are blocked otherwise
    issues = [i for i in (scripts, None if scripts else default, forms) if i is not None]
    return issues
