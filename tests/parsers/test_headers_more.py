"""headers-more (more_set_headers, more_clear_headers) beside add_header, as NginxConfig.resolve_header
models them: every level's headers-more operations run (outer levels first), on the response as the
upstream made it, and replace, append (-a) or clear its fields of a name; add_header's filter runs
after them and adds its own (which headers-more therefore never replaces); -s and -t limit the
operations to statuses and content types. The model is checked against a real nginx with the
Debian package's module (libnginx-mod-http-headers-more-filter), serving from a local upstream."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from mastoaudit.parsers.nginx import Directive, NginxConfig, more_ops
from mastoaudit.sources.local import collect_tree

NGINX = "/usr/sbin/nginx"
MODULE = "/usr/lib/nginx/modules/ngx_http_headers_more_filter_module.so"
UPSTREAM_HEADERS = {"Content-Security-Policy": "app-policy", "Strict-Transport-Security": "max-age=1"}

LOCATIONS = """\
    more_set_headers "X-More: server";
    add_header X-Add server;

    location /inherit/ { add_header X-Own yes; return 200 ok; }
    location /replace/ { proxy_pass http://backend; more_set_headers "Content-Security-Policy: nginx-policy"; }
    location /clear/ { proxy_pass http://backend; more_clear_headers Content-Security-Policy; }
    location /wildcard/ { proxy_pass http://backend; more_clear_headers "Content-Security-*"; }
    location /emptied/ { proxy_pass http://backend; more_set_headers "Content-Security-Policy:"; }
    location /hide/ {
        proxy_pass http://backend;
        proxy_hide_header Content-Security-Policy;
        add_header Content-Security-Policy add-policy;
    }
    location /status/ { more_set_headers -s 404 "X-Only: yes"; return 200 ok; }
    location /status404/ { more_set_headers -s '404 500' "X-Only: yes"; return 404; }
    location /addover/ { add_header X-Both add; more_set_headers "X-Both: more"; return 200 ok; }
    location /types/ { more_set_headers -t text/html "X-Only: yes"; return 200 ok; }
    location /outer/ {
        more_set_headers "X-Outer: outer";
        location /outer/inner/ { more_set_headers "X-Inner: inner"; return 200 ok; }
    }
    location /notfound/ { add_header X-Add404 yes; more_set_headers "X-More404: yes"; return 404; }
"""

CASES = [  # (uri, status, header names to compare)
    ("/inherit/", 200, ["X-More", "X-Add", "X-Own"]),
    ("/replace/", 200, ["Content-Security-Policy", "Strict-Transport-Security", "X-More"]),
    ("/clear/", 200, ["Content-Security-Policy", "Strict-Transport-Security"]),
    ("/wildcard/", 200, ["Content-Security-Policy"]),
    ("/emptied/", 200, ["Content-Security-Policy"]),
    ("/hide/", 200, ["Content-Security-Policy"]),
    ("/status/", 200, ["X-Only"]),
    ("/status404/", 404, ["X-Only"]),
    ("/addover/", 200, ["X-Both"]),
    ("/outer/inner/", 200, ["X-Outer", "X-Inner", "X-More"]),
    ("/notfound/", 404, ["X-Add404", "X-More404"]),
]


# -a (append a field rather than replace) came after the 0.34 release Debian ships: modelled, not run.
APPEND = ('    location /append/ { proxy_pass http://backend; '
          'more_set_headers -a "Content-Security-Policy: nginx-policy"; }\n')


def _config(tmp_path: Path) -> NginxConfig:
    site = tmp_path / "tree" / "sites-enabled" / "h"
    site.parent.mkdir(parents=True)
    site.write_text("upstream backend { server 127.0.0.1:9; }\nserver {\n    listen 80;\n" + LOCATIONS + APPEND
                    + "}\n")
    [conf] = collect_tree(tmp_path / "tree").all("nginx")
    return conf


def predicted(conf: NginxConfig, uri: str, status: int, name: str, proxied: bool) -> list[str]:
    """The values of `name` on the response, as the model says."""
    server = conf.server_blocks()[0]
    loc = conf.match_location(server, uri)
    resolved = conf.resolve_header(loc, name, status)
    values = [h.value for h in resolved.added if not h.types]  # the real responses are text/plain
    if proxied and resolved.upstream == "kept" and name in UPSTREAM_HEADERS:
        values.insert(0, UPSTREAM_HEADERS[name])
    return values


def test_the_model(tmp_path):
    conf = _config(tmp_path)
    assert predicted(conf, "/inherit/", 200, "X-More", False) == ["server"]  # inherited despite add_header
    assert predicted(conf, "/inherit/", 200, "X-Add", False) == []  # add_header: the location's own only
    assert predicted(conf, "/replace/", 200, "Content-Security-Policy", True) == ["nginx-policy"]
    assert predicted(conf, "/append/", 200, "Content-Security-Policy", True) == ["app-policy", "nginx-policy"]
    assert predicted(conf, "/clear/", 200, "Content-Security-Policy", True) == []
    # headers-more runs before add_header: it never touches add_header's fields
    assert predicted(conf, "/addover/", 200, "X-Both", False) == ["more", "add"]
    assert predicted(conf, "/notfound/", 404, "X-Add404", False) == []  # add_header skips 404 without always
    assert predicted(conf, "/notfound/", 404, "X-More404", False) == ["yes"]  # headers-more: every status
    loc = conf.match_location(conf.server_blocks()[0], "/hide/")
    assert conf.resolve_header(loc, "Content-Security-Policy").upstream == "hidden"
    loc = conf.match_location(conf.server_blocks()[0], "/types/")
    [only] = conf.resolve_header(loc, "X-Only").added
    assert only.only == "text/html" and conf.header(loc, "X-Only") == only


@pytest.mark.parametrize(("args", "ops"), [
    (['"X-A: 1"', "X-B:2"], [("set", "X-A", "1"), ("set", "X-B", "2")]),
    (["-s", "404 500", "-t", "text/html", "X-A: 1"], [("set", "X-A", "1")]),
    (["-a", "Set-Cookie: a=1"], [("append", "Set-Cookie", "a=1")]),
    (["X-A:", "X-B"], [("clear", "X-A", ""), ("clear", "X-B", "")]),
])
def test_more_set_headers_arguments(args, ops):
    d = Directive("more_set_headers", [a.strip('"') for a in args], "f", 1)
    assert [(o.action, o.name, o.value) for o in more_ops(d)] == ops
    if "-s" in args:
        assert more_ops(d)[0].statuses == ("404", "500") and more_ops(d)[0].types == ("text/html",)


def test_more_clear_headers_with_a_wildcard():
    [op] = more_ops(Directive("more_clear_headers", ["X-Hidden-*"], "f", 1))
    assert op.action == "clear" and op.names("x-hidden-secret") and not op.names("X-Shown")


class _Upstream(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        for name, value in UPSTREAM_HEADERS.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"upstream")

    def log_message(self, *args):
        pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _fetch(port: int, uri: str, proc: subprocess.Popen) -> tuple[int, list[tuple[str, str]]]:
    for _ in range(200):  # wait for nginx to listen (bounded; no timing is asserted)
        if proc.poll() is not None:
            pytest.fail(f"nginx exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{uri}", timeout=5) as resp:
                return resp.status, list(resp.headers.items())
        except urllib.error.HTTPError as exc:
            return exc.code, list(exc.headers.items())
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.05)
    pytest.fail("nginx did not answer")


@pytest.mark.needs_nginx
@pytest.mark.skipif(not (os.path.exists(NGINX) and os.path.exists(MODULE)),
                    reason="needs nginx and libnginx-mod-http-headers-more-filter (scripts/setup.sh test)")
def test_the_model_agrees_with_nginx_and_headers_more(tmp_path):
    conf = _config(tmp_path)
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    port = _free_port()
    text = (f"load_module {MODULE};\ndaemon off;\nmaster_process off;\npid {tmp_path}/nginx.pid;\n"
            f"error_log {tmp_path}/error.log;\nevents {{}}\nhttp {{\n  access_log off;\n  default_type text/plain;\n"
            f"  upstream backend {{ server 127.0.0.1:{upstream.server_address[1]}; }}\n"
            f"  server {{\n    listen 127.0.0.1:{port};\n{LOCATIONS}  }}\n}}\n")
    (tmp_path / "nginx.conf").write_text(text)
    proc = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-e",
                             str(tmp_path / "error.log")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for uri, status, names in CASES:
            got_status, headers = _fetch(port, uri, proc)
            assert got_status == status, uri
            proxied = conf.proxy_target(conf.match_location(conf.server_blocks()[0], uri)) is not None
            for name in names:
                real = [v for k, v in headers if k.lower() == name.lower()]
                assert predicted(conf, uri, status, name, proxied) == real, (uri, name)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        upstream.shutdown()
