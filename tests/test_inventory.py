"""Inventories: the examples load, and every validation error names the key and the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from mastoaudit.inventory import InventoryError, load_inventory

from .conftest import ROOT


def test_examples_load():
    inv = load_inventory(ROOT / "inventories" / "example.yaml")
    assert inv.local_domain == "example.social" and inv.web_domain == "mastodon.example.social"
    db = inv.host("db1")
    assert db is not None and db.roles == ("db", "redis") and db.ssh.jump == "web1" and db.ssh.sudo
    assert db.services.postgres_port == 5432
    assert inv.network.resolver == "192.0.2.53" and inv.network.dkim_selectors == ("mastodon",)
    assert inv.network.ports == (8080,) and inv.network.enabled
    py = load_inventory(ROOT / "inventories" / "pyinfra-example.py")
    assert {h.name for h in py.hosts} == {"web1.example.social", "db1.internal"}
    assert py.host("db1.internal").ssh.port == 2222


BASE = """instance:
  local_domain: example.social
hosts:
  web1:
    address: 192.0.2.1
    roles: [web]
"""


@pytest.mark.parametrize(("text", "where", "key"), [
    (BASE.replace("roles: [web]", "roles: [web, kitchen]"), ":6", "hosts.web1.roles"),
    (BASE.replace("    roles: [web]\n", "    roles: [web]\n    ssh: {port: 70000}\n"), ":7", "hosts.web1.ssh.port"),
    (BASE.replace("    roles: [web]\n", "    roles: [web]\n    colour: blue\n"), ":7", "hosts.web1.colour"),
    (BASE.replace("address: 192.0.2.1", "address: 'not a host!'"), ":5", "hosts.web1.address"),
    (BASE.replace("  local_domain: example.social\n", "  web_domain: x.example\n"), ":", "instance.local_domain"),
    (BASE.replace("    roles: [web]\n", ""), ":5", "hosts.web1.roles"),
    (BASE + "ssh:\n  sudo: maybe\n", ":8", "ssh.sudo"),
    (BASE + "network:\n  tls_profile: old\n", ":8", "network.tls_profile"),
    (BASE + "network:\n  ports: [0]\n", ":8", "network.ports"),
    (BASE + "network:\n  colour: blue\n", ":8", "network.colour"),
    (BASE.replace("    roles: [web]\n", "    roles: [web]\n    ssh: {jump: nowhere}\n"), "", "hosts.web1.ssh.jump"),
    ("instance: [\n", ":", "invalid YAML"),
    ("", "", "empty inventory"),
])
def test_errors_name_key_and_line(tmp_path: Path, text: str, where: str, key: str):
    path = tmp_path / "inv.yaml"
    path.write_text(text)
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    message = str(caught.value)
    assert key in message and f"inv.yaml{where}" in message, message


def test_pyinfra_inventory_is_not_executed(tmp_path: Path):
    path = tmp_path / "inv.py"
    marker = tmp_path / "ran"
    path.write_text(f"import os\nos.system('touch {marker}')\nweb = ['h1']\n")
    inv = load_inventory(path)
    assert [h.name for h in inv.hosts] == ["h1"] and not marker.exists()
    path.write_text("web = [lookup()]\n")
    with pytest.raises(InventoryError, match=r"inv.py:1"):
        load_inventory(path)
