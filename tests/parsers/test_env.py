""".env.production as Mastodon's dotenv readers see it: syntax, line numbers, templated values, the
secrets the engine must scrub, and malformed input reported at its line without a traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mastoaudit.model import Status
from mastoaudit.parsers import classify
from mastoaudit.parsers.base import ParseError, SourceFile
from mastoaudit.parsers.env import (
    database_endpoints,
    elasticsearch_endpoint,
    is_local_host,
    is_secret_key,
    parse_mastodon_env,
    redis_endpoints,
    vapid_key_shape,
)
from mastoaudit.sources.local import collect_tree

from ..conftest import DEMO, FIXTURES, lint, results_for

ENV_FIXTURES = FIXTURES / "env"
DEMO_ENVS = sorted(DEMO.glob("*/home/mastodon/live/.env.production"))


def parse(text: str | bytes, path: str = "live/.env.production"):
    data = text.encode() if isinstance(text, str) else text
    return parse_mastodon_env(SourceFile(path, data))


def values(env) -> dict[str, str]:
    return {k: v.value for k, v in env.variables.items()}


# --- syntax ---------------------------------------------------------------------------------------


def test_syntax_fixture_values_and_lines():
    env = parse_mastodon_env(SourceFile("syntax.env", (ENV_FIXTURES / "syntax.env").read_bytes()))
    assert values(env) == {
        "LOCAL_DOMAIN": "social.example.net",
        "SINGLE_USER_MODE": "false",
        "INDENTED": "spaced out",
        "COLON_FORM": "colon separated",
        "EMPTY": "",
        "EMPTY_QUOTED": "",
        "EMPTY_COMMENTED": "",
        "INLINE": "kept",
        "HASH_NO_SPACE": "before",  # dotenv ends an unquoted value at the first '#'
        "SINGLE": "literal #hash and $NOT_EXPANDED",
        "DOUBLE": "double #hash kept",
        "ESCAPED_QUOTE": 'say "hi"',
        "ESCAPED_DOLLAR": "costs $5",
        "SMTP_FROM_ADDRESS": "Mastodon <notifications@social.example.net>",
        "MULTILINE": "first line\nsecond line",
        "AFTER_MULTILINE": "still counted right",
        "QUOTED_THEN_COMMENT": "value",
        "DUPLICATE": "second",
        "dotted.key": "dots allowed",
    }
    assert env.get("LOCAL_DOMAIN").line == 3
    assert env.get("SINGLE_USER_MODE").exported
    assert env.get("MULTILINE").line == 17 and env.get("AFTER_MULTILINE").line == 19
    assert env.get("SINGLE").quote == "'" and not env.get("SINGLE").templated
    assert env.get("ESCAPED_DOLLAR").templated is False  # \$ is a literal dollar to dotenv


def test_duplicate_keys_last_wins_and_both_recorded():
    env = parse("A=1\nB=2\nA=3\n")
    assert env.get("A").value == "3" and env.get("A").line == 3
    dups = env.duplicates()
    assert list(dups) == ["A"] and [v.line for v in dups["A"]] == [1, 3]


def test_crlf_and_lone_cr_read_like_lf():
    lf = values(parse("A=1\nB='two words'\n# c\nC=\"x\" # y\n"))
    assert values(parse(b"A=1\r\nB='two words'\r\n# c\r\nC=\"x\" # y\r\n")) == lf
    assert values(parse(b"A=1\rB='two words'\r# c\rC=\"x\" # y\r")) == lf
    assert parse(b"A=1\r\n\r\nB=2\r\n").get("B").line == 3


def test_byte_order_mark_is_ignored():
    env = parse("\ufeffLOCAL_DOMAIN=example.org\n")
    assert env.get("LOCAL_DOMAIN").value == "example.org"


def test_empty_and_comment_only_files():
    assert parse("").variables == {}
    assert parse("# only a comment\n\n   \n").variables == {}


def test_double_quoted_newline_escape_stays_as_written():
    # dotenv 3 (Mastodon 4.3+) keeps \n in double quotes as backslash-n unless DOTENV_LINEBREAK_MODE=legacy.
    assert parse('K="a\\nb"\n').get("K").value == "a\\nb"
    assert parse("K='a\\nb'\n").get("K").value == "a\\nb"


def test_multiline_value_keeps_its_inner_spaces():
    env = parse('K="first   \n  second"\nNEXT=1\n')
    assert env.get("K").value == "first   \n  second" and env.get("NEXT").line == 3


def test_unquoted_backslash_escapes():
    assert parse("K=a\\#b\n").get("K").value == "a\\"  # '#' ends an unquoted value, escaped or not
    assert parse("K=a\\\\b\n").get("K").value == "a\\b"


@pytest.mark.parametrize("line, templated", [
    ("K={{ vault_secret_key_base }}", True),
    ("K={% if prod %}x{% endif %}", True),
    ("K=<%= ENV['X'] %>", True),
    ("K=${SECRET}", True),
    ("K='${SECRET}'", True),  # a file rendered by envsubst before deploy
    ("K=$SECRET", True),  # dotenv expands it at load time
    ('K="prefix-$SECRET"', True),
    ("K=$(cat /run/secret)", True),
    ("K='$SECRET'", False),  # single quotes are literal to dotenv
    ('K="costs \\$5"', False),
    ("K=a$", False),
    ("K=plain", False),
])
def test_templated_values(line, templated):
    assert parse(line + "\n").get("K").templated is templated


# --- malformed input ------------------------------------------------------------------------------


@pytest.mark.parametrize("text, line, words", [
    ("A=1\nJUSTAWORD\n", 2, "no '='"),
    ("A=1\n\n= value\n", 3, "variable name"),
    ("A=1\n-B=2\n", 2, "variable name"),
    ("A=1\nB=\"never closed\nC=3\n", 2, "never closed"),
    ("A='x' trailing\n", 1, "after the closing quote"),
    ("export MISSING\n", 1, "not set above"),
    ("KEY value\n", 1, "no '='"),
])
def test_malformed_lines_raise_parse_error_with_line(text, line, words):
    with pytest.raises(ParseError) as info:
        parse(text)
    assert info.value.line == line
    assert words in info.value.message


def test_export_of_a_key_set_above_is_fine():
    env = parse("A=1\nexport A\n")
    assert env.get("A").value == "1"


def test_parse_error_never_quotes_the_broken_line():
    # The second half of a secret wrapped onto its own line: nothing knows to scrub it.
    fragment = "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a3928"
    with pytest.raises(ParseError) as info:
        parse(f"SECRET_KEY_BASE=0123456789abcdef\n{fragment}\n")
    assert info.value.line == 2 and fragment not in info.value.message and fragment[:8] not in info.value.message


def test_binary_junk_is_a_parse_error():
    with pytest.raises(ParseError):
        parse(b"\x7fELF\x02\x01\x01\x00\x00\x00binary")
    with pytest.raises(ParseError) as info:
        parse(b"A=1\nB=\xff\xfe\n")
    assert info.value.line == 2


def test_malformed_env_is_reported_and_the_rest_of_the_tree_audited(registry):
    tree = ENV_FIXTURES / "broken-tree"
    result = lint(registry, tree)
    problems = results_for(result, "input.mastodon_env")
    assert len(problems) == 1 and problems[0].status is Status.ERROR
    assert problems[0].location.file.endswith("home/mastodon/live/.env.production")
    assert problems[0].location.line == 4
    assert "Traceback" not in problems[0].message
    assert not result.complete
    # sshd_config beside it was still parsed and judged
    assert any(f.status is Status.PASS for f in results_for(result, "host.sshd-empty-passwords"))
    # the env checks have no facts for this target: skipped, not passed
    assert all(f.status is Status.SKIP for f in results_for(result, "env.secret-key-base"))


def test_env_files_are_recognised_by_name():
    for path in (".env.production", "home/mastodon/live/.env.production", "deploy/env.production"):
        kind = classify(path, None)
        assert kind is not None and kind.name == "mastodon_env", path


# --- secrets --------------------------------------------------------------------------------------


@pytest.mark.parametrize("key, secret", [
    ("SECRET_KEY_BASE", True), ("OTP_SECRET", True), ("ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT", True),
    ("VAPID_PRIVATE_KEY", True), ("VAPID_PUBLIC_KEY", False), ("DB_PASS", True), ("REDIS_PASSWORD", True),
    ("ES_PASS", True), ("SMTP_PASSWORD", True), ("AWS_SECRET_ACCESS_KEY", True), ("DEEPL_API_KEY", True),
    ("OIDC_CLIENT_SECRET", True), ("SOME_SERVICE_TOKEN", True), ("LOCAL_DOMAIN", False), ("DB_HOST", False),
    ("SMTP_LOGIN", False),
])
def test_secret_keys(key, secret):
    assert is_secret_key(key) is secret


def test_secret_values_cover_keys_urls_and_earlier_duplicates():
    env = parse(
        "SECRET_KEY_BASE=old0000000000000000000000000000000\n"
        "SECRET_KEY_BASE=new1111111111111111111111111111111\n"
        "VAPID_PUBLIC_KEY=BPublicKeyIsNotSecret\n"
        "REDIS_URL=redis://:p%40ss-w0rd-redis@redis.internal:6379/0\n"
        "DATABASE_URL=postgres://mastodon:db-url-secret@db.internal/mastodon\n"
        "CACHE_BUSTER_SECRET={{ vault_cache_buster }}\n"
        "SOME_FEATURE_KEY=true\n"
        "DB_PASS=\n"
    )
    secrets = set(env.secret_values())
    assert {"old0000000000000000000000000000000", "new1111111111111111111111111111111"} <= secrets
    assert {"p%40ss-w0rd-redis", "p@ss-w0rd-redis", "db-url-secret"} <= secrets
    assert "BPublicKeyIsNotSecret" not in secrets
    assert not any("vault_cache_buster" in s for s in secrets)
    assert "true" not in secrets and "" not in secrets


def test_demo_secrets_are_known_to_the_fact_set():
    facts = collect_tree(DEMO / "weak" / "home")
    env = facts.first("mastodon_env")
    assert env is not None
    assert set(env.secret_values()) <= facts.secrets
    assert "Tr0ub4dor" in facts.secrets and env.get("SECRET_KEY_BASE").value in facts.secrets


# --- judging helpers ------------------------------------------------------------------------------


def test_vapid_key_shapes():
    private = "myqBqG6R7zqujSqGsPYxBPdttHus0ITFwtC77UBi5hQ="
    public = "BHtrftpfXSho7sM4-RfpSqzQUgqpTAOA3xmjbwpJxymzWZzuVEE0X3jffqWz9B0N62SYzzgqbK1xcJZZbW8zZCs="
    assert vapid_key_shape(private, public=False) is None
    assert vapid_key_shape(private.rstrip("="), public=False) is None  # padding is optional
    assert vapid_key_shape(public, public=True) is None
    assert vapid_key_shape(public, public=False) is not None
    assert vapid_key_shape("not a key!", public=False) is not None


@pytest.mark.parametrize("host, local", [
    ("localhost", True), ("127.0.0.1", True), ("::1", True), ("[::1]", True), ("/var/run/postgresql", True),
    ("db", True), ("redis", True), ("es", True), ("unix:/run/redis.sock", True), ("", True),
    ("10.20.0.5", False), ("db.internal.example.org", False), ("192.168.1.4", False), ("dbserver", False),
])
def test_local_hosts(host, local):
    assert is_local_host(host) is local


def test_endpoints_from_urls_and_hosts():
    env = parse(
        "DATABASE_URL=postgresql://mastodon:pw-0123456789@10.0.0.5:5432/mastodon?sslmode=verify-full\n"
        "DB_HOST=ignored.example.org\n"
        "REDIS_URL=rediss://:pw-abcdefghijkl@redis.internal:6380/0\n"
        "SIDEKIQ_REDIS_HOST=10.0.0.9\n"
        "ES_HOST=https://search.internal:9200\n"
        "ES_USER=mastodon\nES_PASS=pw-zyxwvutsrqpo\n"
    )
    (db,) = database_endpoints(env)
    assert db.host == "10.0.0.5" and db.query["sslmode"] == "verify-full" and db.password_set and not db.local
    roles = {e.role: e for e in redis_endpoints(env)}
    assert set(roles) == {"Redis", "Sidekiq Redis"}
    assert roles["Redis"].scheme == "rediss" and roles["Redis"].password_set
    assert roles["Sidekiq Redis"].host == "10.0.0.9" and not roles["Sidekiq Redis"].password_set
    search = elasticsearch_endpoint(env)
    assert search.host == "search.internal" and search.scheme == "https" and search.password_set


def test_socket_database_url_is_local():
    (db,) = database_endpoints(parse("DATABASE_URL=postgres:///mastodon?host=/var/run/postgresql\n"))
    assert db.local


# --- the real readers agree -----------------------------------------------------------------------
# Mastodon reads the file with the dotenv gem (Rails, Sidekiq) and the dotenv npm package (streaming).
# Where they are installed (Debian's ruby-dotenv; `npm install -g dotenv`), they must read the demo
# files and the syntax fixture as this parser does.

RUBY_READ = "require 'dotenv'; require 'json'; puts JSON.generate(Dotenv::Parser.call(File.read(ARGV[0])))"
NODE_READ = ("const d = require('dotenv'); "
             "process.stdout.write(JSON.stringify(d.parse(require('fs').readFileSync(process.argv[1]))))")


def _ruby_dotenv(path: Path) -> dict[str, str]:
    if shutil.which("ruby") is None:
        pytest.skip("ruby is not installed (apt-get install ruby-dotenv)")
    probe = subprocess.run(["ruby", "-rdotenv", "-e", "1"], capture_output=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip("the dotenv gem is not installed (apt-get install ruby-dotenv)")
    out = subprocess.run(["ruby", "-e", RUBY_READ, str(path)], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)


def _node_dotenv(path: Path) -> dict[str, str]:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node is not installed")
    root = subprocess.run(["npm", "root", "-g"], capture_output=True, text=True, timeout=60).stdout.strip()
    if not root or not (Path(root) / "dotenv").is_dir():
        pytest.skip("the dotenv npm package is not installed globally (npm install -g dotenv)")
    out = subprocess.run(["node", "-e", NODE_READ, str(path)], capture_output=True, text=True, timeout=60, check=True,
                         env={**os.environ, "NODE_PATH": root})
    return json.loads(out.stdout)


def _ours(path: Path) -> dict[str, str]:
    return values(parse_mastodon_env(SourceFile(str(path), path.read_bytes())))


@pytest.mark.parametrize("path", DEMO_ENVS, ids=lambda p: p.parts[-5])
def test_demo_env_files_read_the_same_by_the_dotenv_gem(path):
    assert _ruby_dotenv(path) == _ours(path)


@pytest.mark.parametrize("path", DEMO_ENVS, ids=lambda p: p.parts[-5])
def test_demo_env_files_read_the_same_by_the_dotenv_npm_package(path):
    assert _node_dotenv(path) == _ours(path)


def test_syntax_fixture_read_the_same_by_the_real_readers():
    path = ENV_FIXTURES / "syntax.env"
    ours = _ours(path)
    ruby = _ruby_dotenv(path)
    # Debian's gem is dotenv 2.4, which reads line by line; dotenv 3 (Mastodon 4.3+) and this parser
    # let a quoted value run over lines.
    assert {k: v for k, v in ruby.items() if k != "MULTILINE"} == {k: v for k, v in ours.items() if k != "MULTILINE"}
    node = _node_dotenv(path)
    # The npm package leaves backslash escapes in double quotes as written; the gem (and Rails) removes them.
    escaped = {"ESCAPED_QUOTE", "ESCAPED_DOLLAR"}
    assert {k: v for k, v in node.items() if k not in escaped} == {k: v for k, v in ours.items() if k not in escaped}
