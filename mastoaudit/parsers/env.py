"""Mastodon's `.env.production`, read the way Mastodon reads it: with the dotenv gem (3.x) for Rails
and Sidekiq, and the dotenv npm package for the streaming server; both follow the same rules.

- `KEY=VALUE`, `KEY = VALUE`, `KEY: VALUE`, an optional `export ` before the key;
- `#` starts a comment on a line of its own, and after an unquoted value (dotenv ends an unquoted
  value at the first `#`, with or without a space before it);
- single-quoted values are literal; double-quoted values take backslash escapes; both may run
  over several lines;
- `$VAR`, `${VAR}` and `$(command)` in unquoted and double-quoted values are expanded by dotenv at
  load time, so their value here is not the value Mastodon sees: they are marked templated, like
  `{{ }}`, `{% %}` and `<%= %>` from configuration-management templates;
- a key set twice keeps its last value (dotenv's hash), and every assignment is recorded so that
  a check can point at both.

Stricter than dotenv on purpose: dotenv silently skips a line it cannot read and takes a bare word
as an empty variable. Either is nearly always a broken edit (a value wrapped onto the next line,
a missing `=`), so here it is a ParseError at that line instead of a guess.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

from .. import templating
from ..addresses import is_loopback
from .base import ConfigFact, ParseError, SourceFile, vocabulary

_KEY = re.compile(r"[A-Za-z0-9_.]+")
_SEPARATOR = re.compile(r"\s*=\s*|:\s+")

TRUE_VALUES = frozenset({"true", "1", "yes", "on"})


@dataclass(frozen=True)
class EnvVar:
    """One assignment: the value as Mastodon reads it (quotes removed, escapes applied)."""

    key: str
    value: str
    line: int
    quote: str = ""  # "", "'" or '"'
    templated: bool = False
    exported: bool = False

    @property
    def is_set(self) -> bool:
        return self.value != ""


# --- which variables hold secrets -----------------------------------------------------------------

SECRET_KEYS = frozenset({
    "SECRET_KEY_BASE", "OTP_SECRET", "VAPID_PRIVATE_KEY", "DB_PASS", "REPLICA_DB_PASS", "REDIS_PASSWORD",
    "CACHE_REDIS_PASSWORD", "SIDEKIQ_REDIS_PASSWORD", "ES_PASS", "SMTP_PASSWORD", "BULK_SMTP_PASSWORD",
    "AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "SWIFT_PASSWORD", "LDAP_PASSWORD", "OIDC_CLIENT_SECRET",
    "CAS_SECRET", "SAML_PRIVATE_KEY", "DEEPL_API_KEY", "LIBRE_TRANSLATE_API_KEY", "CACHE_BUSTER_SECRET",
    "OTEL_EXPORTER_OTLP_HEADERS", "HCAPTCHA_SECRET_KEY",
})
SECRET_PREFIXES = ("ACTIVE_RECORD_ENCRYPTION_",)
SECRET_SUFFIXES = ("_PASSWORD", "_PASS", "_SECRET", "_KEY", "_TOKEN", "_SALT", "_SECRET_KEY")
PUBLIC_KEYS = frozenset({"VAPID_PUBLIC_KEY", "HCAPTCHA_SITE_KEY", "SAML_CERT"})
# Variables a parse error may name (an upper-case word on a line of its own may as well be a
# wrapped secret: only Mastodon's own names are repeated).
KNOWN_KEYS = SECRET_KEYS | PUBLIC_KEYS | frozenset({
    "LOCAL_DOMAIN", "WEB_DOMAIN", "ALTERNATE_DOMAINS", "RAILS_ENV", "NODE_ENV", "DB_HOST", "DB_PORT", "DB_NAME",
    "DB_USER", "DATABASE_URL", "REDIS_HOST", "REDIS_PORT", "REDIS_URL", "REDIS_NAMESPACE", "ES_ENABLED", "ES_HOST",
    "ES_PORT", "ES_USER", "ES_PRESET", "S3_ENABLED", "S3_BUCKET", "S3_REGION", "S3_ENDPOINT", "S3_ALIAS_HOST",
    "S3_PERMISSION", "SMTP_SERVER", "SMTP_PORT", "SMTP_LOGIN", "SMTP_FROM_ADDRESS", "SMTP_AUTH_METHOD",
    "SMTP_OPENSSL_VERIFY_MODE", "SMTP_ENABLE_STARTTLS", "SMTP_TLS", "SMTP_SSL", "SINGLE_USER_MODE", "AUTHORIZED_FETCH",
    "LIMITED_FEDERATION_MODE", "TRUSTED_PROXY_IP", "ALLOWED_PRIVATE_ADDRESSES", "STREAMING_API_BASE_URL",
    "RAILS_SERVE_STATIC_FILES", "RAILS_LOG_LEVEL", "WEB_CONCURRENCY", "MAX_THREADS", "PREPARED_STATEMENTS",
    "CACHE_REDIS_URL", "SIDEKIQ_REDIS_URL", "IP_RETENTION_PERIOD", "SESSION_RETENTION_PERIOD", "DEFAULT_LOCALE",
})
# Values that mean "nothing here" rather than a secret (a flag that happens to end in _KEY).
_NOT_SECRET_VALUES = frozenset({"true", "false", "yes", "no", "none", "nil", "null", "0", "1"})


def is_secret_key(key: str) -> bool:
    key = key.upper()
    if key in PUBLIC_KEYS:
        return False
    return key in SECRET_KEYS or key.startswith(SECRET_PREFIXES) or key.endswith(SECRET_SUFFIXES)


def url_password(value: str) -> str | None:
    """The password in `scheme://user:password@host...`, as written (still percent-encoded)."""
    if "://" not in value:
        return None
    try:
        parts = urlsplit(value.strip())
        return parts.password or None
    except ValueError:
        return None


@dataclass
class MastodonEnv(ConfigFact):
    variables: dict[str, EnvVar] = field(default_factory=dict)  # the value in force: last assignment
    assignments: list[EnvVar] = field(default_factory=list)  # every assignment, in file order

    def get(self, key: str) -> EnvVar | None:
        return self.variables.get(key)

    def value(self, key: str, default: str | None = None) -> str | None:
        """The value in force, or `default` when the key is absent or empty (Mastodon's `.presence`)."""
        var = self.variables.get(key)
        return var.value if var is not None and var.value != "" else default

    def is_true(self, key: str) -> bool:
        var = self.variables.get(key)
        return var is not None and not var.templated and var.value.strip().lower() in TRUE_VALUES

    def duplicates(self) -> dict[str, list[EnvVar]]:
        seen: dict[str, list[EnvVar]] = {}
        for var in self.assignments:
            seen.setdefault(var.key, []).append(var)
        return {key: found for key, found in seen.items() if len(found) > 1}

    def secret_vars(self) -> list[EnvVar]:
        """Variables in force whose value is a secret (set, not templated, not a flag)."""
        return [v for v in self.variables.values() if _holds_secret(v)]

    def secret_values(self) -> tuple[str, ...]:
        found: set[str] = set()
        for var in self.assignments:  # earlier values of a key set twice are secrets too
            if _holds_secret(var):
                found.add(var.value)
            password = url_password(var.value) if not var.templated else None
            if password:
                found.add(password)
                found.add(unquote(password))
        return tuple(sorted(found))


def _holds_secret(var: EnvVar) -> bool:
    return (is_secret_key(var.key) and var.value != "" and not var.templated
            and var.value.strip().lower() not in _NOT_SECRET_VALUES)


# --- parsing --------------------------------------------------------------------------------------


def parse_mastodon_env(source: SourceFile) -> MastodonEnv:
    lines = source.config_text.split("\n")
    env = MastodonEnv(source.path)
    index = 0
    while index < len(lines):
        number = index + 1
        rest = lines[index].lstrip()  # trailing spaces may belong to a quoted value that goes on
        index += 1
        if not rest.strip() or rest.startswith("#"):
            continue
        exported = False
        if rest.startswith("export") and rest[6:7].isspace():
            exported, rest = True, rest[6:].lstrip()
        key_match = _KEY.match(rest)
        if key_match is None:
            raise ParseError("expected KEY=VALUE: this line does not start with a variable name", number)
        key, rest = key_match.group(), rest[key_match.end():]
        separator = _SEPARATOR.match(rest)
        if separator is None:
            if exported and (not rest.strip() or rest.lstrip().startswith("#")):
                # `export KEY` exports a key set earlier; dotenv refuses one that is not set.
                if key not in env.variables:
                    raise ParseError(f"export of {vocabulary(key, KNOWN_KEYS, 'a variable')}, which is not set above",
                                     number)
                continue
            raise ParseError("expected KEY=VALUE: no '=' after "
                             f"{vocabulary(key, KNOWN_KEYS, 'the first word')} (a value wrapped onto its own line?)",
                             number)
        raw = rest[separator.end():]
        written, quote, index = _read_value(raw, lines, index, number)
        value = written if quote == "'" else _unescape(written, quote)
        var = EnvVar(key, value, number, quote, _is_templated(written, quote), exported)
        env.assignments.append(var)
        env.variables[key] = var
    return env


def _read_value(raw: str, lines: list[str], index: int, number: int) -> tuple[str, str, int]:
    """The value starting at `raw` (rest of line `number`) as written, without its quotes; quoted
    values may continue on the lines from `index`. Returns it, its quote and the next line's index."""
    if raw[:1] not in ("'", '"'):
        return raw.split("#", 1)[0].strip(), "", index
    quote = raw[0]
    text, start = raw, 1
    while True:
        end = _closing_quote(text, start, quote)
        if end is not None:
            break
        if index >= len(lines):
            if quote == '"':
                raise ParseError("the double quote opened here is never closed", number)
            raise ParseError("the single quote opened here is never closed", number)
        start = len(text) + 1
        text += "\n" + lines[index]
        index += 1
    trailing = text[end + 1:].strip()
    if trailing and not trailing.startswith("#"):
        raise ParseError("unexpected text after the closing quote", number + text.count("\n"))
    return text[1:end], quote, index


def _closing_quote(text: str, start: int, quote: str) -> int | None:
    position = start
    while position < len(text):
        char = text[position]
        if char == "\\" and position + 1 < len(text):
            position += 2  # an escaped character, the quote included, does not close
            continue
        if char == quote:
            return position
        position += 1
    return None


def _unescape(value: str, quote: str) -> str:
    """dotenv 3: a backslash keeps the next character (`\\$` stays for the expansion step, which
    then makes it a literal `$`); in double quotes `\\n` and `\\r` stay as written."""
    out: list[str] = []
    position = 0
    while position < len(value):
        char = value[position]
        if char == "\\" and position + 1 < len(value):
            following = value[position + 1]
            if following == "$" or (quote == '"' and following in "nr"):
                out.append(char + following if following != "$" else "$")
            else:
                out.append(following)
            position += 2
            continue
        out.append(char)
        position += 1
    return "".join(out)


def _is_templated(written: str, quote: str) -> bool:
    """Judged on the value as written, where an escaped `\\$` is still escaped."""
    # Unquoted and double-quoted values: what dotenv would expand (an unescaped $ before a name, a
    # brace or a parenthesis). Single-quoted values are literal to dotenv, but not to another tool.
    return templating.is_templated(written, "dotenv-literal" if quote == "'" else "dotenv")


# --- judging values (shared by the checks) --------------------------------------------------------


def vapid_key_shape(value: str, public: bool) -> str | None:
    """None when `value` is a base64url P-256 key of the right size, else what is wrong with it."""
    padded = value.strip() + "=" * (-len(value.strip()) % 4)
    try:
        raw = base64.urlsafe_b64decode(padded.encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return "not base64url"
    if public:
        return None if len(raw) == 65 and raw[0] == 4 else f"{len(raw)} bytes, not a 65-byte P-256 public key"
    return None if len(raw) == 32 else f"{len(raw)} bytes, not a 32-byte P-256 private key"


# --- where a connection goes ----------------------------------------------------------------------

# Service names of Mastodon's docker-compose.yml (and the usual variants): containers on the
# compose project's internal network, not hosts across a network.
COMPOSE_SERVICE_NAMES = frozenset({"db", "postgres", "postgresql", "redis", "es", "elasticsearch", "opensearch"})


def is_local_host(host: str | None) -> bool:
    """Loopback names and addresses, unix sockets and docker-compose service names are local."""
    if host is None or host == "":
        return True  # every Mastodon client defaults to localhost
    host = host.strip().strip("[]").lower()
    if host.startswith("/") or host.startswith("unix:"):
        return True
    return host in COMPOSE_SERVICE_NAMES or is_loopback(host)


@dataclass(frozen=True)
class Endpoint:
    """Where Mastodon connects for one backing service, and how, as this file configures it."""

    role: str  # "database", "Redis", "cache Redis", ...
    host: str  # a host name, an address or a socket path
    scheme: str | None  # from a URL (redis, rediss, postgres, https ...) or None for host settings
    password_set: bool
    origin: EnvVar | None  # the variable that decides where it goes (for the location)
    query: dict[str, str] = field(default_factory=dict)
    templated: bool = False  # where it goes cannot be known
    password_templated: EnvVar | None = None  # a password variable whose value is a template

    @property
    def local(self) -> bool:
        return is_local_host(self.host)

    @property
    def described(self) -> str:
        return f"{self.role} at {self.host}" + (f" ({self.origin.key})" if self.origin else " (default)")


def _url_endpoint(role: str, var: EnvVar) -> Endpoint:
    try:
        parts = urlsplit(var.value.strip())
        host = parts.hostname or ""
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        password = parts.password
    except ValueError:
        return Endpoint(role, var.value, None, False, var, templated=True)
    if not host:
        # postgres:///db?host=/run/postgresql, redis+unix / unix:///path: sockets
        host = query.get("host") or parts.path or ""
        if parts.scheme in ("unix", "redis+unix"):
            host = "unix:" + parts.path
    return Endpoint(role, host, parts.scheme.lower(), bool(password or query.get("password")), var, query,
                    var.templated)


def database_endpoints(env: MastodonEnv) -> list[Endpoint]:
    """The primary database and, when configured, the read replica (DATABASE_URL wins over DB_*)."""
    found = []
    for role, url_key, prefix in (("database", "DATABASE_URL", "DB_"), ("replica database", "REPLICA_DATABASE_URL",
                                                                         "REPLICA_DB_")):
        url = env.get(url_key)
        if url is not None and url.is_set:
            found.append(_url_endpoint(role, url))
            continue
        host = env.get(prefix + "HOST")
        if prefix == "REPLICA_DB_" and host is None:
            continue
        password = env.get(prefix + "PASS")
        found.append(Endpoint(role, host.value if host and host.is_set else "localhost", None,
                              bool(password and password.is_set), host,
                              templated=bool(host and host.templated)))
    return found


def redis_endpoints(env: MastodonEnv) -> list[Endpoint]:
    """The main Redis and the cache and Sidekiq ones when they are configured apart from it."""
    found = []
    for role, prefix in (("Redis", "REDIS_"), ("cache Redis", "CACHE_REDIS_"), ("Sidekiq Redis", "SIDEKIQ_REDIS_")):
        url = env.get(prefix + "URL")
        if url is not None and url.is_set:
            found.append(_url_endpoint(role, url))
            continue
        host = env.get(prefix + "HOST")
        if prefix != "REDIS_" and host is None:
            continue  # the cache and Sidekiq use the main Redis
        password = env.get(prefix + "PASSWORD")
        found.append(Endpoint(role, host.value if host and host.is_set else "localhost", None,
                              bool(password and password.is_set), host,
                              templated=bool(host and host.templated),
                              password_templated=password if password and password.templated else None))
    return found


def elasticsearch_endpoint(env: MastodonEnv) -> Endpoint:
    host = env.get("ES_HOST")
    value = host.value.strip() if host and host.is_set else "localhost"
    scheme = None
    if "://" in value:
        scheme, _, value = value.partition("://")
        scheme = scheme.lower()
        value = value.split("/", 1)[0].rsplit("@", 1)[-1]
        value = value.rsplit(":", 1)[0] if value.count(":") == 1 else value
    password = env.get("ES_PASS")
    user = env.get("ES_USER")
    unknown = next((v for v in (user, password) if v is not None and v.templated), None)
    return Endpoint("search cluster", value, scheme, bool(password and password.is_set and user and user.is_set), host,
                    templated=bool(host and host.templated), password_templated=unknown)
