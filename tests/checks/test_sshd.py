"""The sshd checks judge a keyword left unset by the defaults of the sshd that reads the file:
OpenSSH's own, or FreeBSD's build (root and plain passwords refused, keyboard-interactive through
PAM still on). Found by the holdout's freebsd-jails tree (tests/holdout/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mastoaudit.parsers import SourceFile
from mastoaudit.parsers.sshd import parse_sshd_config

from ..conftest import lint, results_for

FREEBSD_STOCK = """\
# Note that some of FreeBSD's defaults differ from OpenBSD's, and
# FreeBSD has a few additional options.
#PermitRootLogin no
#PasswordAuthentication no
#KbdInteractiveAuthentication yes
#UsePAM yes
Subsystem	sftp	/usr/libexec/sftp-server
"""


def verdict(registry, tmp_path: Path, text: str, check_id: str) -> tuple[str, str]:
    (tmp_path / "etc" / "ssh").mkdir(parents=True, exist_ok=True)
    (tmp_path / "etc" / "ssh" / "sshd_config").write_text(text)
    (finding,) = results_for(lint(registry, tmp_path, select=[check_id]), check_id)
    return finding.status.value, finding.message


def test_the_defaults_are_freebsds_only_in_freebsds_file():
    assert parse_sshd_config(SourceFile("etc/ssh/sshd_config", FREEBSD_STOCK.encode())).defaults_of == "FreeBSD"
    upstream = parse_sshd_config(SourceFile("etc/ssh/sshd_config", b"Subsystem sftp /usr/libexec/sftp-server\n"))
    assert upstream.defaults_of == "OpenSSH" and upstream.value("PermitRootLogin") == "prohibit-password"


@pytest.mark.parametrize(("text", "status", "words"), [
    (FREEBSD_STOCK, "pass", "FreeBSD's sshd then refuses root"),
    (FREEBSD_STOCK + "PermitRootLogin yes\n", "fail", "with a password"),
    ("UsePAM yes\n", "warn", "allows root logins with a key"),  # OpenSSH's default: prohibit-password
])
def test_root_login_left_unset(registry, tmp_path, text, status, words):
    got = verdict(registry, tmp_path, text, "host.sshd-root-login")
    assert got[0] == status and words in got[1], got


@pytest.mark.parametrize(("text", "status", "words"), [
    # FreeBSD's stock file: PasswordAuthentication is no, but PAM asks for the password
    (FREEBSD_STOCK, "fail", "KbdInteractiveAuthentication unset: FreeBSD's default yes"),
    (FREEBSD_STOCK + "KbdInteractiveAuthentication no\n", "pass", "PasswordAuthentication unset: FreeBSD's default no"),
    (FREEBSD_STOCK + "UsePAM no\n", "pass", "password authentication is off"),
    # OpenSSH's defaults: keyboard-interactive is on unless turned off
    ("PasswordAuthentication no\nUsePAM yes\n", "fail", "through PAM still asks for passwords"),
    ("PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM yes\n", "pass", "off"),
    ("PasswordAuthentication no\n", "pass", "off"),  # OpenSSH without PAM: keyboard-interactive has no password
    ("UsePAM yes\n", "fail", "PasswordAuthentication unset: OpenSSH's default yes"),
])
def test_password_auth_left_unset(registry, tmp_path, text, status, words):
    got = verdict(registry, tmp_path, text, "host.sshd-password-auth")
    assert got[0] == status and words in got[1], got
