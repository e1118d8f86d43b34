"""The live audit over a real sshd: faults end as error findings while the other hosts complete,
only allow-listed commands cross the wire, and no secret reaches a report or log."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from mastoaudit.model import Status
from mastoaudit.sources import remote_commands
from mastoaudit.sources.ssh import phases, plan

from .. import sshhost
from ..conftest import DEMO, ROOT

pytestmark = pytest.mark.skipif(sshhost.can_run() is not None, reason=sshhost.can_run() or "")


@pytest.fixture(scope="module")
def host():
    sshhost.ensure_test_users()
    base = Path(tempfile.mkdtemp(prefix="mastoaudit-ssh-"))
    os.chmod(base, 0o755)
    started = sshhost.start(base / "sshd")
    yield started
    started.stop()
    shutil.rmtree(base, ignore_errors=True)


def _trees(base: Path) -> dict[str, Path]:
    """Host filesystems under prefixes: the two demo trees, one that hangs, one with a secret file."""
    hang = base / "hang-host"
    (hang / "etc").mkdir(parents=True, exist_ok=True)
    perm = base / "perm-host"
    env = perm / "home/mastodon/live/.env.production"
    env.parent.mkdir(parents=True, exist_ok=True)
    env.write_text("LOCAL_DOMAIN=perm.example\n")
    os.chmod(env, 0o600)
    for d in (base, perm, perm / "home", perm / "home/mastodon", perm / "home/mastodon/live"):
        os.chmod(d, 0o755)
    return {"hang": hang, "perm": perm}


def _inventory(host: sshhost.SshHost, tmp: Path) -> Path:
    trees = _trees(tmp)
    wrong = tmp / "wrong_known_hosts"
    other = tmp / "otherkey"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    wrong.write_text(f"[127.0.0.1]:{host.port} {' '.join(other.with_suffix('.pub').read_text().split()[:2])}\n")
    common = f"""
ssh:
  user: {sshhost.AUDIT_USER}
  sudo: true
  port: {host.port}
  key: {host.client_key}
  known_hosts: {host.known_hosts}
  connect_timeout: 3
  command_timeout: 3
  host_timeout: 20
hosts:
  weak:
    address: 127.0.0.1
    roles: [app, db, redis, search]
    path_prefix: {ROOT / 'demo/weak'}
  hardened:
    address: 127.0.0.1
    roles: [app, db, redis, search]
    path_prefix: {ROOT / 'demo/hardened'}
  unreachable:
    address: 127.0.0.1
    ssh: {{port: {sshhost.free_port()}}}
    roles: [app]
  wrong-key:
    address: 127.0.0.1
    ssh: {{known_hosts: {wrong}}}
    roles: [app]
  hangs:
    address: 127.0.0.1
    roles: [app]
    path_prefix: {trees['hang']}
  denied:
    address: 127.0.0.1
    ssh: {{user: {sshhost.TEST_USER}, sudo: false}}
    roles: [app]
    path_prefix: {trees['perm']}
  sudo-refused:
    address: 127.0.0.1
    ssh: {{user: {sshhost.TEST_USER}, sudo: true}}
    roles: [app]
    path_prefix: {trees['perm']}
"""
    path = tmp / "inventory.yaml"
    path.write_text("instance:\n  local_domain: demo.example\n" + common)
    return path


@pytest.fixture(scope="module")
def audit(host, tmp_path_factory):
    tmp = Path(tempfile.mkdtemp(prefix="mastoaudit-inv-"))
    os.chmod(tmp, 0o755)
    inventory = _inventory(host, tmp)
    out = tmp_path_factory.mktemp("reports")
    log = out / "commands.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "mastoaudit", "audit", "-i", str(inventory), "--command-log", str(log),
         "-f", "json", "-f", "html", "-f", "sarif", "-f", "junit", "-f", "terminal", "-o", str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )
    doc = json.loads((out / "mastoaudit-audit.json").read_text())
    yield {"proc": done, "doc": doc, "out": out, "log": log, "inventory": inventory}
    shutil.rmtree(tmp, ignore_errors=True)


def _by_target(doc: dict, target: str) -> list[dict]:
    return [f for f in doc["findings"] if f["target"] == target]


def test_incomplete_run_exits_3_and_every_host_is_reported(audit):
    assert audit["proc"].returncode == 3, audit["proc"].stderr
    assert "Traceback" not in audit["proc"].stderr
    targets = {t["name"] for t in audit["doc"]["run"]["targets"]}
    assert targets == {"weak", "hardened", "unreachable", "wrong-key", "hangs", "denied", "sudo-refused"}


@pytest.mark.parametrize(("target", "needle"), [
    ("unreachable", "Unable to connect"),
    ("wrong-key", "host key"),
    ("hangs", "timed out"),
    ("denied", "permission denied reading /home/mastodon/live/.env.production"),
    ("sudo-refused", "sudo refused"),
])
def test_fault_is_an_error_finding_for_that_host(audit, target, needle):
    errors = [f for f in _by_target(audit["doc"], target) if f["status"] == Status.ERROR.value]
    assert any(needle in f["message"] for f in errors), [f["message"] for f in errors]


def test_healthy_hosts_complete_despite_faults(audit):
    for target in ("weak", "hardened"):
        findings = _by_target(audit["doc"], target)
        assert any(f["status"] == "pass" for f in findings)
        assert not [f for f in findings if f["status"] == "error" and f["check_id"] == "input.ssh"]
    weak = _by_target(audit["doc"], "weak")
    assert any(f["check_id"].startswith("host.sshd") is False and f["status"] == "fail" for f in weak)


def _unwrap(command: str) -> str:
    """pyinfra sends `[sudo -H -n] sh -c '<command>'`; return <command>."""
    words = shlex.split(command)
    if words[:3] == ["sudo", "-H", "-n"]:
        words = words[3:]
    assert words[:2] == ["sh", "-c"] and len(words) == 3, command
    return words[2]


def test_only_allow_listed_commands_were_sent(host, audit):
    from mastoaudit.inventory import load_inventory

    inventory = load_inventory(audit["inventory"])
    bundles = {  # one per round trip: the early .env.production read, then the rest
        remote_commands.bundle([(p.key, p.id, p.params) for p in group], h.ssh.command_timeout)
        for h in inventory.hosts for group in phases(plan(inventory, h))
    }
    received = host.commands()
    assert received, "the wrapper recorded nothing"
    for _user, command in received:
        assert _unwrap(command) in bundles, command
    # the audit's own log names each command of the bundles, all built from the fixed list
    logged = [json.loads(line) for line in audit["log"].read_text().splitlines()]
    allowed = {remote_commands.build(p.id, p.params) for h in inventory.hosts for p in plan(inventory, h)}
    assert logged and {row["command"] for row in logged} <= allowed
    assert {row["id"] for row in logged} <= set(remote_commands.COMMANDS)


def test_no_secret_from_env_production_leaves_the_host(audit):
    env = (DEMO / "weak/home/mastodon/live/.env.production").read_text()
    secrets = []
    for line in env.splitlines():
        key, _, value = line.partition("=")
        if any(word in key for word in ("SECRET", "KEY", "PASS", "SALT", "TOKEN")) and len(value.strip()) >= 4:
            secrets.append(value.strip().strip('"'))
    assert secrets, "the weak demo has secrets to leak"
    texts = [p.read_text(errors="replace") for p in audit["out"].iterdir() if p.is_file()]
    texts += [audit["proc"].stdout, audit["proc"].stderr]
    for secret in secrets:
        assert not any(secret in text for text in texts), "a secret reached a report or log"


def test_static_checks_run_unchanged_on_fetched_files(audit, registry):
    """The same checks judge the demo tree read from disk and read over SSH alike."""
    from ..conftest import lint

    local = lint(registry, DEMO / "weak")
    fetched_kinds = {"mastodon_env", "postgresql_conf", "pg_hba", "redis_conf", "elasticsearch_yml"}
    same = {c.meta.id for c in registry if c.meta.needs and set(c.meta.needs) <= fetched_kinds}
    over_ssh = {(f["check_id"], f["status"]) for f in _by_target(audit["doc"], "weak") if f["check_id"] in same}
    on_disk = {(f.check_id, f.status.value) for f in local.findings if f.check_id in same}
    assert len(on_disk) > 10
    assert on_disk == over_ssh


def _mini_inventory(path: Path, host: sshhost.SshHost, known_hosts: Path, extra_hosts: str = "") -> Path:
    path.write_text(f"""instance: {{local_domain: demo.example}}
ssh: {{user: {sshhost.AUDIT_USER}, sudo: true, key: {host.client_key}, known_hosts: {known_hosts}, connect_timeout: 3}}
hosts:
  first: {{address: 127.0.0.1, roles: [app], ssh: {{port: {host.port}}}, path_prefix: {ROOT / 'demo/hardened'}}}
{extra_hosts}""")
    return path


def _audit_json(inventory: Path, out: Path, *extra: str) -> tuple[int, dict]:
    done = subprocess.run([sys.executable, "-m", "mastoaudit", "audit", "-i", str(inventory), "-q", "--no-network",
                           "-f", "json", "-o", str(out), *extra], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)
    return done.returncode, json.loads(out.read_text())


def test_unknown_host_key_is_refused_unless_trust_on_first_use(host, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text("")
    inventory = _mini_inventory(tmp_path / "inv.yaml", host, known)
    code, doc = _audit_json(inventory, tmp_path / "a.json")
    assert code == 3
    assert any(f["check_id"] == "input.ssh" and "known_hosts" in f["message"] for f in doc["findings"])
    code, doc = _audit_json(inventory, tmp_path / "b.json", "--trust-on-first-use")
    assert code in (0, 1) and not any(f["check_id"] == "input.ssh" for f in doc["findings"])
    assert known.read_text().strip(), "the accepted key was recorded"
    # the recorded key is now trusted without the flag
    assert _audit_json(inventory, tmp_path / "c.json")[0] in (0, 1)


def test_jump_host(host, tmp_path):
    """A host reached through another inventory host (ProxyJump): its commands arrive, and the jump
    host runs none of them (it only forwards the connection)."""
    base = Path(tempfile.mkdtemp(prefix="mastoaudit-jump-"))
    os.chmod(base, 0o755)  # the audit user reads authorized_keys here
    second = sshhost.start(base / "second")
    try:
        second.authorized_keys_from(host)
        known = tmp_path / "known_hosts"
        known.write_text(host.known_hosts.read_text() + second.known_hosts.read_text())
        inventory = _mini_inventory(
            tmp_path / "inv.yaml", host, known,
            f"  behind: {{address: 127.0.0.1, roles: [app], ssh: {{port: {second.port}, jump: first}}, "
            f"path_prefix: {ROOT / 'demo/hardened'}}}\n")
        before = len(host.commands())
        code, doc = _audit_json(inventory, tmp_path / "r.json")
        assert code in (0, 1), doc["findings"][:3]
        assert {t["name"] for t in doc["run"]["targets"]} == {"first", "behind"}
        from mastoaudit.inventory import load_inventory

        loaded = load_inventory(inventory)
        trips = {h.name: len(phases(plan(loaded, h))) for h in loaded.hosts}  # round trips per host
        assert len(second.commands()) == trips["behind"] and len(host.commands()) == before + trips["first"]
        assert any(f["target"] == "behind" and f["status"] == "pass" for f in doc["findings"])
    finally:
        second.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_env_production_comes_first_in_a_round_trip_of_its_own(host, tmp_path):
    """The network half of an audit waits only for .env.production (sources/overlap.py): the worker
    reads it before everything else and reports it as soon as it has it."""
    from mastoaudit.inventory import load_inventory
    from mastoaudit.sources.ssh import SshCollection

    inventory = load_inventory(_mini_inventory(tmp_path / "inv.yaml", host, host.known_hosts))
    arrived: list[str] = []
    [facts] = SshCollection(inventory).start().finish(on_result=lambda name, key, result: arrived.append(key))
    expected = {p.key for p in plan(inventory, inventory.hosts[0])} - {"env-file"}
    assert arrived[0] == "env-file" and set(arrived[1:]) == expected
    assert facts.has("mastodon_env") and facts.first("mastodon_env").get("LOCAL_DOMAIN") is not None


def test_a_host_allowing_one_session_at_a_time_still_answers_every_command(tmp_path):
    """The worker runs the database reads on a second channel beside the rest; a host whose sshd
    allows one session per connection (MaxSessions 1, a hardening setting) refuses that channel.
    Those reads then run after the rest, each command sent and logged once, instead of every one
    ending as "ChannelException: Connect failed"."""
    from mastoaudit.inventory import load_inventory
    from mastoaudit.sources.ssh import BESIDE_KEYS, SshCollection

    sshhost.ensure_test_users()
    base = Path(tempfile.mkdtemp(prefix="mastoaudit-ssh-"))
    os.chmod(base, 0o755)  # the audit user reads the authorized keys
    strict = sshhost.start(base / "sshd", ("MaxSessions 1",))
    try:
        path = _mini_inventory(tmp_path / "inv.yaml", strict, strict.known_hosts)
        path.write_text(path.read_text().replace("roles: [app]", "roles: [app, db, redis]"))
        inventory = load_inventory(path)
        log = tmp_path / "commands.jsonl"
        results, failures = SshCollection(inventory, str(log)).start().gather()
        planned = [p.key for p in plan(inventory, inventory.hosts[0])]
        assert failures == {} and set(BESIDE_KEYS) <= set(planned)
        assert set(results["first"]) == set(planned)
        for key, result in results["first"].items():
            assert "error" not in result and result["rc"] is not None, (key, result)
        sent = [json.loads(line)["id"] for line in log.read_text().splitlines()]
        assert sorted(sent) == sorted(p.id for p in plan(inventory, inventory.hosts[0]))
    finally:
        strict.stop()
        shutil.rmtree(base, ignore_errors=True)
