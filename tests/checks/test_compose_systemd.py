"""Compose and systemd checks: the verdicts on small trees, Mastodon's own layouts, and the demo
files checked by the real programs (docker-compose config, systemd-analyze) where installed."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from mastoaudit.model import Status
from mastoaudit.parsers import SourceFile
from mastoaudit.parsers.compose import parse_compose
from mastoaudit.sources.local import collect_tree

from ..conftest import DEMO, FIXTURES, ROOT, check_fn, lint, results_for

COMPOSE_TAGS = ["tag:docker"]
SYSTEMD_TAGS = ["tag:systemd"]


def compose_tree(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / "srv" / "mastodon"
    folder.mkdir(parents=True)
    (folder / "docker-compose.yml").write_text(text)
    return tmp_path


def verdicts(result, check_id):
    return [(f.status.value, f.severity.value, f.location.line if f.location else None, f.observed)
            for f in results_for(result, check_id)]


# --- compose: the backing services -----------------------------------------------------------------

DB = """services:
  db:
    image: postgres:14-alpine
    environment:
      - POSTGRES_HOST_AUTH_METHOD=trust
{extra}
networks:
  internal_network:
    internal: true
"""


@pytest.mark.parametrize(("extra", "status", "severity"), [
    ("    networks: [internal_network]", "pass", "critical"),
    ("    networks: [internal_network]\n    ports: ['127.0.0.1:5432:5432']", "fail", "high"),
    ("    networks: [internal_network]\n    ports: ['5432:5432']", "fail", "critical"),
    ("    networks: [internal_network]\n    ports: ['5432']", "fail", "critical"),
    ("    network_mode: host", "fail", "critical"),
    ("", "fail", "medium"),  # the default network has a way out
    ("    network_mode: bridge", "fail", "medium"),
    ("    network_mode: none", "pass", "critical"),
    ("    networks: [internal_network]\n    ports: ['${DB_BIND}:5432:5432']", "skip", "critical"),
])
def test_trust_is_judged_by_how_far_the_database_reaches(registry, tmp_path, extra, status, severity):
    result = lint(registry, compose_tree(tmp_path, DB.format(extra=extra)), select=COMPOSE_TAGS)
    [(got_status, got_severity, line, _)] = verdicts(result, "postgresql.compose-trust-auth")
    assert (got_status, got_severity) == (status, severity)
    if status == "fail":
        assert line == 5  # the trust line


def test_database_port_on_loopback_passes_with_a_note(registry, tmp_path):
    text = DB.format(extra="    networks: [internal_network]\n    ports: ['127.0.0.1:5432:5432']")
    result = lint(registry, compose_tree(tmp_path, text), select=COMPOSE_TAGS)
    [finding] = results_for(result, "postgresql.compose-published-port")
    assert finding.status is Status.PASS and "loopback" in finding.message
    assert finding.location.line == 7


def test_exporters_and_admin_tools_are_not_taken_for_the_database(registry, tmp_path):
    text = ("services:\n  pgexp:\n    image: prometheuscommunity/postgres-exporter\n    ports: ['9187:9187']\n"
            "  rexp:\n    image: oliver006/redis_exporter\n    ports: ['9121:9121']\n")
    result = lint(registry, compose_tree(tmp_path, text), select=COMPOSE_TAGS)
    assert all(f.status is Status.SKIP for f in results_for(result, "postgresql.compose-published-port"))
    assert all(f.status is Status.SKIP for f in results_for(result, "redis.compose-published-port"))


def test_trust_with_an_env_file_is_not_judged(registry, tmp_path):
    text = "services:\n  db:\n    image: postgres:16\n    env_file: db.env\n"
    result = lint(registry, compose_tree(tmp_path, text), select=COMPOSE_TAGS)
    assert [v[0] for v in verdicts(result, "postgresql.compose-trust-auth")] == ["skip"]


def test_sharing_another_services_network_inherits_its_reach(registry, tmp_path):
    text = ("services:\n  vpn:\n    image: wireguard\n    ports: ['0.0.0.0:6379:6379']\n"
            "  redis:\n    image: redis:7\n    network_mode: 'service:vpn'\n")
    result = lint(registry, compose_tree(tmp_path, text), select=COMPOSE_TAGS)
    [(status, severity, _, observed)] = verdicts(result, "redis.compose-no-password")
    assert (status, severity) == ("fail", "critical") and "service vpn" in observed
    [(status, _, line, _)] = verdicts(result, "redis.compose-published-port")
    assert (status, line) == ("fail", 4)


def test_password_auth_database_passes_trust_check(registry, tmp_path):
    text = ("services:\n  db:\n    image: postgres:16\n    environment:\n"
            "      POSTGRES_PASSWORD: a-long-literal-password\n    ports: ['127.0.0.1:5432:5432']\n")
    result = lint(registry, compose_tree(tmp_path, text), select=COMPOSE_TAGS)
    assert [v[0] for v in verdicts(result, "postgresql.compose-trust-auth")] == ["pass"]
    assert all("a-long-literal-password" not in str(f.to_dict()) for f in result.findings)


@pytest.mark.parametrize(("service", "status"), [
    ("    image: redis:7\n    command: redis-server --requirepass \"$${REDIS_PASSWORD}\"\n    ports: ['6379:6379']",
     "pass"),
    ("    image: redis:7\n    ports: ['6379:6379']", "fail"),
    ("    image: redis:7\n    networks: [internal_network]", "pass"),
    ("    image: redis:7\n    volumes: ['./redis.conf:/usr/local/etc/redis/redis.conf']\n    ports: ['6379:6379']",
     "skip"),
])
def test_redis_password(registry, tmp_path, service, status):
    text = f"services:\n  redis:\n{service}\nnetworks:\n  internal_network:\n    internal: true\n"
    result = lint(registry, compose_tree(tmp_path, text), select=COMPOSE_TAGS)
    assert [v[0] for v in verdicts(result, "redis.compose-no-password")] == [status]


@pytest.mark.parametrize(("image", "env", "ports", "status"), [
    ("elasticsearch:7.17.29", "xpack.security.enabled=false", "127.0.0.1:9200:9200", "warn"),
    ("elasticsearch:7.17.29", "xpack.security.enabled=false", "9200:9200", "fail"),
    ("elasticsearch:7.17.29", "discovery.type=single-node", "9200:9200", "fail"),  # 7.x default: off
    ("elasticsearch:8.15.0", "discovery.type=single-node", "9200:9200", "pass"),  # 8.x default: on
    ("opensearchproject/opensearch:2", "DISABLE_SECURITY_PLUGIN=true", "127.0.0.1:9200:9200", "warn"),
    ("elasticsearch:7.17.29", "xpack.security.enabled=${ES_SECURITY}", "9200:9200", "skip"),
])
def test_search_security(registry, tmp_path, image, env, ports, status):
    text = f"services:\n  es:\n    image: {image}\n    environment:\n      - {env}\n    ports: ['{ports}']\n"
    result = lint(registry, compose_tree(tmp_path, text), select=COMPOSE_TAGS)
    assert [v[0] for v in verdicts(result, "elasticsearch.compose-security-off")] == [status]


def test_search_security_off_on_internal_network_passes(registry, tmp_path):
    text = ("services:\n  es:\n    image: elasticsearch:7.17.29\n    environment: ['xpack.security.enabled=false']\n"
            "    networks: [internal_network]\nnetworks:\n  internal_network:\n    internal: true\n")
    result = lint(registry, compose_tree(tmp_path, text), select=COMPOSE_TAGS)
    assert [v[0] for v in verdicts(result, "elasticsearch.compose-security-off")] == ["pass"]


# --- compose: the app, the host, the images --------------------------------------------------------


@pytest.mark.parametrize(("port", "status"), [
    ("127.0.0.1:3000:3000", "pass"), ("3000:3000", "fail"), ("10.0.0.5:3000:3000", "warn"),
    ("[::1]:3000:3000", "pass"), ("${WEB_BIND}:3000:3000", "skip"),
])
def test_web_publish(registry, tmp_path, port, status):
    text = (f"services:\n  web:\n    image: ghcr.io/mastodon/mastodon:v4.5.11\n"
            f"    command: bundle exec puma -C config/puma.rb\n    ports: ['{port}']\n")
    result = lint(registry, compose_tree(tmp_path, text), select=COMPOSE_TAGS)
    assert [v[0] for v in verdicts(result, "app.compose-published-port")] == [status]


def test_privileges_and_mounts(registry, tmp_path):
    text = """services:
  agent:
    image: portainer/agent
    cap_add: [SYS_ADMIN, NET_BIND_SERVICE]
    security_opt: ['seccomp:unconfined']
    pid: host
    volumes:
      - type: bind
        source: /var/run/docker.sock
        target: /var/run/docker.sock
        read_only: true
      - ./data:/data
      - named:/state
  fine:
    image: nginx
    volumes: ['./conf:/etc/nginx/conf.d:ro']
"""
    result = lint(registry, compose_tree(tmp_path, text), select=COMPOSE_TAGS)
    assert verdicts(result, "host.compose-privileged") == [
        ("fail", "high", 4, "cap_add SYS_ADMIN"), ("fail", "high", 6, "pid: host"),
        ("fail", "high", 5, "security_opt seccomp:unconfined"), ("pass", "high", 14, "not privileged")]
    mounts = verdicts(result, "host.compose-sensitive-mounts")
    assert mounts[0] == ("fail", "critical", 8, "/var/run/docker.sock:/var/run/docker.sock")
    assert mounts[1][0] == "pass"


@pytest.mark.parametrize(("image", "status"), [
    ("ghcr.io/mastodon/mastodon:v4.5.11", "pass"), ("ghcr.io/mastodon/mastodon:4.4.17", "pass"),
    ("ghcr.io/mastodon/mastodon:nightly", "warn"), ("ghcr.io/mastodon/mastodon", "warn"),
    ("ghcr.io/mastodon/mastodon:*image-tag", "warn"),  # an alias inside a string is not an alias
    ("ghcr.io/mastodon/mastodon@sha256:0123abcd", "pass"), ("ghcr.io/mastodon/mastodon:${TAG}", "skip"),
])
def test_image_pinned(registry, tmp_path, image, status):
    text = f"services:\n  web:\n    image: {image}\n    command: bundle exec puma -C config/puma.rb\n"
    result = lint(registry, compose_tree(tmp_path, text), select=["app.compose-image-pinned"])
    assert [v[0] for v in verdicts(result, "app.compose-image-pinned")] == [status]


def test_mastodon_newer_dist_layout_fails_nothing(registry):
    result = lint(registry, FIXTURES / "compose" / "dist", select=COMPOSE_TAGS)
    assert not [f for f in result.findings if f.status in (Status.FAIL, Status.ERROR)]
    # sidekiq-1 got its image through the merge key; nightly is a warning, never a failure
    pinned = results_for(result, "app.compose-image-pinned")
    assert sorted(f.subject for f in pinned) == ["service sidekiq-1", "service streaming", "service web"]
    assert {f.status for f in pinned} == {Status.WARN}


def test_override_publishing_the_database_fails_at_the_override(registry):
    result = lint(registry, FIXTURES / "compose" / "override", select=COMPOSE_TAGS)
    [trust] = results_for(result, "postgresql.compose-trust-auth")
    [port] = results_for(result, "postgresql.compose-published-port")
    assert (trust.status, trust.severity.value) == (Status.FAIL, "critical")
    assert (port.status, port.location.file.endswith("docker-compose.override.yml"), port.location.line) == (
        Status.FAIL, True, 5)


def test_a_malformed_compose_file_is_an_input_error_and_the_rest_is_audited(registry, tmp_path):
    compose_tree(tmp_path, "services:\n  db:\n    image: postgres\n   ports: [\n")
    unit_dir = tmp_path / "etc" / "systemd" / "system"
    unit_dir.mkdir(parents=True)
    shutil.copy(DEMO / "hardened" / "etc" / "systemd" / "system" / "mastodon-web.service", unit_dir)
    result = lint(registry, tmp_path, select=COMPOSE_TAGS + SYSTEMD_TAGS)
    [problem] = [f for f in result.findings if f.check_id == "input.compose"]
    assert problem.status is Status.ERROR and problem.location.line == 4
    assert results_for(result, "host.systemd-service-user", Status.PASS)


# --- systemd ----------------------------------------------------------------------------------------


def unit_tree(tmp_path: Path, body: str, name: str = "mastodon-web.service") -> Path:
    folder = tmp_path / "etc" / "systemd" / "system"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("[Service]\nExecStart=/home/mastodon/.rbenv/shims/bundle exec puma\n" + body)
    return tmp_path


@pytest.mark.parametrize(("body", "status"), [
    ("User=mastodon\n", "pass"), ("User=root\n", "fail"), ("User=0\n", "fail"), ("", "fail"),
    ("User=mastodon\nUser=\n", "fail"), ("DynamicUser=yes\n", "pass"), ("User=%i\n", "skip"),
    ("User={{ mastodon_user }}\n", "skip"),
])
def test_service_user(registry, tmp_path, body, status):
    result = lint(registry, unit_tree(tmp_path, body), select=SYSTEMD_TAGS)
    assert [v[0] for v in verdicts(result, "host.systemd-service-user")] == [status]


@pytest.mark.parametrize(("body", "status"), [
    ("ProtectSystem=strict\n", "pass"), ("ProtectSystem=full\n", "pass"), ("ProtectSystem=yes\n", "warn"),
    ("ProtectSystem=no\n", "fail"), ("", "fail"), ("ProtectSystem=strict\nProtectSystem=\n", "fail"),
])
def test_protect_system(registry, tmp_path, body, status):
    result = lint(registry, unit_tree(tmp_path, body), select=SYSTEMD_TAGS)
    assert [v[0] for v in verdicts(result, "host.systemd-protect-system")] == [status]


@pytest.mark.parametrize(("body", "status"), [
    ("CapabilityBoundingSet=\n", "pass"), ("CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n", "pass"),
    ("CapabilityBoundingSet=CAP_SYS_ADMIN\n", "fail"), ("CapabilityBoundingSet=~CAP_SYS_ADMIN\n", "fail"),
    ("", "fail"),
])
def test_capabilities(registry, tmp_path, body, status):
    result = lint(registry, unit_tree(tmp_path, body), select=SYSTEMD_TAGS)
    assert [v[0] for v in verdicts(result, "host.systemd-capabilities")] == [status]


@pytest.mark.parametrize(("body", "statuses"), [
    ("ReadWritePaths=/home/mastodon/live\n", ["pass"]),  # what Mastodon's units have carried
    ("ReadWritePaths=/home/mastodon/live/public/system -/var/log/mastodon\n", ["pass", "pass"]),
    ("ReadWritePaths=-/var\n", ["fail"]), ("ReadWritePaths=/\n", ["fail"]),
    ("ReadWritePaths=/home/mastodon/.ssh\n", ["fail"]), ("ReadWritePaths=/home/mastodon/live/../..\n", ["fail"]),
    ("ReadWritePaths=%h/live\n", ["skip"]), ("", ["pass"]),
])
def test_writable_paths(registry, tmp_path, body, statuses):
    result = lint(registry, unit_tree(tmp_path, body), select=SYSTEMD_TAGS)
    assert [v[0] for v in verdicts(result, "host.systemd-writable-paths")] == statuses


def test_drop_ins_and_wrappers_in_a_tree(registry):
    result = lint(registry, FIXTURES / "systemd" / "tree", select=SYSTEMD_TAGS)
    judged = {f.subject for f in result.findings if f.subject}
    # nginx is not Mastodon's, and the streaming wrapper runs /bin/echo: neither is judged
    assert judged == {"unit mastodon-sidekiq.service", "unit mastodon-streaming@.service"}
    [nnp] = [f for f in results_for(result, "host.systemd-no-new-privileges")
             if f.subject == "unit mastodon-sidekiq.service"]
    assert (nnp.status, nnp.location.file.endswith("override.conf"), nnp.observed) == (
        Status.FAIL, True, "NoNewPrivileges=false")
    [rw] = [f for f in results_for(result, "host.systemd-writable-paths")
            if f.subject == "unit mastodon-sidekiq.service"]
    assert (rw.status, rw.observed) == (Status.FAIL, "ReadWritePaths=/var")
    [sandbox] = [f for f in results_for(result, "host.systemd-sandboxing")
                 if f.subject == "unit mastodon-sidekiq.service"]
    assert sandbox.status is Status.PASS


def test_a_unit_with_a_bad_header_is_an_input_error_and_others_are_audited(registry, tmp_path):
    unit_tree(tmp_path, "User=mastodon\n[Install\n", "mastodon-sidekiq.service")
    unit_tree(tmp_path, "User=mastodon\nnot a setting\n")
    result = lint(registry, tmp_path, select=SYSTEMD_TAGS)
    problems = [(f.status.value, f.location.file.rsplit("/", 1)[-1], f.location.line)
                for f in result.findings if f.check_id == "input.systemd_unit"]
    assert sorted(problems) == [("error", "mastodon-sidekiq.service", 4), ("warn", "mastodon-web.service", 4)]
    assert [f.subject for f in results_for(result, "host.systemd-service-user")] == ["unit mastodon-web.service"]


# --- the documented setup ---------------------------------------------------------------------------


def test_official_setup_fails_no_compose_or_systemd_check(registry):
    result = lint(registry, DEMO / "official", select=COMPOSE_TAGS + SYSTEMD_TAGS)
    bad = [(f.check_id, f.status.value, str(f.location)) for f in result.findings
           if f.status in (Status.FAIL, Status.ERROR, Status.WARN)]
    assert not bad
    assert results_for(result, "postgresql.compose-trust-auth", Status.PASS)  # trust on an internal network
    assert len({f.subject for f in results_for(result, "host.systemd-sandboxing", Status.PASS)}) == 3


# --- the real programs ------------------------------------------------------------------------------

DEMO_COMPOSE = sorted(DEMO.glob("*/srv/mastodon/docker-compose.yml"))
DEMO_UNITS = sorted(DEMO.glob("*/etc/systemd/system/*.service"))
DOCKER_COMPOSE = shutil.which("docker-compose")
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_compose = pytest.mark.skipif(DOCKER_COMPOSE is None, reason="docker-compose is not installed "
                                   "(Debian package docker-compose); its `config` validates without a daemon")
needs_systemd = pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")


def compose_config(tmp_path: Path, *files: Path) -> dict:
    """`docker-compose config` on copies, beside an empty env file, as Compose would load them."""
    for f in files:
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / ".env.production").write_text("")
    (tmp_path / "secrets").mkdir(exist_ok=True)
    run = subprocess.run([DOCKER_COMPOSE, "--project-directory", str(tmp_path), "config"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    return yaml.safe_load(run.stdout)


def _their_ports(service: dict) -> set[tuple]:
    found = set()
    for port in service.get("ports", []):
        if isinstance(port, dict):
            found.add((None, str(port["published"]) if "published" in port else None, str(port["target"])))
        else:
            spec = port.split("/")[0]
            ip, host, container = spec.rsplit(":", 2) if spec.count(":") >= 2 else (None, *spec.split(":"))
            found.add((ip or None, host or None, container))
    return found


@needs_compose
@pytest.mark.parametrize("path", DEMO_COMPOSE, ids=lambda p: p.parts[-4])
def test_demo_compose_files_are_valid_and_read_the_same_by_compose(tmp_path, path):
    theirs = compose_config(tmp_path, path)
    ours = parse_compose(SourceFile(str(path), path.read_bytes()))
    assert set(theirs["services"]) == set(ours.services)
    for name, svc in theirs["services"].items():
        mine = ours.services[name]
        assert _their_ports(svc) == {(p.host_ip, p.host_port, p.container_port) for p in mine.ports}, name
        assert {k: (None if v is None else str(v)) for k, v in (svc.get("environment") or {}).items()} == {
            k: e.value for k, e in mine.environment.items()}, name
        assert svc.get("image") == mine.image
        assert sorted(svc.get("networks") or {}) == sorted(n.value for n in mine.networks)
    assert {n for n, o in (theirs.get("networks") or {}).items() if (o or {}).get("internal")} == {
        n for n, net in ours.networks.items() if net.internal}


@needs_compose
def test_override_merge_matches_compose(tmp_path):
    folder = FIXTURES / "compose" / "override"
    theirs = compose_config(tmp_path, *sorted(folder.iterdir()))
    facts = collect_tree(folder)
    [ours] = facts.all("compose")
    for name, svc in theirs["services"].items():
        mine = ours.services[name]
        assert _their_ports(svc) == {(p.host_ip, p.host_port, p.container_port) for p in mine.ports}
        assert {k: str(v) for k, v in (svc.get("environment") or {}).items()} == {
            k: e.value for k, e in mine.environment.items()}


def _verify(units: list[Path], tmp_path: Path) -> list[str]:
    """systemd-analyze verify on copies; complaints about Mastodon's binaries being absent from this
    machine are the only ones tolerated (they prove nothing about the unit's syntax)."""
    copies = []
    for unit in units:
        target = tmp_path / unit.name
        shutil.copy(unit, target)
        copies.append(str(target))
    run = subprocess.run([SYSTEMD_ANALYZE, "verify", "--man=no", "--generators=no", *copies],
                         capture_output=True, text=True, timeout=60)
    lines = (run.stdout + run.stderr).splitlines()
    return [line for line in lines if not re.search(r"Command \S+ is not executable: No such file", line)]


@needs_systemd
@pytest.mark.parametrize("tree", ["official", "hardened", "weak"])
def test_demo_units_pass_systemd_analyze_verify(tmp_path, tree):
    units = sorted((DEMO / tree / "etc" / "systemd" / "system").glob("*.service"))
    assert units
    assert _verify(units, tmp_path) == []


@needs_systemd
def test_systemd_analyze_verify_does_read_the_units(tmp_path):
    # The filter above must not hide real complaints: a bad value is reported.
    bad = tmp_path / "src"
    bad.mkdir()
    unit = bad / "mastodon-web.service"
    unit.write_text((DEMO / "official/etc/systemd/system/mastodon-web.service").read_text()
                    .replace("ProtectSystem=strict", "ProtectSystem=sometimes"))
    complaints = _verify([unit], tmp_path)
    assert any("protect system value" in line and "sometimes" in line for line in complaints), complaints


def _exposures(units: list[Path]) -> dict[str, float]:
    run = subprocess.run([SYSTEMD_ANALYZE, "security", "--offline=yes", "--no-pager", *map(str, units)],
                         capture_output=True, text=True, timeout=60)
    found = dict(re.findall(r"Overall exposure level for (\S+): (\d+\.\d+)", run.stdout))
    assert len(found) == len(units), run.stdout[-500:] + run.stderr
    return {name: float(score) for name, score in found.items()}


@needs_systemd
def test_sandboxing_verdicts_agree_with_systemd_analyze_security(registry):
    """systemd's own exposure score (0 safe .. 10 unsafe) for each demo unit: what our sandboxing
    check passes scores OK (< 4), what it fails scores EXPOSED or worse (>= 7)."""
    judged = 0
    for tree in ("official", "hardened", "weak"):
        scores = _exposures(sorted((DEMO / tree / "etc" / "systemd" / "system").glob("*.service")))
        result = lint(registry, DEMO / tree, select=["host.systemd-sandboxing"])
        for finding in results_for(result, "host.systemd-sandboxing"):
            score = scores[finding.subject.removeprefix("unit ")]
            judged += 1
            if finding.status is Status.PASS:
                assert score < 4.0, (tree, finding.subject, score)
            elif finding.status is Status.FAIL:
                assert score >= 7.0, (tree, finding.subject, score)
    assert judged == 9


CORPUS_COMPOSE = ROOT / "tests" / "corpus" / "compose-env" / "opt" / "mastodon"


@needs_compose
def test_interpolation_from_env_matches_compose(tmp_path):
    """The corpus's compose project (${VAR:-default}, ${VAR?err}, anchors, .env beside it): images,
    published ports and environment as `docker-compose config` interpolates them."""
    for name in ("docker-compose.yml", ".env", ".env.production"):
        shutil.copy(CORPUS_COMPOSE / name, tmp_path / name)
    run = subprocess.run([DOCKER_COMPOSE, "--project-directory", str(tmp_path), "config"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    theirs = yaml.safe_load(run.stdout)
    [ours] = collect_tree(tmp_path).all("compose")
    assert set(theirs["services"]) == set(ours.services)
    for name, svc in theirs["services"].items():
        mine = ours.services[name]
        assert svc.get("image") == mine.image, name
        assert _their_ports(svc) == {(p.host_ip, p.host_port, p.container_port) for p in mine.ports}, name
        for key, value in (mine.environment or {}).items():  # environment: written in the file
            assert str(svc["environment"][key]) == value.value, (name, key)


def _compose_facts(tmp_path: Path, compose: str, env: str, extra: dict[str, str] | None = None):
    (tmp_path / "docker-compose.yml").write_text(compose)
    (tmp_path / ".env.production").write_text(env)
    for rel, text in (extra or {}).items():
        (tmp_path / rel).write_text(text)
    return collect_tree(tmp_path)


def test_a_service_on_an_external_network_says_its_isolation_is_unknown(tmp_path):
    facts = _compose_facts(tmp_path, "services:\n  redis:\n    image: redis:7\n    networks: [proxy]\n"
                                     "networks:\n  proxy:\n    external: true\n", "REDIS_HOST=redis\n")
    [f] = check_fn("redis.compose-no-password")(facts)
    assert f.status is Status.FAIL and f.severity.value == "medium"
    assert "created outside this file (external: true)" in f.message and "not known from here" in f.message
    [env_side] = check_fn("redis.env-password")(facts)
    assert env_side.status is Status.WARN and "redis.compose-no-password judges that" in env_side.message


def test_mastodons_own_compose_redis_is_not_a_missing_password(tmp_path):
    facts = _compose_facts(tmp_path, "services:\n  redis:\n    image: redis:7\n    networks: [internal]\n"
                                     "networks:\n  internal:\n    internal: true\n", "REDIS_HOST=redis\n")
    [f] = check_fn("redis.env-password")(facts)
    assert f.status is Status.PASS and "only containers on its internal network reach" in f.message


@pytest.mark.parametrize(("server", "status"), [
    ("172.17.0.1", Status.PASS),  # the Docker host from a container: never leaves the machine
    ("host.docker.internal", Status.PASS),
    ("postfix", Status.PASS),  # a service of the project
    ("smtp.example.net", Status.FAIL),
])
def test_a_relay_truly_on_the_host(tmp_path, server, status):
    facts = _compose_facts(
        tmp_path, "services:\n  web:\n    image: ghcr.io/mastodon/mastodon:v4.5.11\n    env_file: .env.production\n"
                  "  postfix:\n    image: boky/postfix\n",
        f"LOCAL_DOMAIN=example.org\nSMTP_SERVER={server}\nSMTP_PORT=25\nSMTP_OPENSSL_VERIFY_MODE=none\n")
    [f] = check_fn("smtp.env-certificate-verify")(facts)
    assert f.status is status, f.message
