"""`federation impact` on a real PostgreSQL holding the part of Mastodon's schema it reads.

A throwaway cluster (lab/pgcluster.py: initdb in a temp folder, a free port, never the system
cluster). Every count is checked against an independent computation in Python over the same
generated rows, with subdomains, LIKE wildcards and a stale instances view in the data; seed 000
is replayed to the digit; the SSH way (psql on the "db host" over a real sshd) gives the same facts.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import jsonschema
import pytest

from lab import mastodon_db, pgcluster, seed000
from mastoaudit.federation.database import DatabaseUnreachable, describe_dsn, read_database
from mastoaudit.federation.queries import QUERIES

from ..conftest import ROOT

pytestmark = pytest.mark.skipif(pgcluster.can_run() is not None, reason=pgcluster.can_run() or "")

PASSWORD = "s3cret-Pw!"


@pytest.fixture(scope="module")
def cluster():
    started = pgcluster.start()
    yield started
    started.stop()


def _socket_dsn(cluster, dbname, user="postgres"):
    return f"host={cluster.socket_dir} port={cluster.port} user={user} dbname={dbname}"


# --- generated data and the independent computation -------------------------------------------

DOMAINS = ["a.example", "sub.a.example", "deep.sub.a.example", "xa.example", "b.example", "x_y.example",
           "xzy.example", "c.example:8443", "Upper.example"]


def _generated(seed: int = 7) -> tuple[mastodon_db.Dataset, set[str]]:
    rng = random.Random(seed)
    data = mastodon_db.Dataset()
    locals_ = data.many(None, 300, "l")
    remote = {d: data.many(d.lower(), rng.randint(5, 40), "r") for d in DOMAINS}
    pairs = set()
    for accounts in remote.values():
        for _ in range(rng.randint(20, 200)):  # many follows to few accounts: rows > distinct accounts
            pairs.add((rng.choice(locals_), rng.choice(accounts)))
        for _ in range(rng.randint(0, 60)):
            pairs.add((rng.choice(accounts), rng.choice(locals_)))
    data.follows = sorted(pairs)
    data.blocks = [("blocked.example", 1, "")]  # in the view with no accounts
    view = {d.lower() for d in DOMAINS} | {"blocked.example"}
    return data, view


def _like(value: str, pattern: str) -> bool:
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL) is not None


def _expected(data: mastodon_db.Dataset, view: set[str], query: str, scope: str) -> dict:
    """Mastodon's Rails queries, computed in Python: Account.where(domain: names) joined to follows."""
    # Instance.by_domain_and_subdomains: reverse('.' || domain) LIKE reverse('%.' || D)
    subdomains = {d for d in view if _like(("." + d)[::-1], ("%." + query)[::-1])}
    names = {query} if scope == "domain" else subdomains
    on = {aid for aid, _, domain in data.accounts if domain in names}
    inbound = [(a, t) for a, t in data.follows if t in on]
    outbound = [(a, t) for a, t in data.follows if a in on]
    return {"local_followers": len({a for a, _ in inbound}), "their_followed": len({t for _, t in inbound}),
            "their_followers": len({a for a, _ in outbound}), "local_followed": len({t for _, t in outbound}),
            "dashboard_follows": len(inbound), "dashboard_followers": len(outbound)}


@pytest.fixture(scope="module")
def generated(cluster):
    data, view = _generated()
    mastodon_db.connect_fill(cluster, "generated", data)
    # A subdomain that appeared after the view's last refresh: Mastodon's subdomain totals miss it too.
    late = data.many("late.a.example", 3, "late")
    data.follows += [(data.accounts[0][0], late[0])]
    values = ", ".join(f"({i}, 'x', 'late.a.example')" for i in late)
    cluster.psql(f"INSERT INTO accounts (id, username, domain) VALUES {values}; "
                 f"INSERT INTO follows (account_id, target_account_id) VALUES ({data.accounts[0][0]}, {late[0]});",
                 "generated")
    return data, view


def test_every_count_matches_an_independent_computation(cluster, generated):
    data, view = generated
    queries = ["a.example", "sub.a.example", "xa.example", "b.example", "x_y.example", "c.example:8443",
               "upper.example", "nobody.example", "example"]
    facts = read_database(_socket_dsn(cluster, "generated"), queries)
    assert facts.errors == {}
    checked = 0
    for q in queries:
        for scope in ("domain", "subdomains"):
            got = facts.impact[(q, scope)].to_dict()
            want = _expected(data, view, q, scope)
            assert {k: got[k] for k in want} == want, (q, scope)
            checked += 1
    assert checked == 18
    # the cases the data is there for
    a_alone, a_all = facts.impact[("a.example", "domain")], facts.impact[("a.example", "subdomains")]
    assert a_all.local_followers > a_alone.local_followers  # sub.a and deep.sub.a count with subdomains
    assert facts.impact[("x_y.example", "subdomains")].dashboard_follows > \
        facts.impact[("x_y.example", "domain")].dashboard_follows  # '_' matches xzy.example, as in Mastodon
    assert facts.impact[("xa.example", "subdomains")] == facts.impact[("xa.example", "domain")].__class__(
        **{**facts.impact[("xa.example", "domain")].to_dict(), "scope": "subdomains"})  # xa is not a.example's
    # the late subdomain is not in the (stale) view: not counted with subdomains, like the dashboard
    assert _expected(data, view, "a.example", "subdomains")["local_followers"] == a_all.local_followers


def test_one_pass_equals_one_query_per_domain(cluster, generated):
    dsn = _socket_dsn(cluster, "generated")
    together = read_database(dsn, ["a.example", "b.example", "xa.example"]).impact
    for domain in ("a.example", "b.example", "xa.example"):
        alone = read_database(dsn, [domain]).impact
        assert alone[(domain, "domain")] == together[(domain, "domain")]
        assert alone[(domain, "subdomains")] == together[(domain, "subdomains")]


def test_queries_run_read_only_and_parameterised(cluster, generated):
    from mastoaudit.federation.queries import psycopg_sql

    for query in QUERIES:
        text = psycopg_sql(query)
        assert "%(domains)s" in text if query.needs_domains else "%(domains)s" not in text
        assert not re.search(r"\b(INSERT|UPDATE|DELETE|DROP|ALTER|CREATE|GRANT|TRUNCATE|COPY)\b", query.sql, re.I)
    hostile = "x.example'); drop table follows; --"
    facts = read_database(_socket_dsn(cluster, "generated"), [hostile])
    assert facts.impact[(hostile, "domain")].dashboard_follows == 0
    assert cluster.psql("SELECT count(*) FROM follows", "generated").strip() != "0"


# --- seed 000 replayed ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seed(cluster, tmp_path_factory):
    built = seed000.build(cluster, "seed000", password=PASSWORD)
    out = tmp_path_factory.mktemp("seed000")
    (out / "peers.json").write_text(mastodon_db.peers_document(built))
    (out / ".env.production").write_text("AUTHORIZED_FETCH=false\n")
    return built, out


def _impact(cluster, args, dbname="seed000", user=seed000.AUDIT_ROLE, password=PASSWORD, env_password=True):
    dsn = f"postgresql://{user}@127.0.0.1:{cluster.port}/{dbname}"
    env = {**os.environ, **({"PGPASSWORD": password} if env_password else {})}
    env.pop("PGPASSFILE", None)
    return subprocess.run([sys.executable, "-m", "mastoaudit", "federation", "impact", "--db", dsn, *args],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)


def test_seed_000_prints_the_seed_numbers_and_blocks_exactly_63(cluster, seed):
    built, out = seed
    done = _impact(cluster, ["threads.net", "pixelfed.social", "--peers", str(out / "peers.json"),
                             "--env", str(out / ".env.production"), "--block-for", "CVE-2025-30741",
                             "--blocklist", str(out / "blocks.csv"), "-f", "terminal", "-f", "json", "-o", str(out)])
    assert done.returncode == 1, done.stderr  # vulnerable peers still federated are failures
    text = done.stdout
    assert "pixelfed: 96 (33 on 0.12.5, 46 on 0.12.4, 9 on 0.12.3, 4 on 0.12.1, 3 on 0.11.13, 1 on 0.11.9)" in text
    assert "(CVE-2025-30741): 63 federated peers (46 on 0.12.4, 17 older); 33 pixelfed peers on a fixed version" \
        in text
    assert ("threads.net: 2033 accounts here follow 919 of its accounts; 26 of its accounts follow 22 here "
            "(dashboard: 6014 and 27 follow rows)") in text
    assert "pixelfed.social: 1073 accounts here follow 956 of its accounts; 864 of its accounts follow 651 here" in text
    assert "93 with 5 or fewer; 2 with 6 to 10; 1 with more than 10" in text
    assert "3 also in Mastodon's unavailable_domains (already offline), 1 that Mastodon still delivers to" in text
    assert "Refederate (blocked for an advisory, now fixed): upgraded1.example, upgraded2.example" in text
    rows = (out / "blocks.csv").read_text().splitlines()[1:]
    blocked = {r.split(",")[0] for r in rows}
    assert blocked == {d for d, v in built.pixelfed.items() if v not in ("0.12.5",)} and len(blocked) == 63
    assert all(r.split(",")[1] == "suspend" for r in rows)
    report = json.loads((out / "mastoaudit-federation.json").read_text())
    jsonschema.validate(report, json.loads((ROOT / "mastoaudit/data/report.schema.json").read_text()))
    section = report["extra"]["federation"]
    jsonschema.validate(section, json.loads((ROOT / "mastoaudit/data/federation.schema.json").read_text()))
    threads = next(i for i in section["impact"] if i["domain"] == "threads.net")
    assert threads["domain_alone"]["dashboard_follows"] == 6014 and threads["domain_alone"]["dashboard_followers"] == 27
    assert sum(1 for f in report["findings"] if f["check_id"] == "federation.vulnerable-peers"
               and f["status"] == "fail" and "CVE-2025-30741" in f["message"]) == 63
    assert [f["subject"] for f in report["findings"] if f["check_id"] == "federation.vulnerable-peers"
            and f["status"] == "fail" and "CVE-2025-30741" not in f["message"]] == ["lemmy-old.example"]
    assert "@hachyderm.example" not in json.dumps(report)  # no email address anywhere
    assert PASSWORD not in done.stdout + done.stderr + json.dumps(report)
    never = _impact(cluster, ["threads.net", "--fail-on", "never", "-f", "json", "-o", str(out / "n.json")])
    assert never.returncode == 0, never.stdout


# --- posture both ways ------------------------------------------------------------------------


def _posture_db(cluster, name: str, weak: bool) -> None:
    data = mastodon_db.Dataset()
    users = data.many(None, 4, "staff")
    data.settings = {"registrations_mode": "--- open\n" if weak else "--- approved\n"}
    data.roles = [(1, "Moderator", mastodon_db.MODERATOR_PERMISSIONS), (3, "Owner", 1)]
    data.users = [(1, users[0], 3, not weak, "owner@example.org"), (2, users[1], 1, False, "mod@example.org"),
                  (3, users[2], None, False, "user@example.org")]
    if not weak:
        data.webauthn_users = [2]  # the moderator uses a security key
        data.blocks = [("spam.example", 1, "spam"), ("meh.example", 0, "")]
        data.allows = ["friend.example"]
    else:
        data.blocks = [("meh.example", 0, "")]
    mastodon_db.connect_fill(cluster, name, data)


@pytest.fixture(scope="module")
def posture(cluster):
    _posture_db(cluster, "hardened", weak=False)
    _posture_db(cluster, "weak", weak=True)
    cluster.psql(f"CREATE ROLE auditor LOGIN PASSWORD '{PASSWORD}'; CREATE ROLE nofollows LOGIN PASSWORD '{PASSWORD}';")
    for db in ("hardened", "weak"):
        cluster.psql("GRANT SELECT ON ALL TABLES IN SCHEMA public TO auditor; "
                     "GRANT SELECT ON ALL TABLES IN SCHEMA public TO nofollows; "
                     "REVOKE SELECT ON follows FROM nofollows;",
                     db)


def _findings(report: dict, check: str) -> list[dict]:
    return [f for f in report["findings"] if f["check_id"] == check]


@pytest.mark.parametrize("profile", ["hardened", "weak"])
def test_posture_checks_both_ways(cluster, posture, tmp_path, profile):
    weak = profile == "weak"
    env = tmp_path / ".env.production"
    env.write_text("LIMITED_FEDERATION_MODE=true\nAUTHORIZED_FETCH=false\n" if weak else "AUTHORIZED_FETCH=true\n")
    done = _impact(cluster, ["x.example", "--env", str(env), "-f", "json", "-o", str(tmp_path / "r.json"),
                             "--fail-on", "info"], dbname=profile, user="auditor")
    report = json.loads((tmp_path / "r.json").read_text())
    statuses = {c: {f["status"] for f in _findings(report, c)} for c in (
        "federation.registrations-approval", "federation.staff-2fa", "federation.domain-blocks",
        "federation.limited-federation-allowlist", "federation.blocks-enforced")}
    if weak:
        assert done.returncode == 1
        assert statuses["federation.registrations-approval"] == {"fail"}
        staff = _findings(report, "federation.staff-2fa")
        assert {f["subject"] for f in staff if f["status"] == "fail"} == {"staff staff0", "staff staff1"}
        assert next(f for f in staff if f["subject"] == "staff staff0")["severity"] == "critical"  # administrator
        assert statuses["federation.domain-blocks"] == {"warn"}
        assert statuses["federation.limited-federation-allowlist"] == {"fail"}
        assert statuses["federation.blocks-enforced"] == {"skip"}  # nothing suspended to enforce
    else:
        assert statuses["federation.registrations-approval"] == {"pass"}
        assert statuses["federation.staff-2fa"] == {"pass"}
        assert statuses["federation.domain-blocks"] == {"pass"}
        assert statuses["federation.limited-federation-allowlist"] == {"skip"}
        assert statuses["federation.blocks-enforced"] == {"pass"}
        assert done.returncode == 0, done.stdout
    assert "@example.org" not in json.dumps(report)


def test_a_role_without_select_is_an_error_finding(cluster, posture, tmp_path):
    done = _impact(cluster, ["x.example", "-f", "json", "-o", str(tmp_path / "r.json")], dbname="weak",
                   user="nofollows")
    assert done.returncode == 3
    report = json.loads((tmp_path / "r.json").read_text())
    errors = [f for f in report["findings"] if f["status"] == "error"]
    assert any("permission denied for table follows" in f["message"] for f in errors)
    assert _findings(report, "federation.registrations-approval")[0]["status"] == "fail"  # the rest still ran


def test_unreachable_database_never_echoes_the_password(tmp_path):
    port = pgcluster.free_port()
    dsn = f"postgresql://mastodon:{PASSWORD}@127.0.0.1:{port}/mastodon_production"
    done = subprocess.run([sys.executable, "-m", "mastoaudit", "federation", "impact", "x.example", "--db", dsn,
                           "-f", "json", "-f", "terminal", "-o", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 3
    out = done.stdout + done.stderr + (tmp_path / "mastoaudit-federation.json").read_text()
    assert PASSWORD not in out
    assert "database unreachable" in out and f"127.0.0.1:{port}" in out
    with pytest.raises(DatabaseUnreachable) as info:
        read_database(f"host=127.0.0.1 port={port} password={PASSWORD} connect_timeout=2", ["x.example"])
    assert PASSWORD not in str(info.value)
    assert PASSWORD not in describe_dsn(dsn)


# --- the SSH way gives the same facts -----------------------------------------------------------


def test_ssh_and_db_give_identical_facts(cluster, seed, tmp_path):
    from tests import sshhost

    if sshhost.can_run() is not None:
        pytest.skip(sshhost.can_run())
    from mastoaudit.federation.remote import read_over_ssh
    from mastoaudit.inventory import load_inventory

    sshhost.ensure_test_users()
    base = Path(tempfile.mkdtemp(prefix="mastoaudit-fedssh-"))
    os.chmod(base, 0o755)
    host = sshhost.start(base / "sshd")
    try:
        inventory = tmp_path / "inventory.yaml"
        inventory.write_text(f"""
instance: {{local_domain: hachyderm.example}}
ssh: {{user: {sshhost.AUDIT_USER}, sudo: true, port: {host.port}, key: {host.client_key},
       known_hosts: {host.known_hosts}, connect_timeout: 5, command_timeout: 20, host_timeout: 60}}
hosts:
  db1:
    address: 127.0.0.1
    roles: [db]
    services: {{postgres_socket_dir: {cluster.socket_dir}, postgres_port: {cluster.port}}}
""")
        domains = ["threads.net", "pixelfed.social", "pix01.example", "sub.nowhere.example"]
        over_ssh, why, _ = read_over_ssh(load_inventory(inventory), domains, "seed000")
        assert why is None, why
        direct = read_database(_socket_dsn(cluster, "seed000"), domains)
        for name in ("peers", "impact", "registrations_mode", "staff", "allows", "blocks", "errors"):
            assert getattr(over_ssh, name) == getattr(direct, name), name
        assert over_ssh.impact[("threads.net", "domain")].dashboard_follows == 6014
        sent = " ".join(c for _, c in host.commands())
        assert "default_transaction_read_only=on" in sent and "statement_timeout=" in sent
        # Thousands of domains (every peer of an affected software): the command line that carries
        # them reaches the host as one argument of sh -c, which Linux caps at 128 KiB. Before, the
        # whole read failed with "Argument list too long" past about 6,000 names.
        many = domains + [f"peer{i:05d}.nowhere-in-particular.example" for i in range(6000)]
        over_ssh, why, _ = read_over_ssh(load_inventory(inventory), many, "seed000")
        assert why is None, why
        direct = read_database(_socket_dsn(cluster, "seed000"), many)
        assert over_ssh.errors == direct.errors == {}
        assert over_ssh.impact == direct.impact and len(over_ssh.impact) == 2 * len(many)
        assert over_ssh.peers == direct.peers and over_ssh.staff == direct.staff
        # a database that does not exist: a clear reason, not a crash
        missing, why, _ = read_over_ssh(load_inventory(inventory), [], "no_such_db")
        assert missing is None and "no_such_db" in why
    finally:
        host.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_group_by_mastodon_measure(cluster, generated):
    """The dashboard's figures are plain follow-row counts of the same joins."""
    data, _ = generated
    facts = read_database(_socket_dsn(cluster, "generated"), ["b.example"])
    rows = defaultdict(int)
    on = {aid for aid, _, d in data.accounts if d == "b.example"}
    for a, t in data.follows:
        rows["in"] += t in on
        rows["out"] += a in on
    got = facts.impact[("b.example", "domain")]
    assert (got.dashboard_follows, got.dashboard_followers) == (rows["in"], rows["out"])


def test_domains_are_sent_in_parts_a_command_line_can_carry():
    from mastoaudit.federation.queries import QueryFailed
    from mastoaudit.federation.remote import _joined, domain_parts

    names = [f"d{i:04d}.example" for i in range(1000)]  # 14 characters each, and a separator
    parts = domain_parts(names, limit=1500)
    assert [n for p in parts for n in p] == names and all(len(",".join(p)) <= 1500 for p in parts)
    assert len(parts) == 10 and domain_parts([]) == [[]]
    first = {"peers": [("a.example", False)], "impact": [("a.example",)], "staff": []}
    second = {"peers": [("a.example", False)], "impact": [("b.example",)], "staff": QueryFailed("staff", "denied")}
    joined = _joined([first, second])
    assert joined["peers"] == [("a.example", False)]  # the same in every part: once
    assert joined["impact"] == [("a.example",), ("b.example",)] and isinstance(joined["staff"], QueryFailed)


def test_a_db_host_behind_a_bastion_is_reached_through_it(monkeypatch, tmp_path):
    """The database host's jump host is named by its inventory name; the read kept only the db and
    app hosts in the inventory it gave the SSH collector, so a bastion with neither role was taken
    for a literal host name."""
    from mastoaudit.federation import remote
    from mastoaudit.inventory import load_inventory
    from mastoaudit.sources.ssh import _jump

    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("instance: {local_domain: example.social}\nhosts:\n"
                         "  bastion: {address: 203.0.113.9, roles: [mail], ssh: {port: 2222, user: jumper}}\n"
                         "  db1: {address: 10.0.0.5, roles: [db], ssh: {jump: bastion}}\n")
    jumps = []

    class Collector:
        def __init__(self, inventory, command_log, hosts=None, planner=None):
            jumps.extend(_jump(inventory, h.ssh.jump) for h in hosts or inventory.hosts if h.ssh.jump)

        def start(self):
            return self

        def gather(self, progress=None):
            return {}, {"db1": "not connected in this test"}

    monkeypatch.setattr(remote, "SshCollection", Collector)
    remote.read_over_ssh(load_inventory(inventory), ["a.example"])
    assert jumps and jumps[0]["address"] == "203.0.113.9" and jumps[0]["port"] == 2222 and jumps[0]["user"] == "jumper"


# --- deadlines: a database that stops answering -------------------------------------------------


@pytest.fixture(scope="module")
def stall_db(cluster):
    _posture_db(cluster, "stall", weak=False)
    return "stall"


def _backend_waiting_on_a_lock(cluster, dbname: str, proc: subprocess.Popen) -> int:
    import psycopg

    with psycopg.connect(_socket_dsn(cluster, dbname), autocommit=True) as watcher:
        while proc.poll() is None:
            row = watcher.execute("SELECT pid FROM pg_stat_activity WHERE application_name = 'mastoaudit' "
                                  "AND wait_event_type = 'Lock'").fetchone()
            if row:
                return row[0]
            watcher.execute("SELECT pg_sleep(0.02)")
    raise AssertionError(f"mastoaudit ended before it waited on the lock: {proc.communicate()}")


def test_a_stalled_database_ends_the_run_incomplete_within_its_deadline(cluster, stall_db, tmp_path):
    """A backend that stops running mid-query (SIGSTOP: as a frozen VM, a stuck pooler or a network
    that drops every packet would look): its statement_timeout never fires and a cancel is never
    acted on. Before, `federation impact` waited for it forever; now the client-side deadline closes
    the connection, the run ends incomplete (exit 3) and says why."""
    import signal

    import psycopg

    holder = psycopg.connect(_socket_dsn(cluster, stall_db))
    holder.execute("LOCK TABLE follows IN ACCESS EXCLUSIVE MODE")  # the impact query waits for it
    out = tmp_path / "r.json"
    proc = subprocess.Popen([sys.executable, "-m", "mastoaudit", "federation", "impact", "x.example",
                             "--db", _socket_dsn(cluster, stall_db), "--statement-timeout", "4",
                             "-f", "json", "-f", "terminal", "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    pid = None
    try:
        pid = _backend_waiting_on_a_lock(cluster, stall_db, proc)
        os.kill(pid, signal.SIGSTOP)
        stdout, stderr = proc.communicate(timeout=120)  # a guard against a hang, not a measure
    finally:
        proc.kill()
        if pid is not None:
            os.kill(pid, signal.SIGCONT)
        holder.close()
        if pid is not None:
            cluster.psql(f"SELECT pg_terminate_backend({pid})")
    assert proc.returncode == 3, stdout + stderr
    report = json.loads(out.read_text())
    assert report["run"]["complete"] is False
    errors = report["extra"]["federation"]["database"]["errors"]
    assert "mastoaudit closed the connection" in errors["impact"] and "no answer 8 s" in errors["impact"]
    assert all(message.startswith("not run: the database stopped answering") for name, message in errors.items()
               if name != "impact")
    assert report["extra"]["federation"]["database"]["peers"] is not None  # the query before it answered
    assert "Incomplete" in stdout


def test_a_lock_held_by_another_session_ends_at_the_statement_timeout(cluster, stall_db):
    """The server-side half: a query waiting on a lock is cancelled by its statement_timeout; the
    connection stays usable and the queries after it answer."""
    import psycopg

    with psycopg.connect(_socket_dsn(cluster, stall_db)) as holder:
        holder.execute("LOCK TABLE follows IN ACCESS EXCLUSIVE MODE")
        facts = read_database(_socket_dsn(cluster, stall_db), ["x.example"], timeout_s=0.5)
    assert facts.errors == {"impact": "took longer than the 0.5 s statement timeout"}
    assert not facts.stalled and facts.staff is not None and facts.blocks is not None


def test_a_server_that_accepts_and_never_speaks_is_unreachable(monkeypatch):
    """The connection's own deadline: connect_timeout covers the start-up, not only the TCP connect."""
    import socket

    from mastoaudit.federation import database

    monkeypatch.setattr(database, "CONNECT_TIMEOUT_S", 2)
    with socket.create_server(("127.0.0.1", 0)) as silent, pytest.raises(DatabaseUnreachable, match="timeout"):
        read_database(f"host=127.0.0.1 port={silent.getsockname()[1]} user=x dbname=x", ["x.example"])


def test_one_peer_on_a_fixed_version_is_one_peer():
    from mastoaudit.federation.report import _affected_split

    peers = {"old.example": {"software": "lemmy", "version": "0.16.7", "advisories": [{"id": "A"}]},
             "new.example": {"software": "lemmy", "version": "0.19.17", "advisories": []}}
    assert _affected_split("A", ["old.example"], peers) == " (1 on 0.16.7); 1 lemmy peer on a fixed version"
