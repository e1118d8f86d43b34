"""Templates of every kind in every line-oriented parser: a config-management tool's control lines
are blank lines (line numbers stay true), its expressions and a packaging system's placeholders
are templated values, and a template file is recognised by the name it renders to."""

from __future__ import annotations

from pathlib import Path

import pytest

from mastoaudit.model import Status
from mastoaudit.sources.local import collect_tree


def lint_files(root: Path, files: dict[str, str]):
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    facts = collect_tree(root)
    assert not [p.message for p in facts.problems if p.status is Status.ERROR]
    return facts


ENV = ("# {{ ansible_managed }}\nLOCAL_DOMAIN={{ domain }}\n{% if s3 %}\nS3_ENABLED=true\n{% endif %}\n"
       "SECRET_KEY_BASE=__SECRET_KEY_BASE__\nDB_PASS=<%= @db_pass %>\n{{- if .Values.x }}\nREDIS_HOST=redis\n"
       "{{- end }}\n")


@pytest.mark.parametrize("name", ["roles/m/templates/env.production.j2", "deploy/env.production.template",
                                  "conf/.env.production", "chef/templates/env.production.erb"])
def test_env(tmp_path, name):
    env = lint_files(tmp_path, {name: ENV}).first("mastodon_env")
    assert env is not None and env.path.endswith(name)
    assert env.get("S3_ENABLED").line == 4 and not env.get("S3_ENABLED").templated
    assert env.get("REDIS_HOST").line == 9
    for key in ("LOCAL_DOMAIN", "SECRET_KEY_BASE", "DB_PASS"):
        assert env.get(key).templated, key
    assert env.secret_values() == ()  # a template's expression is no secret of this file


def test_systemd_unit(tmp_path):
    unit = lint_files(tmp_path, {"templates/mastodon-web.service.j2": (
        "[Service]\nUser={{ mastodon_user }}\n{% if harden %}\nNoNewPrivileges=true\n{% endif %}\n"
        "ExecStart=__INSTALL_DIR__/bin/bundle exec puma\n")}).first("systemd_unit")
    assert unit is not None and unit.name == "mastodon-web.service"
    assert unit.last("NoNewPrivileges").location.line == 4
    assert unit.last("User").value == "{{ mastodon_user }}"
    assert not unit.ignored_lines  # no line was dropped as systemd would drop a malformed one


def test_pg_hba_and_postgresql_conf(tmp_path):
    facts = lint_files(tmp_path, {
        "templates/pg_hba.conf.j2": "# {{ ansible_managed }}\nlocal all postgres peer\n{% for net in nets %}\n"
                                    "host all all {{ net }} scram-sha-256\n{% endfor %}\n"
                                    "host all all 127.0.0.1/32 md5\n",
        "templates/postgresql.conf.j2": "{% if remote %}\nlisten_addresses = '*'\n{% endif %}\nport = {{ pg_port }}\n",
    })
    hba = facts.first("pg_hba")
    assert [(r.location.line, r.templated) for r in hba.rules] == [(2, False), (4, True), (6, False)]
    conf = facts.first("postgresql_conf")
    assert conf.get("listen_addresses").location.line == 2 and conf.get("port").templated


def test_redis_and_sshd(tmp_path):
    facts = lint_files(tmp_path, {
        "templates/redis.conf.j2": "bind 127.0.0.1\n{% if redis_password %}\nrequirepass {{ redis_password }}\n"
                                   "{% endif %}\n",
        "templates/sshd_config.j2": "{% if not passwords %}\nPasswordAuthentication no\n{% endif %}\n"
                                    "PermitRootLogin {{ root_login }}\n",
    })
    redis = facts.first("redis_conf")
    assert redis is not None and redis.secret_values() == ()
    assert facts.first("sshd_config") is not None


def test_yaml_configs(tmp_path):
    """A role's docker-compose.yml.j2 and elasticsearch.yml.j2: unquoted expressions are values (not
    YAML flow mappings), control lines are blank lines."""
    facts = lint_files(tmp_path, {
        "templates/docker-compose.yml.j2": "services:\n  web:\n    image: {{ mastodon_image }}\n{% if expose %}\n"
                                           "    ports:\n      - {{ bind }}:3000:3000\n{% endif %}\n",
        "templates/elasticsearch.yml.j2": "network.host: {{ es_bind }}\n{% if secure %}\n"
                                          "xpack.security.enabled: true\n{% endif %}\n",
    })
    [compose] = facts.all("compose")
    web = compose.services["web"]
    assert web.image == "{{ mastodon_image }}" and [p.exposure for p in web.ports] == ["templated"]
    [es] = facts.all("elasticsearch_yml")
    assert es.settings["network.host"].value == "{{ es_bind }}"
    assert es.settings["xpack.security.enabled"].location.line == 3
