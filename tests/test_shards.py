"""Split runs: `--shard i/n` and `mastoaudit merge`. Shard reports merged must equal the unsharded
run finding for finding: on lint targets (copies of the demo trees) and on a live audit of hosts
over a real sshd (tests/sshhost.py)."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from mastoaudit.cli import main
from mastoaudit.shard import Shard, population_digest, shard_of

from . import sshhost
from .conftest import DEMO, ROOT

# What a merge must reproduce exactly (the run's timing aside).
SAME = ("checks", "findings", "threats", "components", "summary", "waivers")
SAME_RUN = ("command", "complete", "targets", "scope", "baseline")


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_same_run(merged: dict, whole: dict) -> None:
    for key in SAME:
        assert merged.get(key) == whole.get(key), key
    for key in SAME_RUN:
        assert merged["run"].get(key) == whole["run"].get(key), f"run.{key}"


# ------------------------------------------------------------------------------------ the rule


def test_the_rule_is_stable_and_covers_every_item_once():
    names = [f"host{i}.example" for i in range(500)]
    for count in (1, 2, 3, 7, 16):
        parts = [Shard(i, count).select(names) for i in range(1, count + 1)]
        assert sorted(n for part in parts for n in part) == sorted(names)
        shuffled = names[:]
        random.Random(count).shuffle(shuffled)
        assert [sorted(Shard(i, count).select(shuffled)) for i in range(1, count + 1)] == [sorted(p) for p in parts]
        # A host joining moves nobody else.
        grown = Shard(1, count).select([*names, "newcomer.example"])
        assert [n for n in grown if n != "newcomer.example"] == parts[0]
    # Balanced on average: 500 hosts in 4 shards, none far from 125.
    sizes = [len(Shard(i, 4).select(names)) for i in range(1, 5)]
    assert all(90 < size < 160 for size in sizes), sizes
    # The documented rule, so that another tool (a CI matrix, a federation sweep) can compute it.
    import hashlib
    assert shard_of("web1", 4) == 1 + int.from_bytes(hashlib.sha256(b"web1").digest()[:8], "big") % 4
    assert population_digest(["b", "a"]) == population_digest(["a", "b", "a"])


@pytest.mark.parametrize("text", ["0/2", "3/2", "2", "a/b", "1/0", "1/20000"])
def test_bad_shard_specs_are_usage_errors(capsys, text):
    code, _, err = run_cli(capsys, "lint", "demo/weak", "--shard", text)
    assert code == 2 and "--shard" in err


# ------------------------------------------------------------------------------- lint targets


@pytest.fixture(scope="module")
def trees(tmp_path_factory) -> list[str]:
    base = tmp_path_factory.mktemp("fleet")
    names = []
    for i, kind in enumerate(["weak", "hardened", "official", "weak", "hardened", "weak"]):
        target = base / f"site{i}"
        shutil.copytree(DEMO / kind, target)
        names.append(str(target))
    return names


@pytest.fixture(scope="module")
def waivers_file(tmp_path_factory, trees) -> Path:
    path = tmp_path_factory.mktemp("waivers") / "waivers.yaml"
    path.write_text(f"""waivers:
  - check: host.sshd-root-login
    target: {trees[3]}
    reason: matches in one shard only
    owner: ops
    expires: 2030-01-01
  - check: nginx.hsts
    reason: matches nothing anywhere (a stale waiver)
    owner: ops
    expires: 2030-01-01
    target: nowhere
  - check: redis.*
    reason: expired
    owner: ops
    expires: 2020-01-01
""")
    return path


def _lint(capsys, out: Path, trees: list[str], *extra: str) -> tuple[int, dict]:
    code, _, err = run_cli(capsys, "lint", *trees, "-f", "json", "-o", str(out), *extra)
    assert out.exists(), err
    return code, json.loads(out.read_text())


def test_lint_shards_merged_equal_the_unsharded_run(capsys, tmp_path, trees, waivers_file, monkeypatch):
    monkeypatch.setenv("MASTOAUDIT_TODAY", "2025-06-15")
    common = ["--waivers", str(waivers_file), "--fail-on", "never"]
    _, _earlier = _lint(capsys, tmp_path / "earlier.json", trees[:4], *common)  # the baseline: fewer sites
    common += ["--baseline", str(tmp_path / "earlier.json")]
    code, whole = _lint(capsys, tmp_path / "whole.json", trees, *common)
    shards = []
    for i in (1, 2, 3):
        _, doc = _lint(capsys, tmp_path / f"shard{i}.json", trees, *common, "--shard", f"{i}/3")
        assert doc["run"]["shard"]["index"] == i and doc["run"]["scope"]["shard"] == f"{i}/3"
        shards.append(tmp_path / f"shard{i}.json")
    assert sum(len(json.loads(p.read_text())["run"]["shard"]["members"]) for p in shards) == len(trees)

    folder = tmp_path / "merged"
    formats = [x for fmt in ("json", "html", "sarif", "junit") for x in ("-f", fmt)]
    code, _, err = run_cli(capsys, "merge", *map(str, reversed(shards)), *formats, "-o", str(folder),
                           "--fail-on", "never")
    assert code == 0, err
    merged = json.loads((folder / "mastoaudit-lint.json").read_text())
    assert_same_run(merged, whole)
    assert merged["run"]["merged"]["missing"] == [] and "shard" not in merged["run"]
    # The waivers were judged on the whole run: the one matching in a single shard is not stale.
    states = [e["state"] for e in merged["waivers"]["entries"]]
    assert states == ["active", "stale", "expired"]
    assert merged["run"]["baseline"]["counts"]["new"] > 0  # the sites the baseline did not have
    # The merged report is a report like any other.
    schema = json.loads(resources.files("mastoaudit.data").joinpath("report.schema.json").read_text("utf-8"))
    assert not list(jsonschema.Draft202012Validator(schema).iter_errors(merged))
    assert (folder / "mastoaudit-lint.html").stat().st_size > 0
    assert json.loads((folder / "mastoaudit-lint.sarif").read_text())["runs"][0]["results"]

    # Exit codes as if it were one run.
    for fail_on in ("low", "critical", "never"):
        one = run_cli(capsys, "lint", *trees, *common, "--fail-on", fail_on, "-f", "json",
                      "-o", str(tmp_path / "x.json"))[0]
        assert run_cli(capsys, "merge", *map(str, shards), "-f", "json", "-o", str(tmp_path / "y.json"),
                       "--fail-on", fail_on)[0] == one, fail_on


def test_a_missing_shard_makes_the_merge_incomplete(capsys, tmp_path, trees):
    for i in (1, 2, 3):
        _lint(capsys, tmp_path / f"s{i}.json", trees, "--select", "host.*", "--shard", f"{i}/3", "--fail-on", "never")
    out = tmp_path / "m.json"
    code, _, _ = run_cli(capsys, "merge", str(tmp_path / "s1.json"), str(tmp_path / "s3.json"), "-f", "json",
                         "-o", str(out))
    assert code == 3
    doc = json.loads(out.read_text())
    [missing] = [f for f in doc["findings"] if f["check_id"] == "input.shard"]
    assert missing["status"] == "error" and missing["target"] == "shard 2/3"
    assert "shard 2 of 3 is missing" in missing["message"] and not doc["run"]["complete"]
    assert doc["run"]["merged"]["missing"] == [2]
    # --shards says how many there should be.
    code, _, err = run_cli(capsys, "merge", str(tmp_path / "s1.json"), "--shards", "4", "-f", "json", "-o", str(out))
    assert code == 2 and "split in 3" in err


def test_what_cannot_be_merged_is_refused(capsys, tmp_path, trees):
    _lint(capsys, tmp_path / "a1.json", trees, "--select", "host.*", "--shard", "1/2", "--fail-on", "never")
    _lint(capsys, tmp_path / "b2.json", trees, "--select", "nginx.*", "--shard", "2/2", "--fail-on", "never")
    _lint(capsys, tmp_path / "c2.json", trees[:3], "--select", "host.*", "--shard", "2/2", "--fail-on", "never")
    _lint(capsys, tmp_path / "whole.json", trees, "--select", "host.*", "--fail-on", "never")
    _lint(capsys, tmp_path / "d1.json", trees, "--select", "host.*", "--shard", "1/3", "--fail-on", "never")
    out = str(tmp_path / "m.json")
    cases = [
        (["a1.json", "b2.json"], "shard of another run"),
        (["a1.json", "c2.json"], "shard of another run"),  # other PATHs: another scope
        (["a1.json", "d1.json"], "of another split"),
        (["a1.json", "a1.json"], "given twice"),
        (["whole.json"], "not a shard report"),
    ]
    for files, words in cases:
        code, _, err = run_cli(capsys, "merge", *(str(tmp_path / f) for f in files), "-f", "json", "-o", out)
        assert code == 2 and words in err, (files, err)


def test_an_empty_shard_is_a_complete_run_of_nothing(capsys, tmp_path):
    # Two PATHs in 8 shards: most shards hold nothing, and still report, so a merge can tell them
    # from a shard that never ran.
    paths = ["demo/weak", "demo/hardened"]
    owners = {shard_of(p, 8) for p in paths}
    empty = next(i for i in range(1, 9) if i not in owners)
    code, doc = _lint(capsys, tmp_path / "e.json", paths, "--shard", f"{empty}/8")
    assert code == 0 and doc["run"]["targets"] == [] and doc["findings"] == [] and doc["run"]["complete"]


# ----------------------------------------------------------------------------- live, over SSH


@pytest.mark.skipif(sshhost.can_run() is not None, reason=sshhost.can_run() or "")
def test_audit_shards_over_ssh_merged_equal_the_unsharded_audit(tmp_path):
    sshhost.ensure_test_users()
    base = Path(tempfile.mkdtemp(prefix="mastoaudit-shards-"))
    os.chmod(base, 0o755)
    host = sshhost.start(base / "sshd")
    try:
        trees = {"weak": "weak", "hardened": "hardened", "official": "official", "weak2": "weak",
                 "hardened2": "hardened", "weak3": "weak"}
        hosts = "\n".join(f"  {name}:\n    address: 127.0.0.1\n    roles: [app, db, redis, search]\n"
                          f"    path_prefix: {ROOT / 'demo' / tree}" for name, tree in trees.items())
        inventory = base / "inventory.yaml"
        inventory.write_text(f"""instance: {{local_domain: demo.example}}
ssh:
  user: {sshhost.AUDIT_USER}
  sudo: true
  port: {host.port}
  key: {host.client_key}
  known_hosts: {host.known_hosts}
  connect_timeout: 5
  command_timeout: 10
  host_timeout: 60
hosts:
{hosts}
  gone:
    address: 127.0.0.1
    ssh: {{port: {sshhost.free_port()}}}
    roles: [app]
""")
        # Live checks that read the whole machine's state (sockets, processes, the databases of
        # the machine) could see it change between runs; the rest judge each host's own files.
        exclude = ["host.internal-services-exposed", "host.services-not-root", "host.firewall",
                   "postgresql.live-settings", "postgresql.roles", "postgresql.password-hashes", "redis.live-auth"]
        args = [sys.executable, "-m", "mastoaudit", "audit", "-i", str(inventory), "-q", "-f", "json"]
        for check in exclude:
            args += ["--exclude", check]

        def audit(out: Path, *extra: str) -> tuple[int, dict]:
            done = subprocess.run([*args, "-o", str(out), *extra], capture_output=True, text=True, cwd=ROOT,
                                  timeout=300)
            assert out.exists(), done.stderr
            return done.returncode, json.loads(out.read_text())

        code, whole = audit(tmp_path / "whole.json")
        assert code == 3  # the unreachable host
        parts = [tmp_path / f"part{i}.json" for i in (1, 2)]
        for i, part in enumerate(parts, 1):
            audit(part, "--shard", f"{i}/2")
        merged_path = tmp_path / "merged.json"
        done = subprocess.run([sys.executable, "-m", "mastoaudit", "merge", *map(str, parts), "-f", "json",
                               "-o", str(merged_path)], capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert done.returncode == code, done.stderr
        merged = json.loads(merged_path.read_text())
        assert_same_run(merged, whole)
        assert [t["name"] for t in merged["run"]["targets"]] == [*trees, "gone"]
        assert len([f for f in whole["findings"] if f["status"] == "fail"]) > 20
    finally:
        host.stop()
        shutil.rmtree(base, ignore_errors=True)
