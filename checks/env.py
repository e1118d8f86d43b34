"""Mastodon's `.env.production`: the instance's secrets, and how it reaches its backing services.

Every judgement here is about what the file says. A value this file cannot see (a template, a
`${VAR}` that dotenv expands at load time) is skipped with that reason, never passed. Evidence
about a secret gives its length and entropy class, never the value.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from mastoaudit.checkdef import Remediation, check, failed, passed, skipped, warned
from mastoaudit.facts import FactSet
from mastoaudit.model import Outcome
from mastoaudit.parsers.env import (
    Endpoint,
    EnvVar,
    MastodonEnv,
    database_endpoints,
    elasticsearch_endpoint,
    is_local_host,
    redis_endpoints,
    sample_reason,
    strength,
    url_password,
    vapid_key_shape,
)

CONFIG_DOCS = "https://docs.joinmastodon.org/admin/config/"
NEEDS = ["mastodon_env"]


def _envs(facts: FactSet) -> list[MastodonEnv]:
    return facts.all("mastodon_env")


def _at(env: MastodonEnv, var: EnvVar | None):
    return env.at(var.line if var else None)


def _templated(env: MastodonEnv, var: EnvVar) -> Outcome:
    return skipped(f"{var.key} is templated or expanded at load time: its value cannot be judged here",
                   at=_at(env, var), subject=var.key, observed="templated", expected="a literal value")


def _judge_key_material(env: MastodonEnv, key: str, min_length: int, what: str) -> Outcome:
    """A generated secret: present, not a sample, long and random enough."""
    var = env.get(key)
    if var is None or not var.is_set:
        return failed(f"{key} is {'empty' if var else 'missing'}: {what}", at=_at(env, var), subject=key,
                      observed="empty" if var else "missing", expected=f"a generated value of {min_length}+ characters")
    if var.templated:
        return _templated(env, var)
    found = strength(var.value)
    reason = sample_reason(var.value)
    if reason:
        return failed(f"{key} is {reason}: anyone can look it up", at=_at(env, var), subject=key,
                      observed=f"sample value ({found.describe()})", expected="a freshly generated value")
    if found.length < min_length:
        return failed(f"{key} is short: {found.length} characters where {min_length} are expected", at=_at(env, var),
                      subject=key, observed=f"short ({found.describe()})", expected=f"{min_length}+ random characters")
    if found.level != "high":
        return failed(f"{key} is long enough but not random (repeated or patterned)", at=_at(env, var), subject=key,
                      observed=found.describe(), expected="high entropy (a generated value)")
    return passed(f"{key} is a strong generated value", at=_at(env, var), subject=key, observed=found.describe(),
                  expected=f"{min_length}+ random characters")


# --- secrets --------------------------------------------------------------------------------------


@check(
    id="env.secret-key-base",
    title="SECRET_KEY_BASE is a long generated secret",
    component="mastodon-env",
    severity="critical",
    threats=["T-SECRETS-EXPOSED", "T-APP-AUTH"],
    needs=NEEDS,
    rationale="""Rails signs and encrypts session cookies with keys derived from SECRET_KEY_BASE.
        Whoever knows or guesses it can forge a session for any account, administrators included.
        `rails secret` gives 128 hexadecimal characters; a short, sample or hand-typed value is the
        whole instance's front door key.""",
    remediation=Remediation(
        "Generate a new value with `bundle exec rails secret` (or `openssl rand -hex 64`) and restart "
        "Mastodon; every user is logged out once.",
        "SECRET_KEY_BASE=<output of: bundle exec rails secret>",
    ),
    references=[CONFIG_DOCS + "#secret_key_base"],
    tags=["secrets"],
)
def secret_key_base(facts: FactSet) -> Iterator[Outcome]:
    for env in _envs(facts):
        yield _judge_key_material(env, "SECRET_KEY_BASE", 64, "sessions cannot be signed safely")


AR_KEYS = ("ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY", "ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT",
           "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY")


@check(
    id="env.active-record-encryption",
    title="The Active Record encryption keys are set and strong",
    component="mastodon-env",
    severity="high",
    threats=["T-SECRETS-EXPOSED", "T-DATA-AT-REST"],
    needs=NEEDS,
    rationale="""Since 4.3 Mastodon encrypts sensitive columns (two-factor secrets, among others)
        with keys derived from these three values, and refuses to start without them. A short or
        sample value makes the encryption decorative: a database dump is then as good as
        plaintext. Mastodon's own test values end in DO_NOT_USE_IN_PRODUCTION.""",
    remediation=Remediation(
        "Generate the three values once with `bin/rails db:encryption:init` and keep them: changing them "
        "later makes the encrypted data unreadable.",
        "ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY=...\nACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT=...\n"
        "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY=...",
    ),
    references=[CONFIG_DOCS + "#db-encryption-support"],
    tags=["secrets", "encryption"],
)
def active_record_encryption(facts: FactSet) -> Iterator[Outcome]:
    for env in _envs(facts):
        for key in AR_KEYS:
            yield _judge_key_material(env, key, 32, "required since Mastodon 4.3")


@check(
    id="env.vapid-keys",
    title="The Web Push (VAPID) key pair is generated, not copied",
    component="mastodon-env",
    severity="medium",
    threats=["T-SECRETS-EXPOSED"],
    needs=NEEDS,
    rationale="""The VAPID private key identifies this server to the browsers' push services. A
        placeholder or copied key pair lets someone else send push messages in the instance's name
        to subscriptions they learn of, and a malformed one silently breaks push notifications.""",
    remediation=Remediation(
        "Generate a pair with `bundle exec rake mastodon:webpush:generate_vapid_key`; users re-subscribe "
        "to push notifications afterwards.",
        "VAPID_PRIVATE_KEY=...\nVAPID_PUBLIC_KEY=...",
    ),
    references=[CONFIG_DOCS + "#vapid_private_key"],
    tags=["secrets"],
)
def vapid_keys(facts: FactSet) -> Iterator[Outcome]:
    for env in _envs(facts):
        private, public = env.get("VAPID_PRIVATE_KEY"), env.get("VAPID_PUBLIC_KEY")
        if not (private and private.is_set) and not (public and public.is_set):
            yield warned("no VAPID keys: web push notifications are disabled", at=_at(env, private or public),
                         subject="VAPID_PRIVATE_KEY", observed="missing", expected="a generated key pair")
            continue
        for key, var, is_public in (("VAPID_PRIVATE_KEY", private, False), ("VAPID_PUBLIC_KEY", public, True)):
            if var is None or not var.is_set:
                yield failed(f"{key} is missing while its pair is set", at=_at(env, var), subject=key,
                             observed="missing", expected="both keys of one generated pair")
                continue
            if var.templated:
                yield _templated(env, var)
                continue
            reason = sample_reason(var.value)
            shape = vapid_key_shape(var.value, is_public)
            if reason:
                yield failed(f"{key} is {reason}", at=_at(env, var), subject=key,
                             observed=f"sample value (length {len(var.value)})", expected="a generated P-256 key")
            elif shape:
                yield failed(f"{key} is not a usable key: {shape}", at=_at(env, var), subject=key,
                             observed=f"malformed ({shape})", expected="a base64url P-256 key")
            else:
                yield passed(f"{key} is a well-formed generated key", at=_at(env, var), subject=key,
                             observed="P-256 " + ("public" if is_public else "private") + " key",
                             expected="a generated P-256 key")


@check(
    id="env.otp-secret",
    title="OTP_SECRET, where still present, is not a sample or weak value",
    component="mastodon-env",
    severity="high",
    threats=["T-SECRETS-EXPOSED", "T-APP-AUTH"],
    needs=NEEDS,
    rationale="""Up to 4.3 OTP_SECRET encrypted users' two-factor seeds; 4.4 moved them to Active
        Record encryption and only reads OTP_SECRET once, to migrate them. A weak or published value
        (Mastodon's test suite publishes one) means the seeds in any older dump can be decrypted and
        second factors generated. Absent is fine on 4.4 and later.""",
    remediation=Remediation(
        "On 4.4 or later, once the two-factor migration has run, remove OTP_SECRET. On older versions "
        "replace a weak value with `bundle exec rails secret` (this resets users' two-factor setups).",
    ),
    references=[CONFIG_DOCS + "#otp_secret"],
    tags=["secrets"],
)
def otp_secret(facts: FactSet) -> Iterator[Outcome]:
    for env in _envs(facts):
        var = env.get("OTP_SECRET")
        if var is None or not var.is_set:
            yield passed("OTP_SECRET is not set: Mastodon 4.4 and later do not need it", at=_at(env, var),
                         subject="OTP_SECRET", observed="unset", expected="unset (4.4+) or a generated value")
            continue
        outcome = _judge_key_material(env, "OTP_SECRET", 64, "")
        if outcome.status.value == "pass":
            outcome = passed("OTP_SECRET is strong; on 4.4+ it is only read by the two-factor migration and can "
                             "then be removed", at=_at(env, var), subject="OTP_SECRET", observed=outcome.observed,
                             expected=outcome.expected)
        yield outcome


# Reuse inside one service is normal (the cache Redis and the main one share a password); reuse
# across services or of key material is not.
_SERVICE_GROUPS = {
    "DB_PASS": "postgresql", "REPLICA_DB_PASS": "postgresql", "DATABASE_URL": "postgresql",
    "REPLICA_DATABASE_URL": "postgresql", "SMTP_PASSWORD": "smtp", "BULK_SMTP_PASSWORD": "smtp",
}


def _group(key: str) -> str:
    if key in _SERVICE_GROUPS:
        return _SERVICE_GROUPS[key]
    if "REDIS_" in key:
        return "redis"
    return key


def _secret_items(env: MastodonEnv) -> list[tuple[str, EnvVar, str]]:
    """(label, variable, secret) for every secret in force, URL passwords included."""
    items = [(var.key, var, var.value) for var in env.secret_vars() if var.key not in ("AWS_ACCESS_KEY_ID",)]
    for var in env.variables.values():
        password = url_password(var.value)
        if password and not var.templated:
            items.append((f"{var.key} password", var, password))
    return items


@check(
    id="env.secrets-distinct",
    title="Every secret and service password is different",
    component="mastodon-env",
    severity="high",
    threats=["T-SECRETS-EXPOSED", "T-DB-WEAK-CREDENTIALS"],
    needs=NEEDS,
    rationale="""Each secret protects something different: sessions, encrypted columns, push, the
        database, Redis, mail. One value in two places means one leak (a Sidekiq job argument, an
        SMTP provider's breach, a log line) opens both, and the encryption keys lose the
        separation Rails' design relies on.""",
    remediation=Remediation("Generate a separate value for each secret; rotate the reused one everywhere it is used."),
    references=[CONFIG_DOCS + "#secrets"],
    tags=["secrets"],
)
def secrets_distinct(facts: FactSet) -> Iterator[Outcome]:
    for env in _envs(facts):
        items = _secret_items(env)
        if not items:
            yield skipped("no secrets are set in this file", at=env.at(), observed="no secrets",
                          expected="generated secrets")
            continue
        seen: dict[str, tuple[str, EnvVar]] = {}
        reused = False
        for label, var, secret in sorted(items, key=lambda item: item[1].line):
            first = seen.get(secret)
            if first is not None and _group(first[0].split(" ")[0]) != _group(var.key):
                reused = True
                yield failed(f"{label} has the same value as {first[0]} (line {first[1].line})", at=_at(env, var),
                             subject=label, observed=f"same value as {first[0]}", expected="a value of its own")
            seen.setdefault(secret, (label, var))
        if not reused:
            yield passed(f"all {len(items)} secrets are different", at=env.at(), observed=f"{len(items)} distinct",
                         expected="no value used twice")


PASSWORD_KEYS = ("DB_PASS", "REPLICA_DB_PASS", "REDIS_PASSWORD", "CACHE_REDIS_PASSWORD", "SIDEKIQ_REDIS_PASSWORD",
                 "ES_PASS", "SMTP_PASSWORD", "BULK_SMTP_PASSWORD", "AWS_SECRET_ACCESS_KEY")
MIN_PASSWORD = 12


def _is_password_key(key: str) -> bool:
    return key in PASSWORD_KEYS or key.endswith(("_PASSWORD", "_PASS"))


@check(
    id="env.service-passwords",
    title="Service passwords are not short, sample or guessable",
    component="mastodon-env",
    severity="high",
    threats=["T-DB-WEAK-CREDENTIALS", "T-SMTP-CREDENTIALS", "T-SECRETS-EXPOSED"],
    needs=NEEDS,
    rationale="""The database, Redis, search, mail and object-storage passwords are typed by
        machines, not people, so nothing excuses a short or guessable one. Services on another host
        are brute-forced over the network, and the sample file's values are the first ones tried.""",
    remediation=Remediation(
        "Use generated passwords (for example `openssl rand -hex 24`), change them on the service, then here.",
    ),
    references=[CONFIG_DOCS],
    tags=["secrets", "credentials"],
)
def service_passwords(facts: FactSet) -> Iterator[Outcome]:
    for env in _envs(facts):
        judged = [(var.key, var, var.value) for var in env.variables.values()
                  if _is_password_key(var.key) and var.is_set]
        judged += [(label, var, secret) for label, var, secret in _secret_items(env) if label.endswith(" password")]
        if not judged:
            yield skipped("no service password is set in this file (sockets or peer authentication)", at=env.at(),
                          observed="no passwords", expected="generated passwords where used")
            continue
        for label, var, secret in judged:
            if var.templated:
                yield _templated(env, var)
                continue
            found = strength(secret)
            reason = sample_reason(secret)
            if reason:
                yield failed(f"{label} is {reason}", at=_at(env, var), subject=label,
                             observed=f"sample value ({found.describe()})", expected="a generated password")
            elif found.length < MIN_PASSWORD:
                yield failed(f"{label} is short: {found.length} characters", at=_at(env, var), subject=label,
                             observed=f"short ({found.describe()})", expected=f"{MIN_PASSWORD}+ random characters")
            elif found.level == "low":
                yield failed(f"{label} is guessable (repeated or patterned)", at=_at(env, var), subject=label,
                             observed=found.describe(), expected="a generated password")
            else:
                yield passed(f"{label} is long and random", at=_at(env, var), subject=label,
                             observed=found.describe(), expected=f"{MIN_PASSWORD}+ random characters")


# --- federation and access ------------------------------------------------------------------------


@check(
    id="env.authorized-fetch",
    title="Secure mode (AUTHORIZED_FETCH) is on",
    component="mastodon-env",
    severity="medium",
    threats=["T-FED-DATA-LEAK", "T-FED-MALICIOUS-INSTANCE"],
    needs=NEEDS,
    rationale="""Without secure mode, anyone can fetch public posts and profiles over ActivityPub
        without signing the request, so a domain block does not stop a blocked server from
        reading them. Secure mode is a trade-off Mastodon documents (it costs caching and breaks
        some old software), which is why it is off by default: this check warns rather than fails.
        Limited federation mode implies it.""",
    remediation=Remediation("Turn on secure mode if domain blocks must also stop reads.", "AUTHORIZED_FETCH=true"),
    references=[CONFIG_DOCS + "#authorized_fetch"],
    tags=["federation"],
)
def authorized_fetch(facts: FactSet) -> Iterator[Outcome]:
    for env in _envs(facts):
        limited, secure = env.get("LIMITED_FEDERATION_MODE"), env.get("AUTHORIZED_FETCH")
        for var in (limited, secure):
            if var is not None and var.templated:
                yield _templated(env, var)
                break
        else:
            if env.is_true("LIMITED_FEDERATION_MODE"):
                yield passed("limited federation mode is on (it implies secure mode); federation is by allow-list",
                             at=_at(env, limited), subject="LIMITED_FEDERATION_MODE", observed="true",
                             expected="AUTHORIZED_FETCH=true")
            elif env.is_true("AUTHORIZED_FETCH"):
                yield passed("secure mode is on", at=_at(env, secure), subject="AUTHORIZED_FETCH", observed="true",
                             expected="true")
            else:
                yield warned("secure mode is off: blocked servers can still fetch public posts unsigned",
                             at=_at(env, secure), subject="AUTHORIZED_FETCH",
                             observed=secure.value if secure and secure.is_set else "unset (false)", expected="true")


@check(
    id="env.unauthenticated-api",
    title="The public API requires a login (DISALLOW_UNAUTHENTICATED_API_ACCESS)",
    component="mastodon-env",
    severity="low",
    threats=["T-FED-DATA-LEAK", "T-APP-INFO-LEAK"],
    needs=NEEDS,
    rationale="""By default anonymous clients can read public timelines, profiles and posts through
        the REST API, which is how scrapers harvest an instance. Refusing it also makes profile and
        post links show an error to logged-out visitors, a documented trade-off, so it is a warning.""",
    remediation=Remediation("Refuse anonymous API access if logged-out browsing is not wanted.",
                            "DISALLOW_UNAUTHENTICATED_API_ACCESS=true"),
    references=[CONFIG_DOCS + "#disallow_unauthenticated_api_access"],
    tags=["api"],
)
def unauthenticated_api(facts: FactSet) -> Iterator[Outcome]:
    for env in _envs(facts):
        var = env.get("DISALLOW_UNAUTHENTICATED_API_ACCESS")
        if var is not None and var.templated:
            yield _templated(env, var)
        elif env.is_true("DISALLOW_UNAUTHENTICATED_API_ACCESS"):
            yield passed("anonymous API access is refused", at=_at(env, var), subject=var.key, observed=var.value,
                         expected="true")
        else:
            yield warned("anonymous clients can read the public API", at=_at(env, var),
                         subject="DISALLOW_UNAUTHENTICATED_API_ACCESS",
                         observed=var.value if var and var.is_set else "unset (false)", expected="true")


def _networks(value: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network | None]:
    found = []
    for part in value.replace(" ", ",").split(","):
        if part.strip():
            try:
                found.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError:
                found.append(None)
    return found


_NEVER_ALLOWED = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("127.0.0.0/8"),
                  ipaddress.ip_network("::1/128"), ipaddress.ip_network("fe80::/10"))


def _too_broad_for_ssrf(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    """Loopback, link-local (the cloud metadata service) or more than a /24's worth of addresses."""
    if any(net.version == other.version and net.overlaps(other) for other in _NEVER_ALLOWED):
        return True
    return net.num_addresses > 256


@check(
    id="env.allowed-private-addresses",
    title="SSRF protection is not lifted (ALLOWED_PRIVATE_ADDRESSES unset)",
    component="mastodon-env",
    severity="high",
    threats=["T-FED-PROTOCOL-EXPLOIT", "T-PROXY-MISCONFIG"],
    needs=NEEDS,
    rationale="""Mastodon fetches URLs that remote servers and users hand it (profiles, media, link
        previews) and refuses private and loopback addresses so that such a URL cannot reach Redis,
        Elasticsearch, the cloud metadata service or an admin panel on the internal network.
        ALLOWED_PRIVATE_ADDRESSES removes that protection for the ranges it lists.""",
    remediation=Remediation(
        "Remove ALLOWED_PRIVATE_ADDRESSES, or narrow it to the single addresses that must be fetched "
        "(never loopback, link-local or whole private ranges).",
    ),
    references=[CONFIG_DOCS + "#allowed_private_addresses"],
    tags=["ssrf", "network"],
)
def allowed_private_addresses(facts: FactSet) -> Iterator[Outcome]:
    for env in _envs(facts):
        var = env.get("ALLOWED_PRIVATE_ADDRESSES")
        if var is None or not var.is_set:
            yield passed("SSRF protection covers every private address", at=_at(env, var),
                         subject="ALLOWED_PRIVATE_ADDRESSES", observed="unset", expected="unset")
            continue
        if var.templated:
            yield _templated(env, var)
            continue
        nets = _networks(var.value)
        broad = [n for n in nets if n is not None and _too_broad_for_ssrf(n)]
        if broad or any(n is None for n in nets):
            why = "unreadable entries" if not broad else ", ".join(str(n) for n in broad)
            yield failed(f"SSRF protection is lifted for {why}", at=_at(env, var), subject=var.key,
                         observed=var.value, expected="unset, or single internal addresses")
        else:
            yield warned(f"SSRF protection is lifted for {len(nets)} narrow range(s): only the intended service "
                         "may live there", at=_at(env, var), subject=var.key, observed=var.value, expected="unset")


@check(
    id="env.trusted-proxy",
    title="TRUSTED_PROXY_IP trusts only the real proxies",
    component="mastodon-env",
    severity="high",
    threats=["T-PROXY-MISCONFIG", "T-APP-AUTH"],
    needs=NEEDS,
    rationale="""Mastodon takes the client address from X-Forwarded-For only when the request
        comes from a trusted proxy. Trusting every address lets any client pick the address
        Mastodon sees, which defeats the rate limits on sign-in and sign-up, IP blocks and the
        moderation view of sign-up addresses. Unset, the loopback and private ranges are trusted.""",
    remediation=Remediation("List only the proxies' addresses or ranges, or remove the variable to trust the "
                            "loopback and private ranges.", "TRUSTED_PROXY_IP=127.0.0.1/8,::1/128"),
    references=[CONFIG_DOCS + "#trusted_proxy_ip"],
    tags=["network", "rate-limits"],
)
def trusted_proxy(facts: FactSet) -> Iterator[Outcome]:
    for env in _envs(facts):
        var = env.get("TRUSTED_PROXY_IP")
        if var is None or not var.is_set:
            yield passed("the default proxies are trusted (loopback and private ranges)", at=_at(env, var),
                         subject="TRUSTED_PROXY_IP", observed="unset (loopback and private ranges)",
                         expected="the proxies' addresses")
            continue
        if var.templated:
            yield _templated(env, var)
            continue
        nets = _networks(var.value)
        too_wide = [n for n in nets if n is not None and n.prefixlen < (8 if n.version == 4 else 16)]
        if too_wide:
            yield failed(f"TRUSTED_PROXY_IP trusts {', '.join(map(str, too_wide))}: any client can spoof its address",
                         at=_at(env, var), subject=var.key, observed=var.value, expected="the proxies' addresses only")
        elif any(n is None for n in nets):
            yield warned("TRUSTED_PROXY_IP has entries that are not addresses or ranges", at=_at(env, var),
                         subject=var.key, observed=var.value, expected="addresses or CIDR ranges")
        else:
            yield passed("only listed proxies are trusted", at=_at(env, var), subject=var.key, observed=var.value,
                         expected="the proxies' addresses only")


@check(
    id="env.bind-loopback",
    title="Mastodon's processes listen on loopback only (BIND)",
    component="mastodon-env",
    severity="medium",
    threats=["T-PROXY-MISCONFIG"],
    needs=NEEDS,
    rationale="""Puma and the streaming server are meant to be reached only through the reverse
        proxy, which adds TLS, HSTS, the media CSP and request limits. BIND defaults to 127.0.0.1;
        0.0.0.0 or a public address serves them around the proxy (the streaming server reads BIND
        from this file). In a container the image sets its own BIND; publish its ports on 127.0.0.1.""",
    remediation=Remediation("Remove BIND (127.0.0.1 is the default) or set a loopback address.", "BIND=127.0.0.1"),
    references=[CONFIG_DOCS + "#bind"],
    tags=["network"],
)
def bind_loopback(facts: FactSet) -> Iterator[Outcome]:
    for env in _envs(facts):
        var = env.get("BIND")
        if var is None or not var.is_set:
            yield passed("BIND is not set: Mastodon listens on 127.0.0.1", at=_at(env, var), subject="BIND",
                         observed="unset (127.0.0.1)", expected="loopback")
        elif var.templated:
            yield _templated(env, var)
        elif is_local_host(var.value) and not var.value.startswith("/"):
            yield passed("Mastodon listens on loopback", at=_at(env, var), subject="BIND", observed=var.value,
                         expected="loopback")
        elif var.value.strip() in ("0.0.0.0", "::", "[::]", "*"):
            yield failed("Mastodon listens on every interface, reachable around the proxy", at=_at(env, var),
                         subject="BIND", observed=var.value, expected="127.0.0.1")
        else:
            yield warned(f"Mastodon listens on {var.value}: make sure only the proxy can reach it", at=_at(env, var),
                         subject="BIND", observed=var.value, expected="127.0.0.1")


@check(
    id="env.production-mode",
    title="Rails and the streaming server run in production mode",
    component="mastodon-env",
    severity="medium",
    threats=["T-APP-INFO-LEAK"],
    needs=NEEDS,
    rationale="""Development mode shows full error pages with code and configuration, reloads code
        and disables production safeguards. The service units set RAILS_ENV and NODE_ENV; where this
        file is the container's environment (docker compose env_file) a value here wins.""",
    remediation=Remediation("Set both to production, or remove them and let the service units set them.",
                            "RAILS_ENV=production\nNODE_ENV=production"),
    references=[CONFIG_DOCS + "#rails_env"],
    tags=["app"],
)
def production_mode(facts: FactSet) -> Iterator[Outcome]:
    for env in _envs(facts):
        found = [env.get(k) for k in ("RAILS_ENV", "NODE_ENV") if env.get(k) is not None]
        if not found:
            yield skipped("RAILS_ENV and NODE_ENV are not set here: the service units or the image set them",
                          at=env.at(), observed="unset", expected="production")
        for var in found:
            if var.templated:
                yield _templated(env, var)
            elif var.value.strip() == "production":
                yield passed(f"{var.key} is production", at=_at(env, var), subject=var.key, observed=var.value,
                             expected="production")
            else:
                yield failed(f"{var.key} is not production", at=_at(env, var), subject=var.key,
                             observed=var.value or "empty", expected="production")


@check(
    id="env.auth-provider-reattach",
    title="External logins cannot take over accounts by e-mail (ALLOW_UNSAFE_AUTH_PROVIDER_REATTACH)",
    component="mastodon-env",
    severity="high",
    threats=["T-APP-AUTH"],
    needs=NEEDS,
    rationale="""With this set, a user can sign in through any configured external provider that
        reports the same e-mail address as an existing account. Anyone who can create an identity
        with a victim's address on one of those providers takes the account over; Mastodon's
        documentation calls it a potential security risk.""",
    remediation=Remediation("Remove it once the migration between providers that needed it is done.",
                            "# ALLOW_UNSAFE_AUTH_PROVIDER_REATTACH unset"),
    references=[CONFIG_DOCS + "#allow_unsafe_auth_provider_reattach"],
    tags=["auth"],
)
def auth_provider_reattach(facts: FactSet) -> Iterator[Outcome]:
    for env in _envs(facts):
        var = env.get("ALLOW_UNSAFE_AUTH_PROVIDER_REATTACH")
        if var is not None and var.templated:
            yield _templated(env, var)
        elif env.is_true("ALLOW_UNSAFE_AUTH_PROVIDER_REATTACH"):
            yield failed("accounts can be taken over through another external provider with the same e-mail",
                         at=_at(env, var), subject=var.key, observed=var.value, expected="unset")
        else:
            yield passed("external logins attach only to the provider already linked", at=_at(env, var),
                         subject="ALLOW_UNSAFE_AUTH_PROVIDER_REATTACH",
                         observed=var.value if var and var.is_set else "unset", expected="unset")


@check(
    id="env.streaming-url-tls",
    title="A separate streaming URL uses TLS (wss://)",
    component="mastodon-env",
    severity="medium",
    threats=["T-STREAM-EAVESDROP", "T-TRANSPORT-MITM"],
    needs=NEEDS,
    rationale="""Browsers and apps open STREAMING_API_BASE_URL with the user's access token. A
        ws:// or http:// URL sends that token and every notification in clear text.""",
    remediation=Remediation("Serve the streaming API over TLS.", "STREAMING_API_BASE_URL=wss://streaming.example.com"),
    references=[CONFIG_DOCS + "#streaming_api_base_url"],
    tags=["tls", "streaming"],
)
def streaming_url_tls(facts: FactSet) -> Iterator[Outcome]:
    for env in _envs(facts):
        var = env.get("STREAMING_API_BASE_URL")
        if var is None or not var.is_set:
            yield passed("streaming is served on the web domain, through the proxy", at=_at(env, var),
                         subject="STREAMING_API_BASE_URL", observed="unset", expected="unset or wss://")
        elif var.templated:
            yield _templated(env, var)
        elif var.value.strip().lower().startswith(("wss://", "https://")):
            yield passed("the streaming URL uses TLS", at=_at(env, var), subject=var.key, observed=var.value,
                         expected="wss://")
        else:
            yield failed("the streaming URL is not encrypted: tokens and notifications travel in clear",
                         at=_at(env, var), subject=var.key, observed=var.value, expected="wss://")


@check(
    id="env.local-domain",
    title="LOCAL_DOMAIN is a bare public domain name",
    component="mastodon-env",
    severity="low",
    threats=["T-FED-FORGED-ACTIVITY"],
    needs=NEEDS,
    rationale="""LOCAL_DOMAIN is the instance's identity in every account handle and ActivityPub
        id, and it cannot be changed later. A scheme, path or port in it, localhost or an IP address
        produce ids other servers cannot verify against the domain's TLS certificate.""",
    remediation=Remediation("Set the domain name alone, without scheme or path.", "LOCAL_DOMAIN=example.com"),
    references=[CONFIG_DOCS + "#local_domain"],
    tags=["federation"],
)
def local_domain(facts: FactSet) -> Iterator[Outcome]:
    for env in _envs(facts):
        for key in ("LOCAL_DOMAIN", "WEB_DOMAIN"):
            var = env.get(key)
            if var is None or not var.is_set:
                if key == "LOCAL_DOMAIN":
                    yield failed("LOCAL_DOMAIN is not set", at=_at(env, var), subject=key, observed="missing",
                                 expected="the instance's domain name")
                continue
            if var.templated:
                yield _templated(env, var)
                continue
            problem = _domain_problem(var.value.strip())
            if problem:
                yield failed(f"{key} is not a bare domain name: {problem}", at=_at(env, var), subject=key,
                             observed=var.value, expected="a domain name such as example.com")
            else:
                yield passed(f"{key} is a domain name", at=_at(env, var), subject=key, observed=var.value,
                             expected="a domain name")


def _domain_problem(value: str) -> str | None:
    if "://" in value:
        return "it has a scheme"
    if "/" in value or ":" in value:
        return "it has a path or a port"
    if is_local_host(value) or "." not in value:
        return "not a public name"
    try:
        ipaddress.ip_address(value)
        return "an IP address"
    except ValueError:
        pass
    if not all(label and label.replace("-", "").isalnum() for label in value.split(".")):
        return "invalid characters (use punycode for non-ASCII names)"
    return None


@check(
    id="env.duplicate-keys",
    title="No variable is set twice",
    component="mastodon-env",
    severity="low",
    threats=["T-SECRETS-EXPOSED"],
    needs=NEEDS,
    rationale="""When a key appears twice the last line wins, silently. An administrator who
        rotates a secret or hardens a setting on the first line changes nothing.""",
    remediation=Remediation("Keep one line per variable."),
    references=[CONFIG_DOCS],
    tags=["hygiene"],
)
def duplicate_keys(facts: FactSet) -> Iterator[Outcome]:
    for env in _envs(facts):
        dups = env.duplicates()
        for key, found in dups.items():
            lines = ", ".join(str(v.line) for v in found)
            yield warned(f"{key} is set on lines {lines}; line {found[-1].line} wins", at=env.at(found[-1].line),
                         subject=key, observed=f"set {len(found)} times (lines {lines})", expected="set once")
        if not dups:
            yield passed(f"{len(env.variables)} variables, each set once", at=env.at(), observed="no duplicates",
                         expected="each key once")


# --- mail -----------------------------------------------------------------------------------------


def _smtp(env: MastodonEnv) -> tuple[EnvVar | None, str | None]:
    """The SMTP server variable, and why SMTP is not judged (None when it is)."""
    server = env.get("SMTP_SERVER")
    method = env.value("SMTP_DELIVERY_METHOD", "smtp")
    if method != "smtp":
        return server, f"mail is delivered with {method}, not SMTP"
    if server is None or not server.is_set:
        return server, "no SMTP_SERVER configured"
    return server, None


def _implicit_tls(env: MastodonEnv) -> EnvVar | None:
    for key in ("SMTP_TLS", "SMTP_SSL"):
        if env.is_true(key):
            return env.get(key)
    return None


def _tls_templated(env: MastodonEnv) -> EnvVar | None:
    for key in ("SMTP_ENABLE_STARTTLS", "SMTP_ENABLE_STARTTLS_AUTO", "SMTP_TLS", "SMTP_SSL"):
        var = env.get(key)
        if var is not None and var.templated:
            return var
    return None


def _starttls_mode(env: MastodonEnv) -> tuple[str, EnvVar | None]:
    """always, never or auto, as Mastodon's email configuration derives it."""
    var = env.get("SMTP_ENABLE_STARTTLS")
    if var is not None and var.value in ("always", "never", "auto"):
        return var.value, var
    auto = env.get("SMTP_ENABLE_STARTTLS_AUTO")
    if auto is not None and auto.value == "false":
        return "never", auto
    return "auto", var


@check(
    id="smtp.env-starttls",
    title="Mail to the SMTP relay is encrypted (STARTTLS or TLS)",
    component="smtp",
    severity="high",
    threats=["T-SMTP-CREDENTIALS"],
    needs=NEEDS,
    rationale="""Password-reset and confirmation mails carry links that log people in, and the
        relay login travels on the same connection. SMTP_ENABLE_STARTTLS=never (or
        SMTP_ENABLE_STARTTLS_AUTO=false) sends all of it in clear to a relay across the network.""",
    remediation=Remediation("Require STARTTLS (or use implicit TLS on port 465).", "SMTP_ENABLE_STARTTLS=always"),
    references=[CONFIG_DOCS + "#smtp"],
    tags=["mail", "tls"],
)
def smtp_starttls(facts: FactSet) -> Iterator[Outcome]:
    for env in _envs(facts):
        server, why_not = _smtp(env)
        if why_not:
            yield skipped(why_not, at=_at(env, server), observed="not configured", expected="SMTP over TLS")
            continue
        unknown = server if server.templated else _tls_templated(env)
        if unknown is not None:
            yield _templated(env, unknown)
            continue
        tls = _implicit_tls(env)
        mode, var = _starttls_mode(env)
        if is_local_host(server.value):
            yield passed("mail goes to a relay on this host", at=_at(env, server), subject="SMTP_SERVER",
                         observed=server.value, expected="TLS to remote relays")
        elif tls is not None:
            yield passed(f"implicit TLS ({tls.key})", at=_at(env, tls), subject=tls.key, observed="true",
                         expected="TLS")
        elif mode == "never":
            yield failed(f"STARTTLS is off: mail to {server.value} travels in clear", at=_at(env, var),
                         subject=var.key if var else "SMTP_ENABLE_STARTTLS",
                         observed=var.value if var else "never", expected="always")
        else:
            yield passed(f"STARTTLS is {mode}", at=_at(env, var or server), subject="SMTP_ENABLE_STARTTLS",
                         observed=var.value if var and var.key == "SMTP_ENABLE_STARTTLS" else f"unset ({mode})",
                         expected="auto or always")


VERIFYING_MODES = ("peer",)


@check(
    id="smtp.env-certificate-verify",
    title="The SMTP relay's certificate is verified",
    component="smtp",
    severity="high",
    threats=["T-SMTP-CREDENTIALS"],
    needs=NEEDS,
    rationale="""Without certificate verification TLS to the relay only stops passive listening:
        anyone on the path can present their own certificate and read the relay password and every
        mail. On a client, `client_once` and `fail_if_no_peer_cert` verify nothing either; only
        `peer` does (the default when unset).""",
    remediation=Remediation("Verify the relay's certificate (give SMTP_CA_FILE for a private CA).",
                            "SMTP_OPENSSL_VERIFY_MODE=peer"),
    references=[CONFIG_DOCS + "#smtp"],
    tags=["mail", "tls"],
)
def smtp_certificate_verify(facts: FactSet) -> Iterator[Outcome]:
    for env in _envs(facts):
        server, why_not = _smtp(env)
        if why_not:
            yield skipped(why_not, at=_at(env, server), observed="not configured", expected="SMTP over TLS")
            continue
        var = env.get("SMTP_OPENSSL_VERIFY_MODE")
        if var is not None and var.templated:
            yield _templated(env, var)
        elif not server.templated and is_local_host(server.value):
            # mastodon:setup's "send from localhost" sets none: the connection never leaves the host.
            yield passed("the relay is on this host", at=_at(env, server), subject="SMTP_SERVER",
                         observed=server.value, expected="peer for remote relays")
        elif var is None or not var.is_set:
            yield passed("certificates are verified (default)", at=_at(env, var), subject="SMTP_OPENSSL_VERIFY_MODE",
                         observed="unset (peer)", expected="peer")
        elif var.value.strip().lower() in VERIFYING_MODES:
            yield passed("certificates are verified", at=_at(env, var), subject=var.key, observed=var.value,
                         expected="peer")
        else:
            yield failed("the relay's certificate is not verified", at=_at(env, var), subject=var.key,
                         observed=var.value, expected="peer")


@check(
    id="smtp.env-auth-cleartext",
    title="The SMTP password is only sent over TLS",
    component="smtp",
    severity="high",
    threats=["T-SMTP-CREDENTIALS", "T-MAIL-SPOOFING"],
    needs=NEEDS,
    rationale="""SMTP_AUTH_METHOD plain (the default) and login send the password itself, merely
        base64-encoded. Unless TLS is guaranteed (SMTP_TLS, SMTP_SSL or STARTTLS always) it can go
        out in clear: with STARTTLS never always, with auto whenever someone on the path strips the
        STARTTLS offer. Stolen relay credentials send phishing in the instance's name.""",
    remediation=Remediation("Make TLS mandatory for the relay connection.", "SMTP_ENABLE_STARTTLS=always"),
    references=[CONFIG_DOCS + "#smtpauthentication"],
    tags=["mail", "tls", "credentials"],
)
def smtp_auth_cleartext(facts: FactSet) -> Iterator[Outcome]:
    for env in _envs(facts):
        server, why_not = _smtp(env)
        if why_not:
            yield skipped(why_not, at=_at(env, server), observed="not configured", expected="SMTP over TLS")
            continue
        method_var = env.get("SMTP_AUTH_METHOD")
        method = (method_var.value.strip().lower() if method_var and method_var.is_set else "plain")
        password = env.get("SMTP_PASSWORD")
        mode, _ = _starttls_mode(env)
        tls = _implicit_tls(env)
        where = _at(env, method_var or password or server)
        observed = f"{method}{'' if method_var and method_var.is_set else ' (default)'}"
        unknown = next((v for v in (server, method_var, _tls_templated(env)) if v is not None and v.templated), None)
        if unknown is not None:
            yield _templated(env, unknown)
        elif method == "none" or password is None or not password.is_set:
            yield passed("no password is sent to the relay", at=where, subject="SMTP_AUTH_METHOD",
                         observed=observed if method == "none" else "no SMTP_PASSWORD",
                         expected="no cleartext password")
        elif method not in ("plain", "login"):
            yield passed(f"{method} does not send the password itself", at=where, subject="SMTP_AUTH_METHOD",
                         observed=observed, expected="no cleartext password")
        elif is_local_host(server.value):
            yield passed("the password goes to a relay on this host", at=where, subject="SMTP_AUTH_METHOD",
                         observed=f"{observed} to {server.value}", expected="TLS to remote relays")
        elif tls is not None or mode == "always":
            yield passed(f"{method} authentication only over TLS", at=where, subject="SMTP_AUTH_METHOD",
                         observed=f"{observed} with {'implicit TLS' if tls else 'STARTTLS always'}",
                         expected="TLS guaranteed")
        elif mode == "never":
            yield failed(f"the SMTP password is sent in clear ({method} without TLS)", at=where,
                         subject="SMTP_AUTH_METHOD", observed=f"{observed} with STARTTLS never",
                         expected="STARTTLS always or implicit TLS")
        else:
            yield warned(f"{method} authentication relies on opportunistic STARTTLS, which an attacker on the path "
                         "can strip", at=where, subject="SMTP_AUTH_METHOD", observed=f"{observed} with STARTTLS auto",
                         expected="STARTTLS always or implicit TLS", severity="medium")


# --- backing services -----------------------------------------------------------------------------

SECURE_SSLMODES = ("require", "verify-ca", "verify-full")


@check(
    id="postgresql.env-sslmode",
    title="A database on another host is reached over TLS (DB_SSLMODE)",
    component="postgresql",
    severity="high",
    threats=["T-INTERNAL-CLEARTEXT", "T-DB-WEAK-CREDENTIALS"],
    needs=NEEDS,
    rationale="""DB_SSLMODE defaults to prefer, which falls back to clear text without a word, and
        anyone on the path can force that. Every query, every private message and the database
        password then cross the network readable. A socket or loopback connection never leaves the
        host and needs no TLS.""",
    remediation=Remediation("Require TLS for a remote database (verify-full also checks the certificate).",
                            "DB_SSLMODE=verify-full"),
    references=[CONFIG_DOCS + "#db_sslmode", "https://www.postgresql.org/docs/current/libpq-ssl.html"],
    tags=["tls", "database"],
)
def postgresql_sslmode(facts: FactSet) -> Iterator[Outcome]:
    for env in _envs(facts):
        sslmode_var = env.get("DB_SSLMODE")
        for endpoint in database_endpoints(env):
            if endpoint.templated or (sslmode_var is not None and sslmode_var.templated):
                yield _templated(env, endpoint.origin if endpoint.templated else sslmode_var)
                continue
            if endpoint.local:
                yield passed(f"the {endpoint.role} is on this host", at=_at(env, endpoint.origin),
                             subject=endpoint.role, observed=endpoint.host, expected="socket, loopback or TLS")
                continue
            mode = endpoint.query.get("sslmode") or (sslmode_var.value if sslmode_var and sslmode_var.is_set else "")
            shown = mode or "unset (prefer)"
            where = sslmode_var if sslmode_var and sslmode_var.is_set and "sslmode" not in endpoint.query else None
            if mode in SECURE_SSLMODES:
                yield passed(f"TLS is required to the {endpoint.described}", at=_at(env, where or endpoint.origin),
                             subject=endpoint.role, observed=shown, expected="require or verify-full")
            else:
                yield failed(f"the {endpoint.described} may be reached without TLS",
                             at=_at(env, where or endpoint.origin), subject=endpoint.role, observed=shown,
                             expected="require or verify-full")


def _redis_where(endpoint: Endpoint) -> str:
    if endpoint.scheme:
        return f"{endpoint.scheme}:// to {endpoint.host}"
    return f"{endpoint.origin.key if endpoint.origin else 'REDIS_HOST'}={endpoint.host}"


@check(
    id="redis.env-password",
    title="Mastodon authenticates to Redis",
    component="redis",
    severity="high",
    threats=["T-SIDEKIQ-QUEUE", "T-CACHE-EXPOSED"],
    needs=NEEDS,
    rationale="""Whoever can write to Mastodon's Redis can queue Sidekiq jobs with arbitrary
        arguments and rewrite cached timelines. A Redis on another host must require a password;
        on this host a password still stops other local processes and SSRF-style tricks, so its
        absence there is a warning.""",
    remediation=Remediation("Set requirepass (or an ACL user) in redis.conf and give it to Mastodon.",
                            "REDIS_PASSWORD=<output of: openssl rand -hex 24>"),
    references=[CONFIG_DOCS + "#redis_password", "https://redis.io/docs/latest/operate/oss_and_stack/management/security/"],
    tags=["redis", "credentials"],
)
def redis_password(facts: FactSet) -> Iterator[Outcome]:
    for env in _envs(facts):
        for endpoint in redis_endpoints(env):
            if endpoint.templated or endpoint.password_templated:
                yield _templated(env, endpoint.password_templated or endpoint.origin)
            elif endpoint.password_set:
                yield passed(f"the {endpoint.role} connection has a password", at=_at(env, endpoint.origin),
                             subject=endpoint.role, observed="password set", expected="password set")
            elif endpoint.local:
                yield warned(f"the {endpoint.role} on this host is used without a password",
                             at=_at(env, endpoint.origin), subject=endpoint.role,
                             observed=f"no password ({_redis_where(endpoint)})", expected="password set",
                             severity="medium")
            else:
                yield failed(f"the {endpoint.role} at {endpoint.host} is used without a password",
                             at=_at(env, endpoint.origin), subject=endpoint.role,
                             observed=f"no password ({_redis_where(endpoint)})", expected="password set")


@check(
    id="redis.env-tls",
    title="A Redis on another host is reached over TLS (rediss://)",
    component="redis",
    severity="medium",
    threats=["T-INTERNAL-CLEARTEXT", "T-CACHE-EXPOSED"],
    needs=NEEDS,
    rationale="""Redis speaks clear text unless the client asks for TLS, which Mastodon does only
        with a rediss:// REDIS_URL (and REDIS_DRIVER=ruby). Across a network, sessions, job
        arguments and the Redis password are then readable and the queue can be tampered with.""",
    remediation=Remediation("Enable TLS on the Redis server and connect with a rediss:// URL.",
                            "REDIS_URL=rediss://:<password>@redis.internal:6380\nREDIS_DRIVER=ruby"),
    references=[CONFIG_DOCS + "#redis_url"],
    tags=["redis", "tls"],
)
def redis_tls(facts: FactSet) -> Iterator[Outcome]:
    for env in _envs(facts):
        for endpoint in redis_endpoints(env):
            if endpoint.templated:
                yield _templated(env, endpoint.origin)
            elif endpoint.local:
                yield passed(f"the {endpoint.role} is on this host", at=_at(env, endpoint.origin),
                             subject=endpoint.role, observed=_redis_where(endpoint), expected="local or rediss://")
            elif endpoint.scheme == "rediss":
                yield passed(f"the {endpoint.role} at {endpoint.host} is reached over TLS",
                             at=_at(env, endpoint.origin), subject=endpoint.role, observed="rediss://",
                             expected="rediss://")
            else:
                yield failed(f"the {endpoint.role} at {endpoint.host} is reached in clear",
                             at=_at(env, endpoint.origin), subject=endpoint.role, observed=_redis_where(endpoint), expected="rediss://")


def _feature(env: MastodonEnv, flag: str, off: str) -> tuple[EnvVar | None, str | None]:
    """A feature switched on by a true flag (ES_ENABLED, S3_ENABLED): (the flag, why not judged)."""
    enabled = env.get(flag)
    if enabled is not None and enabled.templated:
        return enabled, f"{flag} is templated"
    if not env.is_true(flag):
        return enabled, off
    return enabled, None


def _search(env: MastodonEnv) -> tuple[EnvVar | None, str | None]:
    return _feature(env, "ES_ENABLED", "full-text search is not enabled (ES_ENABLED)")


@check(
    id="elasticsearch.env-auth",
    title="Mastodon authenticates to Elasticsearch/OpenSearch",
    component="elasticsearch",
    severity="high",
    threats=["T-SEARCH-EXPOSED"],
    needs=NEEDS,
    rationale="""The search cluster holds the indexed statuses and accounts. A cluster Mastodon
        reaches without ES_USER and ES_PASS has its security off, so anyone who reaches it reads or
        wipes the indexes. Across a network that is a failure; on this host a warning.""",
    remediation=Remediation("Turn on the cluster's security, create a user for Mastodon and set it here.",
                            "ES_USER=mastodon\nES_PASS=<generated>"),
    references=[CONFIG_DOCS + "#elasticsearch", "https://docs.joinmastodon.org/admin/elasticsearch/"],
    tags=["search", "credentials"],
)
def elasticsearch_auth(facts: FactSet) -> Iterator[Outcome]:
    for env in _envs(facts):
        enabled, why_not = _search(env)
        if why_not:
            yield skipped(why_not, at=_at(env, enabled), observed="not enabled")
            continue
        endpoint = elasticsearch_endpoint(env)
        if endpoint.templated or endpoint.password_templated:
            yield _templated(env, endpoint.password_templated or endpoint.origin)
        elif endpoint.password_set:
            yield passed("Mastodon logs in to the search cluster", at=_at(env, env.get("ES_USER")),
                         subject="elasticsearch", observed="ES_USER and ES_PASS set", expected="ES_USER and ES_PASS")
        elif endpoint.local:
            yield warned("the search cluster on this host is used without credentials", at=_at(env, enabled),
                         subject="elasticsearch", observed="ES_USER/ES_PASS unset", expected="ES_USER and ES_PASS",
                         severity="medium")
        else:
            yield failed(f"the search cluster at {endpoint.host} is used without credentials", at=_at(env, enabled),
                         subject="elasticsearch", observed="ES_USER/ES_PASS unset", expected="ES_USER and ES_PASS")


@check(
    id="elasticsearch.env-tls",
    title="A search cluster on another host is reached over https",
    component="elasticsearch",
    severity="medium",
    threats=["T-INTERNAL-CLEARTEXT", "T-SEARCH-EXPOSED"],
    needs=NEEDS,
    rationale="""Without https:// in ES_HOST, queries, indexed posts and the ES_PASS credentials
        cross the network in clear.""",
    remediation=Remediation("Enable TLS on the cluster and prefix ES_HOST with https:// (ES_CA_FILE for a "
                            "private CA).", "ES_HOST=https://search.internal"),
    references=[CONFIG_DOCS + "#es_host"],
    tags=["search", "tls"],
)
def elasticsearch_tls(facts: FactSet) -> Iterator[Outcome]:
    for env in _envs(facts):
        enabled, why_not = _search(env)
        if why_not:
            yield skipped(why_not, at=_at(env, enabled), observed="not enabled")
            continue
        endpoint = elasticsearch_endpoint(env)
        where = _at(env, endpoint.origin or enabled)
        shown = f"{endpoint.scheme or 'http'}://{endpoint.host}"
        if endpoint.templated:
            yield _templated(env, endpoint.origin)
        elif endpoint.scheme == "https":
            yield passed("the search cluster is reached over https", at=where, subject="ES_HOST", observed=shown,
                         expected="https:// or local")
        elif endpoint.local:
            yield passed("the search cluster is on this host", at=where, subject="ES_HOST", observed=shown,
                         expected="https:// or local")
        else:
            yield failed(f"the search cluster at {endpoint.host} is reached in clear", at=where, subject="ES_HOST",
                         observed=shown, expected="https://")


def _s3(env: MastodonEnv) -> tuple[EnvVar | None, str | None]:
    return _feature(env, "S3_ENABLED", "media are stored on the local disk (S3_ENABLED is not true)")


@check(
    id="s3.env-https",
    title="Object storage is used and served over https",
    component="s3",
    severity="medium",
    threats=["T-INTERNAL-CLEARTEXT", "T-MEDIA-ACCESS"],
    needs=NEEDS,
    rationale="""S3_PROTOCOL is the scheme of every media URL Mastodon hands to browsers and of its
        own requests to the bucket (https by default). http media can be swapped on the way and are
        blocked as mixed content; an http S3_ENDPOINT across a network exposes uploads.""",
    remediation=Remediation("Use https for the bucket and the media URLs.", "S3_PROTOCOL=https"),
    references=[CONFIG_DOCS + "#s3", "https://docs.joinmastodon.org/admin/optional/object-storage/"],
    tags=["media", "tls"],
)
def s3_https(facts: FactSet) -> Iterator[Outcome]:
    for env in _envs(facts):
        enabled, why_not = _s3(env)
        if why_not:
            yield skipped(why_not, at=_at(env, enabled), observed="not enabled")
            continue
        protocol = env.get("S3_PROTOCOL")
        if protocol is not None and protocol.templated:
            yield _templated(env, protocol)
        elif protocol is not None and protocol.is_set and protocol.value.strip().lower() != "https":
            yield failed("media URLs and bucket requests use plain http", at=_at(env, protocol), subject="S3_PROTOCOL",
                         observed=protocol.value, expected="https")
        else:
            yield passed("media use https", at=_at(env, protocol or enabled), subject="S3_PROTOCOL",
                         observed=protocol.value if protocol and protocol.is_set else "unset (https)", expected="https")
        endpoint = env.get("S3_ENDPOINT")
        if endpoint is None or not endpoint.is_set:
            continue
        if endpoint.templated:
            yield _templated(env, endpoint)
            continue
        scheme, _, rest = endpoint.value.strip().partition("://")
        host = rest.split("/", 1)[0].rsplit(":", 1)[0]
        if scheme.lower() == "http" and not is_local_host(host):
            yield failed(f"the bucket at {host} is reached over plain http", at=_at(env, endpoint),
                         subject="S3_ENDPOINT", observed=endpoint.value, expected="https://")
        else:
            yield passed("the bucket endpoint uses https (or is on this host)", at=_at(env, endpoint),
                         subject="S3_ENDPOINT", observed=endpoint.value, expected="https://")


@check(
    id="s3.env-permission",
    title="Uploaded media are not writable by anyone (S3_PERMISSION)",
    component="s3",
    severity="high",
    threats=["T-MEDIA-ACCESS"],
    needs=NEEDS,
    rationale="""Mastodon uploads each file with the canned ACL in S3_PERMISSION. public-read, the
        documented default, is what serving media to browsers needs and is fine. public-read-write
        lets anyone overwrite media. private works only behind a proxy or alias that signs requests.""",
    remediation=Remediation("Use Mastodon's default (leave S3_PERMISSION unset) or private behind a signing proxy.",
                            "# S3_PERMISSION unset (public-read)"),
    references=[CONFIG_DOCS + "#s3", "https://docs.joinmastodon.org/admin/optional/object-storage/"],
    tags=["media"],
)
def s3_permission(facts: FactSet) -> Iterator[Outcome]:
    for env in _envs(facts):
        enabled, why_not = _s3(env)
        if why_not:
            yield skipped(why_not, at=_at(env, enabled), observed="not enabled")
            continue
        var = env.get("S3_PERMISSION")
        value = var.value.strip().lower() if var is not None else "public-read"
        shown = var.value if var is not None and var.is_set else ("empty (no ACL)" if var else "unset (public-read)")
        if var is not None and var.templated:
            yield _templated(env, var)
        elif value in ("public-read", "", "authenticated-read", "bucket-owner-read", "bucket-owner-full-control"):
            yield passed("media are uploaded readable, not writable, by the public", at=_at(env, var or enabled),
                         subject="S3_PERMISSION", observed=shown, expected="public-read (the default)")
        elif value == "private":
            if env.value("S3_ALIAS_HOST"):
                yield passed("private objects served through S3_ALIAS_HOST", at=_at(env, var), subject=var.key,
                             observed=var.value, expected="private behind a signing proxy")
            else:
                yield warned("private objects with no alias host: media only load through a signing proxy",
                             at=_at(env, var), subject=var.key, observed=var.value,
                             expected="public-read, or private with S3_ALIAS_HOST", severity="info")
        elif value == "public-read-write":
            yield failed("anyone can overwrite uploaded media", at=_at(env, var), subject=var.key, observed=var.value,
                         expected="public-read (the default)")
        else:
            yield warned("unknown canned ACL", at=_at(env, var), subject=var.key, observed=var.value,
                         expected="public-read (the default)")
