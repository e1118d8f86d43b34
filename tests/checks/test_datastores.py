"""PostgreSQL, Redis and Elasticsearch checks on small configurations: the verdict, where it
points and what it shows, for the cases between the demo's hardened and weak trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from mastoaudit.facts import FactSet
from mastoaudit.model import Outcome, Severity, Status
from mastoaudit.parsers.base import SourceFile
from mastoaudit.parsers.elasticsearch import parse_elasticsearch_yml
from mastoaudit.parsers.postgres import parse_pg_hba, parse_postgresql_conf
from mastoaudit.parsers.redis import parse_redis_conf

from ..conftest import DEMO, lint, results_for

PARSERS = {
    "postgresql_conf": (parse_postgresql_conf, "etc/postgresql/15/main/postgresql.conf"),
    "pg_hba": (parse_pg_hba, "etc/postgresql/15/main/pg_hba.conf"),
    "redis_conf": (parse_redis_conf, "etc/redis/redis.conf"),
    "elasticsearch_yml": (parse_elasticsearch_yml, "etc/elasticsearch/elasticsearch.yml"),
}


def judge(registry, check_id: str, **texts: str) -> list[Outcome]:
    facts = FactSet("test")
    for kind, text in texts.items():
        parse, path = PARSERS[kind]
        facts.add(kind, parse(SourceFile(path, text.encode())))
    return list(registry.get(check_id).run(facts))


def one(outcomes: list[Outcome]) -> Outcome:
    assert len(outcomes) == 1, outcomes
    return outcomes[0]


def statuses(outcomes: list[Outcome]) -> list[str]:
    return [o.status.value for o in outcomes]


# --- PostgreSQL -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "status"),
    [
        (None, "pass"),
        ("listen_addresses = 'localhost'", "pass"),
        ("listen_addresses = ''", "pass"),  # the Unix socket only
        ("listen_addresses = '127.0.0.1, ::1'", "pass"),
        ("listen_addresses = 'localhost,10.0.0.5'", "warn"),  # a database host of its own
        ("listen_addresses = 'db.internal'", "warn"),
        ("listen_addresses = '203.0.113.250,8.8.4.4'", "fail"),
        ("listen_addresses = '*'", "fail"),
        ("listen_addresses = '0.0.0.0'", "fail"),
        ("listen_addresses = '{{ pg_listen }}'", "skip"),
    ],
)
def test_pg_listen_addresses(registry, line, status):
    outcome = one(judge(registry, "postgresql.listen-addresses", postgresql_conf=(line or "port = 5432") + "\n"))
    assert outcome.status.value == status
    if line:
        assert outcome.location.line == 1


def test_pg_listen_every_interface_is_critical(registry):
    outcome = one(judge(registry, "postgresql.listen-addresses", postgresql_conf="listen_addresses = '*'\n"))
    assert outcome.severity is Severity.CRITICAL and outcome.observed == "*"


@pytest.mark.parametrize(("hba", "severity", "admits"), [
    ("local all postgres peer\nhost all all 127.0.0.1/32 scram-sha-256\nhostssl mastodon_production mastodon "
     "10.0.0.5/32 scram-sha-256\n", Severity.MEDIUM, "loopback and private addresses"),
    ("local all all peer\nhost all all ::1/128 scram-sha-256\n", Severity.MEDIUM, "loopback addresses"),
    ("local all all peer\n", Severity.MEDIUM, "no client"),
    ("host all all 0.0.0.0/0 scram-sha-256\n", Severity.CRITICAL, None),
    ("host all all 203.0.113.7/32 scram-sha-256\n", Severity.CRITICAL, None),
    ("host all all app.internal scram-sha-256\n", Severity.CRITICAL, None),  # a name: not judged here
    ("host all all samenet scram-sha-256\n", Severity.CRITICAL, None),  # the server's own networks
    ("host all all 10.0.0.0/8 reject\nhost all all 127.0.0.1/32 md5\n", Severity.MEDIUM, "loopback addresses"),
])
def test_pg_listen_every_interface_in_the_context_of_pg_hba(registry, hba, severity, admits):
    """'*' is critical unless the pg_hba.conf beside it admits TCP clients from loopback and
    private addresses only: then other clients are refused before a password is asked (medium,
    and the message says what pg_hba admits)."""
    outcome = one(judge(registry, "postgresql.listen-addresses", postgresql_conf="listen_addresses = '*'\n",
                        pg_hba=hba))
    assert outcome.status.value == "fail" and outcome.severity is severity
    if admits:
        assert f"pg_hba.conf admits only {admits} over TCP" in outcome.message
    else:
        assert outcome.message == "PostgreSQL listens on every interface"


def test_pg_unread_include_turns_a_pass_into_a_warning(registry):
    conf = "listen_addresses = 'localhost'\ninclude 'more.conf'\n"
    outcome = one(judge(registry, "postgresql.listen-addresses", postgresql_conf=conf))
    assert outcome.status is Status.WARN and "more.conf" in outcome.message
    conf = "include 'more.conf'\nlisten_addresses = 'localhost'\n"  # set after it: nothing can override it
    assert one(judge(registry, "postgresql.listen-addresses", postgresql_conf=conf)).status is Status.PASS


@pytest.mark.parametrize(
    ("conf", "status"),
    [
        ("ssl = off\n", "pass"),  # loopback only: nothing to encrypt
        ("listen_addresses = '10.0.0.5'\nssl = on\n", "pass"),
        ("listen_addresses = '10.0.0.5'\nssl = off\n", "fail"),
        ("listen_addresses = '*'\n", "fail"),  # ssl unset: off
        ("listen_addresses = '*'\nssl = '{{ ssl }}'\n", "skip"),
    ],
)
def test_pg_ssl(registry, conf, status):
    assert one(judge(registry, "postgresql.ssl", postgresql_conf=conf)).status.value == status


@pytest.mark.parametrize(
    ("conf", "status", "observed"),
    [
        ("port = 5432\n", "pass", "unset (scram-sha-256)"),
        ("password_encryption = scram-sha-256\n", "pass", "scram-sha-256"),
        ("password_encryption = 'md5'\n", "fail", "md5"),
        ("password_encryption = '${ENC}'\n", "skip", "${ENC}"),
    ],
)
def test_pg_password_encryption(registry, conf, status, observed):
    outcome = one(judge(registry, "postgresql.password-encryption", postgresql_conf=conf))
    assert (outcome.status.value, outcome.observed) == (status, observed)


def test_pg_log_connections(registry):
    assert one(judge(registry, "postgresql.log-connections", postgresql_conf="log_connections = yes\n")).status \
        is Status.PASS
    outcome = one(judge(registry, "postgresql.log-connections", postgresql_conf="log_connections = off\n"))
    assert outcome.status is Status.WARN and outcome.location.line == 1


def test_hba_trust(registry):
    outcomes = judge(registry, "postgresql.hba-trust", pg_hba=(
        "local all postgres peer\n"
        "local all all trust\n"
        "host all all 127.0.0.1/32 trust\n"
        "hostssl mastodon_production mastodon 10.0.0.0/24 trust\n"))
    assert [(o.status.value, o.location.line, o.severity and o.severity.value) for o in outcomes] == [
        ("warn", 2, "medium"), ("fail", 3, "high"), ("fail", 4, None)]
    assert outcomes[2].observed == "hostssl mastodon_production mastodon 10.0.0.0/24 trust"
    clean = one(judge(registry, "postgresql.hba-trust", pg_hba="local all all peer\n"))
    assert clean.status is Status.PASS


def test_hba_any_address(registry):
    outcomes = judge(registry, "postgresql.hba-any-address", pg_hba=(
        "host all all ::/0 scram-sha-256\n"
        "hostssl mastodon_production mastodon 0.0.0.0/0 scram-sha-256\n"
        "host replication all 0.0.0.0 0.0.0.0 scram-sha-256\n"
        "host all all 0.0.0.0/0 reject\n"
        "host all all 10.0.0.0/8 scram-sha-256\n"))
    assert [(o.status.value, o.location.line) for o in outcomes] == [("fail", 1), ("warn", 2), ("fail", 3)]


@pytest.mark.parametrize(("conf", "severity", "words"), [
    (None, None, "not known (no postgresql.conf read)"),  # the check's own: critical
    ("port = 5432\n", "medium", "listens on localhost only (the default"),
    ("listen_addresses = 'localhost'\n", "medium", "listens on localhost only (listen_addresses at"),
    ("listen_addresses = '*'\n", None, ""),
])
def test_a_broad_rule_is_judged_with_what_postgresql_listens_on(registry, conf, severity, words):
    texts = {"pg_hba": "host all all 0.0.0.0/0 scram-sha-256\n"}
    if conf is not None:
        texts["postgresql_conf"] = conf
    f = one(judge(registry, "postgresql.hba-any-address", **texts))
    assert f.status is Status.FAIL and (f.severity.value if f.severity else None) == severity
    assert words in f.message


def test_hba_cleartext_password(registry):
    outcomes = judge(registry, "postgresql.hba-cleartext-password", pg_hba=(
        "local all all password\n"
        "hostssl all all 10.0.0.0/8 password\n"
        "host all all 127.0.0.1/32 password\n"
        "hostnossl all all 10.0.0.0/8 password\n"))
    assert statuses(outcomes) == ["pass", "pass", "warn", "fail"]


def test_hba_md5_warns_unless_passwords_are_stored_as_md5(registry):
    rules = "host all all 127.0.0.1/32 md5\n"
    assert one(judge(registry, "postgresql.hba-md5", pg_hba=rules)).status is Status.WARN
    outcome = one(judge(registry, "postgresql.hba-md5", pg_hba=rules,
                        postgresql_conf="password_encryption = md5\n"))
    assert outcome.status is Status.FAIL and "postgresql.conf:1" in outcome.message


def test_hba_templated_rule_is_skipped_not_judged(registry):
    outcomes = judge(registry, "postgresql.hba-trust", pg_hba="host all all {{ app_cidr }} trust\n")
    assert statuses(outcomes) == ["skip"]


def test_mastodon_documented_postgres_setup_passes(registry):
    """demo/official: Debian's defaults, as Mastodon's guide leaves them (peer on the socket, a
    CREATEDB role, scram on 127.0.0.1). Only the low-severity logging advice is raised."""
    result = lint(registry, DEMO / "official" / "etc" / "postgresql")
    found = [f for f in result.findings if f.component == "postgresql" and f.status in (Status.FAIL, Status.WARN)]
    assert [(f.check_id, f.status.value) for f in found] == [("postgresql.log-connections", "warn")]
    assert result.complete


# --- Redis ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("conf", "status", "observed"),
    [
        ("port 6379\n", "fail", "unset (every interface)"),
        ("bind 127.0.0.1 -::1\n", "pass", "127.0.0.1 -::1"),
        ("bind * -::*\n", "fail", "* -::*"),
        ("bind 10.0.0.6 127.0.0.1\n", "warn", "10.0.0.6 127.0.0.1"),
        ("bind 0.0.0.0\nport 0\nunixsocket /run/redis/redis.sock\n", "pass", "port 0 (Unix socket only)"),
        ("bind 0.0.0.0\nport 0\ntls-port 6380\n", "fail", "0.0.0.0"),
        ("bind '{{ redis_bind }}'\n", "skip", "{{ redis_bind }}"),
    ],
)
def test_redis_bind(registry, conf, status, observed):
    outcome = one(judge(registry, "redis.bind", redis_conf=conf))
    assert (outcome.status.value, outcome.observed) == (status, observed)


def test_redis_protected_mode(registry):
    assert one(judge(registry, "redis.protected-mode", redis_conf="port 6379\n")).status is Status.PASS
    exposed = one(judge(registry, "redis.protected-mode", redis_conf="protected-mode no\n"))
    assert exposed.status is Status.FAIL and exposed.severity is None and exposed.location.line == 1
    local = one(judge(registry, "redis.protected-mode", redis_conf="bind 127.0.0.1\nprotected-mode no\n"))
    assert local.status is Status.FAIL and local.severity is Severity.LOW


def _auth(registry, conf: str) -> dict[str, Outcome]:
    return {o.subject: o for o in judge(registry, "redis.auth", redis_conf=conf)}


def test_redis_auth_cases(registry):
    assert _auth(registry, "bind 0.0.0.0\n")["user default"].severity is Severity.CRITICAL
    assert _auth(registry, "bind 127.0.0.1\n")["user default"].status is Status.FAIL
    ok = _auth(registry, "requirepass 5f0c2d9e8a7b6c5d4e3f2a1b0c9d8e7f\n")["user default"]
    assert ok.status is Status.PASS and ok.observed == "password of 32 characters"
    short = _auth(registry, "requirepass hunter2\n")["user default"]
    assert short.status is Status.FAIL and short.observed.startswith("short (length 7,")
    sample = _auth(registry, "requirepass foobared\n")["user default"]
    assert sample.status is Status.FAIL and sample.observed.startswith("sample value (length 8,")
    assert _auth(registry, "requirepass '{{ vault_redis }}'\n")["user default"].status is Status.SKIP
    acl = _auth(registry, "user default off\nuser mastodon on #" + "a" * 64 + " ~* +@all\n")
    assert {s: o.status.value for s, o in acl.items()} == {"user default": "pass", "user mastodon": "pass"}
    # a `user default ... nopass` line wins over requirepass, as in redis-server
    overridden = _auth(registry, "requirepass 5f0c2d9e8a7b6c5d4e3f2a1b0c9d8e7f\nuser default on nopass +@all\n")
    assert overridden["user default"].status is Status.FAIL and overridden["user default"].location.line == 2
    unread = one(judge(registry, "redis.auth", redis_conf="aclfile /etc/redis/users.acl\n"))
    assert unread.status is Status.WARN and "not in the audited tree" in unread.message


def test_redis_auth_never_shows_the_password(registry, tmp_path):
    (tmp_path / "redis.conf").write_text("bind 127.0.0.1\nrequirepass foobared-but-longer-2024\n"
                                         "user ops on >opsPass123 ~* +@all\n")
    result = lint(registry, tmp_path, select=["component:redis"])
    text = repr([f.to_dict() for f in result.findings])
    assert "foobared-but-longer-2024" not in text and "opsPass123" not in text
    assert any(f.check_id == "redis.auth" and f.observed.startswith("short (length 10,") for f in result.findings)


@pytest.mark.parametrize(
    ("conf", "status", "observed"),
    [
        ("port 6379\n", "fail", "FLUSHALL, FLUSHDB, CONFIG available"),
        ('rename-command FLUSHALL ""\nrename-command FLUSHDB ""\nrename-command CONFIG "cfg-9d1f7a"\n',
         "pass", "none available"),
        ('rename-command FLUSHALL ""\nrename-command FLUSHDB ""\nrename-command CONFIG ""\n'
         "enable-debug-command yes\n", "fail", "DEBUG available"),
        ('rename-command FLUSHALL ""\nrename-command FLUSHDB ""\nrename-command CONFIG ""\n'
         "enable-module-command local\n", "fail", "MODULE available"),
        # ACLs instead of renames: Mastodon's user without @dangerous (INFO and KEYS given back)
        ("user default off\nuser mastodon on >0123456789abcdef0123 ~* &* +@all -@dangerous +info +keys\n",
         "pass", "none available"),
        ("user default off\nuser mastodon on >0123456789abcdef0123 ~* &* +@all -@admin\n",
         "fail", "FLUSHALL, FLUSHDB available"),
    ],
)
def test_redis_dangerous_commands(registry, conf, status, observed):
    (outcome,) = [o for o in judge(registry, "redis.dangerous-commands", redis_conf=conf)
                  if o.subject == "admin commands"]
    assert (outcome.status.value, outcome.observed) == (status, observed)


def test_redis_commands_sidekiq_needs_must_stay(registry):
    conf = ('rename-command FLUSHALL ""\nrename-command FLUSHDB ""\nrename-command CONFIG ""\n'
            'rename-command EVALSHA ""\n')
    outcomes = {o.subject: o for o in judge(registry, "redis.dangerous-commands", redis_conf=conf)}
    assert outcomes["admin commands"].status is Status.PASS
    broken = outcomes["commands Sidekiq needs"]
    assert broken.status is Status.FAIL and broken.location.line == 4 and "EVALSHA" in broken.message


# --- Elasticsearch ----------------------------------------------------------------------------


def _layers(registry, conf: str) -> dict[str, tuple[str, str | None]]:
    return {o.subject: (o.status.value, o.observed)
            for o in judge(registry, "elasticsearch.network-host", elasticsearch_yml=conf)}


def test_es_network_host(registry):
    assert _layers(registry, "cluster.name: x\n") == {"HTTP (9200)": ("pass", "unset (_local_)"),
                                                      "transport (9300)": ("pass", "unset (_local_)")}
    assert _layers(registry, "network.host: [_local_, _site_]\n")["HTTP (9200)"][0] == "warn"
    # http.host narrows HTTP; transport still follows network.host
    layers = _layers(registry, "network.host: 0.0.0.0\nhttp.host: 127.0.0.1\n")
    assert layers == {"HTTP (9200)": ("pass", "http.host: 127.0.0.1"),
                      "transport (9300)": ("fail", "network.host: 0.0.0.0")}
    assert _layers(registry, "network.host: ${ES_BIND}\n")["HTTP (9200)"][0] == "skip"


@pytest.mark.parametrize(
    ("conf", "status", "severity"),
    [
        ("xpack.security.enabled: true\nnetwork.host: 0.0.0.0\n", "pass", None),
        ("xpack.security.enabled: false\n", "warn", "medium"),  # Mastodon's compose: loopback/internal only
        ("xpack:\n  security:\n    enabled: false\nnetwork.host: 10.0.0.7\n", "fail", None),
        ("network.host: 0.0.0.0\n", "warn", "high"),  # unset: depends on the version
        ("plugins.security.disabled: true\nnetwork.host: 0.0.0.0\n", "fail", None),  # OpenSearch
        ("plugins.security.ssl.http.enabled: true\nnetwork.host: 0.0.0.0\n", "pass", None),
        ("xpack.security.enabled: ${SECURITY}\n", "skip", None),
    ],
)
def test_es_security(registry, conf, status, severity):
    outcome = one(judge(registry, "elasticsearch.security", elasticsearch_yml=conf))
    assert outcome.status.value == status
    assert (outcome.severity.value if outcome.severity else None) == severity


@pytest.mark.parametrize(
    ("conf", "status", "line"),
    [
        ("xpack.security.enabled: false\n", "pass", None),  # loopback only
        ("network.host: _site_\nxpack.security.enabled: true\nxpack.security.http.ssl.enabled: true\n", "pass", 3),
        ("network.host: _site_\nxpack.security.enabled: true\n", "fail", 1),
        ("network.host: _site_\nxpack.security.enabled: true\nxpack.security.http.ssl:\n  enabled: false\n",
         "fail", 4),
        ("network.host: 0.0.0.0\nxpack.security.enabled: false\n", "fail", 2),
        ("network.host: 10.0.0.7\nplugins.security.ssl.http.enabled: true\n", "pass", 2),
    ],
)
def test_es_http_tls(registry, conf, status, line):
    outcome = one(judge(registry, "elasticsearch.http-tls", elasticsearch_yml=conf))
    assert (outcome.status.value, outcome.location.line) == (status, line)


def test_checks_say_skip_without_their_files(registry, tmp_path):
    (tmp_path / "empty.txt").write_text("nothing here\n")
    result = lint(registry, tmp_path, select=["component:postgresql", "component:redis", "component:elasticsearch"])
    mine = [f for f in result.findings if f.check_id.split(".")[1] in {
        "listen-addresses", "ssl", "bind", "auth", "network-host", "security", "http-tls"}]
    assert mine and all(f.status is Status.SKIP for f in mine)


def test_demo_files_are_where_the_expectations_say(registry):
    # The weak tree's planted weaknesses sit on the lines tests/expectations/weak/*.yaml list.
    weak = lint(registry, DEMO / "weak" / "etc")
    listen = results_for(weak, "postgresql.listen-addresses", Status.FAIL)
    assert [Path(f.location.file).name for f in listen] == ["postgresql.conf"]
