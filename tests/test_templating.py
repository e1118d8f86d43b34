"""The one template detector (mastoaudit/templating.py): config-management markers everywhere, and
each format's own interpolation."""

from __future__ import annotations

import pytest

from mastoaudit.templating import CLOSING, first_marker, is_templated, neutralise, statement_lines, template_name


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


@pytest.mark.parametrize("syntax", ["plain", "config", "nginx", "systemd", "compose", "dotenv"])
@pytest.mark.parametrize("value", ["__DOMAIN__", "/var/www/__APP__/public", "@sysconfdir@/mastodon", "{# note #}x",
                                   "{{ .Values.domain }}", "{{- include \"x\" . }}"])
def test_packaging_placeholders_and_go_templates_in_every_format(syntax, value):
    assert is_templated(value, syntax)


@pytest.mark.parametrize("value", ["__init__", "a__b", "user@example.org", "@proxy", "+@all -@dangerous", "p@ss@"])
def test_what_is_not_a_placeholder(value):
    assert not is_templated(value)


def test_envsubst_in_nginx():
    assert is_templated("${NGINX_HOST}", "nginx") and is_templated("$NGINX_HOST", "nginx")
    assert is_templated("${PORT:-80}", "nginx")
    assert not any(is_templated(v, "nginx") for v in ("$host", "$http_x_forwarded_proto", "$1", "@proxy"))


@pytest.mark.parametrize(("path", "renders_to"), [
    ("roles/x/templates/nginx.conf.j2", "roles/x/templates/nginx.conf"),
    ("deploy/env.production.template", "deploy/env.production"),
    ("files/nginx.conf.tpl", "files/nginx.conf"),
    ("templates/mastodon-web.service.erb", "templates/mastodon-web.service"),
    ("dist/mastodon-web.service.in", "dist/mastodon-web.service"),
    ("sites-available/mastodon", None),
    ("x/.j2", None),
])
def test_template_name(path, renders_to):
    assert template_name(path) == renders_to


def test_neutralise_keeps_lines_values_and_insertions():
    text = ("{# a comment #}\nserver {\n{% if tls %}\n  listen {{ port }} ssl;\n{% endif %}\n  {{ extra }}\n"
            "  {{- range .Values.ips }}\n  allow {{ . }};\n  {{- end }}\n  <% if @x %>deny all;<% end %>\n}\n")
    out = neutralise(text, lambda n: f"INSERT {n};")
    assert out.text.count("\n") == text.count("\n")
    lines = out.text.split("\n")
    assert lines[0] == "" and lines[2] == "" and lines[4] == ""
    assert "listen __TPL0__ ssl;" in lines[3] and out.restore("__TPL0__") == "{{ port }}"
    assert lines[5].strip() == "INSERT 0;" and out.inserted == [(6, "{{ extra }}")]
    assert lines[6].strip() == "" and "allow __TPL" in lines[7]
    # a statement inside a line is part of its value: the value is templated, not a blank
    assert "__TPL" in lines[9] and "deny all;" in lines[9]
    assert out.is_template and not neutralise("server { listen 80; }").is_template


def test_statement_lines_blank_control_lines_only():
    text = "{% if s3 %}\nS3_ENABLED=true\n{% endif %}\nK={% if prod %}x{% endif %}\nDB_PASS={{ pw }}\n{{ extra }}\n"
    assert statement_lines(text) == "\nS3_ENABLED=true\n\nK={% if prod %}x{% endif %}\nDB_PASS={{ pw }}\n\n"
