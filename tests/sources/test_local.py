"""The local tree: a copy of a host's files, links and all. The same file reached through a link is
one file; an absolute link means the host's path, which the copy holds (Mastodon's guide enables its
site with `ln -s /etc/nginx/sites-available/mastodon /etc/nginx/sites-enabled/`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mastoaudit.model import SkipReason, Status
from mastoaudit.sources.local import LocalTree, OutsideTree, collect_tree

NGINX_CONF = ("events {}\nhttp {\n  include /etc/nginx/modules-enabled/*.conf;\n"
              "  include /etc/nginx/sites-enabled/*;\n}\n")
SITE = "server {\n  listen 80;\n  server_name a.example;\n}\n"


def _host_copy(root: Path) -> Path:
    (root / "etc/nginx/sites-available").mkdir(parents=True)
    (root / "etc/nginx/sites-enabled").mkdir()
    (root / "etc/nginx/nginx.conf").write_text(NGINX_CONF)
    (root / "etc/nginx/sites-available/mastodon").write_text(SITE)
    os.symlink("/etc/nginx/sites-available/mastodon", root / "etc/nginx/sites-enabled/mastodon")
    return root


@pytest.mark.parametrize("audited", [".", "etc/nginx"])  # a copy of `/`, or of /etc/nginx alone
def test_an_absolute_link_means_the_same_file_in_the_copy(tmp_path, audited):
    root = _host_copy(tmp_path)
    facts = collect_tree(root / audited)
    assert not facts.problems, [p.message for p in facts.problems]
    [conf] = facts.all("nginx")
    assert [s.names for s in conf.servers()] == [("a.example",)]  # the site, read once


def test_an_absolute_link_the_copy_does_not_hold_stays_outside(tmp_path):
    root = _host_copy(tmp_path)
    os.symlink("/usr/lib/elsewhere/other.conf", root / "etc/nginx/sites-enabled/other")
    tree = LocalTree(root)
    with pytest.raises(OutsideTree):
        tree.resolve(str(root / "etc/nginx/sites-enabled/other"))
    facts = collect_tree(root)
    [problem] = facts.problems
    assert problem.status is Status.ERROR and "outside the audited tree" in problem.message


def test_an_absolute_link_never_climbs_out(tmp_path):
    root = _host_copy(tmp_path / "tree")
    (tmp_path / "secret.conf").write_text(SITE)
    os.symlink("/../../secret.conf", root / "etc/nginx/sites-enabled/up")
    with pytest.raises(OutsideTree):
        LocalTree(root).resolve(str(root / "etc/nginx/sites-enabled/up"))


def test_distribution_module_links_are_a_note_not_an_error(tmp_path):
    """Debian's /etc/nginx/modules-enabled/*.conf link to /usr/share/nginx/modules-available: their
    load_module lines are the distribution's, nothing to judge; the run stays complete."""
    root = _host_copy(tmp_path)
    (root / "etc/nginx/modules-enabled").mkdir()
    os.symlink("/usr/share/nginx/modules-available/mod-http-headers-more-filter.conf",
               root / "etc/nginx/modules-enabled/50-mod-http-headers-more-filter.conf")
    facts = collect_tree(root)
    [problem] = facts.problems
    assert problem.status is Status.SKIP and problem.reason is SkipReason.NOT_COLLECTED
    assert "loads a module from outside the audited tree" in problem.message
    assert len(facts.all("nginx")) == 1


def test_identity_is_the_file_not_the_name(tmp_path):
    root = _host_copy(tmp_path)
    tree = LocalTree(root)
    shown = tree.shown(str(root / "etc/nginx/sites-available/mastodon"))
    linked = tree.shown(str(root / "etc/nginx/sites-enabled/mastodon"))
    assert tree.identity(shown) == tree.identity(linked) is not None
    assert tree.identity(tree.shown(str(root / "etc/nginx/nginx.conf"))) != tree.identity(shown)
