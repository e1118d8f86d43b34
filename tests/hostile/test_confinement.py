"""Confinement: `lint` on a tree it does not control reads nothing outside it (issue 7, items 1-2).

A CI job lints pull requests: a link in the tree can point anywhere on the runner, a FIFO or a
device can be named like a config. Nothing outside the audited tree is read (proved by recording
every open() of a lint, in a child with an audit hook), a link that leaves the tree is reported by
its own path only, a FIFO cannot hang the run.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from mastoaudit.model import Status
from mastoaudit.sources.local import collect_tree

from .conftest import ROOT, lint_everything, no_traceback, run_bounded

MARKER = "OUTSIDE-MARKER-q7Zp"
SECRET = "outsideSecret-9f8e7d6c5b4a"


def _outside(base: Path) -> Path:
    """Files outside the tree, each holding the marker and a secret (what must never be read)."""
    out = base / "elsewhere"
    (out / "dir").mkdir(parents=True)
    files = {
        "site.conf": f"server {{ listen 80; server_name {MARKER}.example; autoindex on; }}\n",
        "redis.conf": f"requirepass {SECRET}\nbind 0.0.0.0 # {MARKER}\n",
        "env": f"LOCAL_DOMAIN={MARKER}.example\nSECRET_KEY_BASE={SECRET}\n",
        "pg_hba.conf": f"host all all 0.0.0.0/0 trust # {MARKER}\n",
        "postgresql.conf": f"listen_addresses = '*' # {MARKER}\n",
        "compose.yml": f"services:\n  db:\n    image: postgres\n    environment:\n      POSTGRES_PASSWORD: {SECRET}\n"
                       f"      NOTE: {MARKER}\n",
        "es.yml": f"xpack.security.enabled: false\nnode.name: {MARKER}\n",
        "unit.service": f"[Service]\nUser=root\nEnvironment=NOTE={MARKER}\n",
        "sshd_config": f"PermitRootLogin yes\nBanner /{MARKER}\n",
        "acl": f"user default on >{SECRET} +@all ~* # {MARKER}\n",
        "dir/inc.conf": f"server_tokens on; # {MARKER}\n",
    }
    for name, text in files.items():
        (out / name).write_text(text)
    return out


def _tree(base: Path, out: Path) -> Path:
    tree = base / "tree"
    links = {
        "etc/nginx/sites-enabled/evil": out / "site.conf",
        "etc/redis/redis.conf": out / "redis.conf",
        "home/mastodon/live/.env.production": out / "env",
        "etc/postgresql/15/main/pg_hba.conf": out / "pg_hba.conf",
        "etc/postgresql/15/main/postgresql.conf": Path("../../../../../elsewhere/postgresql.conf"),
        "srv/mastodon/docker-compose.yml": out / "compose.yml",
        "etc/elasticsearch/elasticsearch.yml": out / "es.yml",
        "etc/systemd/system/mastodon-web.service": out / "unit.service",
        "etc/ssh/sshd_config": out / "sshd_config",
        "conf/app.conf": out / "site.conf",  # named like nothing: found by content only
        "etc/nginx/snippets/out.conf": out / "dir" / "inc.conf",  # only reached through an include
        "etc/nginx/conf.d": out / "dir",  # a folder link out of the tree
    }
    for rel, target in links.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, tree / rel)
    (tree / "etc/nginx/nginx.conf").write_text(
        "events {}\nhttp {\n  server_tokens off;\n"
        "  include /etc/nginx/sites-enabled/*;\n  include /etc/nginx/conf.d/*.conf;\n"
        "  include /etc/nginx/snippets/out.conf;\n"
        f"  include {out}/dir/inc.conf;\n  include ../../../elsewhere/dir/inc.conf;\n}}\n")
    (tree / "etc/redis/redis-extra.conf").write_text(
        f"include {out}/redis.conf\ninclude ../../../elsewhere/redis.conf\naclfile {out}/acl\nport 6379\n")
    return tree


@pytest.fixture(scope="module")
def hostile_tree():
    with tempfile.TemporaryDirectory(prefix="mastoaudit-confine-") as tmp:
        base = Path(tmp)
        out = _outside(base)
        yield _tree(base, out), out


def test_item_1_links_out_of_the_tree_are_reported_by_path_and_never_read(registry, hostile_tree):
    tree, out = hostile_tree
    result, outputs = lint_everything(registry, tree)
    for fmt, text in outputs.items():
        assert MARKER not in text, fmt
        assert SECRET not in text, fmt
    refused = {f.location.file.split("tree/", 1)[-1]: f for f in result.findings
               if f.check_id.startswith("input.") and "outside the audited tree" in f.message}
    # A link is shown by its own path: where it points is the runner's business, not the report's.
    # (An include names its target in the config's own words; those messages may repeat them.)
    assert not [f.message for f in refused.values() if str(out) in f.message or "elsewhere" in f.message]
    named = {"etc/nginx/sites-enabled/evil", "etc/redis/redis.conf", "home/mastodon/live/.env.production",
             "etc/postgresql/15/main/pg_hba.conf", "etc/postgresql/15/main/postgresql.conf",
             "srv/mastodon/docker-compose.yml", "etc/elasticsearch/elasticsearch.yml",
             "etc/systemd/system/mastodon-web.service", "etc/ssh/sshd_config"}
    assert named <= set(refused), sorted(set(named) - set(refused))
    assert all(refused[name].status is Status.ERROR for name in named)  # a config that was not audited
    assert refused["conf/app.conf"].status is Status.WARN  # could not even be sniffed
    assert refused["etc/nginx/conf.d"].status is Status.WARN  # a folder: not walked
    assert not result.complete


def test_links_inside_the_tree_are_followed_once(registry, tmp_path):
    (tmp_path / "etc/nginx/sites-available").mkdir(parents=True)
    (tmp_path / "etc/nginx/sites-enabled").mkdir()
    (tmp_path / "etc/nginx/nginx.conf").write_text("events {}\nhttp { include /etc/nginx/sites-enabled/*; }\n")
    (tmp_path / "etc/nginx/sites-available/site").write_text("server { listen 80; server_name a.example; }\n")
    os.symlink("../sites-available/site", tmp_path / "etc/nginx/sites-enabled/site")
    (tmp_path / "live").mkdir()
    (tmp_path / "live/.env.production").write_text("LOCAL_DOMAIN=a.example\nSECRET_KEY_BASE=" + "ab12" * 32 + "\n")
    os.symlink("live/.env.production", tmp_path / ".env.production")
    facts = collect_tree(tmp_path)
    assert len(facts.all("mastodon_env")) == 1  # one file, reached twice: audited once
    [conf] = facts.all("nginx")
    assert [s.names for s in conf.servers()] == [("a.example",)]
    assert any(f.endswith("sites-enabled/site") for f in conf.files)  # as nginx names it
    assert not facts.problems


def test_item_1_nothing_outside_the_tree_is_opened(hostile_tree, tmp_path):
    """Every open() of a whole lint, recorded by an audit hook in a child process: none outside
    the tree but Python's own files and the tool's scratch files."""
    tree, out = hostile_tree
    log = tmp_path / "opened.jsonl"
    reports = tmp_path / "reports"
    hook = (
        "import json, os, sys\n"
        f"log = open({str(log)!r}, 'a')\n"
        "def hook(event, args):\n"
        "    if event in ('open', 'os.scandir', 'os.listdir') and args and isinstance(args[0], (str, bytes)):\n"
        "        path = os.fsdecode(args[0])\n"
        # where the open really lands: a link followed by open() shows as its target
        "        log.write(json.dumps([event, os.path.realpath(path)]) + '\\n'); log.flush()\n"
        "sys.addaudithook(hook)\n"
        "from mastoaudit.cli import main\n"
        f"sys.exit(main(['lint', {str(tree)!r}, '-o', {str(reports)!r} + '/', '-f', 'json', '-f', 'html']))\n"
    )
    scratch = tmp_path / "scratch"  # the tool's own temporary files (crossplane reads a scratch copy)
    scratch.mkdir()
    env = dict(os.environ, TMPDIR=str(scratch), PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run([sys.executable, "-c", hook], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    no_traceback(proc)
    assert proc.returncode == 3, proc.stderr
    events = [json.loads(line) for line in log.read_text().splitlines()]
    paths = {path for _, path in events}
    assert any(p.startswith(str(tree)) for p in paths)  # the hook saw the lint
    allowed = [os.path.realpath(p) for p in (tree, reports, scratch, sys.prefix, sys.base_prefix, ROOT)]
    allowed += ["/dev/null", "/proc/", "/etc/localtime", "/usr/share/zoneinfo"]
    strays = sorted(p for p in paths if not any(p == a or p.startswith(a) for a in allowed))
    assert not strays, strays
    assert not [p for p in paths if p.startswith(os.path.realpath(out))]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_item_2_fifos_sockets_and_devices_named_like_configs_never_block(tmp_path):
    tree = tmp_path / "tree"
    (tree / "etc/nginx/conf.d").mkdir(parents=True)
    (tree / "etc/redis").mkdir(parents=True)
    (tree / "live").mkdir()
    os.mkfifo(tree / "etc/nginx/nginx.conf")
    os.mkfifo(tree / "etc/nginx/conf.d/included.conf")
    os.mkfifo(tree / "etc/app.conf")  # sniffable name: must not be opened to sniff
    (tree / "etc/nginx/sites.conf").write_text("server { listen 80; include /etc/nginx/conf.d/*.conf; }\n")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tree / "etc/redis/redis.conf"))
    device = tree / "live/.env.production"
    try:
        os.mknod(device, 0o600 | stat.S_IFCHR, os.makedev(1, 5))  # /dev/zero's numbers: endless
    except PermissionError:
        device.write_text("LOCAL_DOMAIN=a.example\n")
    try:
        proc = run_bounded("lint", str(tree), "-f", "json", "-o", "-", timeout=60)
    finally:
        sock.close()
    no_traceback(proc)
    assert proc.returncode == 3
    messages = [f["message"] for f in json.loads(proc.stdout)["findings"] if f["check_id"].startswith("input.")]
    assert any("nginx.conf is a FIFO, not a regular file" in m for m in messages)
    assert any("redis.conf is a socket" in m for m in messages)
    if device.is_char_device():
        assert any(".env.production is a character device" in m for m in messages)


def test_oversized_config_is_refused_before_it_is_read(registry, tmp_path):
    conf = tmp_path / "etc/nginx/nginx.conf"
    conf.parent.mkdir(parents=True)
    with conf.open("wb") as fh:
        fh.truncate(64 * 1024 * 1024)  # sparse: reading it would be the attack
    facts = collect_tree(tmp_path)
    [problem] = facts.problems
    assert "larger than 4 MiB" in problem.message and problem.status is Status.ERROR


def test_a_waivers_file_at_the_tree_root_is_read_confined_too(tmp_path):
    """`.mastoaudit-waivers.yaml` at a lint root comes from the same untrusted tree."""
    outside = tmp_path / "elsewhere.yaml"
    outside.write_text(f"waivers:\n  - {{check: nginx.autoindex, reason: {MARKER}, owner: x, expires: never}}\n")
    tree = tmp_path / "tree"
    (tree / "etc" / "nginx").mkdir(parents=True)
    (tree / "etc" / "nginx" / "nginx.conf").write_text("events {}\nhttp { server { listen 80; autoindex on; } }\n")
    os.symlink(outside, tree / ".mastoaudit-waivers.yaml")
    proc = run_bounded("lint", str(tree), "-f", "json", "-o", "-", timeout=60)
    no_traceback(proc)
    assert proc.returncode == 2 and "outside the audited tree" in proc.stderr
    assert MARKER not in proc.stdout + proc.stderr
    os.unlink(tree / ".mastoaudit-waivers.yaml")
    os.mkfifo(tree / ".mastoaudit-waivers.yaml")
    proc = run_bounded("lint", str(tree), "-f", "json", "-o", "-", timeout=60)
    assert proc.returncode == 2 and "FIFO" in proc.stderr
