"""`federation peers --contacts FILE` holds people's addresses: the file is closed to others before
a byte is written, and never written through a symbolic link or into another user's file.

Before, an existing FILE (mode 644) was opened, truncated and written, and only then chmod-ed to
600: while the run wrote it, anyone on the host could read it; and a symbolic link planted at FILE
sent the addresses wherever it pointed."""

from __future__ import annotations

import os
import pwd

import pytest

from mastoaudit.federation import cli
from mastoaudit.federation.cli import FederationUsage, _write_private

TEXT = "domain,email\npeer.example,admin@peer.example\n"


@pytest.fixture
def mode_when_written(monkeypatch):
    """The file's mode at the moment the writer gets a file object for it (before any byte)."""
    seen: list[int] = []
    real = os.fdopen

    def fdopen(fd, *args, **kwargs):
        seen.append(os.fstat(fd).st_mode & 0o777)
        return real(fd, *args, **kwargs)

    monkeypatch.setattr(cli.os, "fdopen", fdopen)
    return seen


def test_an_existing_readable_file_is_closed_to_others_before_writing(tmp_path, mode_when_written):
    target = tmp_path / "contacts.csv"
    target.write_text("an older, longer file that others could read\n" * 10)
    os.chmod(target, 0o644)
    _write_private(target, TEXT, "--contacts")
    assert mode_when_written == [0o600]
    assert target.read_text() == TEXT  # the old content is gone, not appended to
    assert target.stat().st_mode & 0o777 == 0o600


def test_a_new_file_is_created_private(tmp_path, mode_when_written):
    target = tmp_path / "new" / "contacts.csv"
    old = os.umask(0)  # even with a permissive umask
    try:
        _write_private(target, TEXT, "--contacts")
    finally:
        os.umask(old)
    assert mode_when_written == [0o600] and target.read_text() == TEXT


def test_a_symbolic_link_is_refused_and_its_target_untouched(tmp_path):
    elsewhere = tmp_path / "public.txt"
    elsewhere.write_text("public\n")
    os.chmod(elsewhere, 0o644)
    link = tmp_path / "contacts.csv"
    link.symlink_to(elsewhere)
    with pytest.raises(FederationUsage, match="symbolic link"):
        _write_private(link, TEXT, "--contacts")
    assert elsewhere.read_text() == "public\n" and elsewhere.stat().st_mode & 0o777 == 0o644
    dangling = tmp_path / "dangling.csv"
    dangling.symlink_to(tmp_path / "would-be-created.csv")
    with pytest.raises(FederationUsage, match="symbolic link"):
        _write_private(dangling, TEXT, "--contacts")
    assert not (tmp_path / "would-be-created.csv").exists()


def test_a_hard_link_is_refused(tmp_path):
    other = tmp_path / "other.txt"
    other.write_text("x\n")
    os.link(other, tmp_path / "contacts.csv")
    with pytest.raises(FederationUsage, match="hard links"):
        _write_private(tmp_path / "contacts.csv", TEXT, "--contacts")
    assert other.read_text() == "x\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
def test_another_users_file_is_refused(tmp_path):
    planted = tmp_path / "contacts.csv"
    planted.write_text("")
    nobody = pwd.getpwnam("nobody")
    os.chown(planted, nobody.pw_uid, nobody.pw_gid)
    with pytest.raises(FederationUsage, match="another user"):
        _write_private(planted, TEXT, "--contacts")
    assert planted.read_text() == ""


def test_the_public_blocklist_keeps_following_links(tmp_path):
    """The domain-block CSV is meant to be shared (mode 644): a link to it in a config repository works."""
    real = tmp_path / "repo" / "blocks.csv"
    real.parent.mkdir()
    real.write_text("")
    (tmp_path / "blocks.csv").symlink_to(real)
    _write_private(tmp_path / "blocks.csv", "#domain\n", "--blocklist", mode=0o644)
    assert real.read_text() == "#domain\n" and real.stat().st_mode & 0o777 == 0o644
