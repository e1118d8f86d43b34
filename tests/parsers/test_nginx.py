"""The nginx parser: tokenising through crossplane, includes, roots, inheritance, location matching."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from mastoaudit.facts import FactSet
from mastoaudit.model import Status
from mastoaudit.parsers import classify
from mastoaudit.parsers.base import SourceFile
from mastoaudit.parsers.nginx import (
    Directive,
    NginxConfig,
    build_nginx,
    classify_target,
    location_spec,
    parse_server,
)
from mastoaudit.sources.local import LocalTree, collect_tree

from ..conftest import FIXTURES

NGINX_FIXTURES = FIXTURES / "nginx"


def write(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


def collect(root: Path, files: dict[str, str | bytes] | None = None) -> FactSet:
    return collect_tree(write(root, files or {}))


def configs(facts: FactSet) -> list[NginxConfig]:
    return facts.all("nginx")


def only(facts: FactSet) -> NginxConfig:
    found = configs(facts)
    assert len(found) == 1, [c.path for c in found]
    return found[0]


def problems(facts: FactSet, status: Status | None = None) -> list[tuple[str, str | None, int | None]]:
    return [(p.message, p.location.file if p.location else None, p.location.line if p.location else None)
            for p in facts.problems if p.kind == "nginx" and (status is None or p.status is status)]


MAIN = """\
events {}
http {
    include /etc/nginx/conf.d/*.conf;
    include /etc/nginx/sites-enabled/*;
}
"""

SITE = """\
server {
    listen 443 ssl;
    server_name a.example;
    location / { proxy_pass http://127.0.0.1:3000; }
}
"""


# --- tokenising ----------------------------------------------------------------------------------


def test_comments_and_quoted_values(tmp_path):
    facts = collect(tmp_path, {"sites-enabled/x": """\
# a comment with ; and { braces }
server { # trailing comment
    listen 80;  # listen ; here
    add_header X-Test "a; b {c} # not a comment";
    add_header X-Single 'single; quoted';
    add_header Content-Security-Policy "default-src 'none'; form-action 'none'" always;
    return 301 https://$host$request_uri;
}
"""})
    conf = only(facts)
    server = conf.server_blocks()[0]
    headers = {h.name: h for h in conf.add_headers(server)}
    assert headers["X-Test"].value == "a; b {c} # not a comment"
    assert headers["Content-Security-Policy"].value == "default-src 'none'; form-action 'none'"
    assert headers["Content-Security-Policy"].always
    assert headers["X-Test"].directive.line == 4
    assert server.first("return").args == ["301", "https://$host$request_uri"]
    assert not problems(facts)


def test_crlf_reads_like_lf(tmp_path):
    text = "server {\n    listen 80;\n    server_name crlf.example;\n}\n"
    lf = only(collect(tmp_path / "lf", {"sites-enabled/x": text}))
    crlf = only(collect(tmp_path / "crlf", {"sites-enabled/x": text.replace("\n", "\r\n").encode()}))
    assert [(d.name, d.args, d.line) for d in lf.root.walk()] == [(d.name, d.args, d.line) for d in crlf.root.walk()]
    assert crlf.servers()[0].names == ("crlf.example",)


def test_empty_file_is_an_empty_config(tmp_path):
    facts = collect(tmp_path, {"sites-enabled/empty": ""})
    assert only(facts).servers() == []
    assert not problems(facts)


def test_binary_junk_is_a_problem_and_the_rest_is_audited(tmp_path):
    facts = collect(tmp_path, {"sites-enabled/junk": b"\x00\x01\x02\xff\xfe server {", "sites-enabled/good": SITE})
    assert [c.path.rsplit("/", 1)[-1] for c in configs(facts)] == ["good"]
    [(message, file, _line)] = problems(facts, Status.ERROR)
    assert "binary" in message and file.endswith("sites-enabled/junk")


def test_invalid_utf8_names_the_line(tmp_path):
    facts = collect(tmp_path, {"sites-enabled/latin1": b"server {\n    server_name caf\xe9.example;\n}\n"})
    [(message, _file, line)] = problems(facts, Status.ERROR)
    assert "UTF-8" in message and line == 2


@pytest.mark.parametrize(("text", "line", "words"), [
    ("server {\n    listen 80;\n    location / {\n        return 404;\n}\n", 5, "end of file"),
    ("server {\n    listen 80;\n}\n}\n", 4, 'unexpected "}"'),
    ("server {\n    listen 80\n}\n", 2, 'not terminated by ";"'),
    ("server {\n    listen 80;\n}\nworker_processes 2", 4, 'not terminated by ";"'),
    ("server {\n    ;\n}\n", 2, 'unexpected ";"'),
])
def test_malformed_input_is_a_problem_with_a_line(tmp_path, text, line, words):
    facts = collect(tmp_path, {"sites-enabled/bad": text, "sites-enabled/good": SITE})
    [(message, file, at)] = problems(facts, Status.ERROR)
    assert words in message and at == line and file.endswith("sites-enabled/bad")
    assert [c.path.rsplit("/", 1)[-1] for c in configs(facts)] == ["good"]


def test_bad_arguments_are_warned_and_the_rest_is_read(tmp_path):
    facts = collect(tmp_path, {"sites-enabled/x": "server {\n    listen 80;\n    add_header X-Only;\n"
                                                   "    server_tokens off;\n}\n"})
    conf = only(facts)
    [(message, _file, line)] = problems(facts, Status.WARN)
    assert "add_header" in message and line == 3
    server = conf.server_blocks()[0]
    assert server.first("add_header") is None and server.first("server_tokens").arg == "off"


def test_a_template_is_read_through_its_literal_parts(tmp_path):
    """An Ansible role's nginx.conf.j2: the literal settings are there to judge, each expression is one
    templated value, control statements are blank lines (line numbers stay true)."""
    facts = collect(tmp_path, {"roles/web/templates/mastodon.conf.j2": (
        "# {{ ansible_managed }}\n"
        "server {\n"
        "  listen {{ nginx_port | default(443) }} ssl;\n"
        "{% if letsencrypt %}\n"
        "  ssl_certificate /etc/letsencrypt/live/{{ domain }}/fullchain.pem;\n"
        "{% else %}\n"
        "  ssl_certificate /etc/ssl/{{ domain }}.pem;\n"
        "{% endif %}\n"
        "  add_header Strict-Transport-Security \"max-age={{ hsts_age }}\";\n"
        "  ssl_protocols TLSv1 TLSv1.2;\n"
        "}\n")})
    conf = only(facts)
    server = conf.server_blocks()[0]
    assert server.first("listen").args == ["{{ nginx_port | default(443) }}", "ssl"]
    assert [(d.arg, d.line) for d in server.children("ssl_certificate")] == [
        ("/etc/letsencrypt/live/{{ domain }}/fullchain.pem", 5), ("/etc/ssl/{{ domain }}.pem", 7)]
    assert server.first("add_header").args[1] == "max-age={{ hsts_age }}"
    assert server.first("ssl_protocols").line == 10
    assert not problems(facts)


@pytest.mark.parametrize("text", [
    # Go template (a Helm chart's files/), with trim marks and a range
    "server {\n  listen 8080;\n  {{- range .Values.realIpFrom }}\n  set_real_ip_from {{ . }};\n  {{- end }}\n"
    "  server_tokens off;\n}\n",
    # ERB (Chef, Puppet)
    "server {\n  listen 8080;\n  <% @real_ip_from.each do |net| -%>\n  set_real_ip_from <%= net %>;\n  <% end -%>\n"
    "  server_tokens off;\n}\n",
])
def test_go_and_erb_templates(tmp_path, text):
    conf = only(collect(tmp_path, {"files/nginx.conf.tpl": text}))
    server = conf.server_blocks()[0]
    assert server.first("set_real_ip_from").line == 4
    assert server.first("server_tokens").line == 6


def test_what_a_template_inserts_is_an_unseen_include(tmp_path):
    """`{{ extra }}` alone on a line (or `{% include %}`) inserts configuration the file does not show:
    it is an include that cannot be read, and the run says so as a skip, not an error."""
    facts = collect(tmp_path, {"templates/site.conf.j2": "server {\n  listen 443 ssl;\n  {{ nginx_extra_config }}\n"
                                                           "  {% include 'tls.j2' %}\n}\n"})
    conf = only(facts)
    inserted = conf.unseen(conf.server_blocks()[0])
    assert [(d.line, d.template) for d in inserted] == [(3, True), (4, True)]
    assert "what the template inserts at" in inserted[0].unseen_label()
    found = problems(facts, Status.SKIP)
    assert [line for _, _, line in found] == [3, 4] and all("not judged" in m for m, _, _ in found)
    assert not problems(facts, Status.ERROR)


def test_a_template_whose_blocks_depend_on_variables_is_skipped_not_an_error(tmp_path):
    facts = collect(tmp_path, {"templates/nginx.conf.j2": "{% if tls %}\nserver {\n  listen 443 ssl;\n{% else %}\n"
                                                           "server {\n  listen 80;\n{% endif %}\n  root /srv;\n}\n"})
    assert not configs(facts)
    [(message, _file, _line)] = problems(facts, Status.SKIP)
    assert "template whose blocks depend on its variables" in message
    assert not problems(facts, Status.ERROR)


def test_envsubst_placeholders_are_templated_values(tmp_path):
    """The official nginx image's templates/*.template: ${VAR} and $VAR in upper case are envsubst's."""
    conf = only(collect(tmp_path, {"nginx/templates/default.conf.template": (
        "server {\n  listen 443 ssl;\n  server_name ${MASTODON_DOMAIN};\n  set $backend $UPSTREAM;\n}\n")}))
    server = conf.server_blocks()[0]
    assert server.first("server_name").arg == "${MASTODON_DOMAIN}"
    from mastoaudit.templating import is_templated
    assert is_templated(server.first("set").args[1], "nginx") and not is_templated(server.first("set").arg, "nginx")


def test_if_condition_parentheses_are_stripped(tmp_path):
    conf = only(collect(tmp_path, {"sites-enabled/x": 'server {\n  listen 80;\n  if ($scheme != "https") '
                                                        "{ return 301 https://$host$request_uri; }\n}\n"}))
    cond = conf.server_blocks()[0].first("if")
    assert cond.args == ["$scheme", "!=", "https"]


def test_deep_nesting_is_a_problem_not_a_crash(tmp_path):
    text = "server {\n" + "location / {\n" * 100 + "}\n" * 100 + "}\n"
    facts = collect(tmp_path, {"sites-enabled/deep": text})
    assert not configs(facts)
    assert any("deep" in m for m, _f, _l in problems(facts, Status.ERROR))


# --- includes and roots --------------------------------------------------------------------------


def test_includes_follow_globs_in_order_and_keep_their_lines(tmp_path):
    facts = collect(tmp_path, {
        "etc/nginx/nginx.conf": MAIN,
        "etc/nginx/conf.d/20-b.conf": "server_tokens off;\n",
        "etc/nginx/conf.d/10-a.conf": "\n\nclient_max_body_size 99m;\n",
        "etc/nginx/sites-enabled/site": SITE,
    })
    conf = only(facts)
    http = conf.http_blocks()[0]
    names = [(d.name, d.file.rsplit("/", 1)[-1], d.line) for d in http.children() if d.name != "include"]
    assert names == [("client_max_body_size", "10-a.conf", 3), ("server_tokens", "20-b.conf", 1),
                     ("server", "site", 1)]
    assert conf.path.endswith("etc/nginx/nginx.conf")
    assert len(conf.files) == 4 and not problems(facts)


def test_absolute_include_found_when_the_tree_is_the_nginx_directory(tmp_path):
    facts = collect(tmp_path / "etc" / "nginx", {
        "nginx.conf": MAIN.replace("include /etc/nginx/conf.d/*.conf;", "include /etc/nginx/snippets/tokens.conf;"),
        "snippets/tokens.conf": "server_tokens off;\n",
        "sites-enabled/site": SITE,
    })
    conf = only(facts)
    assert conf.effective(conf.server_blocks()[0], "server_tokens").file.endswith("snippets/tokens.conf")
    assert not problems(facts)


def test_relative_include_is_relative_to_the_prefix(tmp_path):
    facts = collect(tmp_path, {
        "etc/nginx/nginx.conf": "events {}\nhttp {\n    include sites-enabled/*;\n}\n",
        "etc/nginx/sites-enabled/site": "server {\n    listen 80;\n    include snippets/h.conf;\n}\n",
        "etc/nginx/snippets/h.conf": "add_header X-From-Snippet yes;\n",
    })
    conf = only(facts)
    [header] = conf.add_headers(conf.server_blocks()[0])
    assert header.name == "X-From-Snippet" and header.directive.file.endswith("snippets/h.conf")


def test_missing_include_is_a_warning_naming_file_and_line(tmp_path):
    facts = collect(tmp_path, {
        "etc/nginx/nginx.conf": "events {}\nhttp {\n    include /etc/nginx/sites-enabled/*;\n"
                                "    include /etc/letsencrypt/options-ssl-nginx.conf;\n}\n",
        "etc/nginx/sites-enabled/site": SITE,
    })
    conf = only(facts)
    [(message, file, line)] = problems(facts, Status.WARN)
    assert "options-ssl-nginx.conf" in message and file.endswith("nginx.conf") and line == 4
    assert [d.arg for d in conf.unseen(conf.server_blocks()[0])] == ["/etc/letsencrypt/options-ssl-nginx.conf"]


def test_glob_matching_nothing_is_fine(tmp_path):
    facts = collect(tmp_path, {"etc/nginx/nginx.conf": "include /etc/nginx/modules-enabled/*.conf;\nevents {}\n"
                                                       "http { include /etc/nginx/conf.d/*.conf; }\n"})
    only(facts)
    assert not problems(facts)


def test_include_loop_is_bounded(tmp_path):
    facts = collect(tmp_path, {
        "etc/nginx/nginx.conf": "events {}\nhttp {\n    include loop/a.conf;\n}\n",
        "etc/nginx/loop/a.conf": "server_tokens off;\ninclude loop/b.conf;\n",
        "etc/nginx/loop/b.conf": "gzip on;\ninclude loop/a.conf;\n",
    })
    conf = only(facts)
    assert [d.name for d in conf.http_blocks()[0].children() if d.name != "include"] == ["server_tokens", "gzip"]
    [(message, file, line)] = problems(facts, Status.WARN)
    assert "include loop" in message and file.endswith("loop/b.conf") and line == 2


def test_files_including_each_other_without_a_main_are_still_audited(tmp_path):
    facts = collect(tmp_path, {
        "sites-enabled/a": "server { listen 80; include /etc/nginx/sites-enabled/b; }\n",
        "sites-enabled/b": "include /etc/nginx/sites-enabled/a;\n",
    })
    assert configs(facts)
    assert any("include loop" in m for m, _f, _l in problems(facts, Status.WARN))


def test_include_depth_is_bounded(tmp_path):
    files = {"etc/nginx/nginx.conf": "events {}\nhttp { include chain/0.conf; }\n"}
    for i in range(15):
        files[f"etc/nginx/chain/{i}.conf"] = f"include chain/{i + 1}.conf;\n"
    files["etc/nginx/chain/15.conf"] = "server_tokens off;\n"
    facts = collect(tmp_path, files)
    only(facts)
    assert any("too deeply" in m for m, _f, _l in problems(facts, Status.WARN))


def test_include_of_a_directory_or_dangling_link_is_not_found(tmp_path):
    write(tmp_path, {
        "etc/nginx/nginx.conf": "events {}\nhttp {\n    include /etc/nginx/dir.conf;\n"
                                "    include /etc/nginx/dangling.conf;\n}\n",
    })
    (tmp_path / "etc/nginx/dir.conf").mkdir()
    os.symlink(tmp_path / "etc/nginx/nowhere.conf", tmp_path / "etc/nginx/dangling.conf")
    facts = collect_tree(tmp_path)
    only(facts)
    lines = sorted(line for _m, _f, line in problems(facts, Status.WARN))
    assert lines == [3, 4]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod 000 file; covered by the directory/link case")
def test_unreadable_include_is_reported(tmp_path):
    write(tmp_path, {"etc/nginx/nginx.conf": "events {}\nhttp {\n    include /etc/nginx/secret.conf;\n}\n",
                     "etc/nginx/secret.conf": "server_tokens off;\n"})
    (tmp_path / "etc/nginx/secret.conf").chmod(0)
    try:
        facts = collect_tree(tmp_path)
    finally:
        (tmp_path / "etc/nginx/secret.conf").chmod(0o644)
    only(facts)
    assert any("secret.conf" in m for m, _f, _l in problems(facts))


def test_include_cannot_leave_the_tree(tmp_path):
    outside = tmp_path / "outside.conf"
    outside.write_text("server_tokens off;\n")
    main = f"events {{}}\nhttp {{\n    include ../../../outside.conf;\n    include {outside};\n}}\n"
    facts = collect(tmp_path / "tree", {"etc/nginx/nginx.conf": main})
    conf = only(facts)
    assert conf.effective(conf.http_blocks()[0], "server_tokens") is None
    assert len(problems(facts, Status.WARN)) == 2


def test_unreferenced_files_beside_nginx_conf_are_inactive(tmp_path):
    facts = collect(tmp_path, {
        "etc/nginx/nginx.conf": MAIN,
        "etc/nginx/sites-available/default": "server { listen 80 default_server; root /var/www/html; }\n",
        "etc/nginx/sites-available/site": SITE,
        "etc/nginx/sites-enabled/site": SITE,
        "etc/nginx/snippets/fastcgi-php.conf": "fastcgi_index index.php;\n",
    })
    conf = only(facts)
    assert [s.names for s in conf.servers()] == [("a.example",)]


def test_a_site_file_alone_is_read_as_http_context(tmp_path):
    facts = collect(tmp_path, {"mastodon.nginx": "upstream backend { server 127.0.0.1:3000; }\n" + SITE})
    conf = only(facts)
    assert conf.context == "http"
    assert [s.label for s in conf.servers()] == ["server a.example:443"]
    assert list(conf.upstreams()) == ["backend"]


def test_sites_available_beside_sites_enabled_is_not_audited_twice(tmp_path):
    facts = collect(tmp_path, {"nginx/sites-available/site": SITE, "nginx/sites-enabled/site": SITE,
                               "nginx/sites-available/old": SITE.replace("a.example", "old.example")})
    conf = only(facts)
    assert "sites-enabled" in conf.path


def test_mastodon_dist_file_named_nginx_conf_is_a_site(tmp_path):
    conf = only(collect(tmp_path, {"live/dist/nginx.conf": SITE}))
    assert conf.context == "http" and len(conf.servers()) == 1


def test_build_reads_through_any_provider(tmp_path):
    """The SSH collector hands over SourceFiles and its own provider: no local paths needed."""
    write(tmp_path, {"etc/nginx/snippets/h.conf": "add_header X-Remote yes;\n"})
    provider = LocalTree(tmp_path)
    facts = FactSet("remote")
    main = SourceFile(str(tmp_path / "etc/nginx/nginx.conf"),
                      b"events {}\nhttp { server { listen 80; include /etc/nginx/snippets/h.conf; } }\n")
    build_nginx([main], provider, facts)
    conf = only(facts)
    assert conf.add_headers(conf.server_blocks()[0])[0].name == "X-Remote"


def test_fixture_layout_with_object_storage_proxy():
    facts = collect_tree(NGINX_FIXTURES / "object-storage")
    conf = only(facts)
    assert sorted(s.label for s in conf.servers()) == ["server files.example.org:443", "server social.example.org:443"]
    assert not problems(facts)


def test_kind_patterns_recognise_nginx_paths():
    for path in ("etc/nginx/nginx.conf", "etc/nginx/sites-enabled/mastodon", "etc/nginx/conf.d/x.conf",
                 "deploy/mastodon.nginx", "etc/nginx/snippets/tls.conf"):
        kind = classify(path, None)
        assert kind is not None and kind.name == "nginx", path


# --- inheritance ---------------------------------------------------------------------------------


INHERIT = """\
events {}
http {
    add_header X-Http 1;
    ssl_protocols TLSv1 TLSv1.1 TLSv1.2;
    proxy_set_header Host $host;
    proxy_set_header X-Forwarded-Proto $scheme;
    server {
        listen 443 ssl;
        ssl_protocols TLSv1.2 TLSv1.3;
        location /inherits/ {
            location /inherits/nested/ { }
        }
        location /own/ {
            add_header X-Own 1 always;
            proxy_set_header Upgrade $http_upgrade;
            location /own/nested/ { }
            location /own/again/ { add_header X-Again 1; }
        }
    }
    server {
        listen 444 ssl;
        add_header X-Server 1;
        location / { }
    }
}
"""


@pytest.fixture
def inherit(tmp_path) -> NginxConfig:
    return only(collect(tmp_path, {"nginx.conf": INHERIT}))


def _loc(conf: NginxConfig, server: int, path: str) -> Directive:
    return next(x for x in conf.locations(conf.server_blocks()[server]) if x.arg == path)


def test_add_header_inherits_only_into_levels_without_their_own(inherit):
    def names(node):
        return [h.name for h in inherit.add_headers(node)]

    first, second = inherit.server_blocks()
    assert names(first) == ["X-Http"]
    assert names(_loc(inherit, 0, "/inherits/")) == ["X-Http"]
    assert names(_loc(inherit, 0, "/inherits/nested/")) == ["X-Http"]
    assert names(_loc(inherit, 0, "/own/")) == ["X-Own"]  # X-Http is lost
    assert names(_loc(inherit, 0, "/own/nested/")) == ["X-Own"]
    assert names(_loc(inherit, 0, "/own/again/")) == ["X-Again"]
    assert names(second) == ["X-Server"]
    assert names(_loc(inherit, 1, "/")) == ["X-Server"]
    assert inherit.header(_loc(inherit, 0, "/own/"), "x-own").always
    assert not inherit.header(second, "X-Server").always


def test_proxy_set_header_follows_the_same_rule(inherit):
    assert sorted(inherit.proxy_headers(_loc(inherit, 0, "/inherits/nested/"))) == ["host", "x-forwarded-proto"]
    assert sorted(inherit.proxy_headers(_loc(inherit, 0, "/own/nested/"))) == ["upgrade"]


def test_effective_value_is_the_nearest_level(inherit):
    second = inherit.server_blocks()[1]
    assert inherit.effective(_loc(inherit, 0, "/inherits/nested/"), "ssl_protocols").args == ["TLSv1.2", "TLSv1.3"]
    assert inherit.effective(second, "ssl_protocols").args == ["TLSv1", "TLSv1.1", "TLSv1.2"]
    assert inherit.effective(second, "server_tokens") is None


# --- listen, proxy_pass --------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "address", "port", "ssl", "default"), [
    ("80", None, 80, False, False),
    ("443 ssl http2", None, 443, True, False),
    ("[::]:443 ssl default_server", "::", 443, True, True),
    ("127.0.0.1:8080", "127.0.0.1", 8080, False, False),
    ("*:80", None, 80, False, False),
    ("localhost", "localhost", 80, False, False),
    ("443 quic reuseport", None, 443, True, False),
    ("unix:/run/nginx.sock", "unix:/run/nginx.sock", None, False, False),
])
def test_listen_forms(spec, address, port, ssl, default):
    block = Directive("server", [], "f", 1, [])
    block.block.append(Directive("listen", spec.split(), "f", 2, None, block))
    [listen] = parse_server(block).listens
    assert (listen.address, listen.port, listen.ssl, listen.default) == (address, port, ssl, default)


def test_server_without_listen_is_port_80():
    server = parse_server(Directive("server", [], "f", 1, []))
    assert server.plain and not server.ssl and server.listens[0].port == 80


@pytest.mark.parametrize(("target", "kind", "internal"), [
    ("http://backend", "upstream", True),
    ("http://unix:/run/mastodon/web.sock:", "unix", True),
    ("http://127.0.0.1:3000", "ip", True),
    ("http://[::1]:3000/", "ip", True),
    ("http://localhost:3000", "localhost", True),
    ("http://web:3000", "service", True),
    ("https://bucket.s3.example.com", "hostname", False),
    ("https://$s3_backend$uri", "variable", False),
])
def test_proxy_targets(target, kind, internal):
    d = Directive("proxy_pass", [target], "f", 1)
    upstreams = {"backend": Directive("upstream", ["backend"], "f", 1, [])}
    got = classify_target(d, upstreams)
    assert (got.kind, got.internal) == (kind, internal)


# --- location matching ---------------------------------------------------------------------------


MATCH_LOCATIONS = """\
    location = / { return 200 exact-root; }
    location / { return 200 root; }
    location /docs/ { return 200 docs; }
    location /docs/api/ {
        location /docs/api/v2/ { return 200 api-v2; }
        location ~ \\.json$ { return 200 api-json; }
    }
    location /files/ {
        location /files/deep/ { return 200 files-deep; }
    }
    location ^~ /static/ {
        return 200 static-prefix;
        location ~ \\.css$ { return 200 static-css; }
    }
    location ~ \\.(png|jpg)$ { return 200 image; }
    location ~* \\.PDF$ { return 200 pdf; }
    location ~ ^/docs/ { return 200 docs-regex; }
    location ~ ^/system/ {
        location ~ /original/ { return 200 system-original; }
    }
    location =/noslash { return 200 exact-noslash; }
    location ~^/tight/ { return 200 tight-regex; }
    location ~ ^/users/(?<name>[a-z]+)/feed$ { return 200 named-capture; }
    location @named { return 200 named; }
"""

MATCH_CASES = [
    ("/", "exact-root"),
    ("/index.html", "root"),
    ("/image.png", "image"),  # a regex beats the "/" prefix
    ("/REPORT.pdf", "pdf"),  # ~* ignores case
    ("/docs/page", "docs-regex"),  # a regex beats the longest prefix
    ("/docs/api/v2/x", "docs-regex"),  # a nested prefix matched, so this level's regexes are still tried
    ("/docs/api/v2/x.json", "api-json"),  # a nested regex is final
    ("/files/deep/x", "files-deep"),  # a nested prefix, no regex around it
    ("/files/other", None),  # /files/ itself: no return there, nginx looks for a file (404)
    ("/static/site.css", "static-css"),  # ^~ stops this level's regexes, not its nested ones
    ("/static/logo.png", "static-prefix"),  # ^~: the image regex is not consulted
    ("/system/media_attachments/files/1/original/x.png", "image"),  # the first regex in file order wins
    ("/system/media_attachments/files/1/original/x.gif", "system-original"),  # a regex, then its nested regex
    ("/noslash", "exact-noslash"),
    ("/tight/x", "tight-regex"),
    ("/@named", "root"),  # named locations are never matched by URI
    ("/users/alice/feed", "named-capture"),  # PCRE's named capture syntax
]


@pytest.fixture(scope="module")
def matcher(tmp_path_factory) -> NginxConfig:
    root = tmp_path_factory.mktemp("match")
    return only(collect(root, {"sites-enabled/m": "server {\n    listen 80;\n" + MATCH_LOCATIONS + "}\n"}))


def _answer(conf: NginxConfig, uri: str) -> str | None:
    found = conf.match_location(conf.server_blocks()[0], uri)
    ret = found.first("return") if found is not None else None
    return ret.args[1] if ret is not None else None


@pytest.mark.parametrize(("uri", "answer"), MATCH_CASES)
def test_location_matching(matcher, uri, answer):
    assert _answer(matcher, uri) == answer


NGINX = "/usr/sbin/nginx"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.needs_nginx
@pytest.mark.skipif(not os.path.exists(NGINX), reason="no nginx binary at /usr/sbin/nginx")
def test_location_matching_agrees_with_real_nginx(matcher, tmp_path):
    """Start nginx on a loopback port with the same locations and ask it every URI."""
    port = _free_port()
    (tmp_path / "html").mkdir()
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"daemon off;\nmaster_process off;\npid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\n"
        f"events {{}}\nhttp {{\n  access_log off;\n  server {{\n    listen 127.0.0.1:{port};\n"
        f"    root {tmp_path}/html;\n{MATCH_LOCATIONS}  }}\n}}\n")
    proc = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "error.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        answers = {}
        for uri, _expected in MATCH_CASES:
            answers[uri] = _ask(port, uri, proc)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    mine = {uri: _answer(matcher, uri) for uri, _ in MATCH_CASES}
    assert mine == answers


def _ask(port: int, uri: str, proc: subprocess.Popen) -> str | None:
    for _ in range(100):  # wait for nginx to listen (bounded; no timing is asserted)
        if proc.poll() is not None:
            pytest.fail(f"nginx exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{uri}", timeout=5) as resp:
                return resp.read().decode().strip()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.05)
    pytest.fail("nginx did not answer")


def test_unparsable_regex_is_skipped(tmp_path):
    conf = only(collect(tmp_path, {"sites-enabled/m": "server {\n  location ~ (?<broken { return 200 never; }\n"
                                                         "  location / { return 200 root; }\n}\n"}))
    assert _answer(conf, "/x") == "root"


def test_no_location_matches():
    server = Directive("server", [], "f", 1, [])
    server.block.append(Directive("location", ["/only/"], "f", 2, [], server))
    conf = NginxConfig("f", root=Directive("http", [], "f", None, [server]))
    server.parent = conf.root
    assert conf.match_location(server, "/elsewhere") is None


@pytest.mark.parametrize(("args", "spec"), [
    (["=", "/x"], ("=", "/x")), (["=/x"], ("=", "/x")), (["^~", "/x"], ("^~", "/x")), (["^~/x"], ("^~", "/x")),
    (["~", "x$"], ("~", "x$")), (["~*x$"], ("~*", "x$")), (["@proxy"], ("@", "@proxy")), (["/x"], ("", "/x")),
])
def test_location_spec_forms(args, spec):
    assert location_spec(Directive("location", args, "f", 1, [])) == spec


def test_backend_credentials_are_secrets(tmp_path):
    conf = only(collect(tmp_path, {"sites-enabled/x": 'server {\n  location / {\n'
                                                     '    proxy_set_header Authorization "Basic c2VjcmV0OnZhbHVl";\n'
                                                     '    proxy_set_header Authorization "";\n'
                                                     "    proxy_set_header Host $host;\n"
                                                     "    proxy_pass http://127.0.0.1:3000;\n  }\n}\n"}))
    assert conf.secret_values() == ("Basic c2VjcmV0OnZhbHVl",)


def test_password_files_beside_the_config_are_not_parsed(tmp_path):
    facts = collect(tmp_path, {"nginx/sites-enabled/site": SITE, "nginx/.htpasswd": "admin:$apr1$abcdefgh$0123456789\n",
                               "nginx/sites-enabled/oops": "admin:$apr1$abcdefgh$0123456789\n"})
    assert len(configs(facts)) == 1
    [(message, _file, _line)] = problems(facts, Status.ERROR)  # a password line where a site should be
    assert "apr1" not in message and "a directive" in message


def test_dangling_site_link_is_reported_and_the_rest_audited(tmp_path):
    write(tmp_path, {"etc/nginx/nginx.conf": MAIN, "etc/nginx/sites-enabled/site": SITE})
    os.symlink("../sites-available/removed", tmp_path / "etc/nginx/sites-enabled/removed")
    facts = collect_tree(tmp_path)
    assert [s.names for s in only(facts).servers()] == [("a.example",)]
    assert any(p.location and p.location.file.endswith("sites-enabled/removed") for p in facts.problems)


class HostFiles:
    """Files fetched from a host, shown as host:/abs/path (the way `nginx -T` sections arrive)."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = {path: text.encode() for path, text in files.items()}

    def read(self, path: str) -> bytes:
        if path not in self.files:
            raise FileNotFoundError(path)
        return self.files[path]

    def glob(self, pattern: str, relative_to: str | None = None) -> list[str]:
        import fnmatch

        if not pattern.startswith("/"):
            pattern = f"{(relative_to or '').split(':', 1)[-1].rstrip('/')}/{pattern}"
        return sorted(p for p in self.files if fnmatch.fnmatchcase(p, f"web1:{pattern}"))


def test_files_fetched_from_a_host_resolve_their_includes():
    files = HostFiles({
        "web1:/etc/nginx/nginx.conf": "events {}\nhttp {\n    include mime.types;\n"
                                      "    include /etc/nginx/sites-enabled/*;\n}\n",
        "web1:/etc/nginx/mime.types": "types { text/html html; }\n",
        "web1:/etc/nginx/sites-enabled/mastodon": "server {\n    listen 443 ssl;\n"
                                                  "    include /etc/letsencrypt/options-ssl-nginx.conf;\n}\n",
        "web1:/etc/letsencrypt/options-ssl-nginx.conf": "ssl_session_tickets off;\n",
    })
    facts = FactSet("web1")
    build_nginx([SourceFile(p, d) for p, d in files.files.items()], files, facts)
    conf = only(facts)
    assert not problems(facts)
    tickets = conf.effective(conf.server_blocks()[0], "ssl_session_tickets")
    assert tickets.file == "web1:/etc/letsencrypt/options-ssl-nginx.conf" and tickets.line == 1
    assert len(conf.files) == 4


# --- files of location blocks, files nothing reads -------------------------------------------------


LOCATIONS_ONLY = ("location / {\n  try_files $uri @app;\n}\nlocation ~ ^/system/ {\n  try_files $uri =404;\n}\n"
                  "location @app {\n  proxy_pass http://127.0.0.1:3000;\n}\n")


def test_a_file_of_locations_included_nowhere_is_read_as_the_locations_of_a_server(tmp_path):
    """An app package's snippet (the distribution's server includes it): judged as locations, never
    silently skipped, and never as the main context (where nginx would refuse `location`)."""
    for name in ("conf/nginx.conf", "snippets/mastodon.conf"):
        facts = collect(tmp_path / name.replace("/", "-"), {name: LOCATIONS_ONLY})
        conf = only(facts)
        [server] = conf.servers()
        assert server.implicit and server.listens == () and "not in the tree" in server.label
        assert [loc.arg for loc in conf.locations(server.directive)] == ["/", "~", "@app"]
        assert conf.match_location(server.directive, "/system/x.png").args == ["~", "^/system/"]
        assert not facts.problems
        reason, message = conf.why_nothing()
        assert reason.value == "no-server-block" and "holds locations only" in message


def test_a_file_included_in_a_server_is_judged_there(tmp_path):
    conf = only(collect(tmp_path, {
        "etc/nginx/nginx.conf": "events {}\nhttp { include /etc/nginx/sites-enabled/*; }\n",
        "etc/nginx/sites-enabled/x": "server {\n  listen 443 ssl;\n  include snippets/static.conf;\n}\n",
        "etc/nginx/snippets/static.conf": LOCATIONS_ONLY}))
    [server] = conf.servers()
    assert not server.implicit and len(conf.locations(server.directive)) == 3


def test_files_nginx_does_not_read_are_said_to_be_inactive(tmp_path):
    write(tmp_path, {
        "etc/nginx/nginx.conf": "events {}\nhttp { include /etc/nginx/sites-enabled/*; }\n",
        "etc/nginx/sites-available/default": "server { listen 80 default_server; }\n",
        "etc/nginx/sites-available/site": "server { listen 80; server_name a.example; }\n"})
    (tmp_path / "etc/nginx/sites-enabled").mkdir()
    os.symlink("../sites-available/site", tmp_path / "etc/nginx/sites-enabled/site")
    facts = collect_tree(tmp_path)
    [(message, file, _line)] = problems(facts, Status.SKIP)
    assert file.endswith("sites-available/default") and "not active" in message
    assert [p.reason.value for p in facts.problems] == ["not-active"]


def test_placeholder_path_prefixes_match_as_the_site_root(tmp_path):
    conf = only(collect(tmp_path, {"conf/nginx.conf": (
        "location __PATH__/ {\n  try_files $uri @p;\n}\nlocation ~ ^__PATH__/system/ {\n  alias __DATA__/system/;\n}\n"
        "location ^~ {{ path }}/api/v1/streaming {\n  proxy_pass http://127.0.0.1:__PORT__;\n}\n")}))
    server = conf.server_blocks()[0]
    assert conf.match_location(server, "/system/a.png").args == ["~", "^__PATH__/system/"]
    streaming = conf.match_location(server, "/api/v1/streaming")
    target = conf.proxy_target(streaming)
    assert (target.kind, target.host) == ("ip", "127.0.0.1")  # the port is a placeholder, the host is known
