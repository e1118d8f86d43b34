"""The .env.production checks on small inputs, each both ways, and the promise that no secret from
the weak demo's .env.production reaches a report."""

from __future__ import annotations

import textwrap

import pytest

from mastoaudit.engine import run
from mastoaudit.facts import FactSet
from mastoaudit.model import Status
from mastoaudit.parsers.base import SourceFile
from mastoaudit.parsers.env import parse_mastodon_env
from mastoaudit.reporting import renderer
from mastoaudit.selection import Selection
from mastoaudit.sources.local import collect_tree

from ..conftest import DEMO, FIXTURES, lint

ENV_FIXTURES = FIXTURES / "env"

STRONG_HEX = "d25c57bad26e7b9a63b6c0e8387128ae871985982138452db4da9bd194dee3f8c5af530bb31fc07fef4ca375cfdfd6ac8f" \
             "ce67bcca4b157c5bb343ad6759fba2"
AR = textwrap.dedent("""\
    ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY=Rohtv7BXTtU2v7gB2UCN129dHsaPVdla
    ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT=r6PKmcgO3BCOutjSubxDjP6OZkoSWCvF
    ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY=SEglpkb4sPtIeooCBII6oFIC32PSRrBa
""")
VAPID = textwrap.dedent("""\
    VAPID_PRIVATE_KEY=myqBqG6R7zqujSqGsPYxBPdttHus0ITFwtC77UBi5hQ=
    VAPID_PUBLIC_KEY=BHtrftpfXSho7sM4-RfpSqzQUgqpTAOA3xmjbwpJxymzWZzuVEE0X3jffqWz9B0N62SYzzgqbK1xcJZZbW8zZCs=
""")
SMTP_REMOTE = ("SMTP_SERVER=smtp.example.net\nSMTP_LOGIN=toot@example.net\n"
               "SMTP_PASSWORD=9d2f6b1a8c4e0d7b3f5a9c1e6d2b8f4a\n")


def env_check_ids(registry) -> list[str]:
    """The checks of checks/env.py: env.* and <component>.env-*."""
    return [c.meta.id for c in registry if c.meta.id.startswith("env.") or ".env-" in c.meta.id]


def outcomes(registry, check_id: str, text: str) -> list:
    facts = FactSet(target="unit")
    facts.add("mastodon_env", parse_mastodon_env(SourceFile("live/.env.production", text.encode())))
    return list(registry.get(check_id).run(facts))


def statuses(registry, check_id: str, text: str) -> list[str]:
    return [o.status.value for o in outcomes(registry, check_id, text)]


def only(registry, check_id: str, text: str):
    found = outcomes(registry, check_id, text)
    assert len(found) == 1, found
    return found[0]


# --- secrets --------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, status, observed", [
    (STRONG_HEX, "pass", "length 128, hex, high"),
    (STRONG_HEX[:64], "pass", "length 64"),
    (STRONG_HEX[:40], "fail", "short (length 40"),
    ("precompile_placeholder", "fail", "sample value"),
    ("a" * 128, "fail", "low entropy"),
    ("", "fail", "empty"),
    ("{{ vault_secret_key_base }}", "skip", "templated"),
])
def test_secret_key_base(registry, value, status, observed):
    found = only(registry, "env.secret-key-base", f"SECRET_KEY_BASE={value}\n")
    assert found.status.value == status and observed in found.observed
    assert found.location.line == 1
    if value and status != "skip":
        assert value not in found.message + found.observed + (found.expected or "")


def test_secret_key_base_missing(registry):
    found = only(registry, "env.secret-key-base", "LOCAL_DOMAIN=example.org\n")
    assert found.status is Status.FAIL and found.observed == "missing"


def test_active_record_encryption(registry):
    assert statuses(registry, "env.active-record-encryption", AR) == ["pass"] * 3
    test_values = AR.replace("Rohtv7BXTtU2v7gB2UCN129dHsaPVdla", "test_determinist_key_DO_NOT_USE_IN_PRODUCTION")
    assert statuses(registry, "env.active-record-encryption", test_values) == ["fail", "pass", "pass"]
    missing_salt = "\n".join(line for line in AR.splitlines() if "SALT" not in line)
    found = outcomes(registry, "env.active-record-encryption", missing_salt)
    assert [o.status.value for o in found] == ["pass", "fail", "pass"] and found[1].observed == "missing"


def test_vapid_keys(registry):
    assert statuses(registry, "env.vapid-keys", VAPID) == ["pass", "pass"]
    assert statuses(registry, "env.vapid-keys", "LOCAL_DOMAIN=example.org\n") == ["warn"]
    only_private = VAPID.splitlines()[0] + "\n"
    assert statuses(registry, "env.vapid-keys", only_private) == ["pass", "fail"]
    malformed = VAPID.replace("myqBqG6R7zqujSqGsPYxBPdttHus0ITFwtC77UBi5hQ=", "bXlxQnFH")
    found = outcomes(registry, "env.vapid-keys", malformed)
    assert found[0].status is Status.FAIL and "malformed" in found[0].observed


@pytest.mark.parametrize("text, status", [
    ("LOCAL_DOMAIN=example.org\n", "pass"),  # 4.4+: not needed
    (f"OTP_SECRET={STRONG_HEX}\n", "pass"),
    ("OTP_SECRET=100c7faeef00caa29242f6b04156742bf76065771fd4117990c4282b8748ff3d99f8fdae97c982ab5bd2e6756a159121377cce"
     "4421f4a8ecd2d67bd7749a3fb4\n", "fail"),
    ("OTP_SECRET=changeme\n", "fail"),
])
def test_otp_secret(registry, text, status):
    assert only(registry, "env.otp-secret", text).status.value == status


def test_secrets_distinct(registry):
    assert statuses(registry, "env.secrets-distinct", f"SECRET_KEY_BASE={STRONG_HEX}\n{AR}{VAPID}") == ["pass"]
    reused = f"SECRET_KEY_BASE={STRONG_HEX}\nOTP_SECRET={STRONG_HEX}\n"
    found = only(registry, "env.secrets-distinct", reused)
    assert found.status is Status.FAIL and found.location.line == 2 and "SECRET_KEY_BASE" in found.observed
    assert STRONG_HEX not in found.message + found.observed
    # one Redis, one password: the URL and the variable may agree
    same_service = "REDIS_PASSWORD=62e899c7135d57e3\nCACHE_REDIS_URL=redis://:62e899c7135d57e3@localhost:6379/1\n"
    assert statuses(registry, "env.secrets-distinct", same_service) == ["pass"]
    across = "DB_PASS=62e899c7135d57e3\nSMTP_PASSWORD=62e899c7135d57e3\n"
    assert statuses(registry, "env.secrets-distinct", across) == ["fail"]
    assert statuses(registry, "env.secrets-distinct", "LOCAL_DOMAIN=example.org\n") == ["skip"]


@pytest.mark.parametrize("line, status", [
    ("DB_PASS=62e899c7135d57e323eef042a473848b", "pass"),
    ("DB_PASS=password", "fail"),
    ("ES_PASS=Tr0ub4dor", "fail"),
    ("SMTP_PASSWORD=aaaaaaaaaaaaaaaaaaaaaaaa", "fail"),
    ("DATABASE_URL=postgres://mastodon:short1@db.internal/mastodon", "fail"),
    ("DATABASE_URL=postgres://mastodon:5c9d3e6b0a4f8c2d7e1b5a9f@db.internal/mastodon", "pass"),
    ("REDIS_PASSWORD={{ vault_redis_password }}", "skip"),
    ("DB_PASS=", "skip"),  # peer authentication over the socket: nothing to judge
])
def test_service_passwords(registry, line, status):
    assert statuses(registry, "env.service-passwords", line + "\n") == [status]


# --- federation and access ------------------------------------------------------------------------


@pytest.mark.parametrize("text, status", [
    ("AUTHORIZED_FETCH=true\n", "pass"),
    ("LIMITED_FEDERATION_MODE=true\n", "pass"),
    ("AUTHORIZED_FETCH=false\n", "warn"),
    ("LOCAL_DOMAIN=example.org\n", "warn"),
    ("AUTHORIZED_FETCH=${SECURE}\n", "skip"),
])
def test_authorized_fetch_is_a_warning_not_a_failure(registry, text, status):
    assert statuses(registry, "env.authorized-fetch", text) == [status]


def test_unauthenticated_api(registry):
    assert statuses(registry, "env.unauthenticated-api", "DISALLOW_UNAUTHENTICATED_API_ACCESS=true\n") == ["pass"]
    assert statuses(registry, "env.unauthenticated-api", "LOCAL_DOMAIN=x.org\n") == ["warn"]


@pytest.mark.parametrize("value, status", [
    (None, "pass"),
    ("10.0.0.0/8", "fail"),
    ("127.0.0.1", "fail"),
    ("169.254.169.254", "fail"),
    ("fd00::/8", "fail"),
    ("not-an-address", "fail"),
    ("10.20.0.8", "warn"),
    ("10.20.0.8/32,10.20.0.9", "warn"),
])
def test_allowed_private_addresses(registry, value, status):
    text = f"ALLOWED_PRIVATE_ADDRESSES={value}\n" if value else "LOCAL_DOMAIN=example.org\n"
    assert statuses(registry, "env.allowed-private-addresses", text) == [status]


@pytest.mark.parametrize("value, status", [
    (None, "pass"),
    ("0.0.0.0/0", "fail"),
    ("::/0", "fail"),
    ("127.0.0.1/8,::1/128,173.245.48.0/20,2400:cb00::/32", "pass"),
    ("10.0.0.0/8", "pass"),
    ("proxy.example.org", "warn"),
])
def test_trusted_proxy(registry, value, status):
    text = f"TRUSTED_PROXY_IP={value}\n" if value else "LOCAL_DOMAIN=example.org\n"
    assert statuses(registry, "env.trusted-proxy", text) == [status]


@pytest.mark.parametrize("value, status", [
    (None, "pass"), ("127.0.0.1", "pass"), ("::1", "pass"), ("localhost", "pass"),
    ("0.0.0.0", "fail"), ("::", "fail"), ("10.20.0.4", "warn"),
])
def test_bind(registry, value, status):
    text = f"BIND={value}\n" if value else "LOCAL_DOMAIN=example.org\n"
    assert statuses(registry, "env.bind-loopback", text) == [status]


def test_production_mode(registry):
    assert statuses(registry, "env.production-mode", "RAILS_ENV=production\nNODE_ENV=production\n") == ["pass"] * 2
    assert statuses(registry, "env.production-mode", "NODE_ENV=development\n") == ["fail"]
    assert statuses(registry, "env.production-mode", "LOCAL_DOMAIN=example.org\n") == ["skip"]


def test_auth_provider_reattach(registry):
    assert statuses(registry, "env.auth-provider-reattach", "ALLOW_UNSAFE_AUTH_PROVIDER_REATTACH=true\n") == ["fail"]
    assert statuses(registry, "env.auth-provider-reattach", "ALLOW_UNSAFE_AUTH_PROVIDER_REATTACH=false\n") == ["pass"]
    assert statuses(registry, "env.auth-provider-reattach", "LOCAL_DOMAIN=example.org\n") == ["pass"]


@pytest.mark.parametrize("value, status", [
    (None, "pass"), ("wss://streaming.example.org", "pass"), ("https://streaming.example.org", "pass"),
    ("ws://streaming.example.org", "fail"), ("http://streaming.example.org", "fail"),
])
def test_streaming_url(registry, value, status):
    text = f"STREAMING_API_BASE_URL={value}\n" if value else "LOCAL_DOMAIN=example.org\n"
    assert statuses(registry, "env.streaming-url-tls", text) == [status]


@pytest.mark.parametrize("value, status", [
    ("example.org", "pass"), ("social.xn--80ak6aa92e.com", "pass"), ("https://example.org", "fail"),
    ("example.org:443", "fail"), ("localhost", "fail"), ("203.0.113.5", "fail"), ("bad_name.example.org", "fail"),
])
def test_local_domain(registry, value, status):
    assert statuses(registry, "env.local-domain", f"LOCAL_DOMAIN={value}\n") == [status]


def test_local_domain_missing_and_web_domain(registry):
    assert statuses(registry, "env.local-domain", "SINGLE_USER_MODE=false\n") == ["fail"]
    both = "LOCAL_DOMAIN=example.org\nWEB_DOMAIN=https://mastodon.example.org\n"
    assert statuses(registry, "env.local-domain", both) == ["pass", "fail"]


def test_duplicate_keys(registry):
    found = only(registry, "env.duplicate-keys", "A=1\nB=2\nA=3\n")
    assert found.status is Status.WARN and found.location.line == 3 and "lines 1, 3" in found.observed
    assert statuses(registry, "env.duplicate-keys", "A=1\nB=2\n") == ["pass"]


# --- mail -----------------------------------------------------------------------------------------


def test_smtp_setup_localhost_relay_passes(registry):
    # mastodon:setup's "send e-mails from localhost": no auth, verify none, on this host.
    text = ("SMTP_SERVER=localhost\nSMTP_PORT=25\nSMTP_AUTH_METHOD=none\nSMTP_OPENSSL_VERIFY_MODE=none\n"
            "SMTP_ENABLE_STARTTLS=auto\n")
    for check_id in ("smtp.env-starttls", "smtp.env-certificate-verify", "smtp.env-auth-cleartext"):
        assert statuses(registry, check_id, text) == ["pass"], check_id


@pytest.mark.parametrize("extra, status", [
    ("", "pass"),  # auto by default
    ("SMTP_ENABLE_STARTTLS=always\n", "pass"),
    ("SMTP_ENABLE_STARTTLS=never\n", "fail"),
    ("SMTP_ENABLE_STARTTLS_AUTO=false\n", "fail"),
    ("SMTP_ENABLE_STARTTLS=never\nSMTP_TLS=true\n", "pass"),  # implicit TLS on 465
])
def test_smtp_starttls(registry, extra, status):
    assert statuses(registry, "smtp.env-starttls", SMTP_REMOTE + extra) == [status]


@pytest.mark.parametrize("mode, status", [
    (None, "pass"), ("peer", "pass"), ("none", "fail"), ("client_once", "fail"), ("fail_if_no_peer_cert", "fail"),
])
def test_smtp_certificate_verify(registry, mode, status):
    text = SMTP_REMOTE + (f"SMTP_OPENSSL_VERIFY_MODE={mode}\n" if mode else "")
    assert statuses(registry, "smtp.env-certificate-verify", text) == [status]


@pytest.mark.parametrize("extra, status", [
    ("SMTP_ENABLE_STARTTLS=always\n", "pass"),
    ("SMTP_SSL=true\n", "pass"),
    ("SMTP_AUTH_METHOD=cram_md5\nSMTP_ENABLE_STARTTLS=never\n", "pass"),
    ("SMTP_ENABLE_STARTTLS=never\n", "fail"),
    ("SMTP_AUTH_METHOD=login\nSMTP_ENABLE_STARTTLS=never\n", "fail"),
    ("", "warn"),  # plain by default, STARTTLS auto: strippable
])
def test_smtp_auth_cleartext(registry, extra, status):
    assert statuses(registry, "smtp.env-auth-cleartext", SMTP_REMOTE + extra) == [status]


def test_smtp_checks_skip_without_smtp(registry):
    for check_id in ("smtp.env-starttls", "smtp.env-certificate-verify", "smtp.env-auth-cleartext"):
        assert statuses(registry, check_id, "LOCAL_DOMAIN=example.org\n") == ["skip"]
        assert statuses(registry, check_id, "SMTP_DELIVERY_METHOD=sendmail\n") == ["skip"]


# --- backing services -----------------------------------------------------------------------------


@pytest.mark.parametrize("text, status", [
    ("DB_HOST=/var/run/postgresql\n", "pass"),
    ("DB_HOST=localhost\n", "pass"),
    ("DB_HOST=db\n", "pass"),  # docker compose service
    ("LOCAL_DOMAIN=example.org\n", "pass"),  # default localhost
    ("DB_HOST=10.0.0.5\n", "fail"),
    ("DB_HOST=10.0.0.5\nDB_SSLMODE=prefer\n", "fail"),
    ("DB_HOST=10.0.0.5\nDB_SSLMODE=require\n", "pass"),
    ("DB_HOST=10.0.0.5\nDB_SSLMODE=verify-full\n", "pass"),
    ("DATABASE_URL=postgres://m:5c9d3e6b0a4f8c2d@10.0.0.5/m?sslmode=verify-full\n", "pass"),
    ("DATABASE_URL=postgres://m:5c9d3e6b0a4f8c2d@10.0.0.5/m\nDB_SSLMODE=require\n", "pass"),
    ("DATABASE_URL=postgres://m:5c9d3e6b0a4f8c2d@10.0.0.5/m?sslmode=disable\nDB_SSLMODE=require\n", "fail"),
    ("DB_HOST={{ db_host }}\n", "skip"),
])
def test_postgresql_sslmode(registry, text, status):
    assert statuses(registry, "postgresql.env-sslmode", text) == [status]


def test_postgresql_sslmode_judges_the_replica_too(registry):
    text = "DB_HOST=/var/run/postgresql\nREPLICA_DB_HOST=10.0.0.6\n"
    assert statuses(registry, "postgresql.env-sslmode", text) == ["pass", "fail"]


@pytest.mark.parametrize("text, password, tls", [
    ("REDIS_HOST=localhost\nREDIS_PASSWORD=62e899c7135d57e323eef042\n", "pass", "pass"),
    ("REDIS_HOST=localhost\n", "warn", "pass"),
    ("REDIS_HOST=redis\n", "warn", "pass"),
    ("REDIS_HOST=10.0.0.6\n", "fail", "fail"),
    ("REDIS_HOST=10.0.0.6\nREDIS_PASSWORD=62e899c7135d57e323eef042\n", "pass", "fail"),
    ("REDIS_URL=rediss://:62e899c7135d57e323eef042@redis.internal:6380/0\n", "pass", "pass"),
    ("REDIS_URL=redis://redis.internal:6379/0\nREDIS_PASSWORD=62e899c7135d57e323eef042\n", "fail", "fail"),
    ("REDIS_URL=unix:///var/run/redis/redis.sock\n", "warn", "pass"),
])
def test_redis(registry, text, password, tls):
    assert statuses(registry, "redis.env-password", text) == [password]
    assert statuses(registry, "redis.env-tls", text) == [tls]


def test_redis_separate_cache_and_sidekiq(registry):
    text = ("REDIS_HOST=localhost\nREDIS_PASSWORD=62e899c7135d57e3\nSIDEKIQ_REDIS_URL=redis://10.0.0.7:6379/0\n")
    assert statuses(registry, "redis.env-password", text) == ["pass", "fail"]
    assert statuses(registry, "redis.env-tls", text) == ["pass", "fail"]


@pytest.mark.parametrize("text, auth, tls", [
    ("ES_ENABLED=false\nES_HOST=10.0.0.7\n", "skip", "skip"),
    ("ES_ENABLED=true\n", "warn", "pass"),
    ("ES_ENABLED=true\nES_HOST=es\n", "warn", "pass"),
    ("ES_ENABLED=true\nES_HOST=10.0.0.7\n", "fail", "fail"),
    ("ES_ENABLED=true\nES_HOST=https://search.internal\nES_USER=mastodon\nES_PASS=67207b44416f421dec39\n",
     "pass", "pass"),
    ("ES_ENABLED=true\nES_HOST=search.internal\nES_USER=mastodon\nES_PASS=67207b44416f421dec39\n", "pass", "fail"),
])
def test_elasticsearch(registry, text, auth, tls):
    assert statuses(registry, "elasticsearch.env-auth", text) == [auth]
    assert statuses(registry, "elasticsearch.env-tls", text) == [tls]


@pytest.mark.parametrize("text, expected", [
    ("S3_ENABLED=false\nS3_PROTOCOL=http\n", ["skip"]),
    ("S3_ENABLED=true\n", ["pass"]),
    ("S3_ENABLED=true\nS3_PROTOCOL=http\n", ["fail"]),
    ("S3_ENABLED=true\nS3_ENDPOINT=https://s3.wasabisys.com/\n", ["pass", "pass"]),
    ("S3_ENABLED=true\nS3_PROTOCOL=https\nS3_ENDPOINT=http://minio.internal:9000\n", ["pass", "fail"]),
    ("S3_ENABLED=true\nS3_PROTOCOL=https\nS3_ENDPOINT=http://localhost:9000\n", ["pass", "pass"]),
])
def test_s3_https(registry, text, expected):
    assert statuses(registry, "s3.env-https", text) == expected


@pytest.mark.parametrize("extra, status", [
    ("", "pass"),  # public-read: Mastodon's documented default never fails
    ("S3_PERMISSION=public-read\n", "pass"),
    ("S3_PERMISSION=\n", "pass"),
    ("S3_PERMISSION=private\nS3_ALIAS_HOST=files.example.org\n", "pass"),
    ("S3_PERMISSION=private\n", "warn"),
    ("S3_PERMISSION=public-read-write\n", "fail"),
])
def test_s3_permission(registry, extra, status):
    assert statuses(registry, "s3.env-permission", "S3_ENABLED=true\n" + extra) == [status]


# --- fixtures: templates and compose --------------------------------------------------------------


def test_templated_file_is_skipped_never_passed_or_failed(registry):
    text = (ENV_FIXTURES / "templated.env").read_text()
    env_ids = env_check_ids(registry)
    assert len(env_ids) >= 14
    for check_id in env_ids:
        found = outcomes(registry, check_id, text)
        if check_id == "env.duplicate-keys":  # judges the file's structure, not its values
            continue
        assert found and all(o.status is Status.SKIP for o in found), (check_id, found)
        assert all("{{" not in (o.observed or "") for o in found)


@pytest.mark.parametrize("check_id, text", [
    ("smtp.env-starttls", SMTP_REMOTE + "SMTP_ENABLE_STARTTLS={{ smtp_starttls }}\n"),
    ("smtp.env-auth-cleartext", SMTP_REMOTE + "SMTP_TLS=${SMTP_TLS}\n"),
    ("redis.env-password", "REDIS_HOST=10.0.0.6\nREDIS_PASSWORD={{ vault_redis }}\n"),
    ("elasticsearch.env-auth", "ES_ENABLED=true\nES_HOST=10.0.0.7\nES_USER=m\nES_PASS={{ vault_es }}\n"),
    ("postgresql.env-sslmode", "DB_HOST=10.0.0.5\nDB_SSLMODE={{ sslmode }}\n"),
])
def test_a_template_in_a_deciding_variable_skips(registry, check_id, text):
    assert statuses(registry, check_id, text) == ["skip"]


def test_compose_service_names_count_as_local(registry):
    text = (ENV_FIXTURES / "compose.env").read_text()
    assert statuses(registry, "postgresql.env-sslmode", text) == ["pass"]
    assert statuses(registry, "redis.env-tls", text) == ["pass"]
    assert statuses(registry, "redis.env-password", text) == ["warn"]
    assert statuses(registry, "elasticsearch.env-tls", text) == ["pass"]
    assert statuses(registry, "smtp.env-auth-cleartext", text) == ["pass"]  # SMTP_TLS=true


# --- the weak demo through the reporters: no secret leaks -----------------------------------------


@pytest.fixture(scope="module")
def weak_secrets() -> list[str]:
    facts = collect_tree(DEMO / "weak" / "home")
    env = facts.first("mastodon_env")
    found = [s for s in env.secret_values() if len(s) >= 4]
    planted = ("SECRET_KEY_BASE", "OTP_SECRET", "ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT", "VAPID_PRIVATE_KEY",
               "DB_PASS", "SMTP_PASSWORD", "AWS_SECRET_ACCESS_KEY")
    assert all(env.get(key).value in found for key in planted)
    return found


@pytest.mark.parametrize("fmt", ["json", "terminal"])
def test_no_secret_from_the_weak_env_reaches_a_report(registry, weak_secrets, fmt):
    result = lint(registry, DEMO / "weak")
    env_findings = [f for f in result.findings if f.location and f.location.file.endswith(".env.production")]
    assert any(f.status is Status.FAIL for f in env_findings)
    text = renderer(fmt)(result)
    leaked = [s for s in weak_secrets if s in text]
    assert not leaked, f"{len(leaked)} secret value(s) from demo/weak's .env.production appear in the {fmt} report"


def test_scrubbing_catches_a_check_that_would_leak(registry):
    # The second line of defence: a finding that quoted a secret is scrubbed by the engine.
    from mastoaudit.checkdef import Check, CheckMeta, Remediation, failed
    from mastoaudit.model import Severity

    facts = collect_tree(DEMO / "weak" / "home")
    env = facts.first("mastodon_env")
    leaky_value = env.get("DB_PASS").value

    def leaky(_facts):
        yield failed(f"DB_PASS is {leaky_value}", at=env.at(21), observed=leaky_value)

    meta = CheckMeta("test.leaky", "leaky", "mastodon-env", Severity.LOW, ("T-SECRETS-EXPOSED",), ("mastodon_env",),
                     "test", Remediation("none"))
    registry._checks["test.leaky"] = Check(meta, leaky, origin="test")
    try:
        result = run("lint", registry, Selection.parse(["test.leaky"], None), [facts])
    finally:
        del registry._checks["test.leaky"]
    (finding,) = result.findings
    assert leaky_value not in finding.message and leaky_value not in finding.observed
