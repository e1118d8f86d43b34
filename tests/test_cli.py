"""The command line: exit codes, selection, output placement, plugins, diff and fix --plan."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mastoaudit.cli import main

from .conftest import DEMO, FIXTURES, ROOT

SSHD_WEAK = "demo/weak/etc/ssh/sshd_config"


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_checks_list_and_json(capsys):
    code, out, _ = run_cli(capsys, "checks", "list")
    assert code == 0 and "host.sshd-root-login" in out
    code, out, _ = run_cli(capsys, "checks", "list", "--format", "json")
    ids = {c["id"] for c in json.loads(out)}
    assert "host.sshd-password-auth" in ids
    code, out, _ = run_cli(capsys, "checks", "list", "--format", "json", "--select", "severity:critical")
    assert all(c["severity"] == "critical" for c in json.loads(out))


def test_checks_show(capsys):
    code, out, _ = run_cli(capsys, "checks", "show", "host.sshd-root-login")
    assert code == 0 and "T-ADMIN-ACCESS" in out and "PermitRootLogin no" in out
    code, _, err = run_cli(capsys, "checks", "show", "no.such-check")
    assert code == 2 and "no.such-check" in err


def test_threat_coverage_lists_people_mitigations(capsys):
    _code, out, _ = run_cli(capsys, "checks", "threats", "--format", "json")
    rows = {r["id"]: r for r in json.loads(out)}
    assert "host.sshd-root-login" in rows["T-ADMIN-ACCESS"]["checks"]
    assert rows["T-FED-MALICIOUS-INSTANCE"]["people"], "vetting peers is left to people"


def test_missing_path_is_a_usage_error(capsys, tmp_path):
    code, _, err = run_cli(capsys, "lint", str(tmp_path / "nope"), "-o", str(tmp_path / "r.json"), "-f", "json")
    assert code == 2 and "nope" in err and "Traceback" not in err


@pytest.mark.parametrize("argv", [
    ["lint", "demo/weak", "--fail-on", "severe"],
    ["lint", "demo/weak", "--select", "colour:blue"],
    ["lint", "demo/weak", "--select", "component:kitchen"],
])
def test_bad_options_exit_2(capsys, argv):
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and "error" in err


def test_fail_on_thresholds(capsys, tmp_path):
    out = str(tmp_path / "r.json")
    args = ["lint", "demo/weak", "--select", "host.sshd-*", "-f", "json", "-o", out]
    assert run_cli(capsys, *args)[0] == 1  # default: low
    assert run_cli(capsys, *args, "--fail-on", "never")[0] == 0
    assert run_cli(capsys, *args, "--fail-on", "critical")[0] == 1  # PermitEmptyPasswords yes is critical
    only_high = ["lint", "demo/weak", "--select", "host.sshd-root-login", "-f", "json", "-o", out]
    assert run_cli(capsys, *only_high, "--fail-on", "critical")[0] == 0
    assert run_cli(capsys, "lint", "demo/hardened", "--select", "host.sshd-*", "-f", "json", "-o", out)[0] == 0


def test_malformed_input_is_an_error_finding_and_exit_3(capsys, tmp_path):
    out = tmp_path / "r.json"
    code, _, err = run_cli(capsys, "lint", str(FIXTURES / "cli" / "broken"), "demo/weak",
                           "--select", "host.sshd-*", "-f", "json", "-o", str(out))
    assert code == 3 and "Traceback" not in err
    doc = json.loads(out.read_text())
    errors = [f for f in doc["findings"] if f["status"] == "error"]
    assert errors and errors[0]["location"]["file"].endswith("broken/etc/ssh/sshd_config")
    assert errors[0]["location"]["line"] == 2
    # the other target was still audited
    assert any(f["target"] == "demo/weak" and f["status"] == "fail" for f in doc["findings"])


def test_output_placement(capsys, tmp_path):
    single = tmp_path / "one.json"
    run_cli(capsys, "lint", "demo/weak", "-f", "json", "-o", str(single), "--fail-on", "never")
    assert json.loads(single.read_text())["schema_version"] == "1.2"
    folder = tmp_path / "many"
    run_cli(capsys, "lint", "demo/weak", "-f", "json", "-f", "terminal", "-f", "junit", "-o", str(folder),
            "--fail-on", "never")
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["mastoaudit-lint.json", "mastoaudit-lint.xml"]
    _code, out, _ = run_cli(capsys, "lint", "demo/weak", "-f", "json", "-o", "-", "--fail-on", "never")
    assert json.loads(out)["tool"]["name"] == "mastoaudit"


def test_checks_dir_loads_a_local_check(capsys, tmp_path):
    (tmp_path / "mine.py").write_text(textwrap.dedent('''
        from mastoaudit.checkdef import Remediation, check, failed
        @check(id="local.always-fails", title="A local check", component="host", severity="low",
               threats=["T-HOST-COMPROMISE"], needs=["sshd_config"], rationale="test",
               remediation=Remediation("none"))
        def always(facts):
            for conf in facts.all("sshd_config"):
                yield failed("local check ran", at=conf.at(1))
    '''))
    code, out, _ = run_cli(capsys, "checks", "list", "--checks-dir", str(tmp_path))
    assert "local.always-fails" in out
    code, out, _ = run_cli(capsys, "lint", "demo/hardened", "--checks-dir", str(tmp_path),
                           "--select", "local.*", "-f", "json", "-o", "-")
    assert code == 1 and "local check ran" in out


def test_checks_dir_with_bad_metadata_is_a_usage_error(capsys, tmp_path):
    (tmp_path / "bad.py").write_text(textwrap.dedent('''
        from mastoaudit.checkdef import Remediation, check
        @check(id="local.bad", title="x", component="host", severity="low", threats=["T-NOPE"],
               needs=[], rationale="x", remediation=Remediation("x"))
        def bad(facts):
            return []
    '''))
    code, _, err = run_cli(capsys, "checks", "list", "--checks-dir", str(tmp_path))
    assert code == 2 and "T-NOPE" in err and "bad.py" in err


def test_entry_point_plugin_is_loaded(tmp_path):
    """A third-party package registers checks through the `mastoaudit.checks` entry-point group."""
    site = tmp_path / "site"
    (site / "mastoaudit_example_plugin").mkdir(parents=True)
    (site / "mastoaudit_example_plugin" / "__init__.py").write_text(textwrap.dedent('''
        from mastoaudit.checkdef import Remediation, check, passed
        @check(id="example.plugin-check", title="Plugin check", component="host", severity="info",
               threats=["T-HOST-COMPROMISE"], needs=[], rationale="x", remediation=Remediation("x"))
        def plugin_check(facts):
            yield passed("plugin ran")
    '''))
    dist = site / "mastoaudit_example_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mastoaudit-example-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[mastoaudit.checks]\nexample = mastoaudit_example_plugin\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    listed = subprocess.run([sys.executable, "-m", "mastoaudit", "checks", "list"], capture_output=True,
                            text=True, env=env, cwd=ROOT, timeout=60)
    assert listed.returncode == 0 and "example.plugin-check" in listed.stdout
    bare = subprocess.run([sys.executable, "-m", "mastoaudit", "checks", "list", "--no-plugins"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert "example.plugin-check" not in bare.stdout


def test_diff_reports_new_and_resolved(capsys, tmp_path):
    before, after = tmp_path / "before.json", tmp_path / "after.json"
    sel = ["--select", "host.sshd-*", "-f", "json", "--fail-on", "never"]
    run_cli(capsys, "lint", "demo/weak", *sel, "-o", str(before))
    doc = json.loads(before.read_text())
    # The next compliance run: root login fixed, a new failure appeared.
    fixed = [f for f in doc["findings"] if f["check_id"] != "host.sshd-root-login"]
    newcomer = dict(fixed[0], check_id="host.sshd-new", fingerprint="f" * 24, status="fail", severity="high")
    after.write_text(json.dumps({**doc, "findings": [*fixed, newcomer]}))
    code, out, _ = run_cli(capsys, "diff", str(before), str(after), "-f", "json")
    diff = json.loads(out)
    assert [f["check_id"] for f in diff["resolved"]] == ["host.sshd-root-login"]
    assert [f["check_id"] for f in diff["new"]] == ["host.sshd-new"]
    assert code == 1
    assert run_cli(capsys, "diff", str(before), str(after), "--fail-on", "critical")[0] == 0


def test_diff_rejects_bad_reports(capsys, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"findings": [\n oops')
    code, _, err = run_cli(capsys, "diff", str(bad), str(bad))
    assert code == 2 and "bad.json:2" in err
    other = tmp_path / "other.json"
    other.write_text('{"schema_version": "9.0", "findings": []}')
    code, _, err = run_cli(capsys, "diff", str(other), str(other))
    assert code == 2 and "9.0" in err


def test_fix_plan_changes_nothing(capsys):
    before = Path(SSHD_WEAK).read_bytes()
    code, out, _ = run_cli(capsys, "fix", "--plan", "demo/weak")
    assert code == 0 and "PermitRootLogin no" in out and "line 3" in out
    assert Path(SSHD_WEAK).read_bytes() == before


def test_python_dash_m_and_console_script():
    done = subprocess.run([sys.executable, "-m", "mastoaudit", "--version"], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert done.returncode == 0 and "mastoaudit" in done.stdout
    assert DEMO.is_dir()


def test_lint_does_not_load_the_network_stack(tmp_path):
    """Checks read fact types from neutral modules (mastoaudit/facts/), never from a probe: a lint
    (CI on a config repository) loads no TLS scanner, S3 client, DNS library or SSH stack."""
    code = ("import sys\nfrom mastoaudit.cli import main\n"
            f"code = main(['lint', 'demo/hardened', '-f', 'json', '-o', {str(tmp_path / 'r.json')!r}])\n"
            "print(' '.join(sorted(sys.modules)))\nsys.exit(code)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split())
    heavy = {"sslyze", "nassl", "boto3", "botocore", "dns", "cryptography", "pyinfra", "gevent", "paramiko"}
    assert not {m.split(".")[0] for m in loaded} & heavy
    assert not [m for m in loaded if m.startswith(("mastoaudit.probes", "mastoaudit.net.dns", "mastoaudit.net.http",
                                                   "mastoaudit.net.runner", "mastoaudit.sources.ssh"))]


def test_audit_with_checks_that_fail_to_load_ends_without_waiting_for_ssh(capsys, tmp_path, monkeypatch):
    """Checks that cannot load end an audit as a usage error at once: the SSH worker, started
    first, is stopped rather than waited for (it could take a host's whole time limit)."""
    from mastoaudit.sources.ssh import SshCollection

    def waited(self, *args, **kwargs):
        raise AssertionError("the audit waited for the SSH worker's results")

    monkeypatch.setattr(SshCollection, "finish", waited)
    monkeypatch.setattr(SshCollection, "gather", waited)
    (tmp_path / "checks").mkdir()
    (tmp_path / "checks/bad.py").write_text(textwrap.dedent('''
        from mastoaudit.checkdef import Remediation, check
        @check(id="local.bad", title="x", component="host", severity="low", threats=["T-NOPE"],
               needs=[], rationale="x", remediation=Remediation("x"))
        def bad(facts):
            return []
    '''))
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(textwrap.dedent('''
        instance: {local_domain: example.social}
        network: {enabled: false}
        ssh: {connect_timeout: 30, host_timeout: 60, known_hosts: /dev/null}
        hosts:
          web1: {address: 192.0.2.1, roles: [web]}
    '''))
    code, _, err = run_cli(capsys, "audit", "-i", str(inventory), "--checks-dir", str(tmp_path / "checks"))
    assert code == 2 and "T-NOPE" in err
