"""The terminal report and the progress display, as a user sees them: on a terminal (a real pty),
piped into a file or a CI log, with NO_COLOR, and with --quiet.

- On a terminal: colour, and only the report's own colour codes (a config's escape sequences are
  shown as text); the top findings first, then the components, then the details.
- Piped, with NO_COLOR or TERM=dumb: not one escape sequence, the same words.
- --quiet: the verdict and one line per failing check; no progress, no "wrote" lines.
- Progress: a line redrawn on standard error only when it is a terminal (a live audit over a real
  sshd), nothing at all when it is not.
"""

from __future__ import annotations

import io
import os
import pty
import re
import select
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from mastoaudit.reporting import terminal
from mastoaudit.reporting.document import build_document
from mastoaudit.reporting.priority import rank
from mastoaudit.reporting.progress import Progress

from .. import sshhost
from ..conftest import DEMO, FIXTURES, ROOT, lint

ESC = "\x1b"
# The report's own escape sequences: SGR colours and resets; the progress line's clear-line.
OWN = re.compile(r"\x1b\[(?:[0-9;]*m|2K)")


def run_on_terminal(*args: str, env: dict | None = None, stderr_terminal: bool = True,
                    timeout: float = 120) -> tuple[int, str, str]:
    """Run mastoaudit with standard output (and error) on pseudo-terminals, as in a shell."""
    out_master, out_slave = pty.openpty()
    if stderr_terminal:
        err_master, err_slave = pty.openpty()
    else:
        err_master, err_slave = os.pipe()
    full_env = {**os.environ, "COLUMNS": "160", "TERM": "xterm-256color", **(env or {})}
    for key, value in (env or {}).items():
        if value is None:
            full_env.pop(key, None)
    full_env = {k: v for k, v in full_env.items() if v is not None}
    proc = subprocess.Popen([sys.executable, "-m", "mastoaudit", *args], cwd=ROOT, env=full_env,
                            stdin=subprocess.DEVNULL, stdout=out_slave, stderr=err_slave, close_fds=True)
    os.close(out_slave)
    os.close(err_slave)
    chunks: dict[int, list[bytes]] = {out_master: [], err_master: []}
    open_fds = [out_master, err_master]
    while open_fds:
        ready, _, _ = select.select(open_fds, [], [], timeout)
        if not ready:
            proc.kill()
            raise AssertionError(f"mastoaudit {' '.join(args)} did not finish within {timeout} s")
        for fd in ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: the pty's other side closed
                data = b""
            if data:
                chunks[fd].append(data)
            else:
                open_fds.remove(fd)
                os.close(fd)
    code = proc.wait(timeout=timeout)

    def text(fd: int) -> str:
        return b"".join(chunks[fd]).decode("utf-8", "replace").replace("\r\n", "\n")

    return code, text(out_master), text(err_master)


def run_piped(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("NO_COLOR", None) if env is None or "NO_COLOR" not in env else None
    return subprocess.run([sys.executable, "-m", "mastoaudit", *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=120)


def sections_in_order(text: str) -> None:
    plain = OWN.sub("", text)
    first, components, details = (plain.index(h) for h in ("What to do first", "By component", "Findings ("))
    assert first < components < details


# ---------------------------------------------------------------------------------------- report


def test_top_findings_first_and_counts_by_component(registry):
    doc = build_document(lint(registry, DEMO / "weak"))
    text = terminal.render_document(doc)
    sections_in_order(text)
    checks = {c["id"]: c for c in doc["checks"]}
    actions = rank(doc["findings"], checks)
    top = re.findall(r"^  (\d+)\. (\w+)  priority (\d+)  (.*)$", text, re.M)
    assert [int(n) for n, *_ in top] == [1, 2, 3, 4, 5]
    assert [t for *_, t in top] == [a["title"] for a in actions[:5]]
    scores = [int(s) for _, _, s, _ in top]
    assert scores == sorted(scores, reverse=True) and scores[0] == 90
    assert f"and {len(actions) - 5} more failing checks" in text
    for a in actions[:5]:
        assert f"fix:   {a['check']['remediation']['text']}" in text
    # The failure listing follows the same ranking: the first FAIL line is the first action's check.
    first_fail = re.search(r"^FAIL  \w+\s+(\S+)", text, re.M)
    assert first_fail and first_fail.group(1) == actions[0]["check_id"]
    # One row per component with results, with its grade and counts.
    table = text[text.index("By component"):text.index("Findings (")]
    for comp in {f["component"] for f in doc["findings"]}:
        row = re.search(rf"^  {re.escape(comp)}\s+(\S+)\s+(\d+)\s+(\d+)", table, re.M)
        assert row, comp
        failed = sum(1 for f in doc["findings"] if f["component"] == comp and f["status"] == "fail")
        assert int(row.group(2)) == failed
    assert ESC not in text


def test_colour_is_painted_only_when_asked(registry):
    doc = build_document(lint(registry, FIXTURES / "reports" / "hostile"))
    plain, coloured = terminal.render_document(doc), terminal.render_document(doc, colour=True)
    assert ESC not in plain and "\\x1b[31m" in plain  # the config's escape, shown as text
    assert OWN.search(coloured)
    assert OWN.sub("", coloured) == plain  # the colours add nothing but colour


def test_hardened_run_says_nothing_to_do(registry):
    text = terminal.render_document(build_document(lint(registry, DEMO / "hardened")))
    assert "What to do first" not in text and "grade A+ (100/100)" in text
    assert "By component" in text


def test_colour_wanted_follows_the_terminal_and_no_color(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert terminal.colour_wanted(Tty()) and not terminal.colour_wanted(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not terminal.colour_wanted(Tty())
    monkeypatch.setenv("NO_COLOR", "")  # set but empty: no-color.org says it does not count
    assert terminal.colour_wanted(Tty())
    monkeypatch.setenv("TERM", "dumb")
    assert not terminal.colour_wanted(Tty())


# ------------------------------------------------------------------------------- the command line


def test_on_a_terminal_in_colour_with_only_our_escapes():
    code, out, err = run_on_terminal("lint", str(FIXTURES / "reports" / "hostile"), "-f", "terminal",
                                     env={"NO_COLOR": None})
    assert code in (1, 3), err
    assert OWN.search(out), "colour on a terminal"
    stray = [m.start() for m in re.finditer(ESC, out) if not OWN.match(out, m.start())]
    assert not stray, [out[i:i + 12] for i in stray]  # every escape in the output is one of ours
    assert "\\x1b[31m" in out  # the hostile config's own escape sequence, as text


def test_on_a_terminal_with_no_color_or_a_dumb_terminal():
    for env in ({"NO_COLOR": "1"}, {"TERM": "dumb", "NO_COLOR": None}):
        code, out, err = run_on_terminal("lint", "demo/weak", "-f", "terminal", env=env)
        assert code == 1, err
        assert ESC not in out and ESC not in err, env
        sections_in_order(out)


def test_piped_into_a_file_or_a_ci_log():
    done = run_piped("lint", "demo/weak", "-f", "terminal")
    assert done.returncode == 1, done.stderr
    assert ESC not in done.stdout and ESC not in done.stderr
    sections_in_order(done.stdout)
    assert "FAIL  critical" in done.stdout


def test_quiet_for_ci(tmp_path):
    done = run_piped("lint", "demo/weak", "-q", "-f", "terminal", "-f", "json", "-o", str(tmp_path))
    assert done.returncode == 1
    assert done.stderr == ""  # no progress, no "wrote" lines
    lines = done.stdout.splitlines()
    fails = [line for line in lines if line.startswith("FAIL")]
    import json

    doc = json.loads((tmp_path / "mastoaudit-lint.json").read_text())
    failing = {f["check_id"] for f in doc["findings"] if f["status"] == "fail"}
    assert len(fails) == len(failing) and {line.split()[2] for line in fails} == failing
    assert "What to do first" not in done.stdout and len(lines) == len(fails) + 5  # the verdict lines


# -------------------------------------------------------------------------------------- progress


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_one_line_on_a_terminal_and_clears_it():
    stream = FakeTty()
    with Progress.for_stream(stream) as progress:
        progress.stage("auditing 3 hosts over SSH", total=3)
        for host in ("web1", "db1", "web\x1b[2J2"):
            progress.advance(f"{host} done")
        progress.note("  db1: failed: host key refused")
    text = stream.getvalue()
    assert "auditing 3 hosts over SSH 3/3" in text and "web\\x1b[2J2 done" in text  # escaped
    assert "\n" in text and text.count("\n") == 1  # only the note stays
    assert text.endswith("\r\x1b[2K")  # the progress line is gone at the end
    assert "\x1b[2J" not in text


def test_progress_is_silent_when_not_a_terminal_or_quiet():
    for stream, quiet in ((io.StringIO(), False), (FakeTty(), True)):
        with Progress.for_stream(stream, quiet=quiet) as progress:
            progress.stage("probing from the network", total=2)
            progress.advance("tls done")
            progress.note("a note")
        assert stream.getvalue() == ""


@pytest.fixture(scope="module")
def ssh_inventory():
    if (reason := sshhost.can_run()) is not None:
        pytest.skip(reason)
    sshhost.ensure_test_users()
    base = Path(tempfile.mkdtemp(prefix="mastoaudit-term-"))
    os.chmod(base, 0o755)
    host = sshhost.start(base / "sshd")
    inventory = base / "inventory.yaml"
    rows = ["instance:", "  local_domain: demo.example", "ssh:", f"  user: {sshhost.AUDIT_USER}", "  sudo: true",
            f"  port: {host.port}", f"  key: {host.client_key}", f"  known_hosts: {host.known_hosts}", "hosts:"]
    for name in ("weak", "hardened"):
        rows += [f"  {name}:", "    address: 127.0.0.1", "    roles: [app, db, redis]",
                 f"    path_prefix: {ROOT / 'demo' / name}"]
    inventory.write_text("\n".join(rows) + "\n")
    yield inventory
    host.stop()


def test_a_fleet_audit_shows_progress_on_a_terminal_only(ssh_inventory, tmp_path):
    code, out, err = run_on_terminal("audit", "-i", str(ssh_inventory), "--no-network", "-f", "terminal",
                                     "-f", "json", "-o", str(tmp_path / "tty"), env={"NO_COLOR": None})
    assert code in (1, 3), out + err  # 3: the test sshd has no psql or redis-cli to ask
    assert "auditing 2 hosts of demo.example over SSH" in err and "2/2" in err
    assert err.rstrip("\n").endswith("\x1b[2K") or "wrote" in err  # the line is cleared before what follows
    sections_in_order(out)
    # The same run with standard error in a file: no progress at all.
    done = subprocess.run([sys.executable, "-m", "mastoaudit", "audit", "-i", str(ssh_inventory), "--no-network",
                           "-f", "json", "-o", str(tmp_path / "piped")], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode in (1, 3), done.stderr
    assert "auditing" not in done.stderr and ESC not in done.stderr
    # ... and --quiet on a terminal: none either.
    code, out, err = run_on_terminal("audit", "-i", str(ssh_inventory), "--no-network", "-q", "-f", "terminal",
                                     "-o", str(tmp_path / "quiet" / "x.txt"))
    assert "auditing" not in err
