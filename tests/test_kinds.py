"""The fact kind catalogue (mastoaudit/kinds.py): every kind declared once with its type, component and
sources; `needs` checked when a check is defined; `modes` derived; facts typed when added."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mastoaudit import kinds
from mastoaudit.checkdef import LEGACY_IDS, Remediation, check, take_defined
from mastoaudit.facts import FactSet
from mastoaudit.model import COMPONENTS
from mastoaudit.registry import default_registry
from mastoaudit.selection import Selection

from .conftest import ROOT

REGISTRY = default_registry(plugins=False)


def _define(**kw):
    values = dict(id="host.test-check", title="t", component="host", severity="low", threats=["T-HOST-COMPROMISE"],
                  needs=[kinds.SSHD_CONFIG], rationale="r", remediation=Remediation("x"))
    values.update(kw)
    try:
        check(**values)(lambda facts: [])
    finally:
        take_defined()


def test_every_kind_resolves_to_its_declared_type_and_annotation():
    annotations = vars(kinds)["__annotations__"]
    for name, value in vars(kinds).items():
        if isinstance(value, kinds.FactKind):
            assert value.type is not None, name
            assert annotations[name] == f"FactKind[{value.type.__name__}]", name
            assert value.component in COMPONENTS and value.sources, name
            assert kinds.get(value.name) is value


def test_an_unknown_kind_is_an_error_when_the_check_is_defined():
    with pytest.raises(ValueError, match="unknown fact kind 'redis_cnf'"):
        _define(needs=["redis_cnf"])
    with pytest.raises(ValueError, match="reads the unknown fact kind 'nope'"):
        _define(needs=[], reads=["nope"])


def test_modes_follow_from_needs():
    assert kinds.modes([kinds.NGINX]) == ("static", "live")
    assert kinds.modes([kinds.LISTENING]) == ("live",)
    assert kinds.modes([kinds.TLS_ENDPOINT]) == ("network",)
    assert kinds.modes([kinds.REDIS_LIVE, kinds.REDIS_CONF]) == ("live",)  # only live hosts have both
    assert kinds.modes([], [kinds.MASTODON_VERSION, kinds.COMPOSE]) == ("static", "live", "network")
    with pytest.raises(ValueError, match="no source produces all of"):
        _define(needs=[kinds.TLS_ENDPOINT, kinds.NGINX])
    with pytest.raises(ValueError, match="differ from what its facts imply"):
        _define(modes=("network",))
    by_id = {c.meta.id: c.meta for c in REGISTRY}
    assert by_id["host.firewall"].modes == ("live",)
    assert by_id["nginx.hsts"].modes == ("static", "live")
    assert by_id["http.hsts"].modes == ("network",)
    assert by_id["app.mastodon-version"].modes == ("static", "live", "network")


def test_facts_are_typed_when_added():
    facts = FactSet("t")
    with pytest.raises(TypeError, match="not a redis_conf fact"):
        facts.add(kinds.REDIS_CONF, "requirepass x")
    with pytest.raises(kinds.UnknownKind):
        facts.add("redis_cnf", object())


def test_a_kind_is_declared_once():
    assert kinds.declare("nginx", "mastoaudit.parsers.nginx:NginxConfig", "nginx", ["static", "live"], "again")
    with pytest.raises(ValueError, match="already declared"):
        kinds.declare("nginx", dict, "nginx", ["static", "live"], "another type")
    with pytest.raises(ValueError, match="unknown component"):
        kinds.declare("widget", dict, "web", ["network"], "x")
    with pytest.raises(ValueError, match="sources are some of"):
        kinds.declare("widget", dict, "app", ["ssh"], "x")


def test_every_live_fact_produces_declared_kinds_and_every_live_kind_has_a_command():
    produced = {k.name for fact in kinds.LIVE_FACTS for k in fact.produces}
    for kind in kinds.all_kinds():
        if kind.sources == ("live",):
            assert kind.name in produced or kind.name == "host_info", kind.name
    for fact in kinds.LIVE_FACTS:
        if fact.planned_by == "audit":
            hook = fact.collect or fact.parse
            assert callable(kinds.load(hook)), hook
        else:  # read by the command that plans it (federation impact -i)
            assert fact.planned_by == "federation" and fact.collect is fact.parse is None, fact.id


def test_an_audit_never_plans_the_federation_database_read():
    from mastoaudit.inventory import Host, Inventory, SshSettings
    from mastoaudit.sources.remote_commands import table
    from mastoaudit.sources.ssh import plan

    host = Host("db1", "192.0.2.5", ("db", "web", "redis", "search"), SshSettings())
    planned = {p.id for p in plan(Inventory("inv.yml", "x.test", "x.test", hosts=[host]), host)}
    assert "postgres-state" in planned and "mastodon-db-federation" not in planned
    assert "mastodon-db-federation" in table()


def test_a_plugin_declares_a_kind_of_its_own(tmp_path):
    (tmp_path / "widgets.py").write_text(textwrap.dedent('''
        from dataclasses import dataclass
        from mastoaudit import kinds
        from mastoaudit.checkdef import Remediation, check, failed

        @dataclass
        class Widget:
            name: str

        WIDGET = kinds.declare("acme_widget", Widget, "app", ["network"], "Acme's widget endpoint")

        @check(id="app.acme-widget", title="No widget", component="app", severity="low",
               threats=["T-APP-INFO-LEAK"], needs=[WIDGET], rationale="test", remediation=Remediation("none"))
        def widget(facts):
            for w in facts.all(WIDGET):
                yield failed(f"widget {w.name} answers")
    '''))
    registry = default_registry([tmp_path], plugins=False)
    meta = registry.get("app.acme-widget").meta
    assert meta.needs == ("acme_widget",) and meta.modes == ("network",)
    widget_type = kinds.get("acme_widget").type
    facts = FactSet("t")
    facts.add("acme_widget", widget_type("w1"))
    [outcome] = list(registry.get("app.acme-widget").run(facts))
    assert outcome.message == "widget w1 answers"


def test_a_plugin_needing_an_undeclared_kind_is_a_usage_error(tmp_path):
    (tmp_path / "typo.py").write_text(textwrap.dedent('''
        from mastoaudit.checkdef import Remediation, check
        @check(id="app.typo", title="t", component="app", severity="low", threats=["T-APP-INFO-LEAK"],
               needs=["mastodon_enV"], rationale="x", remediation=Remediation("x"))
        def typo(facts):
            return []
    '''))
    done = subprocess.run([sys.executable, "-m", "mastoaudit", "checks", "list", "--checks-dir", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 2 and "unknown fact kind 'mastodon_enV'" in done.stderr


# --- ids and selection --------------------------------------------------------------------------------


def test_built_in_ids_start_with_their_component_but_the_legacy_ones():
    legacy = [c.meta.id for c in REGISTRY if not c.meta.id.startswith(f"{c.meta.component}.")]
    assert sorted(legacy) == sorted(LEGACY_IDS)  # no new id may join the list
    assert len(LEGACY_IDS) == 49
    for check_id in LEGACY_IDS:
        assert check_id.partition(".")[0] not in COMPONENTS


def test_an_id_that_names_another_component_is_refused():
    with pytest.raises(ValueError, match="names the component nginx"):
        _define(id="nginx.something", component="tls", needs=[kinds.NGINX])


@pytest.mark.parametrize("component", COMPONENTS)
def test_glob_and_component_select_the_same_checks(component):
    by_glob = {c.meta.id for c in REGISTRY if Selection.parse([f"{component}.*"], None).wants(c.meta)}
    by_component = {c.meta.id for c in REGISTRY if Selection.parse([f"component:{component}"], None).wants(c.meta)}
    assert by_glob == by_component


def test_legacy_ids_answer_to_their_own_prefix_and_to_their_component():
    wants = Selection.parse(["http.*"], None).wants
    assert {c.meta.id for c in REGISTRY if wants(c.meta)} == {i for i in LEGACY_IDS if i.startswith("http.")}
    assert Selection.parse(["nginx.http.hsts"], None).wants(REGISTRY.get("http.hsts").meta)
    assert Selection.parse(["http.hsts"], None).wants(REGISTRY.get("http.hsts").meta)
    assert not Selection.parse(["nginx.*"], None).wants(REGISTRY.get("http.csp").meta)  # http.csp is app's


def test_kinds_module_stays_light():
    """The SSH worker builds its command table from kinds.py: it must not import the parsers."""
    code = ("import sys, mastoaudit.kinds, mastoaudit.sources.remote_commands as r; r.table(); "
            "print(sorted(m for m in sys.modules if m.startswith('mastoaudit.parsers') or m.startswith('yaml')"
            " or m.startswith('crossplane')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"\[\]\s*", done.stdout), done.stdout


def test_every_check_lives_in_the_module_of_its_component():
    """checks/<component>.py holds the static, live and network checks of one component."""
    import mastoaudit_checks

    for c in REGISTRY:
        assert c.run.__module__ == f"mastoaudit_checks.{c.meta.component.replace('-', '_')}", c.meta.id
    modules = {p.stem for p in Path(mastoaudit_checks.__file__).parent.glob("*.py")} - {"__init__"}
    assert modules <= {c.replace("-", "_") for c in COMPONENTS}, modules
