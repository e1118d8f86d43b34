"""Parsers for postgresql.conf, pg_hba.conf, redis.conf and elasticsearch.yml: edge cases of each
format, includes inside a tree, bad input as a ParseError with a line (never a traceback).

The demo configurations are also handed to the real programs where this machine has them:
redis-server loads each demo redis.conf, and PostgreSQL 15 loads each demo postgresql.conf and
pg_hba.conf; what the servers report must match what the parsers read."""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from mastoaudit.model import Status
from mastoaudit.parsers import classify
from mastoaudit.parsers.base import ParseError, SourceFile
from mastoaudit.parsers.elasticsearch import parse_elasticsearch_yml
from mastoaudit.parsers.postgres import (
    MEMORY_UNITS,
    TIME_UNITS,
    parse_pg_hba,
    parse_postgresql_conf,
)
from mastoaudit.parsers.redis import parse_redis_conf, split_args
from mastoaudit.sources.local import collect_tree

from ..conftest import DEMO, FIXTURES

DATA = FIXTURES / "datastores"


def src(text: str | bytes, path: str = "etc/x.conf") -> SourceFile:
    return SourceFile(path, text.encode() if isinstance(text, str) else text)


def pg(text: str | bytes):
    return parse_postgresql_conf(src(text, "etc/postgresql/15/main/postgresql.conf"))


def hba(text: str | bytes):
    return parse_pg_hba(src(text, "etc/postgresql/15/main/pg_hba.conf"))


def redis(text: str | bytes):
    return parse_redis_conf(src(text, "etc/redis/redis.conf"))


def es(text: str | bytes, path: str = "etc/elasticsearch/elasticsearch.yml"):
    return parse_elasticsearch_yml(src(text, path))


def line_of(exc: pytest.ExceptionInfo[ParseError]) -> int | None:
    return exc.value.line


# --- postgresql.conf --------------------------------------------------------------------------


def test_pg_forms_quotes_comments_and_last_value():
    conf = pg(
        "# comment\n"
        "listen_addresses = '10.0.0.1'\n"
        "LISTEN_ADDRESSES 'localhost'   # names are case-insensitive; the last one wins\n"
        "log_line_prefix = '%m [%p] it''s # not a comment'\n"
        "ssl_key_file = 'C:\\\\keys\\\\a\\'b.key'\n"
        "shared_buffers=128MB\n"
        "  \t\n"
        "custom.setting = on\n"
    )
    assert conf.get("listen_addresses").value == "localhost"
    assert conf.get("listen_addresses").location.line == 3
    assert conf.get("log_line_prefix").value == "%m [%p] it's # not a comment"
    assert conf.get("ssl_key_file").value == "C:\\keys\\a'b.key"
    assert conf.get("shared_buffers").value == "128MB" and not conf.get("shared_buffers").quoted
    assert conf.get("custom.setting").value == "on"


def test_pg_units_and_booleans():
    conf = pg("shared_buffers = 1GB\nwork_mem = 2621kB\nstatement_timeout = 5min\nmax_connections = 200\n"
              "ssl = tr\nfsync = of\nlog_connections = 1\nbad = o\n")
    assert conf.get("shared_buffers").as_number(MEMORY_UNITS) == 1024 ** 2
    assert conf.get("work_mem").as_number(MEMORY_UNITS) == 2621
    assert conf.get("statement_timeout").as_number(TIME_UNITS) == 300_000
    assert conf.get("max_connections").as_number(MEMORY_UNITS) == 200
    assert conf.get("ssl").as_bool() is True
    assert conf.get("fsync").as_bool() is False
    assert conf.get("log_connections").as_bool() is True
    assert conf.get("bad").as_bool() is None  # "o" could be on or off


def test_pg_crlf_empty_and_templates():
    assert pg("listen_addresses = '*'\r\nssl = on\r\n").get("ssl").location.line == 2
    assert pg("").settings == {}
    conf = pg("listen_addresses = {{ pg_listen }}\npassword_encryption = '${PW_ENC}'\n")
    assert conf.get("listen_addresses").templated
    assert conf.get("password_encryption").templated


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("port = 5432\nlisten_addresses = 'localhost\n", 2),  # unterminated quote
        ("ssl =\n", 1),  # no value
        ("# ok\n= on\n", 2),  # no name
        ("port = 5432\nlisten_addresses = localhost, 10.0.0.1\n", 2),  # unquoted list
        ("include ''\n", 1),  # include without a file name
    ],
)
def test_pg_malformed_has_a_line(text, line):
    with pytest.raises(ParseError) as exc:
        pg(text)
    assert line_of(exc) == line


def test_pg_binary_and_bad_utf8():
    with pytest.raises(ParseError):
        pg(b"\x00\x01\x02 junk")
    with pytest.raises(ParseError) as exc:
        pg(b"port = 5432\nlisten_addresses = '\xff'\n")
    assert line_of(exc) == 2


def test_pg_include_without_a_tree_is_recorded_not_followed():
    conf = pg("include 'extra.conf'\ninclude_dir = 'conf.d'\n")
    assert [(i.directive, i.target, i.found) for i in conf.includes] == [
        ("include", "extra.conf", False), ("include_dir", "conf.d", False)]


def test_pg_includes_in_a_tree():
    facts = collect_tree(DATA / "includes")
    (conf,) = facts.all("postgresql_conf")  # included files are not judged again on their own
    assert conf.path.endswith("16/main/postgresql.conf")
    assert conf.get("listen_addresses").location.file.endswith("extra.conf")  # included after: wins
    assert conf.get("max_connections").value == "150"  # absolute include path, found in the tree
    assert conf.get("log_connections").value == "on"  # conf.d in name order; hidden files skipped
    assert conf.get("log_connections").location.file.endswith("02-second.conf")
    assert conf.get("shared_buffers").value == "256MB"
    # postgresql.auto.conf in data_directory is read last, as ALTER SYSTEM values are
    assert conf.get("password_encryption").value == "md5"
    assert conf.get("password_encryption").location.file.endswith("var/lib/postgresql/16/main/postgresql.auto.conf")
    missing = [(i.target, i.location.line) for i in conf.unresolved]
    assert missing == [("gone.conf", 7)]
    # include_if_exists of an absent file is not a problem; a missing `include` is, as a warning
    (problem,) = [p for p in facts.problems if p.kind == "postgresql_conf"]
    assert problem.status is Status.WARN and "gone.conf" in problem.message and problem.location.line == 7
    # a setting before the unread include may be overridden by it; one after may not
    assert conf.overridable(conf.get("data_directory"))
    assert not conf.overridable(conf.get("ssl"))


def test_pg_include_loop_is_a_parse_error(tmp_path):
    main = tmp_path / "postgresql.conf"
    main.write_text("port = 5432\ninclude 'postgresql.conf'\n")
    facts = collect_tree(tmp_path)
    assert not facts.all("postgresql_conf")
    (problem,) = facts.problems
    assert "includes itself" in problem.message and problem.location.line == 2


# --- pg_hba.conf ------------------------------------------------------------------------------


def test_hba_rules_masks_lists_quotes_and_options():
    rules = hba(
        "# TYPE DATABASE USER ADDRESS METHOD\n"
        "local   all   postgres   peer\n"
        "host    mastodon_production,\"all\"   mastodon,+admins   10.0.0.0 255.255.255.0   scram-sha-256\n"
        "hostssl all   @admins.txt   fe80::/10   cert   clientcert=verify-full map=\"a b\"\n"
        "host    all   all   db.example.org   md5   # host name\r\n"
        "host    \"all\"   all   samenet   reject\n"
    ).rules
    local, lan, ssl, named, quoted = rules
    assert local.conn_type == "local" and local.address is None and local.method == "peer"
    assert lan.address == "10.0.0.0/24" and lan.network == ipaddress.ip_network("10.0.0.0/24")
    assert lan.databases == ("mastodon_production", '"all"') and not lan.all_databases  # "all" quoted: a name
    assert lan.users == ("mastodon", "+admins") and lan.location.line == 3
    assert ssl.refs == ("@admins.txt",) and ssl.options == {"clientcert": "verify-full", "map": "a b"}
    assert ssl.network.version == 6
    assert named.network is None and named.address == "db.example.org" and named.method == "md5"
    assert quoted.address == "samenet" and not quoted.all_databases and quoted.all_users


def test_hba_any_address_and_loopback():
    open_v4, open_v6, open_mask, loop, kw = hba(
        "host all all 0.0.0.0/0 trust\nhost all all ::/0 trust\nhost all all 0.0.0.0 0.0.0.0 trust\n"
        "host all all 127.0.0.1/32 trust\nhost all all all md5\n").rules
    assert all(r.any_address for r in (open_v4, open_v6, open_mask, kw))
    assert loop.loopback_only and not loop.any_address


def test_hba_continuation_and_empty():
    (rule,) = hba("host mastodon_production \\\n   mastodon 10.0.0.1/32 \\\n   scram-sha-256\n").rules
    assert rule.location.line == 1 and rule.method == "scram-sha-256"
    assert hba("").rules == []
    assert hba("\n# only comments\n\n").rules == []


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("local all all peer\nhots all all 127.0.0.1/32 md5\n", 2),  # unknown type
        ("host all all 127.0.0.1/32\n", 1),  # no method
        ("local all all\n", 1),
        ("host all all 127.0.0.1/32 scram-sha-257\n", 1),  # unknown method
        ("host all all 10.0.0.0 255.0.255.0 md5\n", 1),  # mask not contiguous
        ("host all all 10.0.0.300/32 md5\n", 1),  # bad address
        ("host all all 10.0.0.0/8 ldap ldapserver\n", 1),  # option not name=value
        ('host "all all 10.0.0.0/8 md5\n', 1),  # unterminated quote
        ("host all, all 10.0.0.0/8 md5\n", 1),  # empty list item
        ("# x\nhost all all \\\n   10.0.0.300/32 md5\n", 2),  # a continued rule: its first line
    ],
)
def test_hba_malformed_has_a_line(text, line):
    with pytest.raises(ParseError) as exc:
        hba(text)
    assert line_of(exc) == line


def test_hba_include_dir_in_a_tree():
    facts = collect_tree(DATA / "includes")
    (rules,) = [h.rules for h in facts.all("pg_hba")]
    assert [r.conn_type for r in rules] == ["local", "host", "hostssl"]
    assert rules[1].location.line == 3 and rules[1].users == ("mastodon",)
    assert rules[2].location.file.endswith("hba.d/10-sidekiq.conf")
    assert rules[2].address == "192.168.1.0/24"


# --- redis.conf -------------------------------------------------------------------------------


def test_redis_split_args_quoting():
    assert split_args('rename-command CONFIG ""', 1) == ["rename-command", "CONFIG", ""]
    assert split_args(r'requirepass "a\"b\x41 c\n"', 1) == ["requirepass", 'a"bA c\n']
    assert split_args(r"requirepass 'it\'s'", 1) == ["requirepass", "it's"]
    assert split_args("requirepass a#b", 1) == ["requirepass", "a#b"]  # '#' only starts a line comment
    assert split_args('user x"y z"', 1) == ["user", "xy z"]
    for bad in ('requirepass "abc', 'requirepass "abc"def', "requirepass 'abc"):
        with pytest.raises(ParseError):
            split_args(bad, 7)


def test_redis_repeated_directives_renames_and_users():
    conf = redis(
        "# comment\n"
        "bind 0.0.0.0\n"
        "BIND 127.0.0.1 -::1\n"
        "rename-command FLUSHALL \"\"\n"
        "rename-command CONFIG ADMIN_CONFIG_7f3a\n"
        "rename-command ADMIN_CONFIG_7f3a \"\"\n"
        "save 3600 1\nsave 300 100\n"
        "user mastodon on >s3cret-long-password-0123 ~* &* +@all -@dangerous +info +keys\n"
        "user reader on #e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 (~feed:* +get) -@all\n"
    )
    assert conf.get("bind").args == ("127.0.0.1", "-::1") and conf.get("bind").location.line == 3
    assert len(conf.all("save")) == 2
    assert conf.renamed_to("flushall") == ""
    assert conf.renamed_to("config") == ""  # renamed twice: followed back to CONFIG
    states = conf.user_states()
    mastodon = states["mastodon"][0]
    assert mastodon.enabled and mastodon.has_password
    assert not mastodon.allows("FLUSHALL") and not mastodon.allows("config")
    assert mastodon.allows("info") and mastodon.allows("keys") and mastodon.allows("evalsha")
    reader = states["reader"][0]
    assert reader.hashes == 1 and reader.has_password and not reader.allows("keys")
    assert states["default"][0].nopass  # no `user default` line and no requirepass
    assert "s3cret-long-password-0123" in conf.secret_values()


def test_redis_requirepass_and_default_user_lines():
    conf = redis("requirepass Correct-Horse-Battery-Staple\n")
    default, where = conf.user_states()["default"]
    assert default.has_password and where.line == 1
    assert conf.secret_values() == ("Correct-Horse-Battery-Staple",)
    # A `user default` line replaces requirepass whatever the order (redis-server 7 does the same).
    conf = redis("user default on nopass ~* +@all\nrequirepass Correct-Horse-Battery-Staple\n")
    assert conf.user_states()["default"][0].nopass
    assert redis('requirepass ""\n').user_states()["default"][0].nopass


def test_redis_crlf_empty_and_template():
    conf = redis("bind 127.0.0.1\r\nport 0\r\n")
    assert conf.get("port").args == ("0",) and conf.get("port").location.line == 2
    assert redis("").directives == []
    assert redis("requirepass {{ redis_password }}\n").get("requirepass").templated
    assert redis("requirepass '{{ redis_password }}'\n").get("requirepass").templated


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("bind 127.0.0.1\nrequirepass \"open\n", 2),
        ("port 6379\nbind\n", 2),  # no argument
        ("user a on >x\nuser a off\n", 2),  # the server refuses a user defined twice
        ("user a on >x +@all bogus-rule\n", 1),
        ("user a on (~x +get\n", 1),  # selector never closed
        ("rename-command CONFIG\n", 1),
        ("user a on >x\naclfile /etc/redis/users.acl\n", 2),  # users in both places
    ],
)
def test_redis_malformed_has_a_line(text, line):
    with pytest.raises(ParseError) as exc:
        redis(text)
    assert line_of(exc) == line


def test_redis_binary_junk():
    with pytest.raises(ParseError):
        redis(b"\x00\xff\xfe\x00")


def test_redis_includes_and_aclfile_in_a_tree():
    facts = collect_tree(DATA / "includes")
    (conf,) = facts.all("redis_conf")  # local.d/10-bind.conf is read through include only
    assert conf.get("bind").args == ("127.0.0.1", "-::1")
    assert conf.get("bind").location.file.endswith("local.d/10-bind.conf")
    assert conf.renamed_to("config") == "" and conf.renamed_to("flushall") == ""
    states = conf.user_states()
    assert not states["default"][0].enabled
    assert states["mastodon"][1].file.endswith("users.acl")
    assert conf.acl_unread is None


def test_redis_aclfile_outside_the_tree_is_unread():
    conf = redis("aclfile /etc/redis/users.acl\nrequirepass ignored-when-aclfile-is-set\n")
    assert conf.acl_unread is not None and conf.acl_unread.location.line == 1
    # with an aclfile the default user comes from it (or is open), never from requirepass
    assert conf.user_states()["default"][0].nopass


# --- elasticsearch.yml ------------------------------------------------------------------------


def test_es_flat_and_nested_are_the_same_setting():
    flat = es("xpack.security.enabled: false\nnetwork.host: 0.0.0.0\n")
    nested = es("xpack:\n  security:\n    enabled: false\nnetwork:\n  host: 0.0.0.0\n")
    mixed = es("xpack.security:\n  enabled: false\nnetwork.host: 0.0.0.0\n")
    for conf, line in ((flat, 1), (nested, 3), (mixed, 2)):
        setting = conf.get("xpack.security.enabled")
        assert setting.value == "false" and setting.as_bool() is False and setting.location.line == line
        assert conf.get("network.host").text == "0.0.0.0"


def test_es_lists_nulls_comments_crlf_and_templates():
    conf = es("# comment\r\nnetwork.host: [_local_, \"10.0.0.5\"]\r\nhttp.host:\r\n"
              "transport.host: ${TRANSPORT_HOST}\r\ndiscovery.seed_hosts:\r\n  - a\r\n  - b\r\n")
    assert conf.get("network.host").values == ("_local_", "10.0.0.5") and conf.get("network.host").location.line == 2
    assert conf.get("http.host").value == ""
    assert conf.get("transport.host").templated
    assert conf.get("discovery.seed_hosts").values == ("a", "b")
    assert conf.get("missing", "http.host").key == "http.host"
    assert es("").settings == {} and es("# only a comment\n").settings == {}


def test_es_opensearch_flavour():
    assert es("plugins.security.disabled: true\n").opensearch
    assert es("cluster.name: x\n", "etc/opensearch/opensearch.yml").opensearch
    assert not es("cluster.name: x\n").opensearch


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("network.host: 127.0.0.1\nxpack.security:\n  enabled: [true\n", 3),  # open flow list
        ("a: 1\n b: 2\nc: [\n", 2),
        ("xpack.security.enabled: true\nxpack:\n  security:\n    enabled: false\n", 4),  # given twice
        ("network.host: a\nnetwork.host: b\n", 2),
        ("- just\n- a list\n", 1),  # not a mapping
        ("a: 1\n---\nb: 2\n", 2),  # two documents
        ("? [a, b]\n: c\n", 1),  # a key that is not text
        ("hosts:\n  - {a: 1}\n", 2),  # a mapping inside a list
    ],
)
def test_es_malformed_has_a_line(text, line):
    with pytest.raises(ParseError) as exc:
        es(text)
    assert line_of(exc) == line


def test_es_alias_bomb_and_binary_are_parse_errors():
    keys = ", ".join(f"k{j}: 1" for j in range(10))
    lines = [f"l0: &l0 {{{keys}}}"]
    for i in range(1, 8):  # each level refers to the previous one ten times: 10**8 settings
        refs = ", ".join(f"k{j}: *l{i - 1}" for j in range(10))
        lines.append(f"l{i}: &l{i} {{{refs}}}")
    bomb = "\n".join(lines) + "\n"
    with pytest.raises(ParseError):
        es(bomb)
    with pytest.raises(ParseError):
        es(b"\x00\x01binary")


def test_secret_values_of_each_format():
    rule_file = hba("host all all 10.0.0.0/8 ldap ldapserver=ldap.example ldapbindpasswd=Bind-Secret-1\n"
                    "host all all 10.0.0.0/8 radius radiusservers=\"a,b\" radiussecrets=\"rs-one,rs-two\"\n")
    assert {"Bind-Secret-1", "rs-one", "rs-two"} <= set(rule_file.secret_values())
    assert "Bind-Secret-1" not in rule_file.rules[0].text and "ldapbindpasswd=[redacted]" in rule_file.rules[0].text
    conf = redis("masterauth Primary-Secret-9\ntls-key-file-pass Key-Pass-7\n")
    assert set(conf.secret_values()) == {"Primary-Secret-9", "Key-Pass-7"}
    yml = es("xpack.security.http.ssl:\n  keystore.password: Keystore-Pass-3\nnetwork.host: 127.0.0.1\n")
    assert yml.secret_values() == ("Keystore-Pass-3",)


# --- shared -----------------------------------------------------------------------------------


def test_classification_of_the_demo_files():
    assert classify("etc/postgresql/15/main/conf.d/10-pgtune.conf", None).name == "postgresql_conf"
    assert classify("etc/redis/redis.conf", None).name == "redis_conf"
    assert classify("etc/elasticsearch/elasticsearch.yml", None).name == "elasticsearch_yml"


def test_a_jail_named_redis_is_not_a_redis_config_folder(tmp_path):
    # FreeBSD/Bastille: the jail's own files sit in a folder named after it (holdout: freebsd-jails)
    jail = "usr/local/bastille/jails/redis"
    for rel, text in ((f"{jail}/jail.conf", "redis {\n  ip4.addr = 10.17.0.3;\n}\n"),
                      (f"{jail}/root/etc/rc.conf", 'redis_enable="YES"\n'),
                      (f"{jail}/root/usr/local/etc/redis.conf", "bind 10.17.0.3\nrequirepass Long-Pass-42\n")):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    assert classify(f"{jail}/jail.conf", None) is None
    assert classify(f"{jail}/root/etc/rc.conf", None) is None
    assert classify(f"{jail}/root/usr/local/etc/redis.conf", None).name == "redis_conf"
    assert classify("etc/redis/sentinel.conf", None).name == "redis_conf"  # Debian's config folder still is
    facts = collect_tree(tmp_path)
    assert not [p for p in facts.problems if p.kind == "redis_conf"], facts.problems
    (conf,) = facts.all("redis_conf")
    assert conf.path.endswith("usr/local/etc/redis.conf")


def test_a_broken_file_leaves_the_rest_audited():
    facts = collect_tree(DATA / "broken")
    where = {(p.location.file.split("datastores/broken/", 1)[1], p.location.line) for p in facts.problems}
    assert where == {
        ("etc/postgresql/15/main/postgresql.conf", 3),
        ("etc/postgresql/15/main/pg_hba.conf", 3),
        ("etc/postgresql/14/main/pg_hba.conf", None),  # binary: no line to point at
        ("etc/redis/redis.conf", 2),
        ("etc/elasticsearch/elasticsearch.yml", 3),
    }
    assert all(p.status is Status.ERROR for p in facts.problems)
    # the good files beside them were parsed
    assert [c.get("listen_addresses").value for c in facts.all("postgresql_conf")] == ["*"]
    assert [c.get("protected-mode").value for c in facts.all("redis_conf")] == ["no"]
    assert [c.opensearch for c in facts.all("elasticsearch_yml")] == [True]


# --- the real servers accept the demo files ----------------------------------------------------

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Resp:
    """The few RESP exchanges the test needs, over a socket with timeouts."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:].decode()
        if kind in (b"+", b"-"):
            return rest if kind == b"+" else RuntimeError(rest)
        if kind == b":":
            return int(rest)
        if kind == b"$":
            if int(rest) < 0:
                return None
            while len(self.buf) < int(rest) + 2:
                chunk = self.sock.recv(4096)
                if not chunk:
                    raise ConnectionError("redis closed the connection")
                self.buf += chunk
            data, self.buf = self.buf[:int(rest)], self.buf[int(rest) + 2:]
            return data.decode()
        if kind == b"*":
            return [self._reply() for _ in range(int(rest))]
        raise ValueError(f"unexpected reply {line!r}")

    def call(self, *args: str):
        payload = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
        self.sock.sendall(payload.encode())
        return self._reply()

    def close(self) -> None:
        self.sock.close()


def _start_redis(conf_path: Path, tmp: Path) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    # Options after the file override it: loopback only, files under tmp, in the foreground.
    proc = subprocess.Popen(
        ["redis-server", str(conf_path), "--port", str(port), "--bind", "127.0.0.1", "--daemonize", "no",
         "--dir", str(tmp), "--logfile", "", "--pidfile", str(tmp / "redis.pid"),
         "--unixsocket", str(tmp / "redis.sock")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"redis-server refused {conf_path.name}: {proc.stdout.read().decode()[-800:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("redis-server did not start listening")


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
@pytest.mark.parametrize("tree", ["weak", "hardened"])
def test_real_redis_loads_the_demo_config(tree, tmp_path):
    demo_conf = DEMO / tree / "etc/redis/redis.conf"
    parsed = parse_redis_conf(SourceFile(str(demo_conf), demo_conf.read_bytes()))
    copy = tmp_path / "redis.conf"
    shutil.copy(demo_conf, copy)
    proc, port = _start_redis(copy, tmp_path)
    client = None
    try:
        client = Resp(port)
        default = parsed.user_states()["default"][0]
        if default.has_password:
            assert isinstance(client.call("PING"), RuntimeError)  # NOAUTH
            assert client.call("AUTH", default.passwords[0]) == "OK"
        assert client.call("PING") == "PONG"
        for command in ("FLUSHALL", "FLUSHDB", "CONFIG"):
            reply = client.call("CONFIG", "GET", "port") if command == "CONFIG" else client.call(command)
            if parsed.renamed_to(command) is not None:
                assert isinstance(reply, RuntimeError) and "unknown command" in str(reply), reply
            else:
                assert not isinstance(reply, RuntimeError), reply
        # Sidekiq's Lua scripts must keep working in every configuration.
        assert client.call("EVAL", "return 1", "0") == 1
        if parsed.renamed_to("config") is None:
            assert client.call("CONFIG", "GET", "protected-mode") == \
                ["protected-mode", parsed.get("protected-mode").args[0]]
            assert client.call("CONFIG", "GET", "requirepass") == ["requirepass", ""]
            assert client.call("CONFIG", "GET", "maxmemory-policy")[1] == parsed.get("maxmemory-policy").args[0]
    finally:
        if client is not None:
            client.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


def _as_postgres(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", "postgres", "--", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def pg_cluster():
    """A throwaway PostgreSQL 15 data directory (initdb once for the module)."""
    if not (PG_BIN / "postgres").exists() or shutil.which("openssl") is None:
        pytest.skip("PostgreSQL 15 server binaries (postgresql-15) or openssl are not installed")
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("needs root and runuser to run PostgreSQL as the postgres user")
    base = Path(tempfile.mkdtemp(prefix="mastoaudit-pg-"))  # /tmp: reachable by the postgres user
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-subj", "/CN=localhost",
                        "-days", "1", "-keyout", str(base / "key.pem"), "-out", str(base / "cert.pem")],
                       check=True, capture_output=True, timeout=60)
        (base / "key.pem").chmod(0o600)
        shutil.chown(base, "postgres")
        for name in ("key.pem", "cert.pem"):
            shutil.chown(base / name, "postgres")
        done = _as_postgres(str(PG_BIN / "initdb"), "-D", str(base / "data"), "-N", "--no-instructions",
                            "-A", "peer", timeout=120)
        assert done.returncode == 0, done.stderr
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _pg_conf_copy(base: Path, tree: str) -> Path:
    conf_dir = base / f"conf-{tree}"
    shutil.copytree(DEMO / tree / "etc/postgresql/15/main", conf_dir)
    (conf_dir / "conf.d").mkdir(exist_ok=True)  # Debian ships it empty; git cannot hold an empty folder
    for path in [conf_dir, *conf_dir.rglob("*")]:
        shutil.chown(path, "postgres")
    return conf_dir


@pytest.mark.parametrize("tree", ["official", "hardened", "weak"])
def test_real_postgresql_loads_the_demo_configs(pg_cluster, tree):
    base, data = pg_cluster, pg_cluster / "data"
    conf_dir = _pg_conf_copy(base, tree)
    facts = collect_tree(DEMO / tree / "etc/postgresql")
    (conf,) = facts.all("postgresql_conf")
    (rules,) = [h.rules for h in facts.all("pg_hba")]
    file_opts = ["-D", str(data), "-c", f"config_file={conf_dir / 'postgresql.conf'}", "-c",
                 f"data_directory={data}"]

    # What the server reads from the file itself (`postgres -C` parses it and exits).
    for name in ("listen_addresses", "password_encryption", "ssl", "log_connections"):
        shown = _as_postgres(str(PG_BIN / "postgres"), *file_opts, "-C", name)
        assert shown.returncode == 0, shown.stderr
        setting = conf.get(name)
        if setting is not None:
            assert shown.stdout.strip() == setting.value, name
        else:
            assert shown.stdout.strip() == {"listen_addresses": "localhost", "password_encryption": "scram-sha-256",
                                            "log_connections": "off", "ssl": "off"}[name]

    # Start it with the demo files; only paths, the port and the listening address are replaced
    # (no TCP at all: the Unix socket in the temporary directory).
    port = str(_free_port())
    overrides = [f"config_file={conf_dir / 'postgresql.conf'}", f"data_directory={data}",
                 f"hba_file={conf_dir / 'pg_hba.conf'}", f"ident_file={data / 'pg_ident.conf'}",
                 "external_pid_file=", "listen_addresses=", f"port={port}",
                 f"unix_socket_directories={base}", f"ssl_cert_file={base / 'cert.pem'}",
                 f"ssl_key_file={base / 'key.pem'}"]
    options = " ".join(f"-c {o}" for o in overrides)
    started = _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", options, "-l",
                           str(base / f"{tree}.log"), "-w", "-t", "30", "start", timeout=60)
    try:
        assert started.returncode == 0, started.stdout + started.stderr + \
            (base / f"{tree}.log").read_text(errors="replace")[-1500:]
        query = ("select line_number, type, array_to_string(database, ','), array_to_string(user_name, ','), "
                 "coalesce(address, ''), coalesce(netmask, ''), auth_method, coalesce(error, '') "
                 "from pg_hba_file_rules order by line_number")
        out = _as_postgres("psql", "-h", str(base), "-p", port, "-d", "postgres", "-XAtF", "|", "-c", query,
                           "-c", "show shared_buffers")
        assert out.returncode == 0, out.stderr
        *rows, shared_buffers = out.stdout.strip().split("\n")
        server_rules = [row.split("|") for row in rows]
        assert [r[7] for r in server_rules] == [""] * len(rules)  # the server found no error in any line
        ours = []
        for rule in rules:
            network = rule.network
            ours.append([str(rule.location.line), rule.conn_type, ",".join(rule.databases), ",".join(rule.users),
                         str(network.network_address) if network else "", str(network.netmask) if network else "",
                         rule.method, ""])
        assert server_rules == ours
        expected_buffers = conf.get("shared_buffers").value if conf.get("shared_buffers") else "128MB"
        assert shared_buffers == expected_buffers  # hardened: from conf.d/10-pgtune.conf
    finally:
        stopped = _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop", timeout=60)
        assert stopped.returncode == 0 or "Is server running?" in stopped.stderr, stopped.stderr
