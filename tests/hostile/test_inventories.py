"""Inventories of unexpected shapes are input errors with file and line, never a traceback and never
a failed run (issue 7, item 12). pyinfra inventories are read as data: every literal shape
Hypothesis can build is either an inventory or an InventoryError."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mastoaudit.inventory import InventoryError, load_inventory

from .conftest import HOSTILE, no_traceback, run_bounded

PYINFRA_SHAPES = [
    ("web = [1]\n", 1),
    ("web = [('h1',)]\n", 1),
    ("web = [('h1', {}, 'extra')]\n", 1),
    ("web = [('h1', 'not-a-dict')]\n", 1),
    ("web = [('h1', {'ssh_port': 'twenty-two'})]\n", None),
    ("web = [('h1', {'ssh_port': 70000})]\n", None),
    ("web = [('h1', {'ssh_port': True})]\n", None),
    ("web = [('h1', {'ssh_hostname': ['a', 'b']})]\n", None),
    ("web = [('h1', {'ssh_user': 'root\\x1b[2J'})]\n", None),
    ("web = [{['x']: 1}]\n", 1),
    ("web = [('h1', {1: 2})]\n", 1),
    ("web = ['not a host!']\n", 1),
    ("web = [lookup()]\n", 1),
    ("web = " + "[" * 300 + "]" * 300 + "\n", 1),
    ("web = " + "-" * 100_000 + "1\n", None),
    ("web = [" + "1" * 5000 + "]\n", 1),
    ("db = []\n", None),
    ("web = ['h1'\n", 1),
]

YAML_BASE = "instance:\n  local_domain: example.social\nhosts:\n  web1:\n    address: 192.0.2.1\n    roles: [web]\n"
YAML_SHAPES = [
    (YAML_BASE + "    ssh: {port: 70000}\n", 7),
    (YAML_BASE + "    services: {postgres_port: 0}\n", 7),
    (YAML_BASE + "    services: {redis_port: 99999}\n", 7),
    (YAML_BASE.replace("address: 192.0.2.1", "address: [a, b]"), 5),
    (YAML_BASE.replace("web1:", "[a, b]:"), 4),
    (YAML_BASE + "    ssh: {jump: 'u@h:99999'}\n", None),
    (YAML_BASE + "    ssh: {user: !!python/name:os.system x}\n", 7),
    (YAML_BASE + "    ssh: {user: !vault x}\n", 7),
    (YAML_BASE + "    ssh: {port: !!int abc}\n", 7),
    (YAML_BASE + "    ssh: {port: 1" + "0" * 5000 + "}\n", 7),
    (YAML_BASE + "    ssh: {connect_timeout: .nan}\n", 7),
    (YAML_BASE + "network:\n  resolve: {a.example: not-an-ip}\n", 8),
    (YAML_BASE + "network:\n  resolver: '10.0.0.1:0'\n", 8),
    ("instance: " + "[" * 20_000 + "]" * 20_000 + "\n", 1),
    ("- just\n- a list\n", 1),
    ("instance:\n  local_domain: 'x\n", None),
]


@pytest.mark.parametrize(("text", "line"), PYINFRA_SHAPES, ids=range(len(PYINFRA_SHAPES)))
def test_item_12_pyinfra_shapes_are_input_errors_with_file_and_line(tmp_path, text, line):
    path = tmp_path / "inventory.py"
    path.write_text(text)
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}:" if line else str(path)), message
    assert "\x1b" not in message


@pytest.mark.parametrize("entry", [
    "('h1', {'ssh_password': 'S3cret-PW'}, 3)",
    "('h1', {'_sudo_password': 'S3cret-PW'}, 'extra')",
    "['h1', 'S3cret-PW']",
    "{'ssh_password': 'S3cret-PW'}",
])
def test_a_malformed_pyinfra_host_is_described_by_its_shape_not_its_values(tmp_path, entry, capsys):
    """pyinfra host data holds passwords: the error quoted the entry's repr (ssh_password included)."""
    from mastoaudit.cli import main

    inventory = tmp_path / "inventory.py"
    inventory.write_text(f"web = [{entry}]\n")
    with pytest.raises(InventoryError) as info:
        load_inventory(inventory)
    assert "S3cret-PW" not in str(info.value) and "pair, not a" in str(info.value)
    assert main(["audit", "-i", str(inventory), "-o", str(tmp_path / "out")]) == 2
    assert "S3cret-PW" not in capsys.readouterr().err


@pytest.mark.parametrize(("text", "line"), YAML_SHAPES, ids=range(len(YAML_SHAPES)))
def test_item_12_yaml_shapes_are_input_errors_with_file_and_line(tmp_path, text, line):
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    assert str(caught.value).startswith(f"{path}:{line}:" if line else str(path)), caught.value


@pytest.mark.parametrize("text", ["web = [('h1', {'ssh_port': 70000})]\n", "web = [('h1', {'ssh_hostname': ['a']})]\n"])
def test_item_12_out_of_range_ports_and_list_host_names_exit_2(tmp_path, text):
    path = tmp_path / "inventory.py"
    path.write_text(text)
    proc = run_bounded("audit", "-i", str(path), "--no-network", timeout=60)
    no_traceback(proc)
    assert proc.returncode == 2 and "inventory.py" in proc.stderr


LITERALS = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner) | st.tuples(inner)
    | st.dictionaries(st.sampled_from(["ssh_port", "ssh_user", "ssh_hostname", "_sudo", "ssh_key", "x"]), inner,
                      max_size=3),
    max_leaves=12)


@HOSTILE
@given(groups=st.dictionaries(st.sampled_from(["web", "db", "redis", "app", "other"]), LITERALS, min_size=1,
                              max_size=3))
def test_any_pyinfra_literal_is_an_inventory_or_an_input_error(groups):
    text = "".join(f"{name} = {value!r}\n" for name, value in groups.items())
    with tempfile.TemporaryDirectory(prefix="mastoaudit-inv-") as tmp:
        path = Path(tmp) / "inventory.py"
        path.write_text(text)
        try:
            inventory = load_inventory(path)
        except InventoryError as exc:
            assert re.match(rf"{re.escape(str(path))}(:\d+)?: ", str(exc)), exc
            return
    for host in inventory.hosts:
        assert 0 < host.ssh.port < 65536 and isinstance(host.address, str) and isinstance(host.ssh.user, str)


YAML_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=10)
    | st.sampled_from(["!!int abc", "!vault x", "*nowhere", "&a [*a]", "[", "'", "22:22", ".inf"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["instance", "hosts", "local_domain", "web1", "address", "roles", "ssh", "port", "network",
                         "services", "resolve", "jump", "user"]), inner, max_size=4),
    max_leaves=15)


def _yaml(value, indent: int = 0) -> str:
    pad = "  " * indent
    if isinstance(value, dict):
        return "".join(f"{pad}{k}:\n{_yaml(v, indent + 1)}" if isinstance(v, dict | list) and v else
                       f"{pad}{k}: {_scalar(v)}\n" for k, v in value.items()) or f"{pad}{{}}\n"
    if isinstance(value, list):
        return "".join(f"{pad}- {_scalar(v)}\n" for v in value) or f"{pad}[]\n"
    return f"{pad}{_scalar(value)}\n"


def _scalar(value) -> str:
    if isinstance(value, str):
        return value if value[:1] in "!*&['." else repr(value)
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else repr(value) \
        if not isinstance(value, dict | list) else "[]"


@HOSTILE
@given(doc=YAML_VALUES)
def test_any_yaml_inventory_is_an_inventory_or_an_input_error(doc):
    with tempfile.TemporaryDirectory(prefix="mastoaudit-inv-") as tmp:
        path = Path(tmp) / "inventory.yaml"
        path.write_text(_yaml(doc))
        try:
            load_inventory(path)
        except InventoryError as exc:
            assert str(exc).startswith(str(path)), exc
