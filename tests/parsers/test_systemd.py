"""The systemd unit parser: sections, repeated keys, continuations, comments and drop-ins."""

from __future__ import annotations

import pytest
from mastoaudit_checks.host import bounding_set

from mastoaudit.model import Status
from mastoaudit.parsers import ParseError, SourceFile
from mastoaudit.parsers.systemd import parse_systemd_unit
from mastoaudit.sources.local import collect_tree

from ..conftest import FIXTURES


def unit(text: str | bytes, name: str = "mastodon-web.service"):
    data = text.encode() if isinstance(text, str) else text
    return parse_systemd_unit(SourceFile(f"etc/systemd/system/{name}", data))


def test_sections_repeated_keys_and_lines():
    u = unit("[Unit]\nDescription=x\n\n[Service]\nUser=nobody\nUser=mastodon\n"
             "RestrictAddressFamilies=AF_INET\nRestrictAddressFamilies=AF_UNIX\n"
             "ReadWritePaths=/a\nReadWritePaths=\nReadWritePaths=/b \"/c d\"\n"
             "ExecStart=/home/mastodon/.rbenv/shims/bundle exec puma -C config/puma.rb\n")
    assert u.last("User").value == "mastodon" and u.last("User").location.line == 6
    assert [w for w, _ in u.items("RestrictAddressFamilies")] == ["AF_INET", "AF_UNIX"]
    assert [w for w, _ in u.items("ReadWritePaths")] == ["/b", "/c d"]  # the empty assignment reset it
    assert u.last("Description", "Unit").value == "x"
    assert u.last("User", "Unit") is None  # keys belong to their section
    assert (u.role, u.is_mastodon, u.has_service) == ("web", True, True)


def test_continuations_and_comments():
    u = unit("# a comment\n; another\n[Service]\nExecStart=/usr/bin/bundle exec \\\n"
             "# skipped inside the continued line\n  sidekiq -c 25\nNoNewPrivileges=yes # not a comment\n"
             "# comment ending in a backslash \\\nUser=mastodon\n")
    assert u.exec_start.split() == ["/usr/bin/bundle", "exec", "sidekiq", "-c", "25"]
    assert u.last("ExecStart").location.line == 4
    assert u.last("NoNewPrivileges").value == "yes # not a comment"  # systemd has no inline comments
    assert u.last("User").location.line == 9


def test_crlf_and_keys_are_case_sensitive():
    u = unit(b"[Service]\r\nuser=root\r\nUser=mastodon\r\nExecStart=/usr/bin/node ./streaming\r\n")
    assert u.last("User").value == "mastodon"
    assert [s.key for s in u.settings] == ["user", "User", "ExecStart"]
    assert u.role == "streaming"


def test_booleans():
    u = unit("[Service]\nNoNewPrivileges=on\nPrivateTmp=0\nProtectClock=maybe\n")
    assert u.boolean("NoNewPrivileges")[0] is True
    assert u.boolean("PrivateTmp")[0] is False
    assert u.boolean("ProtectClock")[0] is None
    assert u.boolean("LockPersonality") == (None, None)


def test_empty_file_is_a_unit_with_nothing_to_judge():
    u = unit("")
    assert (u.has_service, u.settings, u.is_mastodon) == (False, [], False)


@pytest.mark.parametrize(("text", "line"), [
    ("[Service]\nUser=mastodon\n[Service\nUser=root\n", 3),
    ("[Unit]\n[]\n", 2),
    ("[Ser]vice]\n", 1),
])
def test_bad_section_header_is_a_parse_error_with_a_line(text, line):
    with pytest.raises(ParseError) as caught:
        unit(text)
    assert caught.value.line == line


def test_binary_junk_is_a_parse_error():
    with pytest.raises(ParseError, match="binary"):
        unit(b"\x7fELF\x00\x00\x00")


def test_lines_systemd_ignores_are_kept_aside():
    u = unit("User=outside\n[Service]\nthis line has no equals sign\nUser=mastodon\n")
    assert [(loc.line, why.split(":")[0]) for loc, why in u.ignored_lines] == [
        (1, "assignment before any [Section]"), (3, "no '=' on this line")]
    assert u.last("User").value == "mastodon"


def test_roles_and_wrappers():
    wrapper = unit("[Service]\nType=oneshot\nExecStart=/bin/echo starting instances\n", "mastodon-streaming.service")
    other = unit("[Service]\nExecStart=/usr/sbin/nginx\n", "nginx.service")
    by_path = unit("[Service]\nWorkingDirectory=/srv/mastodon/live\nExecStart=/usr/bin/bundle exec sidekiq\n",
                   "social-jobs.service")
    assert (wrapper.role, wrapper.is_mastodon) == (None, False)
    assert other.is_mastodon is False
    assert (by_path.role, by_path.is_mastodon) == ("sidekiq", True)


@pytest.mark.parametrize(("lines", "expected"), [
    ([], None),
    ([""], ("only", set())),
    (["CAP_NET_BIND_SERVICE"], ("only", {"CAP_NET_BIND_SERVICE"})),
    (["", "CAP_NET_BIND_SERVICE"], ("only", {"CAP_NET_BIND_SERVICE"})),
    (["CAP_A CAP_B", "~CAP_B"], ("only", {"CAP_A"})),
    (["~CAP_SYS_ADMIN"], ("except", {"CAP_SYS_ADMIN"})),
    (["~CAP_SYS_ADMIN", "CAP_SYS_ADMIN"], ("except", set())),
    (["CAP_A", ""], ("only", set())),
])
def test_capability_bounding_set_accumulates_like_systemd(lines, expected):
    text = "[Service]\n" + "".join(f"CapabilityBoundingSet={v}\n" for v in lines)
    assert bounding_set(unit(text)) == expected


def test_secret_environment_values_are_listed_for_scrubbing():
    u = unit('[Service]\nEnvironment="DB_PASS=correct-horse" "RAILS_ENV=production"\nEnvironment=OTP_SECRET=%i\n')
    assert u.secret_values() == ("correct-horse",)


def test_tree_drop_ins_masking_and_enablement_links():
    facts = collect_tree(FIXTURES / "systemd" / "tree")
    units = {u.name: u for u in facts.all("systemd_unit")}
    # the lib/ copy is masked by /etc, and the .wants link is the same unit: one sidekiq unit
    assert sorted(units) == ["mastodon-sidekiq.service", "mastodon-streaming.service",
                             "mastodon-streaming@.service", "nginx.service"]
    sidekiq = units["mastodon-sidekiq.service"]
    assert sidekiq.path.endswith("etc/systemd/system/mastodon-sidekiq.service")
    assert [d.rsplit("/", 2)[-2] for d in sidekiq.dropins] == ["mastodon-sidekiq.service.d"]
    nnp = sidekiq.last("NoNewPrivileges")
    assert (nnp.value, nnp.location.file.endswith("override.conf"), nnp.location.line) == ("false", True, 3)
    assert sidekiq.last("SystemCallFilter").value.split()[-1] == "@swap"  # the comment inside was skipped
    assert not [p for p in facts.problems if p.status is Status.ERROR]
