"""Resource bounds: no input makes the run hang or eat the machine (issue 7, items 8-10).

Each risky input runs through the command line in a child with an address-space limit and a
timeout: include bombs (nginx, Redis, PostgreSQL, sshd), YAML alias bombs and deep nesting in every
YAML reader, a config with thousands of server blocks.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mastoaudit import yamlsafe
from mastoaudit.inventory import InventoryError, load_inventory
from mastoaudit.parsers.base import ParseError, SourceFile
from mastoaudit.parsers.elasticsearch import parse_elasticsearch_yml

from .conftest import no_traceback, run_bounded

GLOB_BOMBS = {
    "nginx": ({"etc/nginx/nginx.conf": "events {}\nhttp {\n  include /etc/nginx/conf.d/*.conf;\n}\n"},
              "etc/nginx/conf.d/{n}.conf", "include /etc/nginx/conf.d/*.conf;\nserver_tokens off;\n"),
    "redis": ({"etc/redis/redis.conf": "include /etc/redis/r*.conf\nport 6379\n"},
              "etc/redis/r{n}.conf", "include /etc/redis/r*.conf\n"),
    "postgresql": ({"etc/postgresql/15/main/postgresql.conf": "include_dir 'conf.d'\n"},
                   "etc/postgresql/15/main/conf.d/{n}.conf", "include_dir '/etc/postgresql/15/main/conf.d'\n"),
    "sshd": ({"etc/ssh/sshd_config": "Include /etc/ssh/sshd_config.d/*.conf\nPermitRootLogin no\n"},
             "etc/ssh/sshd_config.d/{n}.conf", "Include /etc/ssh/sshd_config.d/*.conf\n"),
}


@pytest.mark.parametrize("kind", sorted(GLOB_BOMBS))
def test_item_8_include_globs_that_include_themselves_are_one_input_error(tmp_path, kind):
    """8 files that each include the glob again: exponential before (over 60 s, 7.6 MB report)."""
    mains, pattern, body = GLOB_BOMBS[kind]
    for rel, text in mains.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    for n in range(8):
        (tmp_path / pattern.format(n=n)).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / pattern.format(n=n)).write_text(body)
    proc = run_bounded("lint", str(tmp_path), "-f", "json", "-o", "-", timeout=60, memory_mb=1024)
    no_traceback(proc)
    assert proc.returncode == 3
    assert len(proc.stdout) < 1_000_000
    errors = [f for f in json.loads(proc.stdout)["findings"] if f["status"] == "error"]
    assert errors and len(errors) <= 16  # one per configuration root, not one per path through the glob
    assert all("include" in f["message"].lower() for f in errors)


def _alias_bomb(levels: int = 9) -> str:
    lines = ["a0: &a0 [xxxxxxxxxxxxxxxxxxxx, xxxxxxxxxxxxxxxxxxxx, xxxxxxxxxxxxxxxxxxxx]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("where", ["environment", "command", "entrypoint", "ports", "volumes"])
def test_item_9_compose_alias_bomb_is_refused(tmp_path, where):
    compose = tmp_path / "srv" / "docker-compose.yml"
    compose.parent.mkdir()
    compose.write_text(f"x-bomb:\n  {_alias_bomb().replace(chr(10), chr(10) + '  ')}\n"
                       f"services:\n  web:\n    image: x\n    {where}: *a8\n")
    proc = run_bounded("lint", str(tmp_path), "-f", "json", "-o", "-", timeout=60, memory_mb=1024)
    no_traceback(proc)
    assert proc.returncode == 3
    [error] = [f for f in json.loads(proc.stdout)["findings"] if f["status"] == "error"]
    assert "expands" in error["message"] and error["location"]["line"]


def test_item_9_every_yaml_reader_bounds_aliases_depth_and_tags(tmp_path):
    deep = "a: " + "[" * 20_000 + "]" * 20_000 + "\n"
    for text, words in [(_alias_bomb(), "expands"), (deep, "nest"), ("a: !!python/name:os.system x\n", "tag"),
                        ("a: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n", "tag"), ("a: !!int abc\n", "!!int")]:
        with pytest.raises(yamlsafe.YamlError) as caught:
            yamlsafe.load(text)
        assert words in caught.value.problem and caught.value.line
        with pytest.raises(ParseError) as parsed:
            parse_elasticsearch_yml(SourceFile("elasticsearch.yml", text.encode()))
        assert words in parsed.value.message and parsed.value.line
        inventory = tmp_path / "inv.yaml"
        inventory.write_text(text)
        with pytest.raises(InventoryError, match=r"inv\.yaml:\d+: "):
            load_inventory(inventory)


def test_yaml_within_bounds_still_reads():
    assert yamlsafe.load("base: &b {x: 1}\nm: {<<: *b, y: [1, 2.5, true, null, '22:22']}\n") == {
        "base": {"x": 1}, "m": {"x": 1, "y": [1, 2.5, True, None, "22:22"]}}
    node = yamlsafe.compose("ports: ['22:22', yes]\n", core_schema=True)
    assert [n.value for n in node.value[0][1].value] == ["22:22", "yes"]


def _server_blocks(tmp: Path, blocks: int) -> Path:
    conf = tmp / str(blocks) / "etc" / "nginx" / "nginx.conf"
    conf.parent.mkdir(parents=True)
    server = ("server {{ listen 443 ssl; server_name s{n}.example.org; "
              "location / {{ proxy_pass http://[::1]:3000; }} }}\n")
    conf.write_text("events {}\nhttp {\n" + "".join(server.format(n=n) for n in range(blocks)) + "}\n")
    return conf.parent.parent.parent


def test_item_10_a_huge_config_gives_usable_reports_and_keeps_every_finding(tmp_path):
    """Reports people read are bounded per check (twice the blocks, the same size), the JSON report
    holds every finding, and the run stays within a memory limit."""
    sizes = {}
    for blocks in (400, 800):
        out = tmp_path / f"out-{blocks}"
        proc = run_bounded("lint", str(_server_blocks(tmp_path, blocks)), "-o", f"{out}/", "-f", "json", "-f", "html",
                           "-f", "junit", "-f", "sarif", "-f", "terminal", timeout=300, memory_mb=1024)
        no_traceback(proc)
        assert proc.returncode == 1
        doc = json.loads((out / "mastoaudit-lint.json").read_text())
        per_block = [f for f in doc["findings"] if f["check_id"] == "nginx.proxy-headers"]
        assert len(per_block) == blocks  # every finding, in JSON
        sizes[blocks] = {p.suffix: p.stat().st_size for p in out.iterdir()} | {"stdout": len(proc.stdout)}
        page = (out / "mastoaudit-lint.html").read_text()
        assert f"and {blocks - 50} more <code>nginx.proxy-headers</code> failures" in page
    for kind in (".html", ".xml", "stdout"):
        assert sizes[800][kind] < sizes[400][kind] * 1.2, (kind, sizes)
    assert sizes[800][".json"] > sizes[400][".json"] * 1.8
