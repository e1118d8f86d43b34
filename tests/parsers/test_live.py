"""The live parsers on outputs recorded from the lab's hosts (tests/fixtures/live/, paths under the
lab's run directory shown as /srv/lab), and the SSH source building a host's facts from them: no SSH
and no root needed. The lab tests (tests/lab/) remain the proof against the real servers."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from mastoaudit import kinds
from mastoaudit.inventory import Host, Inventory, SshSettings
from mastoaudit.parsers.base import ParseError
from mastoaudit.parsers.live import (
    parse_firewall,
    parse_listening,
    parse_mastodon_version,
    parse_packages,
    parse_password_hashes,
    parse_postgres_live,
    parse_processes,
    parse_redis_cli,
)
from mastoaudit.sources import remote_commands
from mastoaudit.sources.ssh import build_facts, plan

from ..conftest import FIXTURES

LIVE = FIXTURES / "live"


def recorded(name: str) -> str:
    return (LIVE / name).read_text()


# --- one parser each ---------------------------------------------------------------------------------


def test_listening_sockets_with_their_programs():
    weak = {(s.proto, s.address, s.port): s for s in parse_listening("h", recorded("listening-weak.txt")).sockets}
    assert weak["tcp", "0.0.0.0", 6379].process == "redis-server" and not weak["tcp", "0.0.0.0", 6379].loopback_only
    assert weak["tcp", "::", 5432].process == "postgres"  # [::]:5432, brackets dropped
    assert weak["tcp", "127.0.0.1", 25].loopback_only
    hardened = parse_listening("h", recorded("listening-hardened.txt")).sockets
    assert {(s.address, s.port) for s in hardened if s.port == 6379} == {("127.0.0.1", 6379), ("::1", 6379)}


def test_listening_without_root_has_no_programs():
    sockets = parse_listening("h", recorded("listening-without-root.txt")).sockets
    assert sockets and {s.process for s in sockets} == {""}


def test_listening_refuses_what_ss_does_not_print():
    with pytest.raises(ParseError) as err:
        parse_listening("h", "tcp LISTEN 0 511 0.0.0.0:80 0.0.0.0:*\n<html>proxy error</html>\n")
    assert err.value.line == 2


def test_processes_and_their_users():
    weak = parse_processes("h", recorded("processes-weak.txt")).processes
    redis = next(p for p in weak if p.command == "redis-server")
    assert (redis.user, redis.args) == ("root", "/usr/bin/redis-server 0.0.0.0:6379")
    hardened = parse_processes("h", recorded("processes-hardened.txt")).processes
    assert {p.user for p in hardened if p.command == "redis-server"} == {"redis"}
    with pytest.raises(ParseError):
        parse_processes("h", "root notapid x\n")


def test_packages_installed_only():
    versions = parse_packages("h", recorded("packages.txt")).versions
    assert versions["unattended-upgrades"] == "2.9.1+nmu3" and versions["nginx"] == "1.22.1-9+deb12u12"
    assert "exim4-base" not in versions  # removed, config files left (rc)


def test_firewall_rules_kept_as_printed():
    assert "policy drop" in parse_firewall("h", recorded("firewall-hardened.txt")).rules
    assert parse_firewall("h", recorded("firewall-weak.txt")).rules == ""


def test_postgres_settings_and_roles():
    weak = parse_postgres_live("h", recorded("postgres-state-weak.txt"))
    assert weak.settings["listen_addresses"] == "*" and weak.settings["password_encryption"] == "md5"
    mastodon = next(r for r in weak.roles if r["rolname"] == "mastodon")
    assert mastodon["super"] and mastodon["login"] and not mastodon["no_password"]
    hardened = parse_postgres_live("h", recorded("postgres-state-hardened.txt"))
    assert hardened.settings["ssl"] == "on"
    assert not next(r for r in hardened.roles if r["rolname"] == "mastodon")["super"]
    with pytest.raises(ParseError, match="psql: error: connection to server"):
        parse_postgres_live("h", recorded("postgres-state-down.txt"))


def test_postgres_password_hashes_name_the_method_only():
    assert parse_password_hashes("h", recorded("postgres-password-hashes-weak.txt")).methods == {
        "mastodon": "md5", "postgres": "none"}
    hardened = parse_password_hashes("h", recorded("postgres-password-hashes-hardened.txt"))
    assert hardened.methods == {"mastodon": "scram-sha-256", "postgres": "none"}
    assert str(hardened.at()) == "h:pg_authid"
    assert parse_password_hashes("h", "hash|odd|name|other\n").methods == {"odd|name": "other"}
    with pytest.raises(ParseError, match="psql: error: connection to server"):
        parse_password_hashes("h", recorded("postgres-state-down.txt"))
    with pytest.raises(ParseError) as err:  # a hash itself is never an answer this parser accepts
        parse_password_hashes("h", "hash|mastodon|md5\nhash|other|md5a3556571e93b0d20722ba62be61e8c2d\n")
    assert err.value.line == 2


def test_redis_answers():
    weak = parse_redis_cli("h", recorded("redis-config-weak.txt"))
    assert not weak.auth_required and weak.config["bind"] == "0.0.0.0" and weak.config["protected-mode"] == "no"
    hardened = parse_redis_cli("h", recorded("redis-config-hardened.txt"))
    assert hardened.auth_required and hardened.authenticated and hardened.config_disabled
    assert hardened.acl_users == ["default"]
    with pytest.raises(ParseError, match="Could not connect"):
        parse_redis_cli("h", recorded("redis-config-down.txt"))


def test_mastodon_version_from_version_rb():
    lines = recorded("files-weak.txt").splitlines()
    for header, body in zip(lines[::2], lines[1::2], strict=True):
        if base64.b64decode(header.split()[1]).endswith(b"/lib/mastodon/version.rb"):
            assert parse_mastodon_version(base64.b64decode(body).decode()) == "4.1.2"
            return
    raise AssertionError("no version.rb in the recorded files")


# --- the SSH source on recorded outputs ----------------------------------------------------------------


def _host(profile: str, roles=("web", "app", "streaming", "sidekiq", "db", "redis", "search", "mail")) -> Host:
    return Host(f"lab-{profile}", "127.0.0.20", tuple(roles), SshSettings(), path_prefix=f"/srv/lab/hosts/{profile}")


def _results(profile: str) -> dict[str, dict]:
    """What the worker would report: each command's recorded output, exit status 0."""
    names = {"files": f"files-{profile}.txt", "sshd-effective": f"sshd-effective-{profile}.txt",
             "listening": f"listening-{profile}.txt", "processes": f"processes-{profile}.txt",
             "packages": "packages.txt", "firewall": f"firewall-{profile}.txt",
             "nginx-dump": f"nginx-dump-{profile}.txt", "postgres-state": f"postgres-state-{profile}.txt",
             "postgres-password-hashes": f"postgres-password-hashes-{profile}.txt",
             "redis-config": f"redis-config-{profile}.txt"}
    return {key: {"ok": True, "rc": 0, "stdout_b64": base64.b64encode((LIVE / name).read_bytes()).decode()}
            for key, name in names.items()}


INVENTORY = Inventory("test", "mastodon.lab", "mastodon.lab")


@pytest.mark.parametrize("profile", ["weak", "hardened"])
def test_a_host_s_facts_from_recorded_outputs(profile):
    facts = build_facts(INVENTORY, _host(profile), _results(profile), None)
    assert not facts.problems, facts.problems
    for kind in (kinds.LISTENING, kinds.PROCESSES, kinds.PACKAGES, kinds.FIREWALL, kinds.POSTGRES_LIVE,
                 kinds.POSTGRES_PASSWORD_HASHES, kinds.REDIS_LIVE, kinds.SSHD_CONFIG, kinds.NGINX, kinds.FILE_STAT,
                 kinds.MASTODON_VERSION, kinds.APT_CONFIG, kinds.SYSTEMD_UNIT, kinds.HOST_INFO):
        assert facts.has(kind), kind.name
    assert facts.first(kinds.FILE_STAT).path == "/etc/apt/apt.conf.d/20auto-upgrades"
    assert facts.first(kinds.MASTODON_VERSION).version == {"weak": "4.1.2", "hardened": "4.5.11"}[profile]
    nginx = facts.first(kinds.NGINX)
    assert nginx.path == "lab-" + profile + ":/etc/nginx/nginx.conf"


def test_command_failures_become_input_findings():
    results = _results("weak")
    results["listening"] = {"error": "timed out after 10 s"}
    results["postgres-state"] = {"ok": False, "rc": 2, "stdout_b64": base64.b64encode(
        (LIVE / "postgres-state-down.txt").read_bytes()).decode()}
    results["postgres-password-hashes"] = {"ok": False, "rc": 2, "stdout_b64": base64.b64encode(
        (LIVE / "postgres-state-down.txt").read_bytes()).decode()}
    results["redis-config"] = {"ok": False, "rc": 3, "stdout_b64": base64.b64encode(
        (LIVE / "redis-config-down.txt").read_bytes()).decode()}
    results["processes"] = {"ok": True, "rc": 0, "stdout_b64": base64.b64encode(b"junk\n").decode()}
    facts = build_facts(INVENTORY, _host("weak"), results, None)
    found = {(p.kind, str(p.location)): p.message for p in facts.problems}
    assert found["ssh", "lab-weak:listening"] == "listening: timed out after 10 s"
    assert found["postgresql_conf", "lab-weak:psql"].startswith("PostgreSQL could not be asked: psql: error")
    assert found["postgres_password_hashes", "lab-weak:psql pg_authid"].startswith(
        "PostgreSQL could not be asked: psql: error")
    assert found["redis", "lab-weak:redis-cli"].startswith("Redis: redis-cli: Could not connect to Redis")
    assert found["ssh", "lab-weak:processes:1"].startswith("processes: unexpected ps output")
    assert not facts.has(kinds.LISTENING) and facts.has(kinds.PACKAGES)


def test_an_unreachable_host_has_one_problem_and_no_facts_beyond_itself():
    facts = build_facts(INVENTORY, _host("weak"), {}, "connection refused")
    assert not facts.reachable and [p.kind for p in facts.problems] == ["ssh"]
    assert facts.kinds() == ["host_info"]


def test_plan_by_role():
    web = {p.id for p in plan(INVENTORY, _host("weak", roles=("web",)))}
    db = {p.id: p.params for p in plan(INVENTORY, _host("weak", roles=("db",)))}
    # A web host's .env.production comes first, on its own (env-file: the network half waits for it).
    assert {"env-file", "files", "nginx-dump", "listening"} <= web and "postgres-state" not in web
    assert plan(INVENTORY, _host("weak", roles=("web",)))[0].id == "env-file"
    assert "nginx-dump" not in db and db["postgres-state"] == {"socket_dir": "/var/run/postgresql", "port": 5432}
    assert db["postgres-password-hashes"] == db["postgres-state"] and "postgres-password-hashes" not in web
    assert "/srv/lab/hosts/weak/etc/postgresql/*/main/pg_hba.conf" in db["files-root"]["paths"]
    bare = {p.id for p in plan(INVENTORY, _host("weak", roles=("mail",)))}
    assert not {"files-root", "env-file"} & bare  # nothing only root may read on a mail host
    for host in (_host("weak"), _host("weak", roles=("web",))):
        for p in plan(INVENTORY, host):
            remote_commands.build(p.id, p.params)  # every planned command builds from the table


# --- the reviewed list ------------------------------------------------------------------------------------


def command_list() -> str:
    out = ["# Every command mastoaudit may run on an audited host, as declared in mastoaudit/kinds.py.",
           "# tests/parsers/test_live.py fails when this list and the declarations differ: review the change,",
           "# then update this file. {name} fields are filled with validated, shell-quoted parameters.", ""]
    for command in remote_commands.table().values():
        out += [f"## {command.id}: {command.purpose}",
                f"#  parameters: {', '.join(command.params) or 'none'}; runs as root: "
                f"{'yes (sudo)' if command.needs_root else 'no'}",
                command.template, ""]
    return "\n".join(out)


def test_the_command_list_is_the_reviewed_one():
    reviewed = (LIVE / "commands.txt").read_text()
    assert command_list() == reviewed, (
        "the commands run on hosts changed: review them, then write the new list to tests/fixtures/live/commands.txt")


def test_every_live_fact_declares_a_command_once():
    ids = [fact.id for fact in kinds.LIVE_FACTS]
    assert len(set(ids)) == len(ids)
    assert set(remote_commands.table()) == set(ids)
    assert Path(remote_commands.__file__).name == "remote_commands.py"
