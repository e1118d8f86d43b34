"""The compose parser: YAML as Compose reads it, with the line every value was written on."""

from __future__ import annotations

import pytest

from mastoaudit.facts import FactSet
from mastoaudit.model import Status
from mastoaudit.parsers import ParseError, SourceFile
from mastoaudit.parsers.compose import build_compose, interpolate, parse_compose, read_dotenv
from mastoaudit.sources.local import collect_tree

from ..conftest import FIXTURES


def parse(text: str | bytes, path: str = "srv/docker-compose.yml"):
    data = text.encode() if isinstance(text, str) else text
    return parse_compose(SourceFile(path, data))


def ports_of(text: str, service: str = "s"):
    return [(p.host_ip, p.host_port, p.container_port, p.protocol, p.exposure)
            for p in parse(text).services[service].ports]


def test_short_port_forms():
    text = """services:
  s:
    image: x
    ports:
      - "6379"
      - 8080
      - "5432:5432"
      - "127.0.0.1:3000:3000"
      - "127.0.0.1::5000"
      - "[::1]:6000:6000"
      - "::1:6001:6001"
      - "0.0.0.0:80:80"
      - "[::]:81:81"
      - "192.168.1.10:82:82"
      - "203.0.113.5:83:83"
      - "6060:6060/udp"
      - "${BIND_ADDR}:84:84"
      - "9090-9091:8080-8081"
"""
    assert ports_of(text) == [
        (None, None, "6379", "tcp", "all"),
        (None, None, "8080", "tcp", "all"),
        (None, "5432", "5432", "tcp", "all"),
        ("127.0.0.1", "3000", "3000", "tcp", "loopback"),
        ("127.0.0.1", None, "5000", "tcp", "loopback"),
        ("::1", "6000", "6000", "tcp", "loopback"),
        ("::1", "6001", "6001", "tcp", "loopback"),
        ("0.0.0.0", "80", "80", "tcp", "all"),
        ("::", "81", "81", "tcp", "all"),
        ("192.168.1.10", "82", "82", "tcp", "private"),
        ("203.0.113.5", "83", "83", "tcp", "public"),
        (None, "6060", "6060", "udp", "all"),
        ("${BIND_ADDR}", "84", "84", "tcp", "templated"),
        (None, "9090-9091", "8080-8081", "tcp", "all"),
    ]


def test_long_port_syntax_and_lines():
    text = """services:
  s:
    image: x
    ports:
      - target: 9200
        published: "9200"
        host_ip: 127.0.0.1
      - target: 9300
        published: 9300
"""
    compose = parse(text)
    first, second = compose.services["s"].ports
    assert (first.host_ip, first.host_port, first.container_port, first.exposure) == ("127.0.0.1", "9200", "9200",
                                                                                      "loopback")
    assert first.location.line == 5 and second.location.line == 8
    assert second.exposure == "all"


def test_yaml_12_scalars_as_compose_reads_them():
    # PyYAML's YAML 1.1 would read 22:22 as the sexagesimal 1342 and `yes` as True.
    compose = parse("services:\n  s:\n    image: x\n    ports:\n      - 22:22\n    environment:\n      A: yes\n")
    assert compose.services["s"].ports[0].raw == "22:22"
    assert compose.services["s"].env("A").value == "yes"


def test_anchors_aliases_and_merge_keys():
    text = """x-base: &base
  image: ghcr.io/mastodon/mastodon:v4.5.11
  restart: always
  networks: [internal_network]
x-extra: &extra
  restart: "no"
  privileged: true
x-tag: &tag ghcr.io/mastodon/mastodon-streaming:v4.5.11
services:
  web:
    <<: [*base, *extra]
    command: bundle exec puma -C config/puma.rb
  streaming:
    <<: *base
    image: *tag
    networks: !reset null
    command: node ./streaming/index.js
"""
    compose = parse(text)
    web, streaming = compose.services["web"], compose.services["streaming"]
    assert web.raw["restart"] == "always"  # of several merged maps, the first wins
    assert web.privileged is not None and web.privileged.location.line == 7
    assert web.image_location.line == 2  # where the merged value is written
    assert [n.value for n in web.networks] == ["internal_network"]
    assert streaming.image == "ghcr.io/mastodon/mastodon-streaming:v4.5.11"  # own key wins over the merge
    assert streaming.networks == []  # !reset removed what the merge brought
    assert (web.role, streaming.role) == ("web", "streaming")
    assert compose.mastodon_versions() == [("web", "4.5.11", web.image_location),
                                           ("streaming", "4.5.11", streaming.image_location)]


def test_environment_list_and_map_and_env_file():
    text = """services:
  a:
    image: postgres:16
    env_file: .env.production
    environment:
      - POSTGRES_HOST_AUTH_METHOD=trust
      - PASSTHROUGH
      - 'QUOTED=a=b'
  b:
    image: redis:7
    env_file: [one.env, {path: two.env, required: false}]
    environment:
      REDIS_PASSWORD_FILE: /run/secrets/redis
      NUM: 5
      FLAG: true
"""
    compose = parse(text)
    a, b = compose.services["a"], compose.services["b"]
    assert a.env("POSTGRES_HOST_AUTH_METHOD").value == "trust"
    assert a.env("POSTGRES_HOST_AUTH_METHOD").location.line == 6
    assert a.env("PASSTHROUGH").value is None
    assert a.env("QUOTED").value == "a=b"
    assert [i.value for i in a.env_files] == [".env.production"]
    assert [i.value for i in b.env_files] == ["one.env", "two.env"]
    assert (b.env("NUM").value, b.env("FLAG").value) == ("5", "true")
    assert (a.role, b.role) == ("postgresql", "redis")


def test_networks_internal_and_default():
    text = """services:
  db:
    image: postgres:16
    networks:
      internal_network:
        aliases: [database]
  other:
    image: nginx
networks:
  internal_network:
    internal: true
  outside:
"""
    compose = parse(text)
    assert [(n.name, n.internal) for n in compose.service_networks(compose.services["db"])] == [
        ("internal_network", True)]
    assert [(n.name, n.internal) for n in compose.service_networks(compose.services["other"])] == [
        ("default", False)]
    assert compose.networks["outside"].internal is False


def test_crlf_comments_and_quotes_keep_lines():
    text = ("# comment\r\nservices:\r\n  # another\r\n  db:\r\n    image: 'postgres:14-alpine'  # trailing\r\n"
            "    ports:\r\n      - \"5432:5432\"\r\n")
    compose = parse(text)
    port = compose.services["db"].ports[0]
    assert (port.raw, port.location.line) == ("5432:5432", 7)
    assert compose.services["db"].image == "postgres:14-alpine"


def test_image_reference_parts():
    text = """services:
  a: {image: "registry.example:5000/mastodon/mastodon:v4.3.17"}
  b: {image: "ghcr.io/mastodon/mastodon@sha256:abcd"}
  c: {image: "tootsuite/mastodon"}
  d: {image: "ghcr.io/mastodon/mastodon:${MASTODON_TAG}"}
"""
    s = parse(text).services
    assert (s["a"].image_repo, s["a"].image_tag, s["a"].mastodon_version) == (
        "registry.example:5000/mastodon/mastodon", "v4.3.17", "4.3.17")
    assert (s["b"].image_digest, s["b"].image_tag) == ("sha256:abcd", None)
    assert (s["c"].image_tag, s["c"].is_mastodon) == (None, True)
    assert s["d"].mastodon_version is None


@pytest.mark.parametrize(("text", "line", "words"), [
    ("", 1, "empty"),
    ("# only a comment\n", 1, "empty"),
    ("- a\n- b\n", 1, "mapping"),
    ("services:\n  db:\n    image: [unclosed\n", 3, "invalid YAML"),  # where the bracket was left open
    ("services:\n  db:\n    image: a\n    image: b\n", 4, "given twice"),
    ("services:\n  db: just-a-string\n", 2, "must be a mapping"),
    ("services:\n  db:\n    image: x\n    ports: 5432\n", 4, "ports must be a list"),
    ("services:\n  db:\n    image: x\n    ports: ['1.2.3.4::']\n", 4, "port entry"),
    ("services:\n  db:\n    <<: 3\n", 3, "merge"),
    ("a: &a [*a]\n", 1, "recursive"),
    ("services: *nowhere\n", 1, "alias to an anchor that is not defined"),
    ("a: 1\n---\nb: 2\n", 2, "more than one document"),
])
def test_malformed_input_is_a_parse_error_with_a_line(text, line, words):
    with pytest.raises(ParseError) as caught:
        parse(text)
    assert caught.value.line == line
    assert words in caught.value.message


def test_binary_and_bad_encoding():
    with pytest.raises(ParseError, match="binary"):
        parse(b"\x00\x01services:\n")
    with pytest.raises(ParseError) as caught:
        parse(b"services:\n  db:\n    image: \xff\n")
    assert caught.value.line == 3


def test_alias_bomb_is_refused_where_it_expands():
    """Shared values alone do not help: `command: *a8` joins 10^9 words (issue 7, item 9)."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    with pytest.raises(ParseError) as caught:
        parse("\n".join(lines) + "\nservices:\n  web:\n    command: *a8\n")
    assert "expands" in caught.value.message and caught.value.line == 6


def test_override_file_is_merged_into_its_base():
    folder = FIXTURES / "compose" / "override"
    sources = [SourceFile(f"override/{p.name}", p.read_bytes()) for p in sorted(folder.iterdir())]
    facts = FactSet("t")
    build_compose(sources, None, facts)  # type: ignore[arg-type]
    assert not facts.problems
    [compose] = facts.all("compose")
    assert compose.files == ["override/docker-compose.yml", "override/docker-compose.override.yml"]
    db, web = compose.services["db"], compose.services["web"]
    assert [(p.raw, p.location.file, p.location.line) for p in db.ports] == [
        ("5432:5432", "override/docker-compose.override.yml", 5)]
    assert db.env("POSTGRES_HOST_AUTH_METHOD").value == "trust"
    assert web.env("RAILS_ENV").value == "production"
    assert web.env("RAILS_LOG_LEVEL").location.file.endswith("override.yml")
    assert [p.raw for p in web.ports] == ["127.0.0.1:3000:3000"]


def test_a_broken_override_is_reported_at_its_own_file_and_the_base_still_audited():
    base = SourceFile("p/compose.yaml", b"services:\n  db:\n    image: postgres\n")
    over = SourceFile("p/compose.override.yaml", b"services:\n  db:\n    ports: nope\n")
    facts = FactSet("t")
    build_compose([base, over], None, facts)  # type: ignore[arg-type]
    assert [(p.location.file, p.location.line) for p in facts.problems] == [("p/compose.override.yaml", 3)]
    assert list(facts.all("compose")[0].services) == ["db"]


def test_secret_values_are_listed_for_scrubbing():
    compose = parse("services:\n  db:\n    image: postgres\n    environment:\n"
                    "      POSTGRES_PASSWORD: hunter2-long\n      POSTGRES_PASSWORD_FILE: /run/secrets/x\n"
                    "      REDIS_PASSWORD: ${REDIS_PASSWORD}\n      POSTGRES_USER: mastodon\n")
    assert compose.secret_values() == ("hunter2-long",)


def test_extends_in_the_same_file():
    compose = parse("""services:
  base:
    image: postgres:16
    ports: ['127.0.0.1:5432:5432']
  db:
    extends: base
    ports: ['5433:5432']
  db2:
    extends: {service: db}
""")
    assert [p.raw for p in compose.services["db2"].ports] == ["127.0.0.1:5432:5432", "5433:5432"]
    assert compose.services["db2"].role == "postgresql"
    with pytest.raises(ParseError) as caught:
        parse("services:\n  a:\n    extends: b\n  b:\n    extends: a\n")
    assert "circular" in caught.value.message
    with pytest.raises(ParseError, match="not in the file"):
        parse("services:\n  a:\n    extends: nothere\n")


# --- interpolation from the .env beside the file -----------------------------------------------------



@pytest.mark.parametrize(("value", "want"), [
    ("${A}", "a"), ("$A", "a"), ("$$A", "$A"), ("x-${A}-y", "x-a-y"), ("$${A}", "${A}"),
    ("${E:-d}", "d"), ("${E-d}", ""), ("${U:-d}", "d"), ("${U-d}", "d"),  # E is set but empty, U unset
    ("${A:?must}", "a"), ("${U:?must}", None), ("${E:?must}", None), ("${E?must}", ""), ("${U?must}", None),
    ("${A:+alt}", "alt"), ("${E:+alt}", ""), ("${E+alt}", "alt"), ("${U+alt}", ""),
    ("${U:-${A}}", "a"), ("${U:-${V}}", None), ("${U}", None), ("$U", None), ("no variables", "no variables"),
])
def test_interpolation_as_compose_does_it(value, want):
    assert interpolate(value, {"A": "a", "E": ""}) == want


def test_the_env_file_as_compose_reads_it():
    text = ("# comment\nA=1\nexport B=two words # trailing comment\nC='${A} literal'\nD=\"x ${A}\"\n"
            "E=${A}${A}\nnot a line\nF=\n")
    assert read_dotenv(text) == {"A": "1", "B": "two words", "C": "${A} literal", "D": "x 1", "E": "11", "F": ""}


def test_a_project_env_fills_the_file_in(tmp_path):
    (tmp_path / "docker-compose.yml").write_text(
        "services:\n  web:\n    image: ghcr.io/mastodon/mastodon:${V:-v4.3.8}\n    ports:\n"
        "      - \"${BIND:-0.0.0.0}:3000:3000\"\n      - \"${UNSET_IN_ENV}:4000:4000\"\n")
    (tmp_path / ".env").write_text("LOCAL_DOMAIN=example.org\nV=v4.2.10\nBIND=127.0.0.1\nDB_PASS=s3cret-value-long\n")
    facts = collect_tree(tmp_path)
    [compose] = facts.all("compose")
    web = compose.services["web"]
    assert web.mastodon_version == "4.2.10" and compose.env_path.endswith("/.env")
    assert [p.raw for p in web.ports] == ["127.0.0.1:3000:3000", "${UNSET_IN_ENV}:4000:4000"]  # unknown stays
    assert compose.written(web.image_location) == "ghcr.io/mastodon/mastodon:${V:-v4.3.8}"
    assert "s3cret-value-long" in facts.secrets  # a secret of .env is scrubbed from every report
    # .env is compose's, not Mastodon's settings: not judged as .env.production, and said so
    assert not facts.all("mastodon_env")
    [note] = [p for p in facts.problems if p.kind == "mastodon_env"]
    assert note.status is Status.SKIP and "docker compose's variables" in note.message


def test_an_env_file_a_service_passes_is_mastodons_too(tmp_path):
    (tmp_path / "docker-compose.yml").write_text("services:\n  web:\n    image: x\n    env_file: .env\n")
    (tmp_path / ".env").write_text("LOCAL_DOMAIN=example.org\nSECRET_KEY_BASE=" + "ab12" * 32 + "\n")
    facts = collect_tree(tmp_path)
    assert [e.path for e in facts.all("mastodon_env")] == [f"{tmp_path}/.env"]
