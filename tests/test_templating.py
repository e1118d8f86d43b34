"""The one template detector (mastoaudit/templating.py): config-management markers everywhere, and
each format's own interpolation."""

from __future__ import annotations

import pytest

from mastoaudit.templating import CLOSING, first_marker, is_templated


@pytest.mark.parametrize("syntax", ["plain", "config", "nginx", "systemd", "compose", "dotenv", "dotenv-literal"])
@pytest.mark.parametrize("value", ["{{ domain }}", "{% if x %}on{% endif %}", "<%= @port %>", "<% end %>"])
def test_config_management_markers_in_every_format(syntax, value):
    assert is_templated(value, syntax)


@pytest.mark.parametrize(("syntax", "templated", "literal"), [
    ("nginx", ["${SERVER_NAME}"], ["$host", "${host}", "https://$host$request_uri"]),
    ("config", ["${PGPORT}", "${x}"], ["$1", "'*'"]),
    ("systemd", ["${HOME}/bin", "/srv/%i", "%u"], ["50%", "/usr/bin/ruby"]),
    ("compose", ["${DB_PASS}", "$DB_PASS", "${X:-y}"], ["$$literal", "pa$$word", "5432:5432"]),
    ("dotenv", ["$OTHER", "${OTHER}", "$(cat /run/secret)"], ["\\$notexpanded", "plain"]),
    ("dotenv-literal", ["${OTHER}"], ["$OTHER", "$(cat x)"]),
])
def test_each_format_s_own_interpolation(syntax, templated, literal):
    assert all(is_templated(v, syntax) for v in templated), templated
    assert not any(is_templated(v, syntax) for v in literal), literal


def test_first_marker_and_closings():
    found = first_marker("server {\n  listen {{ port }};\n}")
    assert found is not None and found.group(0) == "{{"
    assert first_marker("server { listen ${PORT}; }") is None  # a placeholder, not a template file
    assert CLOSING["{%"] == "%}" and CLOSING["${"] == "}"
