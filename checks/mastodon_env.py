"""Mastodon's `.env.production`: the instance's secrets, how it opens itself to the fediverse and to
the network (secure mode, trusted proxies, what it binds and fetches), and who may read the file.

Every judgement about the file is about what it says; how Mastodon reaches each backing service is
judged with that service (postgresql.env-sslmode, redis.env-password, smtp.env-starttls, ...). A
value this file cannot see (a template, a `${VAR}` that dotenv expands at load time) is skipped
with that reason, never passed. Evidence about a secret gives its length and entropy class, never
the value.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator

from mastoaudit import kinds
from mastoaudit.checkdef import Remediation, check, failed, passed, skipped, warned
from mastoaudit.facts import FactSet
from mastoaudit.judgments.env import CONFIG_DOCS, templated, var_at
from mastoaudit.model import Outcome
from mastoaudit.parsers.env import (
    EnvVar,
    MastodonEnv,
    is_local_host,
    url_password,
    vapid_key_shape,
)
from mastoaudit.passwords import MIN_PASSWORD, judge_password, sample_reason, strength


def _judge_key_material(env: MastodonEnv, key: str, min_length: int, what: str) -> Outcome:
    """A generated secret: present, not a sample, long and random enough."""
    var = env.get(key)
    if var is None or not var.is_set:
        return failed(f"{key} is {'empty' if var else 'missing'}: {what}", at=var_at(env, var), subject=key,
                      observed="empty" if var else "missing", expected=f"a generated value of {min_length}+ characters")
    if var.templated:
        return templated(env, var)
    found = strength(var.value)
    reason = sample_reason(var.value)
    if reason:
        return failed(f"{key} is {reason}: anyone can look it up", at=var_at(env, var), subject=key,
                      observed=f"sample value ({found.describe()})", expected="a freshly generated value")
    if found.length < min_length:
        return failed(f"{key} is short: {found.length} characters where {min_length} are expected", at=var_at(env, var),
                      subject=key, observed=f"short ({found.describe()})", expected=f"{min_length}+ random characters")
    if found.level != "high":
        return failed(f"{key} is long enough but not random (repeated or patterned)", at=var_at(env, var), subject=key,
                      observed=found.describe(), expected="high entropy (a generated value)")
    return passed(f"{key} is a strong generated value", at=var_at(env, var), subject=key, observed=found.describe(),
                  expected=f"{min_length}+ random characters")


def _optional(facts: FactSet, key: str, default: tuple[str, str, str],
              judge: Callable[[MastodonEnv, EnvVar], Iterator[Outcome]]) -> Iterator[Outcome]:
    """An optional variable, in each file: a pass when it is left to its safe default (the message,
    observed and expected of `default`), a skip when it is templated, else what `judge` says of it."""
    unset, observed, expected = default
    for env in facts.all(kinds.MASTODON_ENV):
        var = env.get(key)
        if var is None or not var.is_set:
            yield passed(unset, at=var_at(env, var), subject=key, observed=observed, expected=expected)
        elif var.templated:
            yield templated(env, var)
        else:
            yield from judge(env, var)


# --- secrets --------------------------------------------------------------------------------------


@check(
    id="env.secret-key-base",
    title="SECRET_KEY_BASE is a long generated secret",
    component="mastodon-env",
    severity="critical",
    threats=["T-SECRETS-EXPOSED", "T-APP-AUTH"],
    needs=[kinds.MASTODON_ENV],
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
    for env in facts.all(kinds.MASTODON_ENV):
        yield _judge_key_material(env, "SECRET_KEY_BASE", 64, "sessions cannot be signed safely")


AR_KEYS = ("ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY", "ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT",
           "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY")


@check(
    id="env.active-record-encryption",
    title="The Active Record encryption keys are set and strong",
    component="mastodon-env",
    severity="high",
    threats=["T-SECRETS-EXPOSED", "T-DATA-AT-REST"],
    needs=[kinds.MASTODON_ENV],
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
    for env in facts.all(kinds.MASTODON_ENV):
        for key in AR_KEYS:
            yield _judge_key_material(env, key, 32, "required since Mastodon 4.3")


@check(
    id="env.vapid-keys",
    title="The Web Push (VAPID) key pair is generated, not copied",
    component="mastodon-env",
    severity="medium",
    threats=["T-SECRETS-EXPOSED"],
    needs=[kinds.MASTODON_ENV],
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
    for env in facts.all(kinds.MASTODON_ENV):
        private, public = env.get("VAPID_PRIVATE_KEY"), env.get("VAPID_PUBLIC_KEY")
        if not (private and private.is_set) and not (public and public.is_set):
            yield warned("no VAPID keys: web push notifications are disabled", at=var_at(env, private or public),
                         subject="VAPID_PRIVATE_KEY", observed="missing", expected="a generated key pair")
            continue
        for key, var, is_public in (("VAPID_PRIVATE_KEY", private, False), ("VAPID_PUBLIC_KEY", public, True)):
            if var is None or not var.is_set:
                yield failed(f"{key} is missing while its pair is set", at=var_at(env, var), subject=key,
                             observed="missing", expected="both keys of one generated pair")
                continue
            if var.templated:
                yield templated(env, var)
                continue
            reason = sample_reason(var.value)
            shape = vapid_key_shape(var.value, is_public)
            if reason:
                yield failed(f"{key} is {reason}", at=var_at(env, var), subject=key,
                             observed=f"sample value (length {len(var.value)})", expected="a generated P-256 key")
            elif shape:
                yield failed(f"{key} is not a usable key: {shape}", at=var_at(env, var), subject=key,
                             observed=f"malformed ({shape})", expected="a base64url P-256 key")
            else:
                yield passed(f"{key} is a well-formed generated key", at=var_at(env, var), subject=key,
                             observed="P-256 " + ("public" if is_public else "private") + " key",
                             expected="a generated P-256 key")


@check(
    id="env.otp-secret",
    title="OTP_SECRET, where still present, is not a sample or weak value",
    component="mastodon-env",
    severity="high",
    threats=["T-SECRETS-EXPOSED", "T-APP-AUTH"],
    needs=[kinds.MASTODON_ENV],
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
    yield from _optional(facts, "OTP_SECRET", ("OTP_SECRET is not set: Mastodon 4.4 and later do not need it",
                                               "unset", "unset (4.4+) or a generated value"), _otp)


def _otp(env: MastodonEnv, var: EnvVar) -> Iterator[Outcome]:
    outcome = _judge_key_material(env, "OTP_SECRET", 64, "")
    if outcome.status.value == "pass":
        outcome = passed("OTP_SECRET is strong; on 4.4+ it is only read by the two-factor migration and can "
                         "then be removed", at=var_at(env, var), subject="OTP_SECRET", observed=outcome.observed,
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
    needs=[kinds.MASTODON_ENV],
    rationale="""Each secret protects something different: sessions, encrypted columns, push, the
        database, Redis, mail. One value in two places means one leak (a Sidekiq job argument, an
        SMTP provider's breach, a log line) opens both, and the encryption keys lose the
        separation Rails' design relies on.""",
    remediation=Remediation("Generate a separate value for each secret; rotate the reused one everywhere it is used."),
    references=[CONFIG_DOCS + "#secrets"],
    tags=["secrets"],
)
def secrets_distinct(facts: FactSet) -> Iterator[Outcome]:
    for env in facts.all(kinds.MASTODON_ENV):
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
                yield failed(f"{label} has the same value as {first[0]} (line {first[1].line})", at=var_at(env, var),
                             subject=label, observed=f"same value as {first[0]}", expected="a value of its own")
            seen.setdefault(secret, (label, var))
        if not reused:
            yield passed(f"all {len(items)} secrets are different", at=env.at(), observed=f"{len(items)} distinct",
                         expected="no value used twice")


PASSWORD_KEYS = ("DB_PASS", "REPLICA_DB_PASS", "REDIS_PASSWORD", "CACHE_REDIS_PASSWORD", "SIDEKIQ_REDIS_PASSWORD",
                 "ES_PASS", "SMTP_PASSWORD", "BULK_SMTP_PASSWORD", "AWS_SECRET_ACCESS_KEY")


def _is_password_key(key: str) -> bool:
    return key in PASSWORD_KEYS or key.endswith(("_PASSWORD", "_PASS"))


@check(
    id="env.service-passwords",
    title="Service passwords are not short, sample or guessable",
    component="mastodon-env",
    severity="high",
    threats=["T-DB-WEAK-CREDENTIALS", "T-SMTP-CREDENTIALS", "T-SECRETS-EXPOSED"],
    needs=[kinds.MASTODON_ENV],
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
    for env in facts.all(kinds.MASTODON_ENV):
        judged = [(var.key, var, var.value) for var in env.variables.values()
                  if _is_password_key(var.key) and var.is_set]
        judged += [(label, var, secret) for label, var, secret in _secret_items(env) if label.endswith(" password")]
        if not judged:
            yield skipped("no service password is set in this file (sockets or peer authentication)", at=env.at(),
                          observed="no passwords", expected="generated passwords where used")
            continue
        for label, var, secret in judged:
            if var.templated:
                yield templated(env, var)
                continue
            verdict = judge_password(secret)
            outcome = passed if verdict.ok else failed
            expected = f"{MIN_PASSWORD}+ random characters" if verdict.problem in (None, "short") else \
                "a generated password"
            yield outcome(f"{label} is {verdict.why}", at=var_at(env, var), subject=label, observed=verdict.observed,
                          expected=expected)


# --- federation and access ------------------------------------------------------------------------


@check(
    id="env.authorized-fetch",
    title="Secure mode (AUTHORIZED_FETCH) is on",
    component="mastodon-env",
    severity="medium",
    threats=["T-FED-DATA-LEAK", "T-FED-MALICIOUS-INSTANCE"],
    needs=[kinds.MASTODON_ENV],
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
    for env in facts.all(kinds.MASTODON_ENV):
        limited, secure = env.get("LIMITED_FEDERATION_MODE"), env.get("AUTHORIZED_FETCH")
        for var in (limited, secure):
            if var is not None and var.templated:
                yield templated(env, var)
                break
        else:
            if env.is_true("LIMITED_FEDERATION_MODE"):
                yield passed("limited federation mode is on (it implies secure mode); federation is by allow-list",
                             at=var_at(env, limited), subject="LIMITED_FEDERATION_MODE", observed="true",
                             expected="AUTHORIZED_FETCH=true")
            elif env.is_true("AUTHORIZED_FETCH"):
                yield passed("secure mode is on", at=var_at(env, secure), subject="AUTHORIZED_FETCH", observed="true",
                             expected="true")
            else:
                yield warned("secure mode is off: blocked servers can still fetch public posts unsigned",
                             at=var_at(env, secure), subject="AUTHORIZED_FETCH",
                             observed=secure.value if secure and secure.is_set else "unset (false)", expected="true")


@check(
    id="env.unauthenticated-api",
    title="The public API requires a login (DISALLOW_UNAUTHENTICATED_API_ACCESS)",
    component="mastodon-env",
    severity="low",
    threats=["T-FED-DATA-LEAK", "T-APP-INFO-LEAK"],
    needs=[kinds.MASTODON_ENV],
    rationale="""By default anonymous clients can read public timelines, profiles and posts through
        the REST API, which is how scrapers harvest an instance. Refusing it also makes profile and
        post links show an error to logged-out visitors, a documented trade-off, so it is a warning.""",
    remediation=Remediation("Refuse anonymous API access if logged-out browsing is not wanted.",
                            "DISALLOW_UNAUTHENTICATED_API_ACCESS=true"),
    references=[CONFIG_DOCS + "#disallow_unauthenticated_api_access"],
    tags=["api"],
)
def unauthenticated_api(facts: FactSet) -> Iterator[Outcome]:
    for env in facts.all(kinds.MASTODON_ENV):
        var = env.get("DISALLOW_UNAUTHENTICATED_API_ACCESS")
        if var is not None and var.templated:
            yield templated(env, var)
        elif env.is_true("DISALLOW_UNAUTHENTICATED_API_ACCESS"):
            yield passed("anonymous API access is refused", at=var_at(env, var), subject=var.key, observed=var.value,
                         expected="true")
        else:
            unset = var is None or not var.is_set
            yield warned("anonymous clients can read the public API" + (
                ": the variable is unset, and Mastodon's default (false) allows it" if unset else ""),
                at=var_at(env, var), subject="DISALLOW_UNAUTHENTICATED_API_ACCESS",
                observed="unset (false)" if unset else var.value, expected="true")


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
    needs=[kinds.MASTODON_ENV],
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
    yield from _optional(facts, "ALLOWED_PRIVATE_ADDRESSES",
                         ("SSRF protection covers every private address", "unset", "unset"), _private_ranges)


def _private_ranges(env: MastodonEnv, var: EnvVar) -> Iterator[Outcome]:
    nets = _networks(var.value)
    broad = [n for n in nets if n is not None and _too_broad_for_ssrf(n)]
    if broad or any(n is None for n in nets):
        why = "unreadable entries" if not broad else ", ".join(str(n) for n in broad)
        yield failed(f"SSRF protection is lifted for {why}", at=var_at(env, var), subject=var.key,
                     observed=var.value, expected="unset, or single internal addresses")
    else:
        yield warned(f"SSRF protection is lifted for {len(nets)} narrow range(s): only the intended service "
                     "may live there", at=var_at(env, var), subject=var.key, observed=var.value, expected="unset")


@check(
    id="env.trusted-proxy",
    title="TRUSTED_PROXY_IP trusts only the real proxies",
    component="mastodon-env",
    severity="high",
    threats=["T-PROXY-MISCONFIG", "T-APP-AUTH"],
    needs=[kinds.MASTODON_ENV],
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
    yield from _optional(facts, "TRUSTED_PROXY_IP", ("the default proxies are trusted (loopback and private ranges)",
                                                     "unset (loopback and private ranges)", "the proxies' addresses"),
                         _proxies)


def _proxies(env: MastodonEnv, var: EnvVar) -> Iterator[Outcome]:
    nets = _networks(var.value)
    too_wide = [n for n in nets if n is not None and n.prefixlen < (8 if n.version == 4 else 16)]
    if too_wide:
        yield failed(f"TRUSTED_PROXY_IP trusts {', '.join(map(str, too_wide))}: any client can spoof its address",
                     at=var_at(env, var), subject=var.key, observed=var.value,
                     expected="the proxies' addresses only")
    elif any(n is None for n in nets):
        yield warned("TRUSTED_PROXY_IP has entries that are not addresses or ranges", at=var_at(env, var),
                     subject=var.key, observed=var.value, expected="addresses or CIDR ranges")
    else:
        yield passed("only listed proxies are trusted", at=var_at(env, var), subject=var.key, observed=var.value,
                     expected="the proxies' addresses only")


@check(
    id="env.bind-loopback",
    title="Mastodon's processes listen on loopback only (BIND)",
    component="mastodon-env",
    severity="medium",
    threats=["T-PROXY-MISCONFIG"],
    needs=[kinds.MASTODON_ENV],
    rationale="""Puma and the streaming server are meant to be reached only through the reverse
        proxy, which adds TLS, HSTS, the media CSP and request limits. BIND defaults to 127.0.0.1;
        0.0.0.0 or a public address serves them around the proxy (the streaming server reads BIND
        from this file). In a container the image sets its own BIND; publish its ports on 127.0.0.1.""",
    remediation=Remediation("Remove BIND (127.0.0.1 is the default) or set a loopback address.", "BIND=127.0.0.1"),
    references=[CONFIG_DOCS + "#bind"],
    tags=["network"],
)
def bind_loopback(facts: FactSet) -> Iterator[Outcome]:
    yield from _optional(facts, "BIND", ("BIND is not set: Mastodon listens on 127.0.0.1", "unset (127.0.0.1)",
                                         "loopback"), _bind)


def _bind(env: MastodonEnv, var: EnvVar) -> Iterator[Outcome]:
    if is_local_host(var.value) and not var.value.startswith("/"):
        yield passed("Mastodon listens on loopback", at=var_at(env, var), subject="BIND", observed=var.value,
                     expected="loopback")
    elif var.value.strip() in ("0.0.0.0", "::", "[::]", "*"):
        yield failed("Mastodon listens on every interface, reachable around the proxy", at=var_at(env, var),
                     subject="BIND", observed=var.value, expected="127.0.0.1")
    else:
        yield warned(f"Mastodon listens on {var.value}: make sure only the proxy can reach it", at=var_at(env, var),
                     subject="BIND", observed=var.value, expected="127.0.0.1")


@check(
    id="env.production-mode",
    title="Rails and the streaming server run in production mode",
    component="mastodon-env",
    severity="medium",
    threats=["T-APP-INFO-LEAK"],
    needs=[kinds.MASTODON_ENV],
    rationale="""Development mode shows full error pages with code and configuration, reloads code
        and disables production safeguards. The service units set RAILS_ENV and NODE_ENV; where this
        file is the container's environment (docker compose env_file) a value here wins.""",
    remediation=Remediation("Set both to production, or remove them and let the service units set them.",
                            "RAILS_ENV=production\nNODE_ENV=production"),
    references=[CONFIG_DOCS + "#rails_env"],
    tags=["app"],
)
def production_mode(facts: FactSet) -> Iterator[Outcome]:
    for env in facts.all(kinds.MASTODON_ENV):
        found = [env.get(k) for k in ("RAILS_ENV", "NODE_ENV") if env.get(k) is not None]
        if not found:
            yield skipped("RAILS_ENV and NODE_ENV are not set here: the service units or the image set them",
                          at=env.at(), observed="unset", expected="production")
        for var in found:
            if var.templated:
                yield templated(env, var)
            elif var.value.strip() == "production":
                yield passed(f"{var.key} is production", at=var_at(env, var), subject=var.key, observed=var.value,
                             expected="production")
            else:
                yield failed(f"{var.key} is not production", at=var_at(env, var), subject=var.key,
                             observed=var.value or "empty", expected="production")


@check(
    id="env.auth-provider-reattach",
    title="External logins cannot take over accounts by e-mail (ALLOW_UNSAFE_AUTH_PROVIDER_REATTACH)",
    component="mastodon-env",
    severity="high",
    threats=["T-APP-AUTH"],
    needs=[kinds.MASTODON_ENV],
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
    for env in facts.all(kinds.MASTODON_ENV):
        var = env.get("ALLOW_UNSAFE_AUTH_PROVIDER_REATTACH")
        if var is not None and var.templated:
            yield templated(env, var)
        elif env.is_true("ALLOW_UNSAFE_AUTH_PROVIDER_REATTACH"):
            yield failed("accounts can be taken over through another external provider with the same e-mail",
                         at=var_at(env, var), subject=var.key, observed=var.value, expected="unset")
        else:
            yield passed("external logins attach only to the provider already linked", at=var_at(env, var),
                         subject="ALLOW_UNSAFE_AUTH_PROVIDER_REATTACH",
                         observed=var.value if var and var.is_set else "unset", expected="unset")


@check(
    id="env.streaming-url-tls",
    title="A separate streaming URL uses TLS (wss://)",
    component="mastodon-env",
    severity="medium",
    threats=["T-STREAM-EAVESDROP", "T-TRANSPORT-MITM"],
    needs=[kinds.MASTODON_ENV],
    rationale="""Browsers and apps open STREAMING_API_BASE_URL with the user's access token. A
        ws:// or http:// URL sends that token and every notification in clear text.""",
    remediation=Remediation("Serve the streaming API over TLS.", "STREAMING_API_BASE_URL=wss://streaming.example.com"),
    references=[CONFIG_DOCS + "#streaming_api_base_url"],
    tags=["tls", "streaming"],
)
def streaming_url_tls(facts: FactSet) -> Iterator[Outcome]:
    yield from _optional(facts, "STREAMING_API_BASE_URL", ("streaming is served on the web domain, through the proxy",
                                                           "unset", "unset or wss://"), _streaming_url)


def _streaming_url(env: MastodonEnv, var: EnvVar) -> Iterator[Outcome]:
    if var.value.strip().lower().startswith(("wss://", "https://")):
        yield passed("the streaming URL uses TLS", at=var_at(env, var), subject=var.key, observed=var.value,
                     expected="wss://")
    else:
        yield failed("the streaming URL is not encrypted: tokens and notifications travel in clear",
                     at=var_at(env, var), subject=var.key, observed=var.value, expected="wss://")


@check(
    id="env.local-domain",
    title="LOCAL_DOMAIN is a bare public domain name",
    component="mastodon-env",
    severity="low",
    threats=["T-FED-FORGED-ACTIVITY"],
    needs=[kinds.MASTODON_ENV],
    rationale="""LOCAL_DOMAIN is the instance's identity in every account handle and ActivityPub
        id, and it cannot be changed later. A scheme, path or port in it, localhost or an IP address
        produce ids other servers cannot verify against the domain's TLS certificate.""",
    remediation=Remediation("Set the domain name alone, without scheme or path.", "LOCAL_DOMAIN=example.com"),
    references=[CONFIG_DOCS + "#local_domain"],
    tags=["federation"],
)
def local_domain(facts: FactSet) -> Iterator[Outcome]:
    for env in facts.all(kinds.MASTODON_ENV):
        for key in ("LOCAL_DOMAIN", "WEB_DOMAIN"):
            var = env.get(key)
            if var is None or not var.is_set:
                if key == "LOCAL_DOMAIN":
                    yield failed("LOCAL_DOMAIN is not set", at=var_at(env, var), subject=key, observed="missing",
                                 expected="the instance's domain name")
                continue
            if var.templated:
                yield templated(env, var)
                continue
            problem = _domain_problem(var.value.strip())
            if problem:
                yield failed(f"{key} is not a bare domain name: {problem}", at=var_at(env, var), subject=key,
                             observed=var.value, expected="a domain name such as example.com")
            else:
                yield passed(f"{key} is a domain name", at=var_at(env, var), subject=key, observed=var.value,
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
    needs=[kinds.MASTODON_ENV],
    rationale="""When a key appears twice the last line wins, silently. An administrator who
        rotates a secret or hardens a setting on the first line changes nothing.""",
    remediation=Remediation("Keep one line per variable."),
    references=[CONFIG_DOCS],
    tags=["hygiene"],
)
def duplicate_keys(facts: FactSet) -> Iterator[Outcome]:
    for env in facts.all(kinds.MASTODON_ENV):
        dups = env.duplicates()
        for key, found in dups.items():
            lines = ", ".join(str(v.line) for v in found)
            yield warned(f"{key} is set on lines {lines}; line {found[-1].line} wins", at=env.at(found[-1].line),
                         subject=key, observed=f"set {len(found)} times (lines {lines})", expected="set once")
        if not dups:
            yield passed(f"{len(env.variables)} variables, each set once", at=env.at(), observed="no duplicates",
                         expected="each key once")


# --- who may read it (live) ---------------------------------------------------------------------------


@check(
    id="mastodon-env.file-permissions",
    title=".env.production is readable by its owner (and group) only",
    component="mastodon-env",
    severity="high",
    threats=["T-SECRETS-EXPOSED"],
    needs=[kinds.FILE_STAT],
    rationale=""".env.production holds SECRET_KEY_BASE, the encryption keys and every service
        password. Any local user or compromised service that can read it can forge sessions and
        decrypt data. It belongs to the mastodon user with mode 600 (or 640 with a dedicated group).""",
    remediation=Remediation("Restrict the file to its owner.",
                            "chown mastodon:mastodon /home/mastodon/live/.env.production\n"
                            "chmod 600 /home/mastodon/live/.env.production"),
    tags=["live", "secrets", "permissions"],
)
def env_file_permissions(facts: FactSet) -> Iterator[Outcome]:
    found = False
    for stat in facts.all(kinds.FILE_STAT):
        if not stat.path.endswith("/.env.production"):
            continue
        found = True
        if stat.mode is None:
            yield skipped("mode could not be read", at=stat.at())
            continue
        shown = f"{stat.mode:03o} {stat.owner}:{stat.group}"
        if stat.mode & 0o007:
            yield failed("any local user can read the instance's secrets", at=stat.at(), observed=shown,
                         expected="600 (or 640) owned by mastodon")
        elif stat.mode & 0o020:
            yield failed("the group can change the instance's secrets", at=stat.at(), observed=shown,
                         expected="600 (or 640) owned by mastodon")
        elif stat.owner == "root" and stat.mode & 0o040 == 0:
            yield warned("owned by root: the mastodon user cannot read it, so it is not what the services use",
                         at=stat.at(), observed=shown, expected="600 owned by mastodon")
        else:
            yield passed("readable by its owner (and group) only", at=stat.at(), observed=shown,
                         expected="600 (or 640)")
    if not found:
        yield skipped("no .env.production on this host (not an app host, or elsewhere)")
