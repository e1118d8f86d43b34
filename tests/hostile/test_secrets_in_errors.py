"""No secret value leaves the host, not even through a parse error (issue 7, item 3).

A file that does not parse has no secrets the engine knows to scrub, so its error message must not
carry the token: a value wrapped onto a line of its own, an `export` of a bare word, a Redis
`requirepass` whose value went to the next line, an ACL rule without `>`. Every parser is fed
secrets in malformed positions (Hypothesis picks the case, the secret's shape and what surrounds
it) and every output of the run is searched for the secret.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from .conftest import HOSTILE, exit_code, lint_everything

# (path in the tree, text with {S} where the secret goes): each malformed the way edits go wrong.
CASES = [
    # .env.production
    ("live/.env.production", "LOCAL_DOMAIN=a.example\nDB_PASS=\n{S}\n"),
    ("live/.env.production", "LOCAL_DOMAIN=a.example\nDB_PASS=\n{U}\n"),  # upper case: looks like a name
    ("live/.env.production", "LOCAL_DOMAIN=a.example\nexport {S}\n"),
    ("live/.env.production", "LOCAL_DOMAIN=a.example\nexport {U}\n"),
    ("live/.env.production", 'LOCAL_DOMAIN=a.example\nDB_PASS="{S}\n'),
    ("live/.env.production", "LOCAL_DOMAIN=a.example\nDB_PASS='{S}' {S}\n"),
    ("live/.env.production", "LOCAL_DOMAIN=a.example\n={S}\n"),
    # redis.conf and its ACL file
    ("etc/redis/redis.conf", "port 6379\nrequirepass\n{S}\n"),
    ("etc/redis/redis.conf", "user app on {S} +@all ~*\n"),
    ("etc/redis/redis.conf", "user app on >{S} (~app:* +get\n"),
    ("etc/redis/redis.conf", 'requirepass "{S}\n'),
    ("etc/redis/redis.conf", "masterauth {S}\"x\n"),
    ("etc/redis/redis.conf", "user {S} on >{S} +@all\nuser {S} on\n"),
    ("etc/redis/redis.conf", "{S}\n"),
    # docker-compose.yml
    ("srv/docker-compose.yml", "services:\n  db:\n    environment:\n      DB_PASS:\n{S}: x\n"),
    ("srv/docker-compose.yml", "services:\n  db:\n    environment:\n      DB_PASS: '{S}\n"),
    ("srv/docker-compose.yml", "services:\n  db:\n    ports: ['{S}']\n"),
    ("srv/docker-compose.yml", "services:\n  {S}: just-a-string\n"),
    ("srv/docker-compose.yml", "services:\n  db:\n    environment: *{S}\n"),
    ("srv/docker-compose.yml", "services:\n  db:\n    environment: !{S} x\n"),
    ("srv/docker-compose.yml", "services:\n  db:\n    extends: {S}\n"),
    ("srv/docker-compose.yml", "services:\n  db:\n    environment:\n      {S}: 1\n      {S}: 2\n"),
    # PostgreSQL
    ("etc/postgresql/15/main/postgresql.conf", "primary_conninfo = 'password={S}\n"),
    ("etc/postgresql/15/main/postgresql.conf", "listen_addresses = 'localhost'\n{S}\n"),
    ("etc/postgresql/15/main/postgresql.conf", "primary_conninfo = password={S} {S}\n"),
    ("etc/postgresql/15/main/pg_hba.conf", "host all all 10.0.0.0/8 ldap ldapbindpasswd={S} {S}\n"),
    ("etc/postgresql/15/main/pg_hba.conf", "{S} all all trust\n"),
    ("etc/postgresql/15/main/pg_hba.conf", "host all all 10.0.0.1 {S}\n"),
    ("etc/postgresql/15/main/pg_hba.conf", "host all all 10.0.0.1 {S} md5\n"),
    ("etc/postgresql/15/main/pg_hba.conf", "host all all 1.2.3.4/8{S} md5\n"),
    # elasticsearch.yml
    ("etc/elasticsearch/elasticsearch.yml", "bootstrap.password: {S}\n  bad: indent\n"),
    ("etc/elasticsearch/elasticsearch.yml", 'xpack.security.http.ssl.keystore.secure_password: "{S}\n'),
    ("etc/elasticsearch/elasticsearch.yml", "{S}: [a, {{b: c}}]\n"),
    ("etc/elasticsearch/elasticsearch.yml", "a.password: {S}\na:\n  password: {S}\n"),
    ("etc/elasticsearch/elasticsearch.yml", "bootstrap.password: !!int {S}\n"),
    # systemd units and sshd
    ("etc/systemd/system/mastodon-web.service", "[{S}\nUser=mastodon\n"),
    ("etc/systemd/system/mastodon-web.service", "[Service]\nEnvironment=DB_PASS=\n{S}\n"),
    ("etc/ssh/sshd_config", "PermitRootLogin no\n{S}\n"),
    ("etc/ssh/sshd_config", 'Include "{S}\n'),
    # nginx
    ("etc/nginx/nginx.conf", "events {{}}\nhttp {{\n  proxy_set_header X-Token;\n  {S};\n}}\n"),
    ("etc/nginx/nginx.conf", 'events {{}}\nhttp {{\n  proxy_set_header Authorization "Bearer {S};\n}}\n'),
    ("etc/nginx/nginx.conf", "events {{}}\nhttp {{\n  {S} {{\n}}\n"),
    ("etc/nginx/nginx.conf", "events {{}}\nhttp {{\n  set $token {S} {S};\n}}\n"),
    ("etc/nginx/nginx.conf", "events {{}}\nhttp {{\n  {S}\n"),
    ("etc/nginx/nginx.conf", "events {{}}\nhttp {{ }}\n}}{S}\n"),
    ("etc/nginx/sites-enabled/site", "server {{ listen 80; secure_link_secret {S}; }}\n{S}\n"),
]

SECRETS = st.from_regex(r"Zq9[A-Za-z0-9]{6,24}[-_.+/=~]?[A-Za-z0-9]{0,8}", fullmatch=True)
UPPER = st.from_regex(r"ZQ9[A-Z0-9_]{8,30}", fullmatch=True)


@HOSTILE
@given(case=st.sampled_from(CASES), secret=SECRETS, upper=UPPER,
       before=st.sampled_from(["", "# a comment\n", "\n\n"]))
def test_item_3_no_secret_in_any_output_of_a_malformed_file(registry, case, secret, upper, before):
    path, template = case
    text = before + template.format(S=secret, U=upper)
    with tempfile.TemporaryDirectory(prefix="mastoaudit-secret-") as tmp:
        target = Path(tmp) / path
        target.parent.mkdir(parents=True)
        target.write_text(text)
        result, outputs = lint_everything(registry, Path(tmp))
    assert exit_code(result) in (0, 1, 3)
    for fmt, output in outputs.items():
        for token in (secret, upper):
            if token in text:
                assert token not in output, f"{path}: {fmt} shows the token of:\n{text}"


def test_every_case_is_an_input_problem(registry):
    """The cases above are malformed for real: each is reported (so the search above searched
    where the token could have been shown)."""
    silent = []
    for path, template in CASES:
        with tempfile.TemporaryDirectory(prefix="mastoaudit-secret-") as tmp:
            target = Path(tmp) / path
            target.parent.mkdir(parents=True)
            target.write_text(template.format(S="Zq9abcdefgh123", U="ZQ9ABCDEFGH123"))
            result, _ = lint_everything(registry, Path(tmp))
        if not any(f.check_id.startswith("input.") for f in result.findings):
            silent.append((path, template))
    # Two shapes the readers accept as written (nginx takes `secure_link_secret` with any value,
    # sshd skips a keyword it does not know in a file it only judges): they may pass silently.
    assert len(silent) <= 2, silent


def test_engine_scrubs_problem_messages_too(registry, tmp_path):
    """Second line of defence: a problem message that did carry a known secret is redacted."""
    from mastoaudit.engine import run
    from mastoaudit.facts import FactSet
    from mastoaudit.model import Location
    from mastoaudit.selection import Selection

    facts = FactSet("t")
    facts.secrets.add("Zq9knownSecret42")
    facts.problem("redis_conf", "cannot read x: Zq9knownSecret42 is odd", Location("x"))
    result = run("lint", registry, Selection(), [facts])
    assert all("Zq9knownSecret42" not in f.message for f in result.findings)
